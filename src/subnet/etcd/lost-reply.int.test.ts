// Issue 13 item 10 with a real fault: a TCP proxy between the manager and a real etcd forwards the write
// that carries this node's lease value, then loses etcd's reply (held, then dropped with the connection, or
// released too late). etcd has committed the write; the manager does not know. The own lease must never be
// deleted, no orphan key with this node's PublicIP may be left, and a peer watching etcd directly must never
// see the node removed.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../testkit/dataplane.js';
import { EtcdManagerFixture, LeaseWatchRecorder, storedLeases } from '../../../testkit/etcd-manager.js';
import type { LeaseAttrs } from '../../lease/index.js';
import type { LeaseRenewalOutcome, OwnLeaseChange } from '../types.js';

let fx: EtcdManagerFixture;

beforeAll(async () => {
  fx = await EtcdManagerFixture.start('lost');
});
afterAll(async () => {
  await fx?.stop();
});
afterEach(() => fx.cleanup());

function attrs(i: number): LeaseAttrs {
  return {
    publicIP: `192.168.77.${i}`,
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: `02:00:00:00:77:${i.toString(16).padStart(2, '0')}` },
  };
}

/** The bytes of a lease value that only a write of this node's lease carries. */
const valueMarker = (a: LeaseAttrs): string => `"PublicIP":"${a.publicIP}"`;

/** Polls `cond` (bounded; throws naming `what` when it never holds). */
const until = (what: string, cond: () => boolean, timeoutMs: number): Promise<true> =>
  waitFor(what, async () => cond(), timeoutMs, 50);

/** A peer on etcd directly (not through the proxy): its recorder sees every add and remove. */
async function peerWatch(
  prefix: string,
): Promise<{ recorder: LeaseWatchRecorder; stop: () => Promise<void> }> {
  const peer = fx.manager(prefix);
  const ac = new AbortController();
  const recorder = new LeaseWatchRecorder(peer.watchLeases(ac.signal));
  await recorder.ready();
  const stop = async (): Promise<void> => {
    ac.abort();
    await recorder.finished();
  };
  fx.defer(stop);
  return { recorder, stop };
}

describe('a write whose reply is lost', () => {
  for (const afterwards of ['cut', 'release'] as const) {
    it(`renewal committed, reply ${afterwards === 'cut' ? 'dropped with the connection' : 'released after the deadline'}: the lease stays, renewed`, async () => {
      const prefix = fx.newPrefix();
      const config = await fx.putConfig(prefix, { Network: '10.30.0.0/16' });
      const proxy = await fx.proxy();
      const own = attrs(afterwards === 'cut' ? 1 : 2);
      const m = fx.manager(prefix, {
        endpoints: [proxy.endpoint],
        leaseTtlSeconds: 8,
        renewMarginSeconds: 6,
        renewRetryMs: 500,
        callTimeoutMs: 1_000,
      });
      const lease = await m.acquireLease({ config, attrs: own });
      const peer = await peerWatch(prefix);
      expect(peer.recorder.current.has(lease.key)).toBe(true);

      // The renewal (due ~2 s after acquisition) is the next write that carries the lease value.
      const fault = proxy.loseReplies({
        whenRequestContains: valueMarker(own),
        holdMs: afterwards === 'cut' ? 600 : 1_800,
        afterwards,
      });
      const changes: OwnLeaseChange[] = [];
      const outcomes: LeaseRenewalOutcome[] = [];
      const ac = new AbortController();
      const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal, {
        onOutcome: (o) => outcomes.push(o),
      });
      fx.defer(async () => {
        ac.abort();
        await kept;
      });
      await fault;
      // Two renewals: the one whose reply was lost, then one from the version it wrote.
      await until(
        'two ok renewals and the fault window over',
        () => outcomes.filter((o) => o.type === 'ok').length >= 2 && !proxy.faulting,
        20_000,
      );
      if (afterwards === 'cut') expect(proxy.droppedReplyBytes).toBeGreaterThan(0);

      expect(outcomes.filter((o) => o.type === 'lost' || o.type === 'reacquired')).toEqual([]);
      expect(changes.every((c) => c.type === 'renewed' && c.lease.key === lease.key)).toBe(true);
      const removed = peer.recorder.events().filter((e) => e.type === 'removed');
      expect(removed).toEqual([]);
      const keys = await storedLeases(fx.etcd.endpoint, prefix);
      expect(keys.map((k) => k.key)).toEqual([lease.key]);
      expect(keys[0]?.lease).toBeDefined();
    });
  }

  it('creation committed, reply dropped: the created key is the lease, no orphan, no removal seen', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.31.0.0/16' });
    const proxy = await fx.proxy();
    const peer = await peerWatch(prefix);
    const own = attrs(3);
    const m = fx.manager(prefix, { endpoints: [proxy.endpoint], callTimeoutMs: 1_000 });
    const fault = proxy.loseReplies({
      whenRequestContains: valueMarker(own),
      holdMs: 600,
      afterwards: 'cut',
    });
    const lease = await m.acquireLease({ config, attrs: own });
    await fault;
    expect(proxy.droppedReplyBytes).toBeGreaterThan(0);

    const keys = await storedLeases(fx.etcd.endpoint, prefix);
    expect(keys.map((k) => k.key)).toEqual([lease.key]);
    await until('the peer sees the lease', () => peer.recorder.current.has(lease.key), 10_000);
    // Let the peer see anything a late clean-up would do.
    await new Promise((r) => setTimeout(r, 500));
    expect(peer.recorder.events().filter((e) => e.type === 'removed')).toEqual([]);
    expect(
      peer.recorder
        .events()
        .filter((e) => e.type === 'added')
        .map((e) => e.key),
    ).toEqual([lease.key]);
  });
});
