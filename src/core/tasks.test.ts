import { describe, expect, it } from 'vitest';
import { sleep } from './sleep.js';
import type { Task } from './task.js';
import { staleTasks, type TaskStatus, TaskSupervisor } from './tasks.js';

/** Polls `check` (bounded: 200 rounds of 5 ms) until it is true. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await sleep(5);
  expect(check()).toBe(true);
}

function status(over: Partial<TaskStatus> & { name: string }): TaskStatus {
  return { periodMs: 1_000, lastBeatAt: 0, beaten: true, restarts: 0, finished: false, ...over };
}

describe('staleTasks', () => {
  it('names the tasks whose last beat is older than period + grace, and skips finished ones', () => {
    const statuses = [
      status({ name: 'fresh', lastBeatAt: 9_000 }),
      status({ name: 'edge', lastBeatAt: 7_000 }),
      status({ name: 'stale', lastBeatAt: 6_999, lastError: 'etcd unreachable' }),
      status({ name: 'done', lastBeatAt: 0, finished: true }),
    ];
    expect(staleTasks(statuses, 10_000, 2_000)).toEqual([
      { name: 'stale', ageMs: 3_001, limitMs: 3_000, lastError: 'etcd unreachable' },
    ]);
  });
});

describe('TaskSupervisor', () => {
  it('records beats, restarts a task that throws, and stops every task', async () => {
    let now = 1_000;
    const errors: string[] = [];
    const sup = new TaskSupervisor({
      now: () => now,
      backoff: { initialMs: 1, maxMs: 2 },
      onError: (name, err) => errors.push(`${name}: ${(err as Error).message}`),
    });
    let runs = 0;
    const flaky: Task = {
      name: 'flaky',
      periodMs: 100,
      async run({ signal, beat }) {
        runs++;
        if (runs < 3) throw new Error(`attempt ${runs} failed`);
        beat();
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
      },
    };
    sup.start(flaky);
    await until(() => sup.statuses()[0]?.beaten === true);
    expect(errors).toEqual(['flaky: attempt 1 failed', 'flaky: attempt 2 failed']);
    expect(sup.statuses()[0]).toMatchObject({ name: 'flaky', restarts: 2, lastError: 'attempt 2 failed' });
    expect(sup.stale(50)).toEqual([]);
    now += 151;
    expect(sup.stale(50).map((s) => s.name)).toEqual(['flaky']);
    await sup.stop();
    expect(runs).toBe(3);
  });

  it('counts a task that has never beaten from its start, and forgets a finished one-shot task', async () => {
    let now = 0;
    const sup = new TaskSupervisor({ now: () => now });
    let finish!: () => void;
    const gate = new Promise<void>((r) => {
      finish = r;
    });
    sup.start({ name: 'one-shot', periodMs: 10, run: () => gate });
    sup.start({
      name: 'silent',
      periodMs: 10,
      run: ({ signal }) => new Promise((r) => signal.addEventListener('abort', () => r(), { once: true })),
    });
    now = 11;
    expect(sup.stale(0).map((s) => s.name)).toEqual(['one-shot', 'silent']);
    finish();
    await until(() => sup.statuses()[0]?.finished === true);
    expect(sup.stale(0).map((s) => s.name)).toEqual(['silent']);
    await sup.stop();
  });

  it('refuses two tasks with one name', async () => {
    const sup = new TaskSupervisor();
    const idle: Task = { name: 'x', periodMs: 1, run: async () => undefined };
    sup.start(idle);
    expect(() => sup.start(idle)).toThrow('a task named "x" already runs');
    await sup.stop();
  });
});
