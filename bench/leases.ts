// Lease acquisition and watch fan-out against a local etcd (Debian's /usr/bin/etcd on a free loopback port):
//   - acquire latency (p50/p99/max) with 1 node and with N nodes acquiring at the same moment, each node its
//     own EtcdSubnetManager (its own etcd connection), on a 10.0.0.0/8 network with /24 subnets, and the
//     number of duplicate (overlapping) subnets handed out. Goal (issue 16): 1000 concurrent, p99 < 1 s, 0
//     duplicates;
//   - watch fan-out: 100 nodes watching, one new lease written; the time until every watcher has seen it.
//
//   npm run build:dev && node dist-dev/bench/leases.js [--concurrency 100] [--rounds 3] [--fanout-writes 20]
//     [--client weft|etcd3|both] [--workers 1] [--stagger-ms 0] [--no-prior-read]
//   (the goal's size: --concurrency 1000; the default 100 is the quick variant). `--client` picks the etcd client
//   of the concurrent acquisitions: weft's own (default), the etcd3 package it replaced, or both, alternating
//   round by round in one run so both see the same machine load. `--workers K` (weft's client) spreads the N
//   simulated nodes over K processes (bench/leases-worker.ts), as a cluster's nodes are separate machines: with
//   one process, that process's CPU for all N clients is most of a round on this 2-core machine.
//   `--stagger-ms T` starts each node at a random moment within T ms (a boot storm spread over time; a latency
//   counts from the node's own start). `--no-prior-read`: the nodes read nothing from etcd before acquiring, so
//   each lists every lease with its value, as flannel does (weftd reads the network config first, and then lists
//   only the values of leases older than that read). Each round reports the bytes etcd sent its gRPC clients.
//
// Loopback traffic only; the etcd process and its data dir are removed at the end (also on failure).
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { parseNetworkConfigText } from '../src/config/index.js';
import { type Cidr, overlaps, parseCidr } from '../src/ip/index.js';
import { encodeLeaseAttrs } from '../src/lease/index.js';
import { silentLogger } from '../src/log/index.js';
import type { EtcdRpc } from '../src/subnet/etcd/grpc/index.js';
import { createEtcdClient, EtcdSubnetManager } from '../src/subnet/index.js';
import { type EtcdServer, etcdctl, startEtcd } from '../testkit/etcd.js';
import { procCpuMs } from '../testkit/proc-memory.js';
import {
  acquireAt,
  etcdSentBytes,
  LEASES_CONFIG,
  leaseAttrs,
  type RoundShape,
  type WorkerReply,
  type WorkerRequest,
  warmConnections,
} from './leases-shared.js';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    'fanout-writes': { type: 'string', default: '20' },
    client: { type: 'string', default: 'weft' },
    workers: { type: 'string', default: '1' },
    'stagger-ms': { type: 'string', default: '0' },
    'no-prior-read': { type: 'boolean', default: false },
  },
});
type ClientKind = 'weft' | 'etcd3';
// Loaded only when asked for: its module (grpc-js, and the AsyncLocalStorage weft's old client used, which turns
// on async hooks for the whole process) would otherwise tax weft's own client too.
const etcd3Client = values.client === 'weft' ? undefined : await import('./etcd3-client.js');
const clients: ClientKind[] =
  values.client === 'both' ? ['weft', 'etcd3'] : values.client === 'etcd3' ? ['etcd3'] : ['weft'];
if (!['weft', 'etcd3', 'both'].includes(values.client ?? ''))
  throw new Error('--client must be weft|etcd3|both');
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const fanoutWrites = Number(values['fanout-writes']);
const workers = Number(values.workers);
const shape: RoundShape = { staggerMs: Number(values['stagger-ms']), priorRead: !values['no-prior-read'] };
if (!Number.isInteger(shape.staggerMs) || shape.staggerMs < 0 || shape.staggerMs > 600_000) {
  throw new Error('--stagger-ms must be 0..600000');
}
if (!Number.isInteger(workers) || workers < 1 || workers > 16) throw new Error('--workers must be 1..16');
if (workers > 1 && values.client !== 'weft') throw new Error("--workers > 1 runs weft's client only");
if (!Number.isInteger(concurrency) || concurrency < 2 || concurrency > 5000) {
  throw new Error('--concurrency must be 2..5000');
}
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be 1..20');
if (!Number.isInteger(fanoutWrites) || fanoutWrites < 1 || fanoutWrites > 200) {
  throw new Error('--fanout-writes must be 1..200');
}

const CONFIG = LEASES_CONFIG;
let prefixCounter = 0;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function stats(samples: number[]): { p50: number; p99: number; max: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? 0,
    n: sorted.length,
  };
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

async function newPrefix(etcd: EtcdServer): Promise<string> {
  prefixCounter += 1;
  const prefix = `/weft-bench-${prefixCounter}/network`;
  await etcdctl(etcd.endpoint, ['put', `${prefix}/config`, CONFIG]);
  return prefix;
}

/** Pairs of IPv4 subnets handed out that overlap (0 = every node got its own subnet). */
function duplicates(subnets: ReadonlyArray<Cidr | undefined>): number {
  const sorted = subnets
    .filter((s) => s !== undefined)
    .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  let dup = 0;
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    if (a && b && overlaps(a, b)) dup++;
  }
  return dup;
}

/** What one round of concurrent acquisitions measured. */
interface RoundResult {
  /** Each acquisition's latency (ms). */
  latencies: number[];
  wallMs: number;
  duplicates: number;
  etcdCpuMs: number;
  /** CPU of every simulated node's client (this process's, or the workers' summed). */
  clientCpuMs: number;
  /** Bytes etcd sent its gRPC clients during the round. */
  etcdSentBytes: number;
}

/** One round: `nodes` managers call acquireLease at once; returns each call's latency (ms). */
async function acquireRound(etcd: EtcdServer, nodes: number, kind: ClientKind): Promise<RoundResult> {
  const prefix = await newPrefix(etcd);
  const config = parseNetworkConfigText(CONFIG);
  const managers = Array.from(
    { length: nodes },
    () =>
      new EtcdSubnetManager({
        endpoints: [etcd.endpoint],
        prefix,
        renewMargin: 60,
        logger: silentLogger(),
        // etcd3's Etcd3 has the raw-call shape weft uses (kv, leaseClient, watchClient, close).
        client:
          kind === 'etcd3' && etcd3Client
            ? (etcd3Client.createEtcd3Client({ endpoints: [etcd.endpoint] }) as unknown as EtcdRpc)
            : undefined,
      }),
  );
  try {
    // ~1 ms of CPU per node: spread over the nodes in a real cluster, all in this one process here.
    await warmConnections(managers, shape.priorRead);
    const sent0 = await etcdSentBytes(etcd.endpoint);
    const etcdCpu0 = procCpuMs(etcd.pid);
    const clientCpu0 = process.cpuUsage();
    const start = performance.now();
    const results = await Promise.all(managers.map((m, i) => acquireAt(m, config, i + 1, shape)));
    const wallMs = performance.now() - start;
    const clientCpuMs = cpuMs(process.cpuUsage(clientCpu0));
    const etcdCpuMs = procCpuMs(etcd.pid) - etcdCpu0;
    return {
      latencies: results.map((r) => r.ms),
      wallMs,
      etcdCpuMs,
      clientCpuMs,
      etcdSentBytes: (await etcdSentBytes(etcd.endpoint)) - sent0,
      duplicates: duplicates(results.map((r) => r.lease.subnet)),
    };
  } finally {
    await Promise.all(managers.map((m) => m.close()));
  }
}

/**
 * One round with the nodes spread over `count` worker processes (bench/leases-worker.ts), as a cluster's nodes are
 * separate machines: each worker warms its nodes' connections; once all are ready they get "go" together, and each
 * acquisition's latency counts from its worker's start. Workers are ended by PID if anything fails.
 */
async function acquireRoundInWorkers(etcd: EtcdServer, nodes: number, count: number): Promise<RoundResult> {
  const prefix = await newPrefix(etcd);
  const script = new URL('./leases-worker.js', import.meta.url);
  const share = Math.ceil(nodes / count);
  const children = Array.from({ length: count }, (_, w) => {
    const first = 1 + w * share;
    const request: WorkerRequest = {
      endpoint: etcd.endpoint,
      prefix,
      first,
      count: Math.max(0, Math.min(share, nodes - w * share)),
      shape,
    };
    const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const replies: WorkerReply[] = [];
    let wake: (() => void) | undefined;
    let exited = false;
    child.on('message', (m: WorkerReply) => {
      replies.push(m);
      wake?.();
    });
    child.on('exit', () => {
      exited = true;
      wake?.();
    });
    const next = async (deadlineMs: number): Promise<WorkerReply> => {
      const deadline = Date.now() + deadlineMs;
      while (replies.length === 0) {
        if (exited) throw new Error(`leases worker ${w} exited early`);
        if (Date.now() > deadline) throw new Error(`leases worker ${w}: no reply within ${deadlineMs} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 200);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      const reply = replies.shift()!;
      if (reply.type === 'error') throw new Error(`leases worker ${w}: ${reply.message}`);
      return reply;
    };
    child.send(request);
    return { child, next };
  });
  try {
    for (const c of children) await c.next(60_000);
    const sent0 = await etcdSentBytes(etcd.endpoint);
    const etcdCpu0 = procCpuMs(etcd.pid);
    const start = performance.now();
    for (const c of children) c.child.send('go');
    const done = await Promise.all(children.map((c) => c.next(60_000)));
    const wallMs = performance.now() - start;
    const etcdCpuMs = procCpuMs(etcd.pid) - etcdCpu0;
    const latencies: number[] = [];
    const subnets: Cidr[] = [];
    let clientCpuMs = 0;
    for (const d of done) {
      if (d.type !== 'done') throw new Error('leases worker: unexpected reply');
      latencies.push(...d.latencies);
      clientCpuMs += d.cpuMs;
      for (const subnet of d.subnets) if (subnet) subnets.push(parseCidr(subnet));
    }
    const sent = (await etcdSentBytes(etcd.endpoint)) - sent0;
    return {
      latencies,
      wallMs,
      etcdCpuMs,
      clientCpuMs,
      etcdSentBytes: sent,
      duplicates: duplicates(subnets),
    };
  } finally {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill();
  }
}

/** 100 watchers; `writes` new leases one after another; per write the time until all watchers saw it. */
async function fanout(
  etcd: EtcdServer,
  watchers: number,
  writes: number,
): Promise<{ all: number[]; each: number[] }> {
  const prefix = await newPrefix(etcd);
  const ac = new AbortController();
  const seen: Map<string, number>[] = [];
  let connected = 0;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  const managers = Array.from({ length: watchers }, () => {
    let counted = false;
    return new EtcdSubnetManager({
      endpoints: [etcd.endpoint],
      prefix,
      renewMargin: 60,
      logger: silentLogger(),
      onWatchEvent: (e) => {
        if (e.type === 'connected' && !counted) {
          counted = true;
          connected += 1;
          wake();
        }
      },
    });
  });
  const loops = managers.map(async (m, i) => {
    const mine = new Map<string, number>();
    seen[i] = mine;
    for await (const batch of m.watchLeases(ac.signal)) {
      const now = performance.now();
      for (const e of batch.events) if (e.type === 'added') mine.set(e.lease.key, now);
      wake();
    }
  });
  const until = async (cond: () => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('fan-out: timed out waiting for the watchers');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };
  const writer = createEtcdClient({ endpoints: [etcd.endpoint] });
  try {
    await until(() => connected === watchers, 30_000);
    const all: number[] = [];
    const each: number[] = [];
    for (let w = 0; w < writes; w++) {
      const key = `10.${1 + (w >> 8)}.${w & 255}.0-24`;
      const t0 = performance.now();
      await writer.kv.put({
        key: Buffer.from(`${prefix}/subnets/${key}`),
        value: Buffer.from(encodeLeaseAttrs(leaseAttrs(10_000 + w))),
      });
      await until(() => seen.every((s) => s.has(key)), 30_000);
      const times = seen.map((s) => (s.get(key) ?? t0) - t0);
      all.push(Math.max(...times));
      each.push(...times);
    }
    return { all, each };
  } finally {
    ac.abort();
    await Promise.all(loops);
    writer.close();
    await Promise.all(managers.map((m) => m.close()));
  }
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function ms(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(1)} ms` : '-';
}

/** Issue 16's allocation goal, judged at its size (1000) or above. */
const GOAL_CONCURRENCY = 1000;
const GOAL_P99_MS = 1000;

function verdict(ok: boolean): string {
  return ok ? 'met' : 'NOT met';
}

async function main(): Promise<void> {
  const etcd = await startEtcd({ name: 'weft-bench-etcd' });
  try {
    const rows: string[][] = [];
    const goals: string[] = [];
    const perClient = new Map<ClientKind, { walls: number[]; clientCpu: number[] }>();
    for (const nodes of [1, concurrency]) {
      const kinds = nodes === 1 ? (['weft'] as ClientKind[]) : clients;
      const runs = new Map(
        kinds.map((k) => [
          k,
          {
            latencies: [] as number[],
            walls: [] as number[],
            etcdCpu: [] as number[],
            clientCpu: [] as number[],
            sent: [] as number[],
            dup: 0,
          },
        ]),
      );
      // A single node is measured many times; concurrent rounds are repeated `rounds` times, the clients
      // alternating (and swapping order each round) when both are measured.
      const repeat = nodes === 1 ? Math.max(20, rounds * 10) : rounds;
      for (let r = 0; r < repeat; r++) {
        for (const kind of r % 2 === 0 ? kinds : [...kinds].reverse()) {
          const run = runs.get(kind)!;
          const round =
            workers > 1 && nodes > 1
              ? await acquireRoundInWorkers(etcd, nodes, workers)
              : await acquireRound(etcd, nodes, kind);
          run.latencies.push(...round.latencies);
          run.walls.push(round.wallMs);
          run.etcdCpu.push(round.etcdCpuMs);
          run.clientCpu.push(round.clientCpuMs);
          run.sent.push(round.etcdSentBytes);
          run.dup += round.duplicates;
          if (nodes > 1) {
            const rs = stats(round.latencies);
            console.log(
              `  round ${r + 1} (${kind}): wall ${ms(round.wallMs)}, p50 ${ms(rs.p50)}, p99 ${ms(rs.p99)}, ` +
                `etcd CPU ${ms(round.etcdCpuMs)}, ${workers > 1 ? `${workers} workers` : 'this process'} ${ms(round.clientCpuMs)}, ` +
                `etcd sent ${kib(round.etcdSentBytes / nodes)} per acquisition`,
            );
          }
        }
      }
      for (const [kind, run] of runs) {
        const { latencies, walls, etcdCpu, clientCpu, sent, dup } = run;
        const label = kinds.length > 1 || kind !== 'weft' ? ` (${kind})` : '';
        const s = stats(latencies);
        rows.push([
          `acquire, ${nodes} concurrent${label}`,
          ms(s.p50),
          ms(s.p99),
          ms(s.max),
          ms(stats(walls).p50),
          String(dup),
          String(s.n),
        ]);
        if (nodes === 1) continue;
        perClient.set(kind, { walls, clientCpu });
        // Where a round's wall time goes: etcd's CPU, and this process's, which runs every node's client.
        const etcdMs = stats(etcdCpu).p50;
        goals.push(
          `cpu per round of ${nodes}${label} (median): wall ${ms(stats(walls).p50)}; etcd ${ms(etcdMs)} ` +
            `(${(etcdMs / nodes).toFixed(2)} ms per acquisition); ${workers > 1 && nodes > 1 ? `${workers} worker processes` : 'this process'}, all ${nodes} clients, ` +
            `${ms(stats(clientCpu).p50)} (one node's client costs its own machine ${(stats(clientCpu).p50 / nodes).toFixed(2)} ms)`,
        );
        goals.push(
          `etcd sent its clients ${kib(stats(sent).p50 / nodes)} per acquisition (median round${label}; ` +
            `${shape.priorRead ? 'nodes read the config first' : 'nodes read nothing first: every value listed'}` +
            `${shape.staggerMs > 0 ? `, starts spread over ${shape.staggerMs} ms` : ', all at once'})`,
        );
        const atGoalSize = nodes >= GOAL_CONCURRENCY;
        // The goal is weftd's shape: every node at once, each having read the config first.
        const goalShape = shape.staggerMs === 0 && shape.priorRead;
        const caveat = !goalShape
          ? " (a variant, not the goal's shape: run without --stagger-ms and --no-prior-read)"
          : !atGoalSize
            ? ` (below the goal's size; run --concurrency ${GOAL_CONCURRENCY})`
            : '';
        goals.push(
          `goal: ${GOAL_CONCURRENCY} concurrent acquisitions p99 < ${GOAL_P99_MS} ms${label}: p99 ${ms(s.p99)} at ${nodes} → ${verdict(s.p99 < GOAL_P99_MS)}${caveat}`,
        );
        goals.push(
          `goal: 0 duplicate subnets${label}: ${dup} in ${rounds} round(s) of ${nodes} → ${verdict(dup === 0)}`,
        );
      }
    }
    const weft = perClient.get('weft');
    const etcd3 = perClient.get('etcd3');
    if (weft && etcd3) {
      const ratio = stats(weft.clientCpu).p50 / stats(etcd3.clientCpu).p50;
      goals.push(
        `client CPU per acquisition, weft's client / etcd3 (same run): ${ratio.toFixed(2)}; round wall ` +
          `${(stats(weft.walls).p50 / stats(etcd3.walls).p50).toFixed(2)}`,
      );
    }
    const f = await fanout(etcd, 100, fanoutWrites);
    const all = stats(f.all);
    const each = stats(f.each);
    rows.push([
      'fan-out, 100 watchers: all saw it',
      ms(all.p50),
      ms(all.p99),
      ms(all.max),
      '-',
      '-',
      String(all.n),
    ]);
    rows.push([
      'fan-out, 100 watchers: each watcher',
      ms(each.p50),
      ms(each.p99),
      ms(each.max),
      '-',
      '-',
      String(each.n),
    ]);

    const header = ['scenario', 'p50', 'p99', 'max', 'round wall p50', 'duplicates', 'samples'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (cells: string[]) =>
      cells
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd();
    process.stdout.write(`etcd leases (etcd ${etcd.endpoint}, 10.0.0.0/8 with /24 subnets)\n`);
    process.stdout.write(
      `${[line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`,
    );
    process.stdout.write(`${goals.join('\n')}\n`);
  } finally {
    await etcd.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/leases: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
