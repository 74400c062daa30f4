/**
 * Runs Tasks (see task.ts) until stopped: each task's `run` is restarted with the one Backoff when it throws,
 * and its heartbeats are recorded so `/healthz` can name a task whose last beat is too old. A `run` that
 * returns before the stop has finished its work for good (a one-shot task such as marking the kube node
 * ready): it is not restarted and no longer judged by its beats. Nothing here logs: `onError` does.
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import { errorMessage } from './errors.js';
import { sleep } from './sleep.js';
import type { Task } from './task.js';

/** What the supervisor knows about one task, for health and `/status`. */
export interface TaskStatus {
  readonly name: string;
  readonly periodMs: number;
  /** Epoch ms of the last beat; the start time until the first beat. */
  readonly lastBeatAt: number;
  /** Whether the task has beaten at least once. */
  readonly beaten: boolean;
  /** Restarts after a throw. */
  readonly restarts: number;
  /** The last error `run` threw, if any. */
  readonly lastError?: string;
  /** The task finished its work for good (a one-shot task); it is no longer judged by its beats. */
  readonly finished: boolean;
}

/** A task whose last beat is older than its period plus the grace time. */
export interface StaleTask {
  readonly name: string;
  readonly ageMs: number;
  readonly limitMs: number;
  readonly lastError?: string;
}

export interface TaskSupervisorOptions {
  /** Restart delays after a throw (default 1 s → 30 s). */
  backoff?: BackoffOptions;
  /** Told about every throw, with the delay before the restart. */
  onError?: (task: string, err: unknown, restartInMs: number) => void;
  /** The clock (tests). */
  now?: () => number;
}

interface Entry {
  task: Task;
  status: {
    -readonly [K in keyof TaskStatus]: TaskStatus[K];
  };
  done: Promise<void>;
}

export class TaskSupervisor {
  private readonly entries = new Map<string, Entry>();
  private readonly stopper = new AbortController();
  private readonly now: () => number;

  constructor(private readonly options: TaskSupervisorOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** Starts `task` (names are unique); it runs until `stop()`. */
  start(task: Task): void {
    if (this.entries.has(task.name))
      throw new Error(`a task named ${JSON.stringify(task.name)} already runs`);
    const status = {
      name: task.name,
      periodMs: task.periodMs,
      lastBeatAt: this.now(),
      beaten: false,
      restarts: 0,
      finished: false,
    } as Entry['status'];
    const entry: Entry = { task, status, done: Promise.resolve() };
    this.entries.set(task.name, entry);
    entry.done = this.supervise(entry);
  }

  private async supervise(entry: Entry): Promise<void> {
    const signal = this.stopper.signal;
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 30_000, ...this.options.backoff });
    const beat = (): void => {
      entry.status.lastBeatAt = this.now();
      entry.status.beaten = true;
      backoff.reset();
    };
    while (!signal.aborted) {
      let failure: unknown;
      try {
        await entry.task.run({ signal, beat });
        if (!signal.aborted) entry.status.finished = true;
        return;
      } catch (err) {
        if (signal.aborted) return;
        failure = err;
      }
      entry.status.lastError = errorMessage(failure);
      entry.status.restarts++;
      const delay = backoff.nextDelayMs();
      this.options.onError?.(entry.task.name, failure, delay);
      await sleep(delay, signal);
    }
  }

  /** Every task's status, in start order. */
  statuses(): TaskStatus[] {
    // A task's period may change as it works (the prober's grows with its targets): read it each time.
    return [...this.entries.values()].map((e) => ({ ...e.status, periodMs: e.task.periodMs }));
  }

  /** Tasks whose last beat (or start) is older than their period plus `graceMs`. */
  stale(graceMs: number): StaleTask[] {
    const now = this.now();
    return staleTasks(this.statuses(), now, graceMs);
  }

  /** Aborts every task and waits for all of them to return. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await Promise.all([...this.entries.values()].map((e) => e.done));
  }
}

/** The judgement alone: which of `statuses` have not beaten within period + grace at `now`. */
export function staleTasks(statuses: readonly TaskStatus[], now: number, graceMs: number): StaleTask[] {
  const out: StaleTask[] = [];
  for (const s of statuses) {
    if (s.finished) continue;
    const limitMs = s.periodMs + graceMs;
    const ageMs = now - s.lastBeatAt;
    if (ageMs > limitMs)
      out.push({
        name: s.name,
        ageMs,
        limitMs,
        ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
      });
  }
  return out;
}
