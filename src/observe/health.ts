// Liveness and readiness as plain state: the daemon reports facts (lease held, firewall installed, subnet
// file written, reconcile started/finished, event loop delay) and `healthz()`/`readyz()` judge them. No
// timers or I/O here except the optional event loop monitor at the bottom, so the judgement is unit-tested
// with an injected clock.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** A verdict: ok, or the reasons it is not (each a short sentence naming what is wrong). */
export interface HealthVerdict {
  ok: boolean;
  reasons: string[];
}

/** What the last finished reconcile did. */
export interface ReconcileSummary {
  /** When it finished. */
  at: Date;
  ok: boolean;
  /** Kernel operations applied (successfully or not). */
  ops: number;
  /** Operations that failed. */
  failed: number;
  durationMs: number;
  /** Why the run failed as a whole (e.g. the kernel dump), when it did. */
  error?: string;
}

export interface HealthStateOptions {
  /** A reconcile running longer than this makes `/healthz` fail (default 120 s). */
  reconcileStuckAfterMs?: number;
  /**
   * `/healthz` fails when no reconcile has finished for this long after the first one (the loop is wedged).
   * Set it to a few resync periods; default off.
   */
  maxReconcileAgeMs?: number;
  /** `/healthz` fails when the event loop was blocked longer than this in the last window (default 5 s). */
  maxEventLoopDelayMs?: number;
  /** Whether readiness needs firewall rules (false with `--ip-masq=false --iptables-forward-rules=false`). */
  firewallRequired?: boolean;
  /** The clock (tests). */
  now?: () => number;
}

export class HealthState {
  private leaseHeldFlag = false;
  private firewallInstalledFlag = false;
  private subnetFileWrittenFlag = false;
  private shuttingDownFlag = false;
  private reconcileStartedAtMs: number | null = null;
  private lastReconcileSummary: ReconcileSummary | null = null;
  private eventLoopDelayMs = 0;

  private readonly reconcileStuckAfterMs: number;
  private readonly maxReconcileAgeMs: number | undefined;
  private readonly maxEventLoopDelayMs: number;
  private readonly firewallRequired: boolean;
  private readonly now: () => number;

  constructor(options: HealthStateOptions = {}) {
    this.reconcileStuckAfterMs = options.reconcileStuckAfterMs ?? 120_000;
    this.maxReconcileAgeMs = options.maxReconcileAgeMs;
    this.maxEventLoopDelayMs = options.maxEventLoopDelayMs ?? 5_000;
    this.firewallRequired = options.firewallRequired ?? true;
    this.now = options.now ?? Date.now;
  }

  setLeaseHeld(held: boolean): void {
    this.leaseHeldFlag = held;
  }

  setFirewallInstalled(installed: boolean): void {
    this.firewallInstalledFlag = installed;
  }

  setSubnetFileWritten(written: boolean): void {
    this.subnetFileWrittenFlag = written;
  }

  /** SIGTERM received: stop advertising readiness while shutting down. */
  setShuttingDown(): void {
    this.shuttingDownFlag = true;
  }

  reconcileStarted(): void {
    this.reconcileStartedAtMs = this.now();
  }

  /** A reconcile finished; `at` defaults to now. */
  reconcileFinished(result: Omit<ReconcileSummary, 'at'> & { at?: Date }): void {
    this.reconcileStartedAtMs = null;
    this.lastReconcileSummary = { ...result, at: result.at ?? new Date(this.now()) };
  }

  /** The longest event loop delay seen in the monitor's last window. */
  recordEventLoopDelay(maxDelayMs: number): void {
    if (Number.isFinite(maxDelayMs) && maxDelayMs >= 0) this.eventLoopDelayMs = maxDelayMs;
  }

  get lastReconcile(): ReconcileSummary | null {
    return this.lastReconcileSummary;
  }

  /** Since when a reconcile has been running, or null. */
  get reconcileInProgressSince(): Date | null {
    return this.reconcileStartedAtMs === null ? null : new Date(this.reconcileStartedAtMs);
  }

  get eventLoopDelay(): number {
    return this.eventLoopDelayMs;
  }

  /**
   * Liveness: the process answers (this runs on its event loop), the loop was not blocked for long, and the
   * reconcile loop is not stuck. Not being ready yet (no lease) is no reason to restart the process.
   */
  healthz(): HealthVerdict {
    const reasons: string[] = [];
    const now = this.now();
    if (this.eventLoopDelayMs > this.maxEventLoopDelayMs) {
      reasons.push(
        `event loop blocked for ${Math.round(this.eventLoopDelayMs)} ms (limit ${this.maxEventLoopDelayMs} ms)`,
      );
    }
    if (this.reconcileStartedAtMs !== null) {
      const runningMs = now - this.reconcileStartedAtMs;
      if (runningMs > this.reconcileStuckAfterMs) {
        reasons.push(
          `reconcile running for ${Math.round(runningMs / 1000)} s (stuck after ${Math.round(this.reconcileStuckAfterMs / 1000)} s)`,
        );
      }
    } else if (this.maxReconcileAgeMs !== undefined && this.lastReconcileSummary !== null) {
      const ageMs = now - this.lastReconcileSummary.at.getTime();
      if (ageMs > this.maxReconcileAgeMs) {
        reasons.push(
          `no reconcile finished for ${Math.round(ageMs / 1000)} s (limit ${Math.round(this.maxReconcileAgeMs / 1000)} s)`,
        );
      }
    }
    return { ok: reasons.length === 0, reasons };
  }

  /** Readiness: the node can carry pod traffic: lease held, firewall installed, subnet file written. */
  readyz(): HealthVerdict {
    const reasons: string[] = [];
    if (this.shuttingDownFlag) reasons.push('shutting down');
    if (!this.leaseHeldFlag) reasons.push('no subnet lease held');
    if (this.firewallRequired && !this.firewallInstalledFlag) reasons.push('firewall rules not installed');
    if (!this.subnetFileWrittenFlag) reasons.push('subnet file not written');
    return { ok: reasons.length === 0, reasons };
  }
}

export interface EventLoopMonitor {
  stop(): void;
}

/**
 * Samples the event loop delay (perf_hooks histogram) and reports each window's maximum to `health`.
 * The timer is unref'd: it never keeps the process alive.
 */
export function startEventLoopMonitor(health: HealthState, windowMs = 5_000): EventLoopMonitor {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const timer = setInterval(() => {
    // max is in nanoseconds.
    health.recordEventLoopDelay(histogram.max / 1e6);
    histogram.reset();
  }, windowMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
