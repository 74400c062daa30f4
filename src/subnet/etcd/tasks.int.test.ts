// The lease keeper and the lease watch as Tasks against a real etcd: they beat while their work succeeds
// (renewal checks; watch events and idle confirmations), stop beating while etcd is unreachable, and report
// renewal outcomes (ok, failed, lost, reacquired) for health and metrics.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../testkit/dataplane.js';
import { etcdctl } from '../../../testkit/etcd.js';
import { EtcdManagerFixture } from '../../../testkit/etcd-manager.js';
import type { LeaseAttrs, LeaseWatchBatch } from '../../lease/index.js';
import { leaseKeeperTask, leaseWatchTask } from '../tasks.js';
import type { LeaseRenewalOutcome, OwnLeaseChange } from '../types.js';

let fx: EtcdManagerFixture;

beforeAll(async () => {
  fx = await EtcdManagerFixture.start('task');
});
afterAll(async () => {
  await fx?.stop();
});
afterEach(() => fx.cleanup());

const attrs = (i: number): LeaseAttrs => ({
  publicIP: `192.168.88.${i}`,
  backendType: 'vxlan',
  backendData: { VNI: 1, VtepMAC: `02:00:00:00:88:${i.toString(16).padStart(2, '0')}` },
});

/** Polls `cond` (bounded; throws naming `what` when it never holds). */
const until = (what: string, cond: () => boolean, timeoutMs: number): Promise<true> =>
  waitFor(what, async () => cond(), timeoutMs, 50);

/** Runs a task until the test ends; counts its beats. */
function start(task: { run: (ctx: { signal: AbortSignal; beat: () => void }) => Promise<void> }): {
  beats: () => number;
} {
  let beats = 0;
  const ac = new AbortController();
  const done = task.run({ signal: ac.signal, beat: () => beats++ });
  fx.defer(async () => {
    ac.abort();
    await done;
  });
  return { beats: () => beats };
}

describe('lease tasks', () => {
  it('lease-keeper beats on each ownership check, stops while etcd is cut off (renewals failing), and recovers', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.40.0.0/16' });
    const proxy = await fx.proxy();
    const m = fx.manager(prefix, {
      endpoints: [proxy.endpoint],
      leaseTtlSeconds: 6,
      renewMarginSeconds: 4,
      renewRetryMs: 300,
      leaseCheckIntervalMs: 200,
      callTimeoutMs: 800,
    });
    const lease = await m.acquireLease({ config, attrs: attrs(1) });
    const outcomes: LeaseRenewalOutcome[] = [];
    const changes: OwnLeaseChange[] = [];
    const task = leaseKeeperTask(m, lease, {
      onChange: (c) => changes.push(c),
      onOutcome: (o) => outcomes.push(o),
    });
    expect(task.name).toBe('lease-keeper');
    expect(task.periodMs).toBe(200);
    const run = start(task);
    await until('four keeper beats', () => run.beats() >= 4, 10_000);
    expect(outcomes.some((o) => o.type === 'ok')).toBe(true);

    await proxy.cut();
    // Past the renewal time (2 s after acquisition) renewals fail; checks fail too: no beats.
    await until('two failed renewals', () => outcomes.filter((o) => o.type === 'failed').length >= 2, 10_000);
    const cutBeats = run.beats();
    await new Promise((r) => setTimeout(r, 600));
    expect(run.beats()).toBe(cutBeats);
    const failed = outcomes.find((o) => o.type === 'failed');
    expect(failed?.type === 'failed' && failed.error.message.length > 0).toBe(true);

    await proxy.restore();
    await until('beats after the proxy is restored', () => run.beats() > cutBeats + 2, 15_000);
    const last = outcomes[outcomes.length - 1];
    expect(last?.type).toBe('ok');
    expect(changes.some((c) => c.type === 'renewed')).toBe(true);
  });

  it('lease-keeper reports lost then reacquired when the key is deleted, and resumes with the new lease', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.41.0.0/16' });
    const m = fx.manager(prefix, { leaseCheckIntervalMs: 200 });
    const lease = await m.acquireLease({ config, attrs: attrs(2) });
    const outcomes: LeaseRenewalOutcome[] = [];
    const changes: OwnLeaseChange[] = [];
    start(
      leaseKeeperTask(m, lease, { onChange: (c) => changes.push(c), onOutcome: (o) => outcomes.push(o) }),
    );
    await until('a first outcome', () => outcomes.length > 0, 5_000);
    await etcdctl(fx.etcd.endpoint, ['del', `${prefix}/subnets/${lease.key}`]);
    await until('a reacquired outcome', () => outcomes.some((o) => o.type === 'reacquired'), 15_000);
    const types = outcomes.map((o) => o.type).filter((t) => t === 'lost' || t === 'reacquired');
    expect(types).toEqual(['lost', 'reacquired']);
    const lost = outcomes.find((o) => o.type === 'lost');
    expect(lost?.type === 'lost' && lost.reason).toMatch(/deleted/);
    expect(changes.map((c) => c.type)).toContain('reacquired');
    expect(changes.find((c) => c.type === 'reacquired')?.lease.key).toBe(lease.key);
  });

  it('lease-watch beats on the snapshot, on events and while idle (etcd confirms progress)', async () => {
    const prefix = fx.newPrefix();
    await fx.putConfig(prefix, { Network: '10.42.0.0/16' });
    const m = fx.manager(prefix, { watchProgressIntervalMs: 200 });
    const batches: LeaseWatchBatch[] = [];
    const task = leaseWatchTask(m, (b) => {
      batches.push(b);
    });
    expect(task.name).toBe('lease-watch');
    const run = start(task);
    await until('the first snapshot', () => batches.length === 1, 10_000);
    expect(batches[0]?.type).toBe('snapshot');
    // Nothing is written: beats keep coming from progress confirmations alone.
    const idleFrom = run.beats();
    await until('three idle beats', () => run.beats() >= idleFrom + 3, 10_000);
    expect(batches).toHaveLength(1);
    await etcdctl(fx.etcd.endpoint, [
      'put',
      `${prefix}/subnets/10.42.7.0-24`,
      JSON.stringify({
        PublicIP: '192.168.88.7',
        BackendType: 'vxlan',
        BackendData: { VNI: 1, VtepMAC: '02:00:00:00:88:07' },
      }),
    ]);
    await until('the added lease', () => batches.length === 2, 10_000);
    expect(batches[1]?.events.map((e) => [e.type, e.lease.key])).toEqual([['added', '10.42.7.0-24']]);
  });
});
