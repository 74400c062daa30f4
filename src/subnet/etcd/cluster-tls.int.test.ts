// The etcd subnet manager against a 3-member cluster losing the member it talks to, against an etcd that
// requires client certificates, and against one with username/password auth.
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  etcdctl,
  etcdctlTlsFromCerts,
  etcdTlsFromCerts,
  makeTestCerts,
  startEtcd,
  startEtcdCluster,
} from '../../../testkit/etcd.js';
import { captureLogs, LeaseWatchRecorder } from '../../../testkit/etcd-manager.js';
import { makeRunTempDir, removeRunTempDir } from '../../../testkit/run.js';
import { parseNetworkConfigText } from '../../config/index.js';
import { encodeLeaseAttrs } from '../../lease/index.js';
import { silentLogger } from '../../log/index.js';
import type { OwnLeaseChange, WatchHealthEvent } from '../types.js';
import { EtcdSubnetManager } from './manager.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch {
      // keep cleaning
    }
  }
});

const PREFIX = '/coreos.com/network';
// Leases are acquired from 10.20.1.0–10.20.50.0 only: the hand-written peer 10.20.99.0/24 can never be the
// subnet the manager picked for itself (it once was, at random, and the test overwrote its own lease).
const CONFIG =
  '{"Network":"10.20.0.0/16","SubnetMin":"10.20.1.0","SubnetMax":"10.20.50.0","Backend":{"Type":"vxlan"}}';

function value(ip: string): string {
  return encodeLeaseAttrs({
    publicIP: ip,
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' },
  });
}

describe('3-member etcd cluster', () => {
  it('keeps acquiring, renewing and watching when the member the client talks to is killed', async () => {
    const cluster = await startEtcdCluster(3);
    cleanups.push(() => cluster.stop());
    await etcdctl(cluster.endpoints, ['put', `${PREFIX}/config`, CONFIG]);
    const watchEvents: WatchHealthEvent[] = [];
    const m = new EtcdSubnetManager({
      endpoints: cluster.endpoints,
      prefix: PREFIX,
      renewMargin: 60,
      leaseTtlSeconds: 30,
      renewMarginSeconds: 25,
      logger: silentLogger(),
      onWatchEvent: (e) => watchEvents.push(e),
    });
    cleanups.push(() => m.close());
    const config = await m.getNetworkConfig();
    const own = await m.acquireLease({ config, attrs: { publicIP: '192.168.10.1', backendType: 'vxlan' } });
    const ac = new AbortController();
    const recorder = new LeaseWatchRecorder(m.watchLeases(ac.signal));
    const changes: OwnLeaseChange[] = [];
    const kept = m.keepLease(own, (c) => changes.push(c), ac.signal);
    cleanups.push(async () => {
      ac.abort();
      await recorder.finished();
      await kept;
    });
    expect(await recorder.until(() => recorder.current.has(own.key))).toBe(true);

    // The member serving the watch stream.
    for (let i = 0; i < 100 && !watchEvents.some((e) => e.type === 'connected'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const connected = watchEvents.find((e) => e.type === 'connected');
    const port = connected?.type === 'connected' ? connected.endpoint?.split(':').pop() : undefined;
    const victim = cluster.members.findIndex((mem) => mem.endpoint.endsWith(`:${port}`));
    expect(victim).toBeGreaterThanOrEqual(0);
    await cluster.members[victim]?.kill();
    const survivors = cluster.endpoints.filter((_, i) => i !== victim);

    // Watch goes on: a lease written through a surviving member arrives.
    // Right after a leader dies, the first proposal can time out while the survivors elect a new one.
    for (let attempt = 1; ; attempt++) {
      const put = await etcdctl(
        survivors,
        ['put', `${PREFIX}/subnets/10.20.99.0-24`, value('192.168.10.99')],
        {
          allowFailure: true,
          commandTimeoutMs: 2_000,
        },
      );
      if (put.code === 0) break;
      if (attempt >= 10) throw new Error(`etcdctl put kept failing after the kill: ${put.stderr}`);
    }
    expect(await recorder.until(() => recorder.current.has('10.20.99.0-24'), 30_000)).toBe(true);
    const reconnected = watchEvents.filter((e) => e.type === 'connected');
    expect(reconnected.length).toBeGreaterThanOrEqual(2);
    const last = reconnected[reconnected.length - 1];
    expect(last?.type === 'connected' && last.endpoint?.endsWith(`:${port}`)).toBe(false);

    // Renew goes on.
    const renewed = await m.renewLease(changes[changes.length - 1]?.lease ?? own);
    expect(renewed.revision).not.toBe(own.revision);
    // Acquire goes on, for a new node with the same endpoint list (the dead member included).
    const other = new EtcdSubnetManager({ endpoints: cluster.endpoints, prefix: PREFIX, renewMargin: 60 });
    cleanups.push(() => other.close());
    const second = await other.acquireLease({
      config,
      attrs: { publicIP: '192.168.10.2', backendType: 'vxlan' },
    });
    expect(second.key).not.toBe(own.key);
    expect(await recorder.until(() => recorder.current.has(second.key), 30_000)).toBe(true);
    expect(changes.filter((c) => c.type === 'reacquired')).toEqual([]);
  });
});

describe('TLS with client certificates', () => {
  it('is accepted with the right certificates and refused without', async () => {
    const dir = makeRunTempDir('tls');
    cleanups.push(() => removeRunTempDir(dir));
    const certs = await makeTestCerts(path.join(dir, 'certs'));
    const server = await startEtcd({ tls: etcdTlsFromCerts(certs) });
    cleanups.push(() => server.stop());
    await etcdctl(server.endpoint, ['put', `${PREFIX}/config`, CONFIG], { tls: etcdctlTlsFromCerts(certs) });

    const good = new EtcdSubnetManager({
      endpoints: [server.endpoint],
      prefix: PREFIX,
      renewMargin: 60,
      tls: { ca: certs.caFile, cert: certs.clientCertFile, key: certs.clientKeyFile },
    });
    cleanups.push(() => good.close());
    const config = await good.getNetworkConfig();
    const lease = await good.acquireLease({
      config,
      attrs: { publicIP: '192.168.11.1', backendType: 'vxlan' },
    });
    expect(lease.key).toMatch(/^10\.20\.\d+\.0-24$/);
    expect((await good.listLeases(config)).leases.map((l) => l.key)).toEqual([lease.key]);

    // The same certificates given as PEM text instead of paths.
    const fs = await import('node:fs');
    const inline = new EtcdSubnetManager({
      endpoints: [server.endpoint],
      prefix: PREFIX,
      renewMargin: 60,
      tls: {
        ca: fs.readFileSync(certs.caFile, 'utf8'),
        cert: fs.readFileSync(certs.clientCertFile, 'utf8'),
        key: fs.readFileSync(certs.clientKeyFile, 'utf8'),
      },
    });
    cleanups.push(() => inline.close());
    expect((await inline.listLeases()).leases).toHaveLength(1);

    // CA only (no client certificate) and no TLS at all: refused, promptly, with an error.
    const noClientCert = new EtcdSubnetManager({
      endpoints: [server.endpoint],
      prefix: PREFIX,
      renewMargin: 60,
      tls: { ca: certs.caFile },
      callTimeoutMs: 2_000,
    });
    cleanups.push(() => noClientCert.close());
    await expect(noClientCert.listLeases()).rejects.toThrow();
    const plain = new EtcdSubnetManager({
      endpoints: [server.endpoint],
      prefix: PREFIX,
      renewMargin: 60,
      callTimeoutMs: 2_000,
    });
    cleanups.push(() => plain.close());
    await expect(plain.listLeases()).rejects.toThrow();
  });
});

describe('username/password', () => {
  it('authenticates, is refused with a wrong password, and never logs the password', async () => {
    const server = await startEtcd();
    cleanups.push(() => server.stop());
    await etcdctl(server.endpoint, ['put', `${PREFIX}/config`, CONFIG]);
    await etcdctl(server.endpoint, ['user', 'add', 'root:S3cret-pa55']);
    await etcdctl(server.endpoint, ['auth', 'enable']);

    const logs = captureLogs('trace');
    const m = new EtcdSubnetManager({
      endpoints: [server.endpoint],
      prefix: PREFIX,
      renewMargin: 60,
      username: 'root',
      password: 'S3cret-pa55',
      logger: logs.logger,
    });
    cleanups.push(() => m.close());
    const config = await m.getNetworkConfig();
    const lease = await m.acquireLease({ config, attrs: { publicIP: '192.168.12.1', backendType: 'vxlan' } });
    expect(lease.key).toMatch(/^10\.20\./);

    const wrong = new EtcdSubnetManager({
      endpoints: [server.endpoint],
      prefix: PREFIX,
      renewMargin: 60,
      username: 'root',
      password: 'wrong-password',
      logger: logs.logger,
    });
    cleanups.push(() => wrong.close());
    await expect(wrong.listLeases()).rejects.toThrow(/authentication failed/);
    await expect(wrong.acquireLease({ config, attrs: { publicIP: '192.168.12.2' } })).rejects.toThrow(
      /authentication failed/,
    );
    expect(logs.lines.length).toBeGreaterThan(0);
    expect(logs.text()).not.toContain('S3cret-pa55');
    expect(logs.text()).not.toContain('wrong-password');
    expect(parseNetworkConfigText(CONFIG).ipv4).toBeDefined();
  });
});
