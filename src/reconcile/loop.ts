/**
 * The reconcile loop's scheduling: one pass at a time, triggers coalesced while a pass runs (a burst of 1000
 * lease events causes at most two passes), a periodic resync, and a record of the last pass for health and
 * status. What a pass does is the caller's function; this module knows nothing about kernels or leases.
 * As a Task it beats after every finished pass (a failed one too: the loop is alive and retries by itself).
 */
import { errorMessage, type Task, type TaskContext, untilAborted } from '../core/index.js';
import { mayUseRememberedState } from './observed.js';

/**
 * Why a pass runs: `start` (first pass), `resync` (the periodic timer), `lease` (a lease event), `own-lease`
 * (the own lease was re-acquired), `retry` (the previous pass failed).
 */
export type PassReason = 'start' | 'resync' | 'lease' | 'own-lease' | 'retry';

export interface PassResult {
  /** Operations that succeeded. */
  applied: number;
  /** Operations that failed (each already logged by the pass). */
  failed: number;
  /** Stale entries removed. */
  removed?: number;
}

/** The one record of a finished pass: kept by the loop, judged by health, shown by `/status`. */
export interface PassRecord extends PassResult {
  /** The coalesced reasons of the pass, each once, in the order they were requested. */
  reasons: PassReason[];
  startedAt: Date;
  /** When it finished. */
  at: Date;
  durationMs: number;
  /** Kernel operations attempted (applied + failed). */
  ops: number;
  /** Every operation succeeded and the pass did not throw. */
  ok: boolean;
  /** Why the pass failed as a whole (it threw, e.g. the kernel dump failed). */
  error?: string;
}

export interface ReconcileLoopOptions {
  pass: (reasons: readonly PassReason[]) => Promise<PassResult>;
  /** Periodic resync in ms (0 = off). */
  intervalMs: number;
  onPass?: (record: PassRecord) => void;
  /** Failed passes are retried after this delay (ms), doubling up to the resync interval. */
  retryMs?: number;
}

export class ReconcileLoop implements Task {
  readonly name = 'reconcile';
  private running: Promise<void> | undefined;
  private pendingReasons: PassReason[] = [];
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private stopped = false;
  private waiters: Array<() => void> = [];
  private beat: (() => void) | undefined;
  last: PassRecord | undefined;
  /** Set while a pass runs: health uses it to detect a stuck pass. */
  runningSince: Date | undefined;
  passes = 0;

  constructor(private readonly options: ReconcileLoopOptions) {
    this.retryDelay = options.retryMs ?? 1000;
  }

  /** A pass runs at least once per resync interval (a minute when resync is off: lease events drive it). */
  get periodMs(): number {
    return this.options.intervalMs > 0 ? this.options.intervalMs : 60_000;
  }

  /** Starts the periodic resync. */
  start(): void {
    this.armTimer();
  }

  /** The Task: resyncs until `signal` aborts, beating after each pass; then waits for the pass in flight. */
  async run({ signal, beat }: TaskContext): Promise<void> {
    this.beat = beat;
    if (this.last !== undefined) beat();
    this.start();
    await untilAborted(signal);
    await this.stop();
  }

  /** Requests a pass. Resolves when a pass that started after this call has finished. */
  trigger(reason: PassReason): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.pendingReasons.push(reason);
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    if (!this.running) this.running = this.drain();
    return done;
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
    return this.running ?? Promise.resolve();
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.options.intervalMs <= 0) return;
    this.timer = setTimeout(() => void this.trigger('resync'), this.options.intervalMs);
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    while (this.pendingReasons.length > 0 && !this.stopped) {
      const reasons = [...new Set(this.pendingReasons)];
      const waiters = this.waiters;
      this.pendingReasons = [];
      this.waiters = [];
      const startedAt = new Date();
      this.runningSince = startedAt;
      let result: PassResult;
      let error: string | undefined;
      try {
        result = await this.options.pass(reasons);
      } catch (err) {
        result = { applied: 0, failed: 1 };
        error = errorMessage(err);
      }
      const at = new Date();
      const record: PassRecord = {
        ...result,
        reasons,
        startedAt,
        at,
        durationMs: at.getTime() - startedAt.getTime(),
        ops: error === undefined ? result.applied + result.failed : 0,
        ok: error === undefined && result.failed === 0,
        ...(error === undefined ? {} : { error }),
      };
      this.runningSince = undefined;
      this.last = record;
      this.passes++;
      this.options.onPass?.(record);
      this.beat?.();
      // The resync interval counts from the last pass that read the kernel. A pass of lease events alone plans
      // against the remembered state: re-arming on it would put the resync off for as long as leases keep
      // changing, and an entry deleted by hand would stay missing through the whole churn.
      if (!mayUseRememberedState(reasons)) this.armTimer();
      if (record.ok) this.retryDelay = this.options.retryMs ?? 1000;
      else this.scheduleRetry();
      for (const w of waiters) w();
    }
    this.running = undefined;
    // Waiters that arrived after stop() still resolve.
    if (this.stopped) for (const w of this.waiters.splice(0)) w();
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    const delay = this.retryDelay;
    const cap = this.options.intervalMs > 0 ? this.options.intervalMs : 30_000;
    this.retryDelay = Math.min(this.retryDelay * 2, cap);
    this.retryTimer = setTimeout(() => void this.trigger('retry'), delay);
    this.retryTimer.unref();
  }
}
