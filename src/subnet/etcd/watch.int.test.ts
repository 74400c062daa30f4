// The lease watch against a real etcd: garbage is skipped, an etcd outage loses no event, a client cut off
// while etcd compacts gets a re-list whose diff carries added, removed and changed leases.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, etcdctl } from '../../../testkit/etcd.js';
import { captureLogs, EtcdManagerFixture, LeaseWatchRecorder } from '../../../testkit/etcd-manager.js';
import { overlaps } from '../../ip/index.js';
import { encodeLeaseAttrs, parseLeaseKey } from '../../lease/index.js';
import type { WatchHealthEvent } from '../types.js';
import type { EtcdSubnetManager } from './manager.js';

let fx: EtcdManagerFixture;
let etcd: EtcdServer;

beforeAll(async () => {
  fx = await EtcdManagerFixture.start('watch');
  etcd = fx.etcd;
});
afterAll(async () => {
  await fx?.stop();
});
afterEach(() => fx.cleanup());

/** Starts a watch and waits for its initial list, so every later write shows up as an incremental event. */
async function watch(m: EtcdSubnetManager): Promise<LeaseWatchRecorder> {
  const ac = new AbortController();
  const recorder = new LeaseWatchRecorder(m.watchLeases(ac.signal));
  fx.defer(async () => {
    ac.abort();
    await recorder.finished();
  });
  await recorder.ready();
  return recorder;
}

function value(ip: string, mac: string): string {
  return encodeLeaseAttrs({ publicIP: ip, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac } });
}

async function put(prefix: string, key: string, v: string): Promise<void> {
  // Large values through stdin (one argv string is limited to 128 KiB); etcdctl refuses an empty stdin.
  if (v.length > 100_000) await etcdctl(etcd.endpoint, ['put', `${prefix}/subnets/${key}`], { input: v });
  else await etcdctl(etcd.endpoint, ['put', '--', `${prefix}/subnets/${key}`, v]);
}

async function del(prefix: string, key: string): Promise<void> {
  await etcdctl(etcd.endpoint, ['del', `${prefix}/subnets/${key}`]);
}

async function currentRevision(): Promise<string> {
  const res = await etcdctl(etcd.endpoint, ['endpoint', 'status', '-w', 'json']);
  const rev = /"revision":(\d+)/.exec(res.stdout)?.[1];
  if (!rev) throw new Error(`no revision in ${res.stdout}`);
  return rev;
}

const macOf = (r: LeaseWatchRecorder, key: string) => r.current.get(key)?.attrs.backendData?.VtepMAC;

describe('watchLeases', () => {
  it('skips 20 kinds of garbage with a warning each while valid leases still flow', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, {
      Network: '10.15.0.0/16',
      SubnetMin: '10.15.1.0',
      SubnetMax: '10.15.30.0',
    });
    const garbage: [string, string][] = [
      ['garbage', 'x'],
      ['10.15.1.0-24', 'not json'],
      ['10.15.2.0-24', '[]'],
      ['10.15.3.0-24', '{"PublicIP":12345}'],
      ['10.15.4.0-24', '{"PublicIP":"10.1.2.300"}'],
      [
        '10.15.5.0-24',
        '{"PublicIP":"192.168.1.5","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"not-a-mac"}}',
      ],
      ['10.15.6.0-24', '{"PublicIP":"192.168.1.6","BackendData":{"VtepMAC":"aa:bb:cc"}}'],
      ['192.168.7.0-24', value('192.168.1.7', '02:00:00:00:00:07')],
      ['10.15.8.0-25', value('192.168.1.8', '02:00:00:00:00:08')],
      ['10.15.9.1-24', value('192.168.1.9', '02:00:00:00:00:09')],
      ['10.15.10.0-24', `{"PublicIP":"192.168.1.10","Pad":"${'x'.repeat(1_000_000)}"}`],
      ['10.15.11.0-24', '{"PublicIP":"192.168.1.11","BackendData":"str"}'],
      ['10.15.12.0-24', '{"PublicIP":"192.168.1.12","BackendType":42}'],
      ['10.15.13.0-24', '{"BackendType":"vxlan"}'],
      ['10.15.14.0-24', '{"PublicIP":"fd00::1"}'],
      ['10.15.15.0-24', '{"PublicIP":"192.168.1.15","PublicIPv6":"1.2.3.4"}'],
      ['10.15.16.0-24', '{"PublicIP":"192.168.1.16","BackendData":{"VNI":-1}}'],
      ['10.15.17.0-24', 'null'],
      ['10.15.18.0-24', ''],
      ['10.15.19.0-24&FD00::-64', value('192.168.1.19', '02:00:00:00:00:19')],
    ];
    expect(garbage).toHaveLength(20);
    const logs = captureLogs('warn');
    const watchEvents: WatchHealthEvent[] = [];
    const m = fx.manager(prefix, { logger: logs.logger, onWatchEvent: (e) => watchEvents.push(e) });
    await m.getNetworkConfig();
    // Half before the watch starts (skipped from the list), half after (skipped from events).
    for (const [k, v] of garbage.slice(0, 10)) await put(prefix, k, v);
    await put(prefix, '10.15.25.0-24', value('192.168.1.25', '02:00:00:00:00:25'));
    const recorder = await watch(m);
    expect(await recorder.until(() => recorder.current.has('10.15.25.0-24'))).toBe(true);
    for (const [k, v] of garbage.slice(10)) await put(prefix, k, v);
    await put(prefix, '10.15.26.0-24', value('192.168.1.26', '02:00:00:00:00:26'));
    expect(await recorder.until(() => recorder.current.has('10.15.26.0-24'))).toBe(true);

    const skipped = watchEvents.filter((e) => e.type === 'skipped');
    expect(skipped.map((e) => e.key).sort()).toEqual(garbage.map(([k]) => k).sort());
    expect([...recorder.current.keys()].sort()).toEqual(['10.15.25.0-24', '10.15.26.0-24']);
    const warned = logs.matching(/skipping a lease/).map((l) => l.leaseKey);
    expect(warned.sort()).toEqual(garbage.map(([k]) => k).sort());
    for (const e of skipped) expect(e.type === 'skipped' && e.reason.length).toBeGreaterThan(5);
    expect(recorder.error).toBeUndefined();

    // Allocation treats parseable garbage keys as taken: nothing is overwritten.
    const leases = await Promise.all(
      [1, 2, 3].map((i) =>
        fx
          .manager(prefix)
          .acquireLease({ config, attrs: { publicIP: `192.168.2.${i}`, backendType: 'vxlan' } }),
      ),
    );
    const garbageSubnets = garbage.flatMap(([k]) => {
      try {
        return [parseLeaseKey(k).subnet].filter((s) => s !== undefined);
      } catch {
        return [];
      }
    });
    for (const l of leases) {
      for (const g of garbageSubnets) expect(l.subnet && overlaps(l.subnet, g)).toBe(false);
    }
    const after = await etcdctl(etcd.endpoint, [
      'get',
      `${prefix}/subnets/10.15.3.0-24`,
      '--print-value-only',
    ]);
    expect(after.stdout.trim()).toBe('{"PublicIP":12345}');
  });

  it('resumes after etcd is stopped for 10 s without missing or repeating an event', async () => {
    const prefix = fx.newPrefix();
    await fx.putConfig(prefix, { Network: '10.16.0.0/16' });
    const watchEvents: WatchHealthEvent[] = [];
    const m = fx.manager(prefix, { onWatchEvent: (e) => watchEvents.push(e) });
    await m.getNetworkConfig();
    const recorder = await watch(m);
    for (const i of [1, 2, 3])
      await put(prefix, `10.16.${i}.0-24`, value(`192.168.3.${i}`, `02:00:00:00:03:0${i}`));
    expect(await recorder.until(() => recorder.current.size === 3)).toBe(true);

    await etcd.kill();
    await new Promise((r) => setTimeout(r, 10_000));
    await etcd.restart();
    // Written by a second client as soon as etcd is back, before or while the watcher reconnects.
    await put(prefix, '10.16.4.0-24', value('192.168.3.4', '02:00:00:00:03:04'));
    await put(prefix, '10.16.5.0-24', value('192.168.3.5', '02:00:00:00:03:05'));
    await del(prefix, '10.16.1.0-24');
    await put(prefix, '10.16.2.0-24', value('192.168.3.2', '02:00:00:00:03:22'));
    await put(prefix, '10.16.3.0-24', value('192.168.3.3', '02:00:00:00:03:03')); // same value: no event
    await put(prefix, '10.16.6.0-24', value('192.168.3.6', '02:00:00:00:03:06'));
    await del(prefix, '10.16.6.0-24');

    const settled = await recorder.until(
      () => recorder.current.size === 4 && macOf(recorder, '10.16.2.0-24') === '02:00:00:00:03:22',
      30_000,
    );
    expect(settled).toBe(true);
    expect(recorder.batches.filter((b) => b.type === 'snapshot')).toHaveLength(1);
    const incremental = recorder.events().filter((e) => !e.snapshot);
    expect(incremental.map((e) => `${e.type} ${e.key}`)).toEqual([
      'added 10.16.1.0-24',
      'added 10.16.2.0-24',
      'added 10.16.3.0-24',
      'added 10.16.4.0-24',
      'added 10.16.5.0-24',
      'removed 10.16.1.0-24',
      'changed 10.16.2.0-24',
      'added 10.16.6.0-24',
      'removed 10.16.6.0-24',
    ]);
    expect(watchEvents.filter((e) => e.type === 'reconnect').length).toBeGreaterThan(0);
    expect(watchEvents.filter((e) => e.type === 'relist')).toHaveLength(0);
  }, 60_000);

  it('delivers every event written while the client was cut off from etcd', async () => {
    const prefix = fx.newPrefix();
    await fx.putConfig(prefix, { Network: '10.17.0.0/16' });
    const proxy = await fx.proxy();
    const watchEvents: WatchHealthEvent[] = [];
    const m = fx.manager(prefix, { endpoints: [proxy.endpoint], onWatchEvent: (e) => watchEvents.push(e) });
    await m.getNetworkConfig();
    const recorder = await watch(m);
    await put(prefix, '10.17.1.0-24', value('192.168.4.1', '02:00:00:00:04:01'));
    expect(await recorder.until(() => recorder.current.size === 1)).toBe(true);

    await proxy.cut();
    for (let i = 2; i <= 21; i++)
      await put(prefix, `10.17.${i}.0-24`, value(`192.168.4.${i}`, '02:00:00:00:04:00'));
    await del(prefix, '10.17.1.0-24');
    await new Promise((r) => setTimeout(r, 500));
    await proxy.restore();

    expect(
      await recorder.until(() => recorder.current.size === 20 && !recorder.current.has('10.17.1.0-24')),
    ).toBe(true);
    const incremental = recorder.events().filter((e) => !e.snapshot);
    expect(incremental).toHaveLength(22);
    expect(recorder.batches.filter((b) => b.type === 'snapshot')).toHaveLength(1);
    expect(watchEvents.filter((e) => e.type === 'reconnect').length).toBeGreaterThan(0);
  });

  it('re-lists after a compaction while cut off and reports added, removed and changed leases', async () => {
    const prefix = fx.newPrefix();
    await fx.putConfig(prefix, { Network: '10.18.0.0/16' });
    const proxy = await fx.proxy();
    const watchEvents: WatchHealthEvent[] = [];
    const m = fx.manager(prefix, { endpoints: [proxy.endpoint], onWatchEvent: (e) => watchEvents.push(e) });
    await m.getNetworkConfig();
    for (const i of [1, 2, 3])
      await put(prefix, `10.18.${i}.0-24`, value(`192.168.5.${i}`, `02:00:00:00:05:0${i}`));
    const recorder = await watch(m);
    expect(await recorder.until(() => recorder.current.size === 3)).toBe(true);

    await proxy.cut();
    await del(prefix, '10.18.1.0-24');
    await put(prefix, '10.18.2.0-24', value('192.168.5.2', '02:00:00:00:05:22')); // new VtepMAC
    await put(prefix, '10.18.3.0-24', value('192.168.5.33', '02:00:00:00:05:03')); // new PublicIP
    await put(prefix, '10.18.4.0-24', value('192.168.5.4', '02:00:00:00:05:04'));
    await put(prefix, '10.18.5.0-24', value('192.168.5.5', '02:00:00:00:05:05'));
    await del(prefix, '10.18.5.0-24');
    await etcdctl(etcd.endpoint, ['compact', await currentRevision()]);
    await proxy.restore();

    expect(
      await recorder.until(() => recorder.batches.filter((b) => b.type === 'snapshot').length === 2),
    ).toBe(true);
    const relist = recorder.batches.filter((b) => b.type === 'snapshot')[1];
    expect(relist?.events.map((e) => `${e.type} ${e.lease.key}`)).toEqual([
      'removed 10.18.1.0-24',
      'changed 10.18.2.0-24',
      'changed 10.18.3.0-24',
      'added 10.18.4.0-24',
    ]);
    expect(relist?.type === 'snapshot' && relist.leases.map((l) => l.key).sort()).toEqual([
      '10.18.2.0-24',
      '10.18.3.0-24',
      '10.18.4.0-24',
    ]);
    expect(macOf(recorder, '10.18.2.0-24')).toBe('02:00:00:00:05:22');
    expect(recorder.current.get('10.18.3.0-24')?.attrs.publicIP).toBe('192.168.5.33');
    expect(watchEvents.filter((e) => e.type === 'relist')).toHaveLength(1);

    // And it keeps watching from the re-list's revision.
    await put(prefix, '10.18.6.0-24', value('192.168.5.6', '02:00:00:00:05:06'));
    expect(await recorder.until(() => recorder.current.has('10.18.6.0-24'))).toBe(true);
  });

  it('watches without asking etcd for TTLs; listLeases reports each expiry, and reservations without one', async () => {
    const prefix = fx.newPrefix();
    const config = await fx.putConfig(prefix, { Network: '10.19.0.0/16' });
    const m = fx.manager(prefix);
    const own = await m.acquireLease({ config, attrs: { publicIP: '192.168.6.1', backendType: 'vxlan' } });
    await put(prefix, '10.19.200.0-24', value('192.168.6.2', '02:00:00:00:06:02'));
    const recorder = await watch(fx.manager(prefix));
    expect(await recorder.until(() => recorder.current.size === 2)).toBe(true);
    // A fresh watcher has not looked the own TTL up: unknown, not a reservation.
    expect(recorder.current.get(own.key)?.expiration).toBeUndefined();
    const listed = await fx.manager(prefix).listLeases(config);
    const seen = listed.leases.find((l) => l.key === own.key);
    expect(seen?.expiration).toBeInstanceOf(Date);
    const left = (seen?.expiration?.getTime() ?? 0) - Date.now();
    expect(left).toBeGreaterThan(23 * 3600 * 1000);
    expect(listed.leases.find((l) => l.key === '10.19.200.0-24')?.expiration).toBeNull();
    expect(recorder.current.get('10.19.200.0-24')?.expiration).toBeNull();
  });
});
