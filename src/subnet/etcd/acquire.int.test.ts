// The etcd subnet manager against a real etcd: allocation under concurrency, reuse, reservations,
// conditional renewal and recovery of a lost own lease.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, etcdctl } from '../../../testkit/etcd.js';
import { captureLogs, EtcdManagerFixture, storedLeases } from '../../../testkit/etcd-manager.js';
import { containsCidr, formatCidr, overlaps, parseCidr } from '../../ip/index.js';
import { decodeLeaseAttrs, type Lease, type LeaseAttrs } from '../../lease/index.js';
import type { OwnLeaseChange } from '../types.js';
import { OutOfSubnetsError } from './errors.js';

let fx: EtcdManagerFixture;
let etcd: EtcdServer;

beforeAll(async () => {
  fx = await EtcdManagerFixture.start('acq');
  etcd = fx.etcd;
});
afterAll(async () => {
  await fx?.stop();
});
afterEach(() => fx.cleanup());

function attrs(
  i: number,
  mac = `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
): LeaseAttrs {
  return {
    publicIP: `192.168.${i >> 8}.${i & 255}`,
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: mac },
  };
}

/** What etcdctl sees under `<prefix>/subnets/`. */
const stored = (prefix: string) => storedLeases(etcd.endpoint, prefix);

describe('acquireLease', () => {
  it('gives 100 concurrent nodes 100 distinct, non-overlapping subnets inside SubnetMin..SubnetMax', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, {
      Network: '10.5.0.0/16',
      SubnetMin: '10.5.10.0',
      SubnetMax: '10.5.200.0',
      Backend: { Type: 'vxlan' },
    });
    const nodes = Array.from({ length: 100 }, (_, i) => ({ m: fx.manager(prefix), attrs: attrs(i + 1) }));
    const results = await Promise.allSettled(nodes.map((n) => n.m.acquireLease({ config, attrs: n.attrs })));
    const errors = results.filter((r) => r.status === 'rejected');
    expect(errors).toEqual([]);
    const leases = results.map((r) => (r as PromiseFulfilledResult<Lease>).value);
    const subnets = leases.map((l) => l.subnet).filter((s) => s !== undefined);
    expect(subnets).toHaveLength(100);
    expect(new Set(leases.map((l) => l.key)).size).toBe(100);
    const min = parseCidr('10.5.10.0/24').value;
    const max = parseCidr('10.5.200.0/24').value;
    for (const [i, s] of subnets.entries()) {
      expect(s.prefix).toBe(24);
      expect(s.value >= min && s.value <= max, formatCidr(s)).toBe(true);
      for (const t of subnets.slice(i + 1)) expect(overlaps(s, t)).toBe(false);
    }
    // etcd holds exactly these 100 keys, each with its owner's value and an etcd lease.
    const keys = await stored(prefix);
    expect(keys).toHaveLength(100);
    const byKey = new Map(keys.map((k) => [k.key, k]));
    for (const [i, lease] of leases.entries()) {
      const k = byKey.get(lease.key);
      expect(k?.lease).toBeDefined();
      expect(decodeLeaseAttrs(k?.value ?? '').publicIP).toBe(nodes[i]?.attrs.publicIP);
    }
  });

  it('gives 300 nodes on a /16 with /24 subnets 255 leases and the rest "out of subnets", overwriting nothing', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.6.0.0/16' });
    const nodes = Array.from({ length: 300 }, (_, i) => ({ m: fx.manager(prefix), attrs: attrs(i + 1) }));
    const results = await Promise.allSettled(nodes.map((n) => n.m.acquireLease({ config, attrs: n.attrs })));
    const ok = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ lease: r.value, node: i }] : []));
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    expect(ok).toHaveLength(255);
    expect(failed).toHaveLength(45);
    for (const err of failed) {
      expect(err).toBeInstanceOf(OutOfSubnetsError);
      expect((err as Error).message).toMatch(/out of subnets: network 10\.6\.0\.0\/16 .* holds 255 leases/);
    }
    const keys = await stored(prefix);
    expect(keys).toHaveLength(255);
    const byKey = new Map(keys.map((k) => [k.key, k]));
    for (const { lease, node } of ok) {
      expect(decodeLeaseAttrs(byKey.get(lease.key)?.value ?? '').publicIP).toBe(nodes[node]?.attrs.publicIP);
    }
  });

  it('gives concurrent dual-stack nodes distinct IPv4 and IPv6 subnets in flannel key form', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, {
      Network: '10.21.0.0/16',
      EnableIPv6: true,
      IPv6Network: 'fd00:21::/48',
      SubnetMin: '10.21.1.0',
      SubnetMax: '10.21.40.0',
      IPv6SubnetMin: 'fd00:21:0:1::',
      IPv6SubnetMax: 'fd00:21:0:28::',
    });
    const nodes = Array.from({ length: 30 }, (_, i) => ({
      m: fx.manager(prefix),
      attrs: { ...attrs(i + 1), publicIPv6: `fd00:ff::${i + 1}` },
    }));
    const leases = await Promise.all(nodes.map((n) => n.m.acquireLease({ config, attrs: n.attrs })));
    for (const l of leases) expect(l.key).toMatch(/^10\.21\.\d+\.0-24&fd00:21:0:[0-9a-f]+::-64$/);
    const v4 = leases.map((l) => l.subnet && formatCidr(l.subnet));
    const v6 = leases.map((l) => l.ipv6Subnet && formatCidr(l.ipv6Subnet));
    expect(new Set(v4).size).toBe(30);
    expect(new Set(v6).size).toBe(30);
    const keys = await stored(prefix);
    expect(keys.map((k) => k.key).sort()).toEqual(leases.map((l) => l.key).sort());
    expect(decodeLeaseAttrs(keys[0]?.value ?? '').publicIPv6).toMatch(/^fd00:ff::/);
  });

  it('reuses the lease of the same public IP after a restart, with the new attributes', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.7.0.0/16' });
    const firstManager = fx.manager(prefix);
    const first = await firstManager.acquireLease({ config, attrs: attrs(7, '02:00:00:00:00:07') });
    await firstManager.close();
    const again = await fx.manager(prefix).acquireLease({ config, attrs: attrs(7, '02:00:00:00:00:77') });
    expect(again.key).toBe(first.key);
    expect(again.expiration).not.toBeNull();
    const [k] = await stored(prefix);
    expect(k?.key).toBe(first.key);
    expect(decodeLeaseAttrs(k?.value ?? '').backendData?.VtepMAC).toBe('02:00:00:00:00:77');
    expect(k?.lease).toBeDefined();
  });

  it('after reading the config, lists values only of older leases: its own earlier lease is still found', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.7.0.0/16' });
    const firstManager = fx.manager(prefix);
    const first = await firstManager.acquireLease({ config, attrs: attrs(9, '02:00:00:00:00:09') });
    await firstManager.close();
    const m = fx.manager(prefix);
    await m.getNetworkConfig();
    const readAt = m.store.readRevision;
    expect(readAt).toBeDefined();
    const listed: (bigint | undefined)[] = [];
    const list = m.store.list.bind(m.store);
    m.store.list = (o = {}) => {
      listed.push(o.maxCreateRevision);
      return list(o);
    };
    const again = await m.acquireLease({ config, attrs: attrs(9, '02:00:00:00:00:99') });
    expect(again.key).toBe(first.key);
    // The values were listed only for keys created up to the config read.
    expect(listed[0]).toBe(readAt);
  });

  it('never takes a subnet created after its last read, though it did not read those values', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, {
      Network: '10.8.0.0/16',
      SubnetMin: '10.8.1.0',
      SubnetMax: '10.8.8.0',
    });
    const m = fx.manager(prefix);
    await m.getNetworkConfig(); // what it has read: the config, before anyone held a subnet
    // Seven of the eight subnets are taken after that; one of them by a node with the same public IP.
    const others = await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        fx.manager(prefix).acquireLease({ config, attrs: attrs(i === 0 ? 42 : 100 + i) }),
      ),
    );
    const mine = await m.acquireLease({ config, attrs: attrs(42, '02:00:00:00:00:2a') });
    const subnets = [...others, mine].map((l) => l.subnet).filter((x) => x !== undefined);
    expect(subnets).toHaveLength(8);
    for (const [i, a] of subnets.entries())
      for (const b of subnets.slice(i + 1)) expect(overlaps(a, b)).toBe(false);
    // The lease of the same public IP created after this node's last read is another node's: not taken over.
    expect(mine.key).not.toBe(others[0]?.key);
    expect(await stored(prefix)).toHaveLength(8);
  });

  it('an IPv6-only node (empty PublicIP) finds its lease again by PublicIPv6 among others', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, {
      EnableIPv4: false,
      EnableIPv6: true,
      IPv6Network: 'fd00:22::/48',
      Backend: { Type: 'vxlan' },
    });
    const v6attrs = (i: number): LeaseAttrs => ({
      publicIP: '',
      publicIPv6: `fd00:ff::${i}`,
      backendType: 'vxlan',
      backendV6Data: { VNI: 1, VtepMAC: `02:00:00:00:06:0${i}` },
    });
    const managers = [1, 2, 3].map(() => fx.manager(prefix));
    const leases = await Promise.all(
      managers.map((m, i) => m.acquireLease({ config, attrs: v6attrs(i + 1) })),
    );
    await managers[1]!.close();
    // The same address spelled out in full: still the same node.
    const again = await fx
      .manager(prefix)
      .acquireLease({ config, attrs: { ...v6attrs(2), publicIPv6: 'fd00:ff:0:0:0:0:0:2' } });
    expect(again.key).toBe(leases[1]!.key);
    expect(await stored(prefix)).toHaveLength(3);
  });

  it('reuses the subnet from the previous subnet file when it is free', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.8.0.0/16' });
    const lease = await fx.manager(prefix).acquireLease({
      config,
      attrs: attrs(8),
      previousSubnet: '10.8.77.0/24',
    });
    expect(lease.key).toBe('10.8.77.0-24');
    // Taken by someone else: another subnet.
    const other = await fx.manager(prefix).acquireLease({
      config,
      attrs: attrs(9),
      previousSubnet: '10.8.77.0/24',
    });
    expect(other.key).not.toBe('10.8.77.0-24');
  });

  it('uses a reservation written with etcdctl (no lease) and keeps it without a TTL after a renewal', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.9.0.0/16' });
    await etcdctl(etcd.endpoint, [
      'put',
      `${prefix}/subnets/10.9.42.0-24`,
      '{"PublicIP":"192.168.0.42","PublicIPv6":null,"BackendType":"vxlan"}',
    ]);
    const m = fx.manager(prefix, { leaseTtlSeconds: 5, renewMarginSeconds: 4 });
    const lease = await m.acquireLease({ config, attrs: attrs(42) });
    expect(lease.key).toBe('10.9.42.0-24');
    expect(lease.expiration).toBeNull();
    let [k] = await stored(prefix);
    expect(k?.lease).toBeUndefined();
    expect(decodeLeaseAttrs(k?.value ?? '').backendData?.VtepMAC).toBe(attrs(42).backendData?.VtepMAC);

    const renewed = await m.renewLease(lease);
    expect(renewed.expiration).toBeNull();
    // keepLease for longer than a renewal period of a normal lease (1 s here): a reservation gets no TTL.
    const changes: OwnLeaseChange[] = [];
    const ac = new AbortController();
    const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal);
    await new Promise((r) => setTimeout(r, 2_500));
    ac.abort();
    await kept;
    expect(changes).toEqual([]);
    [k] = await stored(prefix);
    expect(k?.key).toBe('10.9.42.0-24');
    expect(k?.lease).toBeUndefined();
  });
});

describe('keepLease', () => {
  it('renews before expiry with a new etcd lease, conditionally', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.10.0.0/16' });
    const m = fx.manager(prefix, { leaseTtlSeconds: 5, renewMarginSeconds: 4 });
    const lease = await m.acquireLease({ config, attrs: attrs(10) });
    const [before] = await stored(prefix);
    const changes: OwnLeaseChange[] = [];
    const ac = new AbortController();
    const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal);
    // Longer than the TTL: without renewals the key would be gone.
    await new Promise((r) => setTimeout(r, 6_000));
    ac.abort();
    await kept;
    const renewals = changes.filter((c) => c.type === 'renewed');
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    expect(changes.some((c) => c.type === 'reacquired')).toBe(false);
    const [after] = await stored(prefix);
    expect(after?.key).toBe(lease.key);
    expect(after?.lease).toBeDefined();
    expect(after?.lease).not.toBe(before?.lease);
    expect(after?.value).toBe(before?.value);

    // A renewal of a lease that someone else rewrote fails instead of overwriting it.
    const last = renewals[renewals.length - 1]?.lease ?? lease;
    await etcdctl(etcd.endpoint, ['put', `${prefix}/subnets/${lease.key}`, '{"PublicIP":"192.168.99.99"}']);
    await expect(m.renewLease(last)).rejects.toThrow(
      /rewritten by someone else \(PublicIP 192\.168\.99\.99\)/,
    );
    const [now] = await stored(prefix);
    expect(now?.value).toBe('{"PublicIP":"192.168.99.99"}');
  });

  it('retries a failed renewal (etcd unreachable) and renews once etcd answers again', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.10.0.0/16' });
    const proxy = await fx.proxy();
    const logs = captureLogs('info');
    const m = fx.manager(prefix, {
      endpoints: [proxy.endpoint],
      leaseTtlSeconds: 8,
      renewMarginSeconds: 6,
      renewRetryMs: 500,
      callTimeoutMs: 1_000,
      logger: logs.logger,
    });
    const lease = await m.acquireLease({ config, attrs: attrs(20) });
    await proxy.cut();
    const changes: OwnLeaseChange[] = [];
    const ac = new AbortController();
    const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal);
    for (let i = 0; i < 100 && logs.matching(/lease renewal failed; retrying/).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(logs.matching(/lease renewal failed; retrying/).length).toBeGreaterThanOrEqual(2);
    expect(changes).toEqual([]);
    await proxy.restore();
    for (let i = 0; i < 100 && changes.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await kept;
    expect(changes[0]?.type).toBe('renewed');
    expect(changes[0]?.lease.key).toBe(lease.key);
  });

  it('takes its key back (same subnet) when it is deleted by hand, and says so', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.11.0.0/16' });
    const logs = captureLogs('info');
    const m = fx.manager(prefix, { logger: logs.logger });
    const lease = await m.acquireLease({ config, attrs: attrs(11) });
    const changes: OwnLeaseChange[] = [];
    let reacquiredAt = 0;
    const ac = new AbortController();
    const kept = m.keepLease(
      lease,
      (c) => {
        changes.push(c);
        if (c.type === 'reacquired') reacquiredAt = Date.now();
      },
      ac.signal,
    );
    await new Promise((r) => setTimeout(r, 300)); // let the own-key watch start
    const deletedAt = Date.now();
    await etcdctl(etcd.endpoint, ['del', `${prefix}/subnets/${lease.key}`]);
    for (let i = 0; i < 100 && reacquiredAt === 0; i++) await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await kept;
    const re = changes.find((c) => c.type === 'reacquired');
    expect(re?.lease.key).toBe(lease.key);
    expect(re?.type === 'reacquired' && re.reason).toMatch(/deleted/);
    const [k] = await stored(prefix);
    expect(k?.key).toBe(lease.key);
    expect(decodeLeaseAttrs(k?.value ?? '').publicIP).toBe(attrs(11).publicIP);
    expect(logs.matching(/own lease lost/)).toHaveLength(1);
    expect(logs.matching(/own lease re-acquired/)[0]?.level).toBe(50);
    console.info(`own key deleted by hand: re-acquired after ${reacquiredAt - deletedAt} ms`);
  });

  it('notices a deletion that happened while it was cut off and etcd compacted the history', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.16.0.0/16' });
    const proxy = await fx.proxy();
    const m = fx.manager(prefix, {
      endpoints: [proxy.endpoint],
    });
    const lease = await m.acquireLease({ config, attrs: attrs(16) });
    const changes: OwnLeaseChange[] = [];
    const ac = new AbortController();
    const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal);
    await new Promise((r) => setTimeout(r, 300));
    await proxy.cut();
    await etcdctl(etcd.endpoint, ['del', `${prefix}/subnets/${lease.key}`]);
    await etcdctl(etcd.endpoint, ['put', `${prefix}/unrelated`, 'x']);
    const status = await etcdctl(etcd.endpoint, ['endpoint', 'status', '-w', 'json']);
    await etcdctl(etcd.endpoint, ['compact', /"revision":(\d+)/.exec(status.stdout)?.[1] ?? '0']);
    await proxy.restore();
    for (let i = 0; i < 150 && !changes.some((c) => c.type === 'reacquired'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    ac.abort();
    await kept;
    const re = changes.find((c) => c.type === 'reacquired');
    expect(re?.lease.key).toBe(lease.key);
    expect(re?.type === 'reacquired' && re.reason).toMatch(/while the watch was behind/);
  });

  it('re-acquires after its etcd lease expires (revoked), and adopts a reservation made of its key', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.12.0.0/16' });
    const m = fx.manager(prefix);
    const lease = await m.acquireLease({ config, attrs: attrs(12) });
    const changes: OwnLeaseChange[] = [];
    const ac = new AbortController();
    const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal);
    await new Promise((r) => setTimeout(r, 300));
    const [k] = await stored(prefix);
    await etcdctl(etcd.endpoint, ['lease', 'revoke', BigInt(k?.lease ?? '0').toString(16)]);
    for (let i = 0; i < 100 && !changes.some((c) => c.type === 'reacquired'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(changes.find((c) => c.type === 'reacquired')?.lease.key).toBe(lease.key);

    // The operator pins the key as a reservation (same PublicIP, no lease): the node keeps it as such.
    const value = (await stored(prefix))[0]?.value ?? '';
    await etcdctl(etcd.endpoint, ['put', `${prefix}/subnets/${lease.key}`, value]);
    for (let i = 0; i < 100 && changes[changes.length - 1]?.lease.expiration !== null; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    ac.abort();
    await kept;
    const lastChange = changes[changes.length - 1];
    expect(lastChange?.type).toBe('renewed');
    expect(lastChange?.lease.expiration).toBeNull();
    const [after] = await stored(prefix);
    expect(after?.lease).toBeUndefined();
  });

  it('moves to another subnet when its key is taken over by another node', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.13.0.0/16' });
    const m = fx.manager(prefix);
    const lease = await m.acquireLease({ config, attrs: attrs(13) });
    const changes: OwnLeaseChange[] = [];
    const ac = new AbortController();
    const kept = m.keepLease(lease, (c) => changes.push(c), ac.signal);
    await new Promise((r) => setTimeout(r, 300));
    await etcdctl(etcd.endpoint, ['put', `${prefix}/subnets/${lease.key}`, '{"PublicIP":"192.168.200.1"}']);
    for (let i = 0; i < 100 && !changes.some((c) => c.type === 'reacquired'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    ac.abort();
    await kept;
    const re = changes.find((c) => c.type === 'reacquired');
    expect(re?.type === 'reacquired' && re.reason).toMatch(
      /taken over by another node \(PublicIP 192\.168\.200\.1\)/,
    );
    expect(re?.lease.key).not.toBe(lease.key);
    expect(re?.lease.subnet && containsCidr(parseCidr('10.13.0.0/16'), re.lease.subnet)).toBe(true);
    const keys = await stored(prefix);
    expect(keys.map((k) => k.key).sort()).toEqual([lease.key, re?.lease.key].sort());
  });
});

describe('getNetworkConfig', () => {
  it('waits for the config to appear, logging why', async () => {
    const prefix = fx.newPrefix();
    const logs = captureLogs('info');
    const m = fx.manager(prefix, { logger: logs.logger, configPollMs: 100 });
    const pending = m.getNetworkConfig();
    await new Promise((r) => setTimeout(r, 500));
    expect(logs.matching(/not found in etcd; waiting/).length).toBeGreaterThanOrEqual(1);
    await etcdctl(etcd.endpoint, ['put', `${prefix}/config`, '{"Network":"10.14.0.0/16","SubnetLen":"x"}']);
    await new Promise((r) => setTimeout(r, 500));
    expect(logs.matching(/is invalid; waiting for a fix: .*SubnetLen/).length).toBeGreaterThanOrEqual(1);
    await etcdctl(etcd.endpoint, ['put', `${prefix}/config`, '{"Network":"10.14.0.0/16"}']);
    const config = await pending;
    expect(config.ipv4 && formatCidr(config.ipv4.network)).toBe('10.14.0.0/16');
  });
});
