import { describe, expect, it } from 'vitest';
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
