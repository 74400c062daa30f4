// `weftctl leases` and `weftctl config get|set` against a real etcd, driven through weftctl's dispatcher like the CLI.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, etcdctl, startEtcd } from '../../testkit/etcd.js';
import { makeRunTempDir, removeRunTempDir } from '../../testkit/run.js';
import { configCommands, EXIT_INVALID } from './config.js';
import { runWeftctl } from './dispatch.js';
import { type CommandIo, EXIT_OK, EXIT_UNAVAILABLE, leasesCommand } from './leases.js';

let etcd: EtcdServer;
let dir: string;

beforeAll(async () => {
  etcd = await startEtcd();
  dir = makeRunTempDir('weftctl');
});
afterAll(async () => {
  await etcd?.stop();
  if (dir) removeRunTempDir(dir);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function weftctl(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CommandIo = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env,
    now: () => new Date(),
  };
  const code = await runWeftctl(argv, io, [leasesCommand(io), ...configCommands(io)]);
  return { code, stdout, stderr };
}

const PREFIX = '/weftctl-test/network';

describe('weftctl config', () => {
  it('refuses an invalid file with the reason and writes nothing', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"Network":"10.30.0.0/16","SubnetLen":31}');
    const r = await weftctl([
      'config',
      'set',
      bad,
      `--etcd-endpoints=${etcd.endpoint}`,
      `--etcd-prefix=${PREFIX}`,
    ]);
    expect(r.code).toBe(EXIT_INVALID);
    expect(r.stderr).toMatch(/refused, nothing written: network config: SubnetLen=31: must be at most 30/);
    const got = await etcdctl(etcd.endpoint, ['get', `${PREFIX}/config`, '--print-value-only']);
    expect(got.stdout.trim()).toBe('');

    const notJson = path.join(dir, 'notjson.json');
    fs.writeFileSync(notJson, '{"Network": ');
    const r2 = await weftctl([
      'config',
      'set',
      notJson,
      `--etcd-endpoints=${etcd.endpoint}`,
      `--etcd-prefix=${PREFIX}`,
    ]);
    expect(r2.code).toBe(EXIT_INVALID);
    expect(r2.stderr).toMatch(/not valid JSON/);
  });

  it('writes a valid file and reads it back (as stored and with defaults)', async () => {
    const good = path.join(dir, 'net-conf.json');
    fs.writeFileSync(good, '{"Network":"10.30.0.0/16","Backend":{"Type":"vxlan","VNI":7}}\n');
    const env = { FLANNELD_ETCD_ENDPOINTS: etcd.endpoint, FLANNELD_ETCD_PREFIX: PREFIX };
    const set = await weftctl(['config', 'set', good], env);
    expect(set.code).toBe(EXIT_OK);
    expect(set.stdout).toBe(`wrote ${PREFIX}/config\n`);
    const got = await etcdctl(etcd.endpoint, ['get', `${PREFIX}/config`, '--print-value-only']);
    expect(got.stdout.trim()).toBe('{"Network":"10.30.0.0/16","Backend":{"Type":"vxlan","VNI":7}}');

    const get = await weftctl(['config', 'get'], env);
    expect(get.code).toBe(EXIT_OK);
    expect(get.stdout).toBe('{"Network":"10.30.0.0/16","Backend":{"Type":"vxlan","VNI":7}}\n');
    const effective = await weftctl(['config', 'get', '--effective'], env);
    expect(JSON.parse(effective.stdout)).toMatchObject({
      Network: '10.30.0.0/16',
      SubnetLen: 24,
      SubnetMin: '10.30.1.0',
    });
  });
});

describe('weftctl leases', () => {
  it('prints a table and JSON, marks reservations, and lists skipped keys on stderr', async () => {
    const args = [`--etcd-endpoints=${etcd.endpoint}`, `--etcd-prefix=${PREFIX}`];
    const grant = await etcdctl(etcd.endpoint, ['lease', 'grant', '3600']);
    const leaseId = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1] ?? '';
    await etcdctl(etcd.endpoint, [
      'put',
      `--lease=${leaseId}`,
      `${PREFIX}/subnets/10.30.5.0-24`,
      '{"PublicIP":"192.168.30.5","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":7,"VtepMAC":"02:00:00:00:30:05"}}',
    ]);
    await etcdctl(etcd.endpoint, [
      'put',
      `${PREFIX}/subnets/10.30.9.0-24`,
      '{"PublicIP":"192.168.30.9","BackendType":"host-gw"}',
    ]);
    await etcdctl(etcd.endpoint, ['put', `${PREFIX}/subnets/10.30.7.0-24`, '{"PublicIP":"nope"}']);

    const table = await weftctl(['leases', ...args]);
    expect(table.code).toBe(EXIT_OK);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SUBNET\s+PUBLIC IP\s+BACKEND\s+VTEP MAC\s+EXPIRES IN$/);
    expect(lines[1]).toMatch(
      /^10\.30\.5\.0\/24\s+192\.168\.30\.5\s+vxlan\s+02:00:00:00:30:05\s+(59m\d\ds|1h00m)$/,
    );
    expect(lines[2]).toMatch(/^10\.30\.9\.0\/24\s+192\.168\.30\.9\s+host-gw\s+-\s+reservation$/);
    expect(lines).toHaveLength(3);
    expect(table.stderr).toMatch(/skipped 10\.30\.7\.0-24: PublicIP: expected an IPv4 address/);

    const json = await weftctl(['leases', '-o', 'json', ...args]);
    const doc = JSON.parse(json.stdout) as { leases: Record<string, unknown>[]; skipped: unknown[] };
    expect(doc.leases.map((l) => [l.subnet, l.reservation])).toEqual([
      ['10.30.5.0/24', false],
      ['10.30.9.0/24', true],
    ]);
    expect(doc.leases[0]?.backendData).toEqual({ VNI: 7, VtepMAC: '02:00:00:00:30:05' });
    expect(doc.skipped).toHaveLength(1);
  });

  it('fails promptly with a clear message when etcd is not there', async () => {
    const r = await weftctl(['leases', '--etcd-endpoints=http://127.0.0.1:1', `--etcd-prefix=${PREFIX}`]);
    expect(r.code).toBe(EXIT_UNAVAILABLE);
    expect(r.stderr).toMatch(/weftctl leases: etcd \(http:\/\/127\.0\.0\.1:1\) failed/);
  });

  it('refuses bad flags with exit code 2', async () => {
    const r = await weftctl(['leases', '--etcd-endpoints=127.0.0.1:2379']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--etcd-endpoints/);
  });
});
