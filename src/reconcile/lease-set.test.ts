import { describe, expect, it } from 'vitest';
import type { Lease } from '../lease/types.js';
import { LeaseSet } from './lease-set.js';

function lease(key: string, publicIP: string, mac = 'aa:bb:cc:dd:ee:01'): Lease {
  return {
    key,
    attrs: { publicIP, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } },
    expiration: null,
  };
}

describe('LeaseSet', () => {
  it('applies a snapshot, events, and a re-list snapshot that drops vanished peers', () => {
    const store = new LeaseSet();
    expect(
      store.apply({
        type: 'snapshot',
        leases: [lease('a', '192.0.2.1'), lease('b', '192.0.2.2')],
        events: [],
      }),
    ).toMatchObject({
      added: 2,
      removed: 0,
      snapshot: true,
    });
    expect(
      store.apply({
        type: 'events',
        events: [
          { type: 'added', lease: lease('c', '192.0.2.3') },
          { type: 'changed', lease: lease('a', '192.0.2.1', 'aa:bb:cc:dd:ee:02') },
          { type: 'removed', lease: lease('b', '192.0.2.2') },
        ],
      }),
    ).toEqual({ added: 1, removed: 1, changed: 1, snapshot: false });
    expect(store.peers('c').map((l) => l.key)).toEqual(['a']);
    const counts = store.apply({ type: 'snapshot', leases: [lease('a', '192.0.2.9')], events: [] });
    expect(counts).toEqual({ added: 0, removed: 1, changed: 1, snapshot: true });
    expect(store.size).toBe(1);
  });
});
