/**
 * The reconcile loop's scheduling: one pass at a time, triggers coalesced while a pass runs (a burst of 1000
 * lease events causes at most two passes), a periodic resync, and a record of the last pass for health and
 * status. What a pass does is the caller's function; this module knows nothing about kernels or leases.
 */
export interface PassResult {
  /** Operations the pass applied. */
  applied: number;
  /** Operations that failed (each already logged by the caller). */
  failed: number;
  /** Stale entries removed. */
  removed?: number;
}

export interface PassRecord extends PassResult {
  reason: string;
  startedAt: Date;
  durationMs: number;
  ok: boolean;
  error?: string;
}

export interface ReconcileLoopOptions {
  pass: (reason: string) => Promise<PassResult>;
  /** Periodic resync in ms (0 = off). */
  intervalMs: number;
  onPass?: (record: PassRecord) => void;
  /** Failed passes are retried after this delay (ms), doubling up to the resync interval. */
  retryMs?: number;
}

export class ReconcileLoop {
  private running: Promise<void> | undefined;
  private pendingReasons: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private stopped = false;
  private waiters: Array<() => void> = [];
  last: PassRecord | undefined;
  /** Set while a pass runs: health uses it to detect a stuck pass. */
  runningSince: Date | undefined;
  passes = 0;

  constructor(private readonly options: ReconcileLoopOptions) {
    this.retryDelay = options.retryMs ?? 1000;
  }

  /** Starts the periodic resync. */
  start(): void {
    this.armTimer();
  }

  /** Requests a pass. Resolves when a pass that started after this call has finished. */
  trigger(reason: string): Promise<void> {
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
      const reason = reasons.join(',');
      const startedAt = new Date();
      this.runningSince = startedAt;
      let record: PassRecord;
      try {
        const result = await this.options.pass(reason);
        record = {
          ...result,
          reason,
          startedAt,
          durationMs: Date.now() - startedAt.getTime(),
          ok: result.failed === 0,
        };
      } catch (err) {
        record = {
          applied: 0,
          failed: 1,
          reason,
          startedAt,
          durationMs: Date.now() - startedAt.getTime(),
          ok: false,
          error: err instanceof Error ? err.message : String(err),
        };
      }
      this.runningSince = undefined;
      this.last = record;
      this.passes++;
      this.options.onPass?.(record);
      this.armTimer();
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
