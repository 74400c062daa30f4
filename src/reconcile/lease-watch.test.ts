import { describe, expect, it } from 'vitest';
import { TaskSupervisor } from '../core/index.js';
import { parseCidr } from '../ip/index.js';
import type { Lease, LeaseWatchBatch } from '../lease/index.js';
import { silentLogger } from '../log/index.js';
import { LeaseSet } from './lease-set.js';
import { LeaseWatch } from './lease-watch.js';

function lease(i: number): Lease {
  return {
    key: `10.5.${i}.0-24`,
    subnet: parseCidr(`10.5.${i}.0/24`),
    attrs: { publicIP: `192.0.2.${i}`, backendType: 'host-gw' },
    expiration: null,
  };
}

/** A watch the test feeds by hand; it ends on `'end'` or when its signal aborts (as the managers' do). */
function handWatch() {
  const queue: Array<LeaseWatchBatch | 'end'> = [];
  let wake: (() => void) | undefined;
  const push = (item: LeaseWatchBatch | 'end') => {
    queue.push(item);
    wake?.();
  };
  async function* watch(signal: AbortSignal): AsyncGenerator<LeaseWatchBatch> {
    signal.addEventListener('abort', () => wake?.(), { once: true });
    for (;;) {
      while (queue.length === 0) {
        if (signal.aborted) return;
        await new Promise<void>((r) => {
          wake = r;
        });
      }
      const item = queue.shift()!;
      if (item === 'end') return;
      yield item;
    }
  }
  return { push, watch };
}

describe('LeaseWatch', () => {
  it('fills the lease set from the snapshot, asks for a pass on changes, and beats only while connected or delivering', async () => {
    let now = 0;
    const sup = new TaskSupervisor({ now: () => now, backoff: { initialMs: 1, maxMs: 1 } });
    const feed = handWatch();
    const leases = new LeaseSet();
    let passes = 0;
    const w = new LeaseWatch({
      watch: feed.watch,
      leases,
      periodMs: 60_000,
      logger: silentLogger(),
      onChanged: () => passes++,
    });
    sup.start(w);
    feed.push({ type: 'snapshot', leases: [lease(1), lease(2)], events: [] });
    await w.firstBatch;
    expect(leases.size).toBe(2);
    expect(passes).toBe(0);
    now = 5;
    feed.push({ type: 'events', events: [{ type: 'added', lease: lease(3) }] });
    for (let i = 0; i < 100 && passes === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(passes).toBe(1);
    expect(sup.statuses()[0]?.lastBeatAt).toBe(5);
    now = 7;
    w.onWatchEvent({ type: 'connected' });
    expect(sup.statuses()[0]?.lastBeatAt).toBe(7);
    w.onWatchEvent({ type: 'reconnect' });
    now = 200_000;
    expect(sup.stale(0).map((s) => s.name)).toEqual(['lease-watch']);
    // A watch that ends on its own is an error: the supervisor starts it again (a fresh list).
    feed.push('end');
    for (let i = 0; i < 100 && (sup.statuses()[0]?.restarts ?? 0) === 0; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(sup.statuses()[0]).toMatchObject({
      restarts: 1,
      lastError: 'the lease watch ended before weftd stopped',
    });
    await sup.stop();
  });
});
