import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../ip/index.js';
import type { Lease } from '../../lease/index.js';
import { NodeLeaseIndex } from './lease-index.js';
import { ownLease } from './node-lease.js';

const lease = (cidr: string, publicIP: string): Lease =>
  ownLease({ subnet: parseCidr(cidr) }, { publicIP, backendType: 'host-gw' });

const summary = (events: { type: string; lease: Lease }[]): string[] =>
  events.map((e) => `${e.type} ${e.lease.key} ${e.lease.attrs.publicIP}`);

describe('NodeLeaseIndex: one lease per pod CIDR, whichever way the nodes arrive', () => {
  it('a second node claiming a CIDR does not replace the first (incremental events)', () => {
    const index = new NodeLeaseIndex();
    expect(summary(index.set('a', lease('10.5.1.0/24', '192.0.2.1')).events)).toEqual([
      'added 10.5.1.0-24 192.0.2.1',
    ]);
    const second = index.set('b', lease('10.5.1.0/24', '192.0.2.2'));
    expect(second.events).toEqual([]);
    expect(second.conflicts).toEqual([{ node: 'b', key: '10.5.1.0-24', holder: 'a' }]);
    expect(index.leases().map((l) => l.attrs.publicIP)).toEqual(['192.0.2.1']);
  });

  it('deleting the shadowed claimant keeps the holder’s routes (no removal event)', () => {
    const index = new NodeLeaseIndex();
    index.set('a', lease('10.5.1.0/24', '192.0.2.1'));
    index.set('b', lease('10.5.1.0/24', '192.0.2.2'));
    expect(index.set('b', undefined).events).toEqual([]);
    expect(index.leases().map((l) => l.attrs.publicIP)).toEqual(['192.0.2.1']);
  });

  it('when the holder goes, the next claimant takes the key over as a change', () => {
    const index = new NodeLeaseIndex();
    index.set('a', lease('10.5.1.0/24', '192.0.2.1'));
    index.set('b', lease('10.5.1.0/24', '192.0.2.2'));
    expect(summary(index.set('a', undefined).events)).toEqual(['changed 10.5.1.0-24 192.0.2.2']);
    expect(summary(index.set('b', undefined).events)).toEqual(['removed 10.5.1.0-24 192.0.2.2']);
    expect(index.size).toBe(0);
  });

  it('a holder moving to another CIDR hands its old key to the next claimant', () => {
    const index = new NodeLeaseIndex();
    index.set('a', lease('10.5.1.0/24', '192.0.2.1'));
    index.set('b', lease('10.5.1.0/24', '192.0.2.2'));
    expect(summary(index.set('a', lease('10.5.9.0/24', '192.0.2.1')).events)).toEqual([
      'changed 10.5.1.0-24 192.0.2.2',
      'added 10.5.9.0-24 192.0.2.1',
    ]);
  });

  it('a shadowed claimant’s attribute change is no event; the holder’s is', () => {
    const index = new NodeLeaseIndex();
    index.set('a', lease('10.5.1.0/24', '192.0.2.1'));
    index.set('b', lease('10.5.1.0/24', '192.0.2.2'));
    expect(index.set('b', lease('10.5.1.0/24', '192.0.2.3')).events).toEqual([]);
    expect(summary(index.set('a', lease('10.5.1.0/24', '192.0.2.4')).events)).toEqual([
      'changed 10.5.1.0-24 192.0.2.4',
    ]);
    // The same attributes again (a heartbeat with a new resourceVersion) are no event.
    expect(index.set('a', lease('10.5.1.0/24', '192.0.2.4')).events).toEqual([]);
  });

  it('a relist keeps the holder a stream of events chose, and agrees with it afterwards', () => {
    const index = new NodeLeaseIndex();
    index.set('b', lease('10.5.1.0/24', '192.0.2.2'));
    index.set('a', lease('10.5.1.0/24', '192.0.2.1'));
    // The list comes in name order (a before b); b claimed first and keeps the key: no event.
    const relist = index.replaceAll([
      ['a', lease('10.5.1.0/24', '192.0.2.1')],
      ['b', lease('10.5.1.0/24', '192.0.2.2')],
      ['c', lease('10.5.3.0/24', '192.0.2.3')],
    ]);
    expect(summary(relist.events)).toEqual(['added 10.5.3.0-24 192.0.2.3']);
    expect(relist.conflicts).toEqual([{ node: 'a', key: '10.5.1.0-24', holder: 'b' }]);
    expect(relist.leases.map((l) => l.attrs.publicIP).sort()).toEqual(['192.0.2.2', '192.0.2.3']);
    // Deleting b after the relist hands the key to a, exactly as without the relist.
    expect(summary(index.set('b', undefined).events)).toEqual(['changed 10.5.1.0-24 192.0.2.1']);
  });

  it('a relist without a node removes its lease; a fresh index takes the first claimant in list order', () => {
    const index = new NodeLeaseIndex();
    const first = index.replaceAll([
      ['a', lease('10.5.1.0/24', '192.0.2.1')],
      ['b', lease('10.5.1.0/24', '192.0.2.2')],
    ]);
    expect(summary(first.events)).toEqual(['added 10.5.1.0-24 192.0.2.1']);
    expect(summary(index.replaceAll([]).events)).toEqual(['removed 10.5.1.0-24 192.0.2.1']);
  });
});
