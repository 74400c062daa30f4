// weft's own etcd client (src/subnet/etcd/grpc/) against the etcd3 package (grpc-js + protobufjs) it replaced,
// in one run against one local etcd (Debian's /usr/bin/etcd on a free loopback port):
//   - CPU per call: one client, `--calls` sequential calls of each kind (Range of one key, Range of 100 keys
//     with values, LeaseGrant, a create-only Txn); this process's CPU per call;
//   - CPU per acquisition and latency: `--nodes` clients, each its own connection as that many nodes would
//     have (etcd3 is told not to share them), each making an acquisition's calls (a Range with values of the
//     subnets, a LeaseGrant, a create-only Txn) all at once; p50/p99 per node, this process's CPU and etcd's
//     per round. Goal (issue 16): the client's CPU per acquisition clearly below etcd3's (< 0.5).
// The two clients alternate round by round so both see the same load.
//
//   npm run build:dev && node dist-dev/bench/etcd-clients.js [--nodes 1000] [--rounds 3] [--calls 2000]
//
// Loopback traffic only; the etcd process and its data dir are removed at the end (also on failure).

import { parseArgs } from 'node:util';
import { createEtcdClient } from '../src/subnet/etcd/client.js';
import { prefixEnd } from '../src/subnet/etcd/store.js';
import { type EtcdServer, startEtcd } from '../testkit/etcd.js';
import { procCpuMs } from '../testkit/proc-memory.js';
import { createEtcd3Client } from './etcd3-client.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '3' },
    calls: { type: 'string', default: '2000' },
  },
});
const nodes = Number(values.nodes);
const rounds = Number(values.rounds);
const calls = Number(values.calls);
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 5000) throw new Error('--nodes must be 1..5000');
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be 1..20');
if (!Number.isInteger(calls) || calls < 10 || calls > 100_000) throw new Error('--calls must be 10..100000');

/** The raw calls an acquisition makes; both clients have this shape (etcd3's types are wider). */
interface RawClient {
  kv: {
    range(req: {
      key: Buffer;
      range_end?: Buffer;
      keys_only?: boolean;
      limit?: number;
    }): Promise<{ kvs: unknown[] }>;
    txn(req: {
      compare: { key: Buffer; target: 'Version'; result: 'Equal'; version: number }[];
      success: { request_put: { key: Buffer; value: Buffer; lease: string } }[];
      failure: { request_range: { key: Buffer } }[];
    }): Promise<{ succeeded: boolean }>;
    put(req: { key: Buffer; value: Buffer }): Promise<unknown>;
  };
  leaseClient: { leaseGrant(req: { TTL: number; ID: number }): Promise<{ ID: string }> };
  close(): void;
}

type Kind = 'etcd3' | 'weft';
const KINDS: Kind[] = ['etcd3', 'weft'];

function newClient(kind: Kind, etcd: EtcdServer): RawClient {
  const options = { endpoints: [etcd.endpoint] };
  return (kind === 'weft' ? createEtcdClient(options) : createEtcd3Client(options)) as unknown as RawClient;
}

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
const median = (xs: number[]): number => percentile(xs, 50);

const VALUE = Buffer.from(
  '{"PublicIP":"192.168.1.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:01:01"}}',
);
let keyCounter = 0;

/** What one acquisition sends: the subnets with values, a grant, a create-only txn of a fresh key. */
async function acquisition(c: RawClient, prefix: Buffer): Promise<void> {
  await c.kv.range({ key: prefix, range_end: prefixEnd(prefix), limit: 500 });
  const grant = await c.leaseClient.leaseGrant({ TTL: 600, ID: 0 });
  keyCounter += 1;
  const key = Buffer.concat([prefix, Buffer.from(`10.${keyCounter >> 8}.${keyCounter & 255}.0-24`)]);
  const res = await c.kv.txn({
    compare: [{ key, target: 'Version', result: 'Equal', version: 0 }],
    success: [{ request_put: { key, value: VALUE, lease: grant.ID } }],
    failure: [{ request_range: { key } }],
  });
  if (!res.succeeded) throw new Error('create-only txn refused a fresh key');
}

async function perCall(kind: Kind, etcd: EtcdServer, prefix: Buffer): Promise<Record<string, number>> {
  const c = newClient(kind, etcd);
  try {
    const one = Buffer.concat([prefix, Buffer.from('one')]);
    await c.kv.put({ key: one, value: VALUE });
    const hundred = Buffer.from(`/bench-clients/hundred-${kind}/`);
    for (let i = 0; i < 100; i++) {
      await c.kv.put({ key: Buffer.concat([hundred, Buffer.from(String(i))]), value: VALUE });
    }
    const kinds: Record<string, () => Promise<unknown>> = {
      'range 1 key': () => c.kv.range({ key: one }),
      'range 100 keys': () => c.kv.range({ key: hundred, range_end: prefixEnd(hundred) }),
      leaseGrant: () => c.leaseClient.leaseGrant({ TTL: 600, ID: 0 }),
      'txn create': async () => {
        keyCounter += 1;
        const key = Buffer.concat([prefix, Buffer.from(`c${keyCounter}`)]);
        return c.kv.txn({
          compare: [{ key, target: 'Version', result: 'Equal', version: 0 }],
          success: [{ request_put: { key, value: VALUE, lease: '0' } }],
          failure: [{ request_range: { key } }],
        });
      },
    };
    const out: Record<string, number> = {};
    for (const [name, call] of Object.entries(kinds)) {
      for (let i = 0; i < 50; i++) await call(); // warm
      const n = name === 'leaseGrant' || name === 'txn create' ? Math.ceil(calls / 4) : calls;
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < n; i++) await call();
      out[name] = (cpuMs(process.cpuUsage(cpu0)) * 1000) / n; // µs
    }
    return out;
  } finally {
    c.close();
  }
}

interface Round {
  p50: number;
  p99: number;
  clientCpuMs: number;
  etcdCpuMs: number;
  wallMs: number;
}

async function concurrentRound(kind: Kind, etcd: EtcdServer, round: number): Promise<Round> {
  const prefix = Buffer.from(`/bench-clients/${kind}-${round}/subnets/`);
  const clients = Array.from({ length: nodes }, () => newClient(kind, etcd));
  try {
    // Warm every connection (and etcd3's per-service clients) so the timing is calls, not setup.
    await Promise.all(
      clients.map(async (c) => {
        await c.kv.range({ key: prefix, keys_only: true, limit: 1 });
        await c.leaseClient.leaseGrant({ TTL: 60, ID: 0 });
      }),
    );
    const etcd0 = procCpuMs(etcd.pid);
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const latencies = await Promise.all(
      clients.map(async (c) => {
        const t0 = performance.now();
        await acquisition(c, prefix);
        return performance.now() - t0;
      }),
    );
    return {
      wallMs: performance.now() - start,
      clientCpuMs: cpuMs(process.cpuUsage(cpu0)),
      etcdCpuMs: procCpuMs(etcd.pid) - etcd0,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
    };
  } finally {
    for (const c of clients) c.close();
  }
}

async function main(): Promise<void> {
  const etcd = await startEtcd({ extraArgs: ['--quota-backend-bytes', String(4 * 1024 ** 3)] });
  const lines: string[] = [];
  try {
    const per: Record<Kind, Record<string, number>> = { etcd3: {}, weft: {} };
    for (const kind of KINDS)
      per[kind] = await perCall(kind, etcd, Buffer.from(`/bench-clients/per-${kind}/`));
    lines.push(`etcd-clients: CPU of this process per call, µs (${calls} sequential calls, one client)`);
    for (const name of Object.keys(per.weft)) {
      const a = per.etcd3[name] ?? Number.NaN;
      const b = per.weft[name] ?? Number.NaN;
      lines.push(
        `  ${name.padEnd(16)} etcd3 ${a.toFixed(0).padStart(5)}  weft ${b.toFixed(0).padStart(5)}  weft/etcd3 ${(b / a).toFixed(2)}`,
      );
    }
    const results: Record<Kind, Round[]> = { etcd3: [], weft: [] };
    for (let r = 0; r < rounds; r++) {
      for (const kind of r % 2 === 0 ? KINDS : [...KINDS].reverse()) {
        results[kind].push(await concurrentRound(kind, etcd, r));
      }
    }
    lines.push(
      `${nodes} clients each making one acquisition's calls at once (range with values, lease grant, create-only txn), ${rounds} rounds, medians:`,
    );
    const summary = (kind: Kind) => {
      const rs = results[kind];
      return {
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        p99s: rs.map((x) => x.p99.toFixed(0)).join('/'),
        client: median(rs.map((x) => x.clientCpuMs)),
        etcd: median(rs.map((x) => x.etcdCpuMs)),
        wall: median(rs.map((x) => x.wallMs)),
      };
    };
    const s = { etcd3: summary('etcd3'), weft: summary('weft') };
    for (const kind of KINDS) {
      const x = s[kind];
      lines.push(
        `  ${kind.padEnd(5)} p50 ${x.p50.toFixed(0)} ms, p99 ${x.p99.toFixed(0)} ms (rounds ${x.p99s}); wall ${x.wall.toFixed(0)} ms; ` +
          `client CPU ${x.client.toFixed(0)} ms (${(x.client / nodes).toFixed(3)} ms per acquisition), etcd CPU ${x.etcd.toFixed(0)} ms`,
      );
    }
    const ratio = s.weft.client / s.etcd3.client;
    lines.push(
      `  client CPU per acquisition weft/etcd3: ${ratio.toFixed(2)} — goal: clearly below etcd3 (< 0.5): ${ratio < 0.5 ? 'met' : 'NOT met'}`,
    );
    lines.push(
      `  weft p99 of ${nodes} at once: ${s.weft.p99.toFixed(0)} ms — goal (1000 nodes) < 1000 ms: ${s.weft.p99 < 1000 ? 'met' : 'NOT met'}${nodes < 1000 ? " (below the goal's size; run --nodes 1000)" : ''}`,
    );
  } finally {
    await etcd.stop();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`etcd-clients: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
