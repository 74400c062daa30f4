import { describe, expect, it } from 'vitest';
import type { Lease } from '../lease/types.js';
import { type PassRecord, ReconcileLoop } from './loop.js';
import { PeerStore } from './peers.js';

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('ReconcileLoop', () => {
  it('runs one pass at a time and coalesces triggers that arrive during a pass', async () => {
    const gate = deferred();
    const reasons: string[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const loop = new ReconcileLoop({
      intervalMs: 0,
      pass: async (reason) => {
        reasons.push(reason);
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (reasons.length === 1) await gate.promise;
        concurrent--;
        return { applied: 1, failed: 0 };
      },
    });
    const first = loop.trigger('start');
    const burst = Array.from({ length: 50 }, (_, i) => loop.trigger(i % 2 ? 'lease' : 'resync'));
    gate.resolve();
    await Promise.all([first, ...burst]);
    expect(reasons).toEqual(['start', 'resync,lease']);
    expect(maxConcurrent).toBe(1);
    expect(loop.passes).toBe(2);
    await loop.stop();
  });

  it('records a thrown pass as failed with its error and keeps going', async () => {
    const records: PassRecord[] = [];
    let n = 0;
    const loop = new ReconcileLoop({
      intervalMs: 0,
      retryMs: 60_000,
      onPass: (r) => records.push(r),
      pass: async () => {
        n++;
        if (n === 1) throw new Error('ip: RTNETLINK answers: Operation not permitted');
        return { applied: 3, failed: 0 };
      },
    });
    await loop.trigger('a');
    await loop.trigger('b');
    expect(records.map((r) => [r.ok, r.error])).toEqual([
      [false, 'ip: RTNETLINK answers: Operation not permitted'],
      [true, undefined],
    ]);
    expect(loop.last?.applied).toBe(3);
    await loop.stop();
  });

  it('retries a failed pass by itself', async () => {
    let n = 0;
    const second = deferred();
    const loop = new ReconcileLoop({
      intervalMs: 0,
      retryMs: 5,
      pass: async (reason) => {
        n++;
        if (n === 2) {
          expect(reason).toBe('retry');
          second.resolve();
        }
        return { applied: 0, failed: n === 1 ? 1 : 0 };
      },
    });
    await loop.trigger('start');
    await second.promise;
    await loop.stop();
    expect(n).toBe(2);
  });

  it('resolves triggers after stop without running', async () => {
    let n = 0;
    const loop = new ReconcileLoop({ intervalMs: 0, pass: async () => ({ applied: n++, failed: 0 }) });
    await loop.stop();
    await loop.trigger('late');
    expect(n).toBe(0);
  });
});

function lease(key: string, publicIP: string, mac = 'aa:bb:cc:dd:ee:01'): Lease {
  return {
    key,
    attrs: { publicIP, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } },
    expiration: null,
  };
}

describe('PeerStore', () => {
  it('applies a snapshot, events, and a re-list snapshot that drops vanished peers', () => {
    const store = new PeerStore();
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
