import { sleep } from './sleep.js';

/**
 * The one retry policy: exponential delays from `initialMs` to `maxMs`, with jitter so many nodes do not
 * retry in step. Every retrying loop (etcd, kube, firewall, helper processes) uses it.
 */
/** Retry delays: exponential from `initialMs` to `maxMs`, with jitter so many nodes do not retry in step. */
export interface BackoffOptions {
  /** First delay (default 200 ms). */
  initialMs?: number;
  /** Largest delay (default 10 s). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Random source in [0, 1) (tests pass a fixed one). Each delay is scaled by 0.5 + 0.5 * random(). */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = Math.max(1, options.initialMs ?? 200);
    this.maxMs = Math.max(this.initialMs, options.maxMs ?? 10_000);
    this.factor = Math.max(1, options.factor ?? 2);
    this.random = options.random ?? Math.random;
  }

  /** Failures since the last `reset()`. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next retry; each call counts one more failure. */
  nextDelayMs(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** Math.min(this.failures, 64));
    this.failures++;
    return Math.round(base * (0.5 + 0.5 * this.random()));
  }

  reset(): void {
    this.failures = 0;
  }

  /** Sleeps for the next delay; resolves early (without throwing) when `signal` aborts. Returns the delay. */
  async wait(signal?: AbortSignal): Promise<number> {
    const delay = this.nextDelayMs();
    await sleep(delay, signal);
    return delay;
  }
}
