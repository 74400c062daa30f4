import { describe, expect, it, vi } from 'vitest';
import { type PassReason, type PassRecord, ReconcileLoop } from './loop.js';

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
    const reasons: PassReason[][] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const loop = new ReconcileLoop({
      intervalMs: 0,
      pass: async (r) => {
        reasons.push([...r]);
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
    expect(reasons).toEqual([['start'], ['resync', 'lease']]);
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
    await loop.trigger('start');
    await loop.trigger('resync');
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
      pass: async (r) => {
        n++;
        if (n === 2) {
          expect(r).toEqual(['retry']);
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
    await loop.trigger('lease');
    expect(n).toBe(0);
  });
});

describe('ReconcileLoop as a Task', () => {
  it('beats after each pass, failed ones too, and stops with its signal', async () => {
    let n = 0;
    const loop = new ReconcileLoop({
      intervalMs: 0,
      retryMs: 60_000,
      pass: async () => {
        n++;
        if (n === 2) throw new Error('cannot dump routes');
        return { applied: 0, failed: 0 };
      },
    });
    await loop.trigger('start');
    const beats: number[] = [];
    const stop = new AbortController();
    const running = loop.run({ signal: stop.signal, beat: () => beats.push(n) });
    // The pass before the task started counts as its first beat.
    expect(beats).toEqual([1]);
    await loop.trigger('lease');
    expect(beats).toEqual([1, 2]);
    expect(loop.last).toMatchObject({ ok: false, error: 'cannot dump routes', reasons: ['lease'], ops: 0 });
    stop.abort();
    await running;
    await loop.trigger('resync');
    expect(n).toBe(2);
  });

  it('resyncs every interval while lease events keep coming (lease passes do not postpone the resync)', async () => {
    vi.useFakeTimers();
    try {
      const reasons: PassReason[][] = [];
      const loop = new ReconcileLoop({
        intervalMs: 1_000,
        pass: async (r) => {
          reasons.push([...r]);
          return { applied: 0, failed: 0 };
        },
      });
      await loop.trigger('start');
      loop.start();
      // A lease event every 100 ms for 3.5 intervals: lease passes use the remembered kernel state, so only the
      // resync reads the kernel and finds entries changed by hand.
      for (let i = 0; i < 35; i++) {
        await vi.advanceTimersByTimeAsync(100);
        await loop.trigger('lease');
      }
      expect(reasons.filter((r) => r.includes('resync'))).toHaveLength(3);
      await loop.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
