import { describe, expect, it } from 'vitest';
import type { TaskStatus } from '../core/index.js';
import { HealthState, startEventLoopMonitor } from './health.js';

function clock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('readyz', () => {
  it('is not ready until the lease is held, the firewall installed and the subnet file written', () => {
    const health = new HealthState();
    expect(health.readyz()).toEqual({
      ok: false,
      reasons: ['no subnet lease held', 'firewall rules not installed', 'subnet file not written'],
    });
    health.setLeaseHeld(true);
    health.setFirewallInstalled(true);
    expect(health.readyz()).toEqual({ ok: false, reasons: ['subnet file not written'] });
    health.setSubnetFileWritten(true);
    expect(health.readyz()).toEqual({ ok: true, reasons: [] });
  });

  it('becomes not ready again when the lease is lost, and while shutting down', () => {
    const health = new HealthState();
    health.setLeaseHeld(true);
    health.setFirewallInstalled(true);
    health.setSubnetFileWritten(true);
    health.setLeaseHeld(false);
    expect(health.readyz().reasons).toEqual(['no subnet lease held']);
    health.setLeaseHeld(true);
    health.setShuttingDown();
    expect(health.readyz()).toEqual({ ok: false, reasons: ['shutting down'] });
  });

  it('does not wait for firewall rules when none are required', () => {
    const health = new HealthState({ firewallRequired: false });
    health.setLeaseHeld(true);
    health.setSubnetFileWritten(true);
    expect(health.readyz().ok).toBe(true);
  });
});

describe('healthz', () => {
  it('is healthy before the first lease: not being ready is no reason to restart', () => {
    expect(new HealthState().healthz()).toEqual({ ok: true, reasons: [] });
  });

  it('fails when a reconcile runs longer than the stuck limit, and recovers when it finishes', () => {
    const c = clock();
    const health = new HealthState({ now: c.now, reconcileStuckAfterMs: 60_000 });
    health.reconcileStarted();
    c.advance(59_000);
    expect(health.healthz().ok).toBe(true);
    expect(health.reconcileInProgressSince?.getTime()).toBe(c.now() - 59_000);
    c.advance(2_000);
    const verdict = health.healthz();
    expect(verdict.ok).toBe(false);
    expect(verdict.reasons).toEqual(['reconcile running for 61 s (stuck after 60 s)']);
    health.reconcileFinished({ ok: true, ops: 3, failed: 0, durationMs: 61_000 });
    expect(health.healthz().ok).toBe(true);
    expect(health.reconcileInProgressSince).toBeNull();
    expect(health.lastReconcile).toEqual({
      at: new Date(c.now()),
      ok: true,
      ops: 3,
      failed: 0,
      durationMs: 61_000,
    });
  });

  it('fails when no reconcile finished for longer than maxReconcileAgeMs', () => {
    const c = clock();
    const health = new HealthState({ now: c.now, maxReconcileAgeMs: 90_000 });
    c.advance(500_000);
    // No reconcile yet: start-up is not judged by age.
    expect(health.healthz().ok).toBe(true);
    health.reconcileFinished({ ok: false, ops: 1, failed: 1, durationMs: 4, error: 'dump failed' });
    c.advance(90_000);
    expect(health.healthz().ok).toBe(true);
    c.advance(1_000);
    expect(health.healthz().reasons).toEqual(['no reconcile finished for 91 s (limit 90 s)']);
    expect(health.lastReconcile?.error).toBe('dump failed');
  });

  it('fails when the event loop was blocked longer than the limit', () => {
    const health = new HealthState({ maxEventLoopDelayMs: 1_000 });
    health.recordEventLoopDelay(999);
    expect(health.healthz().ok).toBe(true);
    health.recordEventLoopDelay(2_500);
    expect(health.healthz().reasons).toEqual(['event loop blocked for 2500 ms (limit 1000 ms)']);
    health.recordEventLoopDelay(Number.NaN);
    expect(health.eventLoopDelay).toBe(2_500);
    health.recordEventLoopDelay(3);
    expect(health.healthz().ok).toBe(true);
  });
});

describe('readyz follows the facts both ways', () => {
  function readyState(c: ReturnType<typeof clock>) {
    const health = new HealthState({ now: c.now, reconcileRequired: true });
    health.setLeaseHeld(true, new Date(c.now() + 60_000));
    health.setFirewallInstalled(true);
    health.setSubnetFileWritten(true);
    health.reconcileFinished({ ok: true, ops: 2, failed: 0, durationMs: 3 });
    return health;
  }

  it('turns false when the lease runs past its expiry without renewal, and true after a renewal', () => {
    const c = clock();
    const health = readyState(c);
    expect(health.readyz().ok).toBe(true);
    c.advance(60_000);
    expect(health.leaseHeld).toBe(false);
    expect(health.readyz().reasons).toEqual([
      `own lease expired at ${new Date(c.now()).toISOString()} without renewal`,
    ]);
    health.setLeaseHeld(true, new Date(c.now() + 60_000));
    expect(health.readyz().ok).toBe(true);
    // A reservation (no expiry) never expires.
    health.setLeaseHeld(true, null);
    c.advance(10 * 86_400_000);
    expect(health.readyz().ok).toBe(true);
  });

  it('turns false while the firewall repair fails, naming why', () => {
    const c = clock();
    const health = readyState(c);
    health.setFirewallInstalled(false, 'iptables-restore exited with code 1');
    expect(health.readyz().reasons).toEqual([
      'firewall rules not in place: iptables-restore exited with code 1',
    ]);
    health.setFirewallInstalled(true);
    expect(health.readyz().ok).toBe(true);
  });

  it('needs one successful pass; a later pass with failed ops keeps readiness, a pass that threw does not', () => {
    const c = clock();
    const health = new HealthState({ now: c.now, reconcileRequired: true, firewallRequired: false });
    health.setLeaseHeld(true);
    health.setSubnetFileWritten(true);
    expect(health.readyz().reasons).toEqual(['no reconcile pass has succeeded yet']);
    health.reconcileFinished({ ok: false, ops: 3, failed: 1, durationMs: 3 });
    expect(health.readyz().reasons).toEqual(['no reconcile pass has succeeded yet']);
    health.reconcileFinished({ ok: true, ops: 1, failed: 0, durationMs: 3 });
    expect(health.readyz().ok).toBe(true);
    health.reconcileFinished({ ok: false, ops: 3, failed: 1, durationMs: 3 });
    expect(health.readyz().ok).toBe(true);
    health.reconcileFinished({ ok: false, ops: 0, failed: 1, durationMs: 3, error: 'cannot dump routes' });
    expect(health.readyz().reasons).toEqual(['the last reconcile pass failed: cannot dump routes']);
    health.reconcileFinished({ ok: true, ops: 0, failed: 0, durationMs: 3 });
    expect(health.readyz().ok).toBe(true);
  });
});

describe('healthz and task heartbeats', () => {
  it('names a task whose last beat is older than its period plus grace (one period, at least the minimum)', () => {
    const c = clock();
    const tasks: TaskStatus[] = [
      {
        name: 'lease-watch',
        periodMs: 2_000,
        lastBeatAt: c.now(),
        beaten: true,
        restarts: 0,
        finished: false,
      },
      {
        name: 'firewall-check',
        periodMs: 30_000,
        lastBeatAt: c.now(),
        beaten: true,
        restarts: 1,
        finished: false,
        lastError: 'iptables-save not found',
      },
    ];
    const health = new HealthState({ now: c.now, tasks: () => tasks, taskMinGraceMs: 10_000 });
    c.advance(12_000);
    expect(health.healthz().ok).toBe(true);
    c.advance(1_000);
    expect(health.healthz().reasons).toEqual(['task lease-watch: no heartbeat for 13 s (limit 12 s)']);
    c.advance(48_000);
    expect(health.healthz().reasons).toEqual([
      'task lease-watch: no heartbeat for 61 s (limit 12 s)',
      'task firewall-check: no heartbeat for 61 s (limit 60 s) (last error: iptables-save not found)',
    ]);
    tasks[0] = { ...tasks[0]!, lastBeatAt: c.now() };
    tasks[1] = { ...tasks[1]!, finished: true };
    expect(health.healthz().ok).toBe(true);
  });
});

describe('startEventLoopMonitor', () => {
  it('reports a blocked event loop to the health state', async () => {
    const health = new HealthState({ maxEventLoopDelayMs: 50 });
    const monitor = startEventLoopMonitor(health, 100);
    try {
      await new Promise((r) => setTimeout(r, 50));
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // Block the loop on purpose.
      }
      // Bounded wait for the next window to report the block.
      for (let i = 0; i < 100 && health.eventLoopDelay < 150; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(health.eventLoopDelay).toBeGreaterThanOrEqual(150);
      expect(health.healthz().ok).toBe(false);
    } finally {
      monitor.stop();
    }
  });
});
