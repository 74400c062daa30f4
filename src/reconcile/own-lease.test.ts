import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import type { Lease } from '../lease/index.js';
import { silentLogger } from '../log/index.js';
import { OwnLease } from './own-lease.js';

function lease(subnet: string, expiresAtMs: number | null): Lease {
  return {
    key: subnet.replace('/', '-'),
    subnet: parseCidr(subnet),
    attrs: { publicIP: '192.0.2.1', backendType: 'host-gw' },
    expiration: expiresAtMs === null ? null : new Date(expiresAtMs),
  };
}

function recorder(now: () => number) {
  const calls: string[] = [];
  const replumbed: string[] = [];
  const sinks = {
    now,
    logger: silentLogger(),
    health: { setLeaseHeld: (held: boolean) => calls.push(`health held=${held}`) },
    metrics: {
      leaseHeld: (subnet: string) => calls.push(`held ${subnet}`),
      leaseLost: () => calls.push('lost'),
      leaseAcquired: () => calls.push('acquired'),
      leaseRenewed: () => calls.push('renewed'),
      leaseRenewalFailed: () => calls.push('renewal-failed'),
    },
    replumb: async (l: Lease) => {
      replumbed.push(l.key);
    },
  };
  return { calls, replumbed, sinks };
}

describe('OwnLease', () => {
  it('counts failed renewals, one loss when the expiry passes, and none more when the lease is then re-acquired', async () => {
    let now = 1_000;
    const r = recorder(() => now);
    const own = new OwnLease(lease('10.5.1.0/24', 10_000), r.sinks);
    expect(r.calls).toEqual(['acquired', 'health held=true', 'held 10.5.1.0/24']);
    r.calls.length = 0;
    own.onOutcome({
      type: 'failed',
      lease: own.current,
      error: { type: 'Error', message: 'etcd unreachable' },
      retryInMs: 1_000,
      expired: false,
    });
    own.checkExpiry();
    expect(r.calls).toEqual(['renewal-failed']);
    now = 10_000;
    own.checkExpiry();
    own.checkExpiry();
    expect(r.calls).toEqual(['renewal-failed', 'lost']);
    const next = lease('10.5.2.0/24', 99_000);
    await own.onChange({ type: 'reacquired', lease: next, previous: own.current, reason: 'expired' });
    expect(r.calls.slice(2)).toEqual(['acquired', 'health held=true', 'held 10.5.2.0/24']);
    expect(r.replumbed).toEqual(['10.5.2.0-24']);
    expect(own.current).toBe(next);
  });

  it('counts the loss on a re-acquire that came before the expiry, and holds a renewed lease again', async () => {
    const r = recorder(() => 0);
    const own = new OwnLease(lease('10.5.1.0/24', 10_000), r.sinks);
    r.calls.length = 0;
    await own.onChange({ type: 'renewed', lease: lease('10.5.1.0/24', 20_000) });
    expect(r.calls).toEqual(['renewed', 'health held=true', 'held 10.5.1.0/24']);
    r.calls.length = 0;
    await own.onChange({
      type: 'reacquired',
      lease: lease('10.5.3.0/24', null),
      previous: own.current,
      reason: 'deleted',
    });
    expect(r.calls).toEqual(['lost', 'acquired', 'health held=true', 'held 10.5.3.0/24']);
  });

  it('a lost outcome makes the node not ready at once and counts the loss once, re-acquire included', async () => {
    const r = recorder(() => 0);
    const own = new OwnLease(lease('10.5.1.0/24', 10_000), r.sinks);
    r.calls.length = 0;
    own.onOutcome({ type: 'lost', lease: own.current, reason: 'the key was deleted' });
    expect(r.calls).toEqual(['lost', 'health held=false']);
    await own.onChange({
      type: 'reacquired',
      lease: lease('10.5.1.0/24', 20_000),
      previous: own.current,
      reason: 'the key was deleted',
    });
    expect(r.calls.slice(2)).toEqual(['acquired', 'health held=true', 'held 10.5.1.0/24']);
  });
});
