// What weftd costs in memory (issue 16), measured on the real process from /proc (VmRSS now, VmHWM its peak):
//   - etcd mode: a real weftd in a node namespace leasing from a real etcd on the underlay; idle (ready, no
//     peers), then `--peers` synthetic vxlan leases written in txns (weftd programs 3 kernel entries each), then a
//     restart with all of them in etcd;
//   - kube mode: the same weftd with `--kube-subnet-mgr` against the test API server (its own process in a host
//     namespace); idle with only its own node, then `--peers` nodes registered as kubelets do (~3 KiB each, with
//     flannel's annotations), then a restart with all of them present (paged LIST).
// Each reading is taken once weftd has programmed every peer and a resync pass (a full kernel dump) has run. weftd
// runs with the node flags and environment of its own shebang (dist/daemon/weftd.js), i.e. as `weftd`, systemd and
// the image run it; `--node-flags` replaces them (`--node-flags=` for none; `VAR=value` words set the environment). `--compare "FLAGS"` runs every scenario a second time
// with those flags (`--compare=` for none) and prints both side by side, with the CPU weftd used in each phase
// (utime + stime from /proc) and the mean duration of its passes after the restart (each a full kernel dump + diff
// of every peer, from its own histogram): what the flags cost in CPU.
//
//   npm run build && npm run build:dev && node dist-dev/bench/memory.js [--peers 5000] [--mode etcd|kube|both] \
//     [--node-flags "…"] [--compare "…"]
//
// Needs root. Traffic stays in the run's namespaces; the synthetic peers' addresses are never contacted (no pods,
// no probes). Everything is removed at the end, also on failure.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  EtcdLeaseWriter,
  FLANNEL_ETCD_PREFIX,
  syntheticLeaseValue,
  syntheticPeer,
} from '../testkit/etcd-lease-writer.js';
import {
  type ClusterNode,
  etcdctl,
  type NetnsCluster,
  netnsCluster,
  type ProcessHandle,
  sleep,
} from '../testkit/index.js';
import { registeredNode } from '../testkit/kube-apiserver/registered-node.js';
import { type RemoteApiServer, startRemoteApiServer } from '../testkit/kube-apiserver/remote.js';
import { makeNode } from '../testkit/kube-apiserver/server.js';
import { type ProcMemory, procCpuMs, procMemory } from '../testkit/proc-memory.js';
import {
  isEnvAssignment,
  weftdShebangFlags as shebangFlags,
  splitFlags,
  WEFTD,
} from '../testkit/weft-cluster.js';
import { weftdGet } from '../testkit/weftd-http.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '5000' },
    mode: { type: 'string', default: 'both' },
    'node-flags': { type: 'string' },
    compare: { type: 'string' },
  },
});

const PORT = 10256;
const DEVICE = 'flannel.1';
const RESYNC_S = 10;
/** Goals of issue 16, MiB of RSS. */
const GOALS = { etcd: { idle: 64, peers: 96 }, kube: { idle: 96, peers: 128 } } as const;
type Mode = keyof typeof GOALS;

interface Reading extends ProcMemory {
  heapMiB: number;
  /** Mean duration of every reconcile pass so far (weftd's own histogram). */
  passMs: number;
  /** CPU seconds weftd used since it started (utime + stime). */
  cpuS: number;
}

interface Phase {
  memory: Reading;
  /** CPU seconds spent in this phase. */
  cpuS: number;
  /** spawn → /readyz 200, for the phases that start weftd. */
  readyMs?: number;
}

function cpuSeconds(pid: number): number {
  return procCpuMs(pid) / 1000;
}

async function reading(node: ClusterNode, weftd: ProcessHandle): Promise<Reading> {
  // CPU and memory first: reading the metrics costs weftd some.
  const cpuS = cpuSeconds(weftd.pid);
  const memory = procMemory(weftd.pid);
  const { body } = await weftdGet(node, '/metrics', PORT);
  const value = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(body)?.[1]);
  const passMs =
    (1000 * value('weft_reconcile_duration_seconds_sum')) / value('weft_reconcile_duration_seconds_count');
  return { ...memory, cpuS, heapMiB: value('nodejs_heap_size_used_bytes') / 2 ** 20, passMs };
}

async function waitFor(what: string, weftd: ProcessHandle, ok: () => Promise<boolean>, ms: number) {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 100_000; i++) {
    if (weftd.exited) throw new Error(`weftd exited while waiting for ${what}:\n${weftd.logTail(30)}`);
    if (await ok().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms:\n${weftd.logTail(30)}`);
    await sleep(250);
  }
}

async function routeCount(node: ClusterNode): Promise<number> {
  const r = await node.exec('ip', ['-json', 'route', 'show', 'dev', DEVICE], { timeoutMs: 30_000 });
  if (r.code !== 0) return 0;
  return (JSON.parse(r.stdout || '[]') as unknown[]).length;
}

/** Waits until `peers` routes are in the kernel and one more resync has run; then reads the memory. */
async function settled(node: ClusterNode, weftd: ProcessHandle, peers: number): Promise<Reading> {
  await waitFor(`${peers} routes`, weftd, async () => (await routeCount(node)) >= peers, 300_000);
  await sleep((RESYNC_S + 2) * 1000);
  return reading(node, weftd);
}

/** One weftd run with fixed node flags: start, grow, restart. */
class Scenario {
  private weftd: ProcessHandle | undefined;
  private readonly logFile: string;

  constructor(
    private readonly node: ClusterNode,
    private readonly flags: string[],
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.logFile = join(node.dir, `weftd-${flags.join('').replace(/[^a-z0-9]+/gi, '-') || 'none'}.log`);
  }

  /** Starts weftd, waits for /readyz and `peers` routes, lets a resync pass run. */
  async start(peers: number): Promise<Phase> {
    const started = performance.now();
    const flags = this.flags.filter((t) => !isEnvAssignment(t));
    const env = { ...this.env };
    for (const t of this.flags.filter(isEnvAssignment))
      env[t.slice(0, t.indexOf('='))] = t.slice(t.indexOf('=') + 1);
    const weftd = await this.node.spawn(process.execPath, [...flags, WEFTD, ...this.args], {
      logFile: this.logFile,
      env,
    });
    this.weftd = weftd;
    const ready = async () => (await weftdGet(this.node, '/readyz', PORT)).status === 200;
    await waitFor('/readyz', weftd, ready, 120_000);
    const readyMs = performance.now() - started;
    const memory = await settled(this.node, weftd, peers);
    return { memory, cpuS: memory.cpuS, readyMs };
  }

  /** After `grow` (adding peers while weftd runs): every route in, a resync run. */
  async grown(peers: number, before: Reading): Promise<Phase> {
    const memory = await settled(this.node, this.weftd!, peers);
    return { memory, cpuS: memory.cpuS - before.cpuS };
  }

  async stop(): Promise<void> {
    await this.weftd?.stop('SIGTERM', 10_000);
    this.weftd = undefined;
  }
}

interface ModeResult {
  idle: Phase;
  added: Phase;
  restarted: Phase;
}

function weftdArgs(node: ClusterNode): string[] {
  return [
    `--iface=${node.ifname}`,
    `--subnet-file=${join(node.dir, 'subnet.env')}`,
    `--cni-conf-file=${join(node.dir, '10-weft.conflist')}`,
    '--probe-interval=0',
    '--healthz-ip=127.0.0.1',
    `--healthz-port=${PORT}`,
    `--resync-interval=${RESYNC_S}`,
    '--log-level=info',
  ];
}

/** idle → `grow()` → restarted, for each flag set in turn (the peers stay: later sets start with them). */
async function runVariants(
  node: ClusterNode,
  variants: string[][],
  args: string[],
  env: NodeJS.ProcessEnv,
  peers: number,
  grow: () => Promise<void>,
  shrink: () => Promise<void>,
): Promise<ModeResult[]> {
  const results: ModeResult[] = [];
  for (const flags of variants) {
    const s = new Scenario(node, flags, args, env);
    try {
      const idle = await s.start(0);
      await grow();
      const added = await s.grown(peers, idle.memory);
      await s.stop();
      const restarted = await s.start(peers);
      await s.stop();
      await shrink();
      results.push({ idle, added, restarted });
    } finally {
      await s.stop().catch(() => undefined);
    }
  }
  return results;
}

async function measureEtcd(peerCount: number, variants: string[][]): Promise<ModeResult[]> {
  let cluster: NetnsCluster | undefined;
  let writer: EtcdLeaseWriter | undefined;
  try {
    cluster = await netnsCluster({ nodes: 1, withEtcdHost: true, etcdArgs: ['--max-txn-ops=10000'] });
    const node = cluster.nodes[0]!;
    const endpoint = cluster.etcd.endpoint;
    // The own lease stays in 10.0.0.0/16, clear of the synthetic peers (10.1.0.0 and up).
    const netConf = { Network: '10.0.0.0/8', SubnetMin: '10.0.1.0', SubnetMax: '10.0.255.0' };
    await etcdctl(endpoint, ['put', `${FLANNEL_ETCD_PREFIX}/config`, JSON.stringify(netConf)], {
      netns: node.netns,
    });
    const w = new EtcdLeaseWriter(node.netns, endpoint);
    writer = w;
    const peers = Array.from({ length: peerCount }, (_, i) => syntheticPeer(i, 1, 80));
    const chunks = Array.from({ length: Math.ceil(peerCount / 1000) }, (_, k) =>
      peers.slice(k * 1000, k * 1000 + 1000),
    );
    const grow = async () => {
      for (const chunk of chunks) {
        const entries = chunk.map((p) => ({ key: p.key, value: syntheticLeaseValue(p), lease: '0' }));
        await w.request({ op: 'put', entries });
      }
    };
    const shrink = async () => {
      for (const chunk of chunks) await w.request({ op: 'del', keys: chunk.map((p) => p.key) });
      // The next variant starts from a kernel without the peers (weftd leaves its entries on stop).
      await node.exec('ip', ['link', 'del', DEVICE]);
    };
    const args = [`--etcd-endpoints=${endpoint}`, ...weftdArgs(node)];
    return await runVariants(node, variants, args, {}, peerCount, grow, shrink);
  } finally {
    await writer?.close().catch(() => undefined);
    await cluster?.destroy();
  }
}

async function measureKube(peerCount: number, variants: string[][]): Promise<ModeResult[]> {
  let cluster: NetnsCluster | undefined;
  try {
    cluster = await netnsCluster({ nodes: 1, withEtcdHost: false, extraHosts: 1 });
    const node = cluster.nodes[0]!;
    const api: RemoteApiServer = await startRemoteApiServer(cluster.hosts[0]!, {
      historyLimit: peerCount + 1000,
    });
    await api.addNode(makeNode('node-0', { podCIDR: '10.255.0.0/24', internalIP: node.underlayIp }));
    const netConfPath = join(node.dir, 'net-conf.json');
    writeFileSync(netConfPath, JSON.stringify({ Network: '10.0.0.0/8', Backend: { Type: 'vxlan' } }));
    const args = [
      '--kube-subnet-mgr',
      `--kubeconfig-file=${api.kubeconfigPath}`,
      `--net-config-path=${netConfPath}`,
      ...weftdArgs(node),
    ];
    const inBatches = async (fn: (i: number) => Promise<unknown>) => {
      for (let i = 1; i <= peerCount; i += 20) {
        const batch = Array.from({ length: Math.min(20, peerCount - i + 1) }, (_, k) => i + k);
        await Promise.all(batch.map(fn));
      }
    };
    // Registered as kubelets do, 20 at a time; weftd sees them as watch events.
    const grow = () => inBatches((i) => api.addNode(registeredNode(i)));
    const shrink = async () => {
      await inBatches((i) => api.deleteNode(`node-${i}`));
      await node.exec('ip', ['link', 'del', DEVICE]);
    };
    return await runVariants(node, variants, args, { NODE_NAME: 'node-0' }, peerCount, grow, shrink);
  } finally {
    await cluster?.destroy();
  }
}

function report(mode: Mode, peers: number, variants: string[][], results: ModeResult[]): string[] {
  const f = (x: number, w = 6, d = 1) => x.toFixed(d).padStart(w);
  const g = GOALS[mode];
  const verdict = (x: number, goal: number) => (x <= goal ? 'met' : 'NOT met');
  const lines = [`${mode} mode (MiB; CPU s used by weftd in the phase):`];
  for (const [v, r] of results.entries()) {
    const name = variants[v]!.join(' ') || '(no node flags)';
    const row = (label: string, p: Phase, goal: number) =>
      `    ${label.padEnd(32)} RSS ${f(p.memory.rssMiB)}  VmHWM ${f(p.memory.hwmMiB)}  heap ${f(p.memory.heapMiB)}  CPU ${f(p.cpuS, 5, 2)} s` +
      `${p.readyMs === undefined ? '' : `  ready ${f(p.readyMs, 5, 0)} ms`}   goal RSS ≤ ${goal}: ${verdict(p.memory.rssMiB, goal)}`;
    const peak = Math.max(r.added.memory.hwmMiB, r.restarted.memory.hwmMiB);
    lines.push(
      `  ${v === 0 ? 'as shipped' : 'compared'}: ${name}`,
      row('idle (ready, no peers)', r.idle, g.idle),
      row(`${peers} peers added while running`, r.added, g.peers),
      row(`restarted with ${peers} peers`, r.restarted, g.peers),
      `    peak with ${peers} peers (VmHWM) ${f(peak)} MiB (≤ ${g.peers}: ${verdict(peak, g.peers)}); mean pass after the restart (dump + diff of ${peers} peers) ${f(r.restarted.memory.passMs, 0, 0)} ms`,
    );
  }
  if (results.length === 2) {
    const [a, b] = results as [ModeResult, ModeResult];
    const ratio = (x: number, y: number) => (x / y).toFixed(2);
    lines.push(
      `  shipped / compared: RSS idle ${ratio(a.idle.memory.rssMiB, b.idle.memory.rssMiB)}, with ${peers} ${ratio(a.restarted.memory.rssMiB, b.restarted.memory.rssMiB)}, peak ${ratio(Math.max(a.added.memory.hwmMiB, a.restarted.memory.hwmMiB), Math.max(b.added.memory.hwmMiB, b.restarted.memory.hwmMiB))}; ` +
        `CPU adding ${ratio(a.added.cpuS, b.added.cpuS)}, restart ${ratio(a.restarted.cpuS, b.restarted.cpuS)}, pass ${ratio(a.restarted.memory.passMs, b.restarted.memory.passMs)}, start → ready ${ratio(a.idle.readyMs!, b.idle.readyMs!)}`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (creates network namespaces)');
  const peers = Number(values.peers);
  if (!Number.isInteger(peers) || peers < 1 || peers > 10_000) throw new Error('--peers must be 1..10000');
  const modes: Mode[] = values.mode === 'both' ? ['etcd', 'kube'] : [values.mode as Mode];
  if (!modes.every((m) => m in GOALS)) throw new Error('--mode must be etcd, kube or both');
  const shipped = values['node-flags'] === undefined ? shebangFlags() : splitFlags(values['node-flags']);
  const variants = values.compare === undefined ? [shipped] : [shipped, splitFlags(values.compare)];
  process.stdout.write(
    `memory: real weftd (vxlan, --probe-interval=0, resync every ${RESYNC_S} s), readings after every peer is routed and a resync ran\n`,
  );
  for (const mode of modes) {
    const r = mode === 'etcd' ? await measureEtcd(peers, variants) : await measureKube(peers, variants);
    process.stdout.write(`${report(mode, peers, variants, r).join('\n')}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`memory failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
