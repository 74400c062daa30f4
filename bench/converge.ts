// weftd converging to N peers (default 1000), end to end: a real weftd in a node namespace, leasing from a
// real etcd host on the underlay, fed N synthetic peer leases in flannel's format in one etcd txn; timed from
// the txn's acknowledgement until `ip monitor route` / `ip monitor neigh` in the node namespace have shown all
// 3N entries (route, neighbour, FDB entry per peer). Each round does it twice: keys with their own etcd TTL
// lease (like real nodes) and keys without one (reservations). Side by side, in the same run: `bridge -batch` +
// `ip -batch` writing the same 3N entries into a fresh namespace holding the same VXLAN device, observed the
// same way. Also: removing the N peers, the latency from one new lease to its route (`--events`, N peers
// present), a restart of weftd with every peer present, and weftd's RSS and V8 heap. Issue 16's goals (first
// pass ≤ 1.2× the raw batches, one lease → route p99 < 50 ms, restart → 0 ops and ready < 3 s) are printed
// with met / NOT met, judged at --peers 5000.
//
//   npm run build:dev && node dist-dev/bench/converge.js [--peers 1000] [--rounds 5] [--events 100] [--cpu-prof-dir DIR]
//
// `--cpu-prof-dir` runs weftd under `node --cpu-prof`. Needs root. Traffic stays in the run's namespaces
// (etcd on the underlay, weftd's metrics on the node's loopback); the synthetic peers' PublicIPs are never
// contacted (no pods, no probes). Everything is removed at the end, also on failure. The leases are written by
// testkit's EtcdLeaseWriter, an etcd client started inside the node namespace (etcd is only on the underlay).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import {
  EtcdLeaseWriter,
  syntheticLeaseValue as leaseValue,
  type SyntheticPeer,
  syntheticPeer,
} from '../testkit/etcd-lease-writer.js';
import {
  type ClusterNode,
  etcdctl,
  type NetnsCluster,
  netnsCluster,
  sleep,
  tailFile,
} from '../testkit/index.js';
import { spawnPiped, stopChild } from '../testkit/piped-child.js';
import { procMemory } from '../testkit/proc-memory.js';
import { createScratchNamespace, type ScratchNamespace } from '../testkit/scratch-netns.js';
import { WEFTD, weftdNodeFlags } from '../testkit/weft-cluster.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '5' },
    events: { type: 'string', default: '100' },
    'cpu-prof-dir': { type: 'string' },
  },
});

/** Issue 16's convergence goals. */
const GOAL = { peers: 5000, firstPassRatio: 1.2, eventP99Ms: 50, restartReadyMs: 3000 };
const VNI = 1;
const DEVICE = 'flannel.1';
const LEASE_TTL_S = 3600;
const METRICS_PORT = 10256;
const PREFIX = '/coreos.com/network';
const NET_CONF = {
  Network: '10.0.0.0/8',
  SubnetLen: 24,
  // The node's own lease stays in 10.0.0.0/16, clear of the synthetic peers (10.1.0.0 and up).
  SubnetMin: '10.0.1.0',
  SubnetMax: '10.0.255.0',
  Backend: { Type: 'vxlan', VNI },
};

function intOption(name: string, min: number, max: number): number {
  const v = Number(values[name as keyof typeof values]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer ${min}..${max}`);
  return v;
}

// ------------------------------------------------------------------------------------------------ helpers

type EntryKind = 'route' | 'neighbor' | 'fdb';

interface Target {
  route: Set<string>;
  neighbor: Set<string>;
  fdb: Set<string>;
}

interface Waiter {
  target: Target;
  present: boolean;
  missing: number;
  resolve: (ns: bigint) => void;
}

/** A monitor's netlink socket overflowed (`No buffer space available`): events were lost, the round is void. */
class MonitorLostEventsError extends Error {
  override name = 'MonitorLostEventsError';
}

/**
 * Watches a namespace's routes, neighbours and FDB with `ip monitor route` and `ip monitor neigh` (one process each,
 * large receive buffers), stamping every event on arrival, so "all entries are in the kernel" is seen when it
 * happens, without polling dumps. It starts from an empty view: create it before the entries it waits for.
 */
class KernelMonitor {
  private readonly seen: Record<EntryKind, Set<string>> = {
    route: new Set(),
    neighbor: new Set(),
    fdb: new Set(),
  };
  private readonly waiters = new Set<Waiter & { reject: (err: Error) => void }>();
  private readonly children: ChildProcess[];
  private lost: string | undefined;

  constructor(netns: string, device: string) {
    const rcvbuf = ['-rcvbuf', String(4 * 2 ** 20)];
    const route = spawnPiped(['ip', ...rcvbuf, '-n', netns, 'monitor', 'route']);
    // FDB entries are neighbour messages too (family AF_BRIDGE, the same netlink group): every socket
    // subscribed to the group reads all of them, so one `ip monitor neigh` sees both kinds, and a second
    // socket (`bridge monitor fdb`) would only double the backlog that overflows at 5000 peers.
    const neigh = spawnPiped(['ip', ...rcvbuf, '-n', netns, 'monitor', 'neigh']);
    this.children = [route, neigh];
    createInterface({ input: route.stdout! }).on('line', (line) => this.onIpLine(line, device));
    createInterface({ input: neigh.stdout! }).on('line', (line) => this.onIpLine(line, device));
    for (const child of this.children) child.stderr!.on('data', (d: Buffer) => this.onError(d.toString()));
  }

  private onError(text: string): void {
    this.lost ??= text.trim();
    for (const w of this.waiters) w.reject(new MonitorLostEventsError(`monitor: ${this.lost}`));
    this.waiters.clear();
  }

  private onIpLine(line: string, device: string): void {
    const now = process.hrtime.bigint();
    const tokens = line.trim().split(/\s+/);
    const deleted = tokens[0] === 'Deleted';
    if (deleted) tokens.shift();
    const first = tokens[0] ?? '';
    const dev = tokens[tokens.indexOf('dev') + 1];
    if (dev !== device) return;
    if (first.includes('/')) this.update('route', first, !deleted, now);
    else if (tokens.includes('NOARP')) {
      // An FDB entry as `ip monitor neigh` prints it: `<dst> dev D lladdr <mac> NOARP PERMANENT`.
      const mac = tokens[tokens.indexOf('lladdr') + 1];
      if (mac !== undefined) this.update('fdb', mac, !deleted, now);
    } else if (tokens.includes('lladdr') || deleted) {
      this.update('neighbor', first, !deleted && tokens.includes('PERMANENT'), now);
    }
  }

  private update(kind: EntryKind, key: string, present: boolean, now: bigint): void {
    const set = this.seen[kind];
    if (set.has(key) === present) return;
    if (present) set.add(key);
    else set.delete(key);
    for (const w of this.waiters) {
      if (!w.target[kind].has(key)) continue;
      w.missing += present === w.present ? -1 : 1;
      if (w.missing === 0) {
        this.waiters.delete(w);
        w.resolve(now);
      }
    }
  }

  /** Resolves with the arrival time of the event after which every target entry is present (or absent). */
  waitFor(target: Target, present: boolean, timeoutMs: number): Promise<bigint> {
    if (this.lost !== undefined) return Promise.reject(new MonitorLostEventsError(`monitor: ${this.lost}`));
    let missing = 0;
    for (const kind of ['route', 'neighbor', 'fdb'] as const) {
      for (const key of target[kind]) if (this.seen[kind].has(key) !== present) missing++;
    }
    if (missing === 0) return Promise.resolve(process.hrtime.bigint());
    const waiting = new Promise<bigint>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(
          new Error(
            `monitor: ${w.missing} entries still ${present ? 'missing' : 'present'} after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const w = {
        target,
        present,
        missing,
        resolve: (ns: bigint) => {
          clearTimeout(timer);
          resolve(ns);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.add(w);
    });
    // Callers start waiting before they write; a loss reported meanwhile must not be an unhandled rejection.
    waiting.catch(() => undefined);
    return waiting;
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map(stopChild));
  }
}

// ------------------------------------------------------------------------------------------------ peers

function targetOf(peers: readonly SyntheticPeer[]): Target {
  return {
    route: new Set(peers.map((p) => p.subnet)),
    neighbor: new Set(peers.map((p) => p.gateway)),
    fdb: new Set(peers.map((p) => p.mac)),
  };
}

// ------------------------------------------------------------------------------------------------ measuring

const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const median = (xs: readonly number[]) => quantile(xs, 0.5);

interface PassLog {
  /** The pass's reasons joined with `+` (weftd logs them as an array, `reasons`). */
  reason: string;
  reasons?: string[];
  ops: number;
  ms: number;
  /** backend plan, kernel dump, diff, apply (weftd logs them since this bench was written). */
  stepsMs?: number[];
  /** Whether the pass read the kernel (a lease-only pass plans against the remembered state). */
  dumped?: boolean;
}

/** How often weftd's log says "weftd ready" (once per start). */
function countReady(logFile: string): number {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return 0;
  }
  return text.split('"msg":"weftd ready"').length - 1;
}

/** weftd's own "reconciled" records, from line `fromLine` of its log on. */
function passesSince(logFile: string, fromLine: number): { passes: PassLog[]; lines: number } {
  const lines = readFileSync(logFile, 'utf8').split('\n');
  const passes: PassLog[] = [];
  for (const line of lines.slice(fromLine)) {
    if (!line.includes('"msg":"reconciled"')) continue;
    try {
      const r = JSON.parse(line) as PassLog;
      passes.push({
        reason: (r.reasons ?? []).join('+'),
        ops: r.ops,
        ms: r.ms,
        stepsMs: r.stepsMs,
        dumped: r.dumped,
      });
    } catch {
      // a partial line
    }
  }
  return { passes, lines: lines.length - 1 };
}

/** `bridge -batch` (FDB) then `ip -batch` (neighbours, routes) into a fresh namespace with the same device. */
async function baselineRound(
  peers: readonly SyntheticPeer[],
  device: { address: string; local: string; mac: string; mtu: number },
): Promise<{ monitored: number; exited: number }> {
  const ns: ScratchNamespace = await createScratchNamespace(device.address);
  let monitor: KernelMonitor | undefined;
  try {
    await ns.ip([
      'link',
      'add',
      DEVICE,
      'address',
      device.mac,
      'mtu',
      String(device.mtu),
      'up',
      'type',
      'vxlan',
      'id',
      String(VNI),
      'local',
      device.local,
      'dev',
      ns.ext,
      'dstport',
      '8472',
      'nolearning',
    ]);
    monitor = new KernelMonitor(ns.name, DEVICE);
    await sleep(300);
    const fdbLines = peers.map((p) => `fdb replace ${p.mac} dev ${DEVICE} dst ${p.publicIp} self permanent`);
    const ipLines = [
      ...peers.map((p) => `neigh replace ${p.gateway} lladdr ${p.mac} dev ${DEVICE} nud permanent`),
      ...peers.map((p) => `route replace ${p.subnet} via ${p.gateway} dev ${DEVICE} onlink`),
    ];
    const all = monitor.waitFor(targetOf(peers), true, 60_000);
    const t0 = process.hrtime.bigint();
    await runBatch(ns.name, 'bridge', fdbLines);
    await runBatch(ns.name, 'ip', ipLines);
    const exited = process.hrtime.bigint();
    const seen = await all;
    return { monitored: ms(t0, seen), exited: ms(t0, exited) };
  } finally {
    await monitor?.close();
    ns.destroy();
  }
}

function runBatch(netns: string, tool: 'ip' | 'bridge', lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawnPiped([tool, '-n', netns, '-batch', '-']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${tool} -batch: exit ${code}: ${stderr.trim()}`)),
    );
    child.stdin!.end(`${lines.join('\n')}\n`);
  });
}

/** Counts what a dump of the namespace shows (a cross-check of the monitor). */
async function dumpCounts(node: ClusterNode): Promise<{ routes: number; neighbors: number; fdb: number }> {
  const json = async (cmd: string, args: string[]) => {
    const r = await node.exec(cmd, args, { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout || '[]') as Array<Record<string, unknown>>;
  };
  const routes = await json('ip', ['-json', 'route', 'show', 'dev', DEVICE]);
  const neighbors = await json('ip', ['-json', 'neigh', 'show', 'dev', DEVICE, 'nud', 'permanent']);
  const fdb = await json('bridge', ['-json', 'fdb', 'show', 'dev', DEVICE]);
  return {
    routes: routes.filter((r) => String(r.dst).includes('/')).length,
    neighbors: neighbors.length,
    fdb: fdb.filter((f) => f.dst !== undefined).length,
  };
}

// ------------------------------------------------------------------------------------------------ main

interface RoundRow {
  /** txn acked → all entries seen, keys with their own TTL lease. */
  addTtl: number;
  /** The same, keys without a lease (reservations: no TTL lookups). */
  addReserved: number;
  /** weftd's own pass for the TTL add, from its log. */
  passTtl: number;
  /** Its steps: backend plan, kernel dump, diff, apply. */
  passSteps: number[];
  remove: number;
  txn: number;
  base: number;
  baseExit: number;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (creates network namespaces)');
  const peerCount = intOption('peers', 1, 10000);
  const rounds = intOption('rounds', 1, 20);
  const eventCount = intOption('events', 1, 1000);

  let cluster: NetnsCluster | undefined;
  let writer: EtcdLeaseWriter | undefined;
  let monitor: KernelMonitor | undefined;
  try {
    cluster = await netnsCluster({
      nodes: 1,
      withEtcdHost: true,
      etcdArgs: ['--max-txn-ops=20000', '--max-request-bytes=33554432'],
    });
    const node = cluster.nodes[0]!;
    const endpoint = cluster.etcd.endpoint;
    await etcdctl(endpoint, ['put', `${PREFIX}/config`, JSON.stringify(NET_CONF)], { netns: node.netns });
    const logFile = join(node.dir, 'weftd.log');
    const subnetFile = join(node.dir, 'subnet.env');
    const weftdArgs = [
      ...(values['cpu-prof-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof-dir']}`] : []),
      // As users run it: the bin's node flags (its memory settings).
      ...weftdNodeFlags(),
      WEFTD,
      `--etcd-endpoints=${endpoint}`,
      `--iface=${node.ifname}`,
      `--subnet-file=${subnetFile}`,
      '--probe-interval=0',
      '--healthz-ip=127.0.0.1',
      `--healthz-port=${METRICS_PORT}`,
      '--resync-interval=30',
      '--log-level=info',
    ];
    /** Starts weftd; resolves with it and the ms from spawn until it logged "weftd ready". */
    const startWeftd = async () => {
      const readyBefore = countReady(logFile);
      const started = process.hrtime.bigint();
      const handle = await node.spawn(process.execPath, weftdArgs, { logFile });
      for (let i = 0; i < 3_000 && countReady(logFile) === readyBefore; i++) {
        if (handle.exited) throw new Error(`weftd exited:\n${handle.logTail(30)}`);
        await sleep(10);
      }
      if (countReady(logFile) === readyBefore) throw new Error('weftd did not become ready');
      return { handle, readyMs: ms(started, process.hrtime.bigint()) };
    };
    const first = await startWeftd();
    let weftd = first.handle;
    const [link] = JSON.parse(
      (await node.exec('ip', ['-d', '-json', 'link', 'show', 'dev', DEVICE])).stdout,
    ) as Array<{ address: string; mtu: number }>;
    const device = {
      address: `${node.underlayIp}/24`,
      local: node.underlayIp,
      mac: link!.address,
      mtu: link!.mtu,
    };

    writer = new EtcdLeaseWriter(node.netns, endpoint);
    monitor = new KernelMonitor(node.netns, DEVICE);
    await sleep(500);
    const memory = async () => ({
      ...procMemory(weftd.pid),
      heap: (await writer!.request({ op: 'heap', port: METRICS_PORT })).heapMiB!,
    });
    const idle = await memory();

    const peers = Array.from({ length: peerCount }, (_, i) => syntheticPeer(i, 1, 80));
    const target = targetOf(peers);
    const deadline = 120_000;
    const rows: RoundRow[] = [];

    const addAll = async (withTtl: boolean): Promise<{ add: number; txn: number; ids: string[] }> => {
      const ids = withTtl
        ? (await writer!.request({ op: 'grant', count: peers.length, ttl: LEASE_TTL_S })).ids!
        : peers.map(() => '0');
      const all = monitor!.waitFor(target, true, deadline);
      const put = await writer!.request({
        op: 'put',
        entries: peers.map((p, i) => ({ key: p.key, value: leaseValue(p), lease: ids[i]! })),
      });
      const done = await all;
      return { add: ms(BigInt(put.ackNs!), done), txn: ms(BigInt(put.sentNs!), BigInt(put.ackNs!)), ids };
    };
    const removeAll = async (ids: string[]): Promise<number> => {
      const gone = monitor!.waitFor(target, false, deadline);
      const del = await writer!.request({ op: 'del', keys: peers.map((p) => p.key) });
      const removed = await gone;
      const ttlIds = ids.filter((id) => id !== '0');
      if (ttlIds.length > 0) await writer!.request({ op: 'revoke', ids: ttlIds });
      await sleep(300);
      return ms(BigInt(del.ackNs!), removed);
    };

    const measureRound = async (check: boolean): Promise<RoundRow> => {
      const logLine = passesSince(logFile, 0).lines;
      const ttl = await addAll(true);
      if (check) {
        const counts = await dumpCounts(node);
        if (counts.routes !== peerCount || counts.neighbors !== peerCount || counts.fdb !== peerCount) {
          throw new Error(`weftd programmed ${JSON.stringify(counts)}, expected ${peerCount} of each`);
        }
      }
      const remove = await removeAll(ttl.ids);
      // weftd logs a pass after applying it, so they are read once it is done. The first big one is the add.
      const addPass = passesSince(logFile, logLine).passes.find((p) => p.ops >= peerCount);
      const reserved = await addAll(false);
      await removeAll(reserved.ids);
      let base: Awaited<ReturnType<typeof baselineRound>> | undefined;
      for (let attempt = 0; base === undefined; attempt++) {
        try {
          base = await baselineRound(peers, device);
        } catch (err) {
          if (!(err instanceof MonitorLostEventsError) || attempt >= 3) throw err;
        }
      }
      return {
        addTtl: ttl.add,
        addReserved: reserved.add,
        passTtl: addPass?.ms ?? Number.NaN,
        passSteps: addPass?.stepsMs ?? [],
        remove,
        txn: ttl.txn,
        base: base.monitored,
        baseExit: base.exited,
      };
    };

    /** After lost monitor events: remove every synthetic key, wait for weftd to clear the kernel, new monitor. */
    const recover = async (err: MonitorLostEventsError): Promise<void> => {
      console.log(`  (${err.message}: round discarded, retrying)`);
      await writer!.request({ op: 'del', keys: peers.map((p) => p.key) });
      for (let i = 0; i < 600; i++) {
        const c = await dumpCounts(node);
        if (c.routes + c.neighbors + c.fdb === 0) break;
        if (i === 599) throw new Error(`weftd did not remove the synthetic peers: ${JSON.stringify(c)}`);
        await sleep(100);
      }
      await monitor!.close();
      monitor = new KernelMonitor(node.netns, DEVICE);
      await sleep(500);
    };

    // Round 0 is a warm-up of every path, not counted. A round whose monitor lost events is run again.
    let voided = 0;
    for (let r = 0; r <= rounds; r++) {
      let row: RoundRow;
      try {
        row = await measureRound(r === 0);
      } catch (err) {
        if (!(err instanceof MonitorLostEventsError) || ++voided > 3) throw err;
        await recover(err);
        r--;
        continue;
      }
      if (r === 0) continue;
      rows.push(row);
      console.log(
        `  round ${r}: raw batch ${row.base.toFixed(1)} ms; weftd add ${row.addTtl.toFixed(1)} ms ` +
          `(its pass ${row.passTtl} ms: plan/dump/diff/apply ${row.passSteps.join('/')}), without TTL ${row.addReserved.toFixed(1)} ms, remove ${row.remove.toFixed(1)} ms`,
      );
    }

    // The peers stay for the latency events and the memory readings.
    await addAll(true);
    await sleep(1_000);
    const withPeers = await memory();
    const eventsFromLine = passesSince(logFile, 0).lines;
    const latencies: number[] = [];
    const putRtts: number[] = [];
    const trend: string[] = [];
    const extra = Array.from({ length: eventCount }, (_, i) => syntheticPeer(i, 100, 200));
    const extraIds = (await writer.request({ op: 'grant', count: extra.length, ttl: LEASE_TTL_S })).ids!;
    for (const [i, p] of extra.entries()) {
      const seen = monitor.waitFor(
        { route: new Set([p.subnet]), neighbor: new Set(), fdb: new Set() },
        true,
        30_000,
      );
      const put = await writer.request({
        op: 'put',
        entries: [{ key: p.key, value: leaseValue(p), lease: extraIds[i]! }],
      });
      const at = await seen;
      latencies.push(ms(BigInt(put.sentNs!), at));
      putRtts.push(ms(BigInt(put.sentNs!), BigInt(put.ackNs!)));
      await sleep(20);
      if ((i + 1) % 25 === 0) trend.push(`${i + 1}: ${(await memory()).heap.toFixed(1)}`);
    }
    await sleep(300);
    const after = await memory();
    const eventPasses = passesSince(logFile, eventsFromLine).passes.filter((p) => p.ops > 0);
    const counts = await dumpCounts(node);
    // A restart with every peer in etcd (and in the kernel already): spawn → "weftd ready".
    await weftd.stop('SIGTERM', 10_000);
    const restartLine = passesSince(logFile, 0).lines;
    const restart = await startWeftd();
    weftd = restart.handle;
    const restartPass = passesSince(logFile, restartLine).passes[0];

    const med = (f: (r: RoundRow) => number) => median(rows.map(f));
    const cell = (v: number) => v.toFixed(1).padStart(8);
    const ratio = (v: number) => (v / med((r) => r.base)).toFixed(2).padStart(8);
    const line = (label: string, v: number, withRatio = true) =>
      console.log(`  ${label.padEnd(58)}${cell(v)}${withRatio ? ratio(v) : ''}`);
    console.log('');
    console.log(
      `converge: ${peerCount} peer leases → ${peerCount * 3} kernel entries (route + neighbour + FDB each), ` +
        `median of ${rounds} rounds`,
    );
    console.log(`  ${''.padEnd(58)}${'ms'.padStart(8)}${'ratio'.padStart(8)}`);
    line(
      'bridge -batch + ip -batch, fresh namespace (monitored)',
      med((r) => r.base),
    );
    line(
      '  (until the ip process exited)',
      med((r) => r.baseExit),
      false,
    );
    line(
      'weftd: txn acked → all in the kernel (keys with TTL leases)',
      med((r) => r.addTtl),
    );
    line(
      "  weftd's reconcile pass for it (its own log)",
      med((r) => r.passTtl),
    );
    line(
      'weftd: txn acked → all in the kernel (keys without TTL)',
      med((r) => r.addReserved),
    );
    line(
      'weftd: delete txn acked → all entries gone',
      med((r) => r.remove),
    );
    line(
      `etcd txn of ${peerCount} puts, round trip`,
      med((r) => r.txn),
      false,
    );
    console.log('');
    console.log(
      `one new lease → its route, ${eventCount} events with ${peerCount} peers present (from the put being sent): ` +
        `p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms, ` +
        `max ${Math.max(...latencies).toFixed(1)} ms (etcd put round trip p50 ${median(putRtts).toFixed(1)} ms)`,
    );
    const passMs = eventPasses.map((p) => p.ms);
    const step = (k: number) => median(eventPasses.map((p) => p.stepsMs?.[k] ?? Number.NaN)).toFixed(0);
    console.log(
      `  weftd's own passes for them: ${eventPasses.length}, p50 ${median(passMs).toFixed(1)} ms, ` +
        `p99 ${quantile(passMs, 0.99).toFixed(1)} ms; median steps plan/dump/diff/apply ` +
        `${step(0)}/${step(1)}/${step(2)}/${step(3)} ms`,
    );
    // The tail: which passes were slow, and in which step (a coalesced resync dumps the kernel).
    const slowest = [...eventPasses].sort((a, b) => b.ms - a.ms).slice(0, 3);
    console.log(
      `  slowest: ${slowest
        .map((p) => `${p.ms} ms [${p.reason}${p.dumped ? ', dumped' : ''}] ${(p.stepsMs ?? []).join('/')}`)
        .join('; ')}`,
    );
    const mem = (m: typeof idle) => `RSS ${m.rssMiB.toFixed(1)} MiB (V8 heap used ${m.heap.toFixed(1)} MiB)`;
    console.log(`weftd memory: idle ${mem(idle)}`);
    console.log(`  with ${peerCount} peers ${mem(withPeers)}`);
    console.log(
      `  after the events, ${peerCount + eventCount} peers: ${mem(after)}; peak RSS (VmHWM) ${after.hwmMiB.toFixed(1)} MiB`,
    );
    console.log(`  V8 heap used (MiB) after n events: ${trend.join(', ')}`);
    console.log(
      `weftd start → ready: ${first.readyMs.toFixed(0)} ms with no peers; restart with ${peerCount + eventCount} ` +
        `peers (TTL leases) ${restart.readyMs.toFixed(0)} ms, its first pass ${restartPass?.ops ?? '?'} ops in ${restartPass?.ms ?? '?'} ms`,
    );
    console.log(
      `kernel check: ${JSON.stringify(counts)} on ${DEVICE} (expected ${peerCount + eventCount} each)`,
    );
    // Issue 16's goals, judged at their size (5000 peers) and reported at any size.
    const atSize = peerCount >= GOAL.peers ? '' : ` (below the goals' size; run --peers ${GOAL.peers})`;
    const verdict = (ok: boolean) => `${ok ? 'met' : 'NOT met'}${atSize}`;
    const firstRatio = med((r) => r.addTtl) / med((r) => r.base);
    const p99 = quantile(latencies, 0.99);
    const restartOk = restartPass?.ops === 0 && restart.readyMs < GOAL.restartReadyMs;
    console.log('');
    console.log(
      `goal: first pass ≤ ${GOAL.firstPassRatio}× the raw batches: ${firstRatio.toFixed(2)}× at ${peerCount} peers → ${verdict(firstRatio <= GOAL.firstPassRatio)}`,
    );
    console.log(
      `goal: one new lease → its route p99 < ${GOAL.eventP99Ms} ms: p99 ${p99.toFixed(1)} ms over ${eventCount} events → ${verdict(p99 < GOAL.eventP99Ms)}`,
    );
    console.log(
      `goal: restart → first pass 0 ops and ready < ${GOAL.restartReadyMs} ms: ${restartPass?.ops ?? '?'} ops, ready in ${restart.readyMs.toFixed(0)} ms → ${verdict(restartOk)}`,
    );
  } catch (err) {
    const log = cluster ? join(cluster.nodes[0]!.dir, 'weftd.log') : undefined;
    if (log) console.error(`weftd log (last lines):\n${tailFile(log, 30)}`);
    throw err;
  } finally {
    await monitor?.close().catch(() => undefined);
    await writer?.close().catch(() => undefined);
    await cluster?.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
