// Liveness and readiness as plain state: the daemon reports facts (lease held and until when, firewall
// installed or its repair failing, files written, reconcile passes, task heartbeats, event loop delay) and
// `healthz()`/`readyz()` judge them. No timers or I/O here except the optional event loop monitor at the
// bottom, so the judgement is unit-tested with an injected clock.
//
// Liveness (`/healthz`, "restart me"): a task's heartbeat older than its period plus grace, a stuck pass, a
// blocked event loop. Readiness (`/readyz`, systemd's READY=1, "this node carries pod traffic"): the own
// lease held and not past its expiry, the firewall installed and its last check or repair good, the files
// written, a first reconcile pass that succeeded and a last pass that could run at all. A last pass with some
// failed operations keeps readiness (the other peers work, the loop retries); a pass that threw does not.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { staleTasks, type TaskStatus } from '../core/index.js';
import type { PassRecord } from '../reconcile/loop.js';

/** A verdict: ok, or the reasons it is not (each a short sentence naming what is wrong). */
export interface HealthVerdict {
  ok: boolean;
  reasons: string[];
}

/** What the last finished reconcile did: the part of the reconcile loop's record that health and status use. */
export type ReconcileSummary = Pick<PassRecord, 'at' | 'ok' | 'ops' | 'failed' | 'durationMs' | 'error'>;

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
  /** Whether readiness needs a reconcile pass that succeeded (the daemon sets it; default false). */
  reconcileRequired?: boolean;
  /** The supervised tasks' heartbeats; a stale one fails `/healthz`. */
  tasks?: () => readonly TaskStatus[];
  /**
   * Grace on top of a task's period before it counts as stale: one more period, at least this much (default
   * 10 s), so a slow round on a loaded node is no reason to restart.
   */
  taskMinGraceMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export class HealthState {
  private leaseHeldFlag = false;
  /** Epoch ms after which the held lease is gone unless renewed; null: never (reservation, kube). */
  private leaseExpiresAtMs: number | null = null;
  private firewallInstalledFlag = false;
  private firewallProblem: string | undefined;
  private reconcileSucceeded = false;
  private subnetFileWrittenFlag = false;
  private shuttingDownFlag = false;
  private reconcileStartedAtMs: number | null = null;
  private lastReconcileSummary: ReconcileSummary | null = null;
  private eventLoopDelayMs = 0;

  private readonly reconcileStuckAfterMs: number;
  private readonly maxReconcileAgeMs: number | undefined;
  private readonly maxEventLoopDelayMs: number;
  private readonly firewallRequired: boolean;
  private readonly reconcileRequired: boolean;
  private readonly tasks: (() => readonly TaskStatus[]) | undefined;
  private readonly taskMinGraceMs: number;
  private readonly now: () => number;

  constructor(options: HealthStateOptions = {}) {
    this.reconcileStuckAfterMs = options.reconcileStuckAfterMs ?? 120_000;
    this.maxReconcileAgeMs = options.maxReconcileAgeMs;
    this.maxEventLoopDelayMs = options.maxEventLoopDelayMs ?? 5_000;
    this.firewallRequired = options.firewallRequired ?? true;
    this.reconcileRequired = options.reconcileRequired ?? false;
    this.tasks = options.tasks;
    this.taskMinGraceMs = options.taskMinGraceMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The own lease is held (until `expiration`, when given; null or absent: no expiry) or not. */
  setLeaseHeld(held: boolean, expiration?: Date | null): void {
    this.leaseHeldFlag = held;
    this.leaseExpiresAtMs = held && expiration ? expiration.getTime() : null;
  }

  /** Whether the own lease is held now: set held, and its expiry (if any) not yet passed. */
  get leaseHeld(): boolean {
    return this.leaseHeldFlag && (this.leaseExpiresAtMs === null || this.now() < this.leaseExpiresAtMs);
  }

  /** The firewall rules are in place, or not (`problem`: why, e.g. the repair failed). */
  setFirewallInstalled(installed: boolean, problem?: string): void {
    this.firewallInstalledFlag = installed;
    this.firewallProblem = installed ? undefined : problem;
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
    this.lastReconcileSummary = {
      at: result.at ?? new Date(this.now()),
      ok: result.ok,
      ops: result.ops,
      failed: result.failed,
      durationMs: result.durationMs,
      ...(result.error === undefined ? {} : { error: result.error }),
    };
    if (result.ok) this.reconcileSucceeded = true;
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
    if (this.tasks !== undefined) {
      for (const s of this.tasks()) {
        const stale = staleTasks([s], now, Math.max(s.periodMs, this.taskMinGraceMs))[0];
        if (stale === undefined) continue;
        const why = stale.lastError === undefined ? '' : ` (last error: ${stale.lastError})`;
        reasons.push(
          `task ${stale.name}: no heartbeat for ${seconds(stale.ageMs)} s (limit ${seconds(stale.limitMs)} s)${why}`,
        );
      }
    }
    return { ok: reasons.length === 0, reasons };
  }

  /**
   * Readiness: the node can carry pod traffic: lease held and not expired, firewall installed and holding,
   * files written, a reconcile pass that succeeded and a last one that ran.
   */
  readyz(): HealthVerdict {
    const reasons: string[] = [];
    if (this.shuttingDownFlag) reasons.push('shutting down');
    if (!this.leaseHeldFlag) reasons.push('no subnet lease held');
    else if (!this.leaseHeld)
      reasons.push(
        `own lease expired at ${new Date(this.leaseExpiresAtMs ?? 0).toISOString()} without renewal`,
      );
    if (this.firewallRequired && !this.firewallInstalledFlag)
      reasons.push(
        this.firewallProblem === undefined
          ? 'firewall rules not installed'
          : `firewall rules not in place: ${this.firewallProblem}`,
      );
    if (!this.subnetFileWrittenFlag) reasons.push('subnet file not written');
    if (this.reconcileRequired) {
      const last = this.lastReconcileSummary;
      if (!this.reconcileSucceeded) reasons.push('no reconcile pass has succeeded yet');
      else if (last?.error !== undefined) reasons.push(`the last reconcile pass failed: ${last.error}`);
    }
    return { ok: reasons.length === 0, reasons };
  }
}

function seconds(ms: number): number {
  return Math.round(ms / 1000);
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
