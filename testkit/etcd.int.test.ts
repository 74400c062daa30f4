import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type EtcdCluster,
  type EtcdServer,
  etcdctl,
  etcdctlTlsFromCerts,
  etcdTlsFromCerts,
  makeTestCerts,
  startEtcd,
  startEtcdCluster,
} from './etcd.js';
import { isRecordedProcessAlive, makeRunTempDir, removeRunTempDir } from './run.js';

function pidAlive(pid: number): boolean {
  return isRecordedProcessAlive({ pid, startTime: null });
}

describe('startEtcd', () => {
  let etcd: EtcdServer | undefined;
  afterEach(async () => {
    await etcd?.stop();
    etcd = undefined;
  });

  it('serves put/get through etcdctl and stop() leaves no process and no data dir', async () => {
    etcd = await startEtcd();
    expect(etcd.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await etcdctl(etcd.endpoint, ['put', '/weft/test', 'hello']);
    const got = await etcdctl(etcd.endpoint, ['get', '/weft/test', '--print-value-only']);
    expect(got.stdout.trim()).toBe('hello');

    const { pid, dataDir } = etcd;
    expect(pidAlive(pid)).toBe(true);
    expect(fs.existsSync(dataDir)).toBe(true);
    await etcd.stop();
    expect(pidAlive(pid)).toBe(false);
    expect(fs.existsSync(dataDir)).toBe(false);
    await etcd.stop(); // idempotent
  });

  it('keeps its data across kill and restart on the same port', async () => {
    etcd = await startEtcd();
    await etcdctl(etcd.endpoint, ['put', 'k', 'survives']);
    const firstPid = etcd.pid;
    const endpoint = etcd.endpoint;
    await etcd.kill();
    expect(pidAlive(firstPid)).toBe(false);
    expect(etcd.running).toBe(false);
    const down = await etcdctl(endpoint, ['get', 'k'], {
      allowFailure: true,
      dialTimeoutMs: 500,
      commandTimeoutMs: 1_000,
    });
    expect(down.code).not.toBe(0);

    await etcd.restart();
    expect(etcd.endpoint).toBe(endpoint);
    expect(etcd.pid).not.toBe(firstPid);
    const got = await etcdctl(etcd.endpoint, ['get', 'k', '--print-value-only']);
    expect(got.stdout.trim()).toBe('survives');
  });
});

async function putWithRetry(endpoint: string, key: string, value: string) {
  let result = await etcdctl(endpoint, ['put', key, value], { allowFailure: true, commandTimeoutMs: 1_000 });
  for (let attempt = 1; attempt < 10 && result.code !== 0; attempt++) {
    result = await etcdctl(endpoint, ['put', key, value], { allowFailure: true, commandTimeoutMs: 1_000 });
  }
  return result;
}

describe('startEtcdCluster', () => {
  let cluster: EtcdCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('keeps serving writes when the leader is killed, and the member rejoins on restart', async () => {
    cluster = await startEtcdCluster(3);
    expect(cluster.endpoints).toHaveLength(3);
    const members = await etcdctl(cluster.endpoints[0]!, ['member', 'list']);
    expect(members.stdout.trim().split('\n')).toHaveLength(3);

    const leader = await cluster.leaderIndex();
    const victim = cluster.members[leader]!;
    await victim.kill();
    expect(victim.running).toBe(false);

    // A proposal forwarded to the dead leader just before the election is lost and only times out:
    // retry a bounded number of times with a short command timeout, as a real client would.
    const other = cluster.members.find((_, i) => i !== leader)!;
    let write = await putWithRetry(other.endpoint, 'after-failover', 'yes');
    expect(write.code).toBe(0);
    const newLeader = await cluster.leaderIndex();
    expect(newLeader).not.toBe(leader);

    await victim.restart();
    expect(victim.running).toBe(true);
    // Serializable read answers from the member's own store: it has caught up with the write.
    const got = await etcdctl(victim.endpoint, [
      'get',
      'after-failover',
      '--print-value-only',
      '--consistency=s',
    ]);
    expect(got.stdout.trim()).toBe('yes');
    write = await putWithRetry(victim.endpoint, 'through-rejoined', 'ok');
    expect(write.code).toBe(0);
    const back = await etcdctl(other.endpoint, ['get', 'through-rejoined', '--print-value-only']);
    expect(back.stdout.trim()).toBe('ok');
  });
});

describe('TLS etcd', () => {
  let etcd: EtcdServer | undefined;
  let certDir: string | undefined;
  afterEach(async () => {
    await etcd?.stop();
    etcd = undefined;
    if (certDir) removeRunTempDir(certDir);
  });

  it('accepts etcdctl with a client certificate and refuses it without one', async () => {
    certDir = makeRunTempDir('certs');
    const certs = await makeTestCerts(certDir);
    etcd = await startEtcd({ tls: etcdTlsFromCerts(certs) });
    expect(etcd.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const tls = etcdctlTlsFromCerts(certs);
    await etcdctl(etcd.endpoint, ['put', 'secure', 'v'], { tls });
    const got = await etcdctl(etcd.endpoint, ['get', 'secure', '--print-value-only'], { tls });
    expect(got.stdout.trim()).toBe('v');

    const noCert = await etcdctl(etcd.endpoint, ['get', 'secure'], {
      tls: { caFile: certs.caFile },
      allowFailure: true,
      dialTimeoutMs: 1_000,
      commandTimeoutMs: 1_000,
    });
    expect(noCert.code).not.toBe(0);
    const plain = await etcdctl(etcd.endpoint.replace('https:', 'http:'), ['get', 'secure'], {
      allowFailure: true,
      dialTimeoutMs: 1_000,
      commandTimeoutMs: 1_000,
    });
    expect(plain.code).not.toBe(0);
  });
});
