// Data-plane throughput, pod to pod across two nodes, side by side in one run:
//
//   underlay            node → node over the underlay veth/bridge, no tunnel (the ceiling)
//   kernel vxlan, hand  the same topology flannel's vxlan backend makes, written by hand with `ip`: VXLAN device
//                       (nolearning, MTU underlay − 50), static neighbour + FDB entry + onlink route per peer,
//                       pods on a CNI bridge, no iptables rules (so no conntrack): the ideal kernel VXLAN
//   hand + rules        the same, plus the iptables rules weftd installs with --ip-masq (masquerade, forward)
//   … + NOTRACK         the same plus --tunnel-notrack's raw-table rules
//   hand + nft rules    the hand-built overlay with the same rules as nftables tables (weft's nft renderer)
//   weft vxlan          real weftd, Backend.Type vxlan (with --ip-masq, and weftd's default resync and probe
//                       intervals: probes, reconcile loop and iptables checks running)
//   …, no ip-masq       the same with --ip-masq=false (flannel's default; flannel's forward rules stay)
//   …, no iptables rules  --ip-masq=false --iptables-forward-rules=false: the same netfilter as the hand-built row
//   …, tunnel NOTRACK   the same with --tunnel-notrack: conntrack no longer sees the outer VXLAN packets
//   …, nftables         the same as weft vxlan with "EnableNFTables": true (the rules in flannel's nft tables)
//   weft udp            real weftd, Backend.Type udp (TUN flannel0 + the native engine)
//   wireguard-go, hand  two wireguard-go devices configured by hand with `wg set` (ideal settings, no rules)
//   weft wireguard      real weftd, Backend.Type wireguard (on wireguard-go here); its notes add start → first
//                       packet through the tunnel and the pings lost over a weftd SIGKILL + restart
//                       (wireguard rows: the cores columns include the wireguard-go processes)
//   …, no rules         the same with --ip-masq=false --iptables-forward-rules=false (the hand row's netfilter)
//
// All setups exist at once (separate namespace clusters); the runs go round-robin over the rows, `--runs`
// rounds, each round starting one row later, so a change in the machine's other load hits every row alike. Each run: iperf3 TCP, one stream,
// `--seconds`; each row reports the median. CPU per Gbit/s counts the processes that do the work: iperf3 client
// and server (as iperf3 reports its own CPU time), both weftd of the row's cluster and the ksoftirqd threads,
// from /proc/<pid>/stat deltas (tick accounting: softirq work lands on whichever of these it interrupted). The
// machine-wide /proc/stat busy time is reported too, minus the busy cores at rest measured before each run; it is
// only meaningful on an otherwise idle machine.
//
//   npm run build:dev && node dist-dev/bench/dataplane.js [--seconds 5] [--runs 3] [--rows hand,weft,…] [--json]
//
// Needs root, iperf3, iproute2 and the CNI plugins. Traffic stays inside the namespaces this script creates
// (run prefix wt<4 hex>); every cluster is removed at the end of its rows, also on failure.
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  mergeRuleSets,
  nftTables,
  parseIptablesSave,
  planFirewallPolicy,
  planForwardRules,
  planMasqRules,
  planTunnelNotrackRules,
  renderNftTransaction,
  renderRestore,
} from '../src/firewall/index.js';
import { parseCidr } from '../src/ip/index.js';
import {
  type NetnsCluster,
  netnsCluster,
  type Pod,
  type RunResult,
  runCheckedIn,
  runIn,
  sleep,
  spawnIn,
} from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';
import {
  addHandPods,
  buildHandWireguard,
  WG_MTU,
  wireguardGoPids,
  wireguardRestartLoss,
  wireguardStartToFirstPacket,
} from './wireguard-hand.js';

const IPERF_PORT = 5201;
/** Linux's USER_HZ; /proc/<pid>/stat and /proc/stat count in these ticks. */
const CLOCK_TICKS_PER_SECOND = 100;

interface Endpoint {
  netns: string;
  ip: string;
}

interface RunSample {
  gbps: number;
  retransmits: number;
  wallSeconds: number;
  /** Busy cores over the run (whole machine) minus the busy cores at rest before it. */
  machineCores: number;
  /** iperf3 client + server + both weftd + ksoftirqd, in cores. */
  processCores: number;
  /** Both weftd alone, in cores. */
  weftdCores: number;
}

interface Row {
  id: RowId;
  name: string;
  runs: RunSample[];
  gbps: number;
  retransmits: number;
  machineCoresPerGbps: number;
  processCoresPerGbps: number;
  weftdCoresPerGbps: number;
  /** Extra facts (udp drops, MTU). */
  notes: string[];
}

// ------------------------------------------------------------------------------------------------ CPU

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** utime + stime of a process, in ticks; 0 when it is gone. */
function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** The ksoftirqd threads' pids (softirq work deferred out of the interrupted task). */
function ksoftirqdPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('ksoftirqd/')) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Busy cores of the whole machine over `ms` of doing nothing ourselves. */
async function restingCores(ms = 1000): Promise<number> {
  const a = machineTicks();
  const t0 = process.hrtime.bigint();
  await sleep(ms);
  const b = machineTicks();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return (b.busy - a.busy) / CLOCK_TICKS_PER_SECOND / seconds;
}

// ------------------------------------------------------------------------------------------------ iperf3

async function waitListening(netns: string, port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const ss = await runIn(netns, 'ss', ['-Hltn', 'sport', '=', `:${port}`]);
    if (ss.stdout.trim() !== '') return;
    await sleep(50);
  }
  throw new Error(`iperf3 server in ${netns} does not listen on ${port} after 5 s`);
}

interface IperfReport {
  error?: string;
  end?: {
    sum_received?: { bits_per_second?: number };
    sum_sent?: { retransmits?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

async function iperfOnce(
  from: Endpoint,
  to: Endpoint,
  seconds: number,
  weftdPids: number[],
): Promise<RunSample> {
  const baselineCores = await restingCores(500);
  const server = await spawnIn(to.netns, 'iperf3', ['-s', '-1', '-p', String(IPERF_PORT)]);
  try {
    await waitListening(to.netns, IPERF_PORT);
    const softirqPids = ksoftirqdPids();
    const m0 = machineTicks();
    const w0 = weftdPids.map(processTicks);
    const k0 = softirqPids.map(processTicks);
    const t0 = process.hrtime.bigint();
    const client: RunResult = await runIn(
      from.netns,
      'iperf3',
      ['-c', to.ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'],
      { timeoutMs: (seconds + 30) * 1000 },
    );
    const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const m1 = machineTicks();
    const w1 = weftdPids.map(processTicks);
    const k1 = softirqPids.map(processTicks);
    let report: IperfReport;
    try {
      report = JSON.parse(client.stdout) as IperfReport;
    } catch {
      throw new Error(`iperf3 printed no JSON (exit ${client.code}): ${client.stderr.trim()}`);
    }
    const bps = report.end?.sum_received?.bits_per_second;
    if (client.code !== 0 || typeof bps !== 'number') {
      throw new Error(`iperf3 ${from.ip} → ${to.ip} failed: ${report.error ?? `exit ${client.code}`}`);
    }
    const cores = (ticks: number) => ticks / CLOCK_TICKS_PER_SECOND / wallSeconds;
    const delta = (after: number[], before: number[]) =>
      after.reduce((sum, t, i) => sum + Math.max(0, t - (before[i] ?? 0)), 0);
    const weftdCores = cores(delta(w1, w0));
    const softirqCores = cores(delta(k1, k0));
    const cpu = report.end?.cpu_utilization_percent ?? {};
    return {
      gbps: bps / 1e9,
      retransmits: report.end?.sum_sent?.retransmits ?? 0,
      wallSeconds,
      machineCores: Math.max(0, cores(m1.busy - m0.busy) - baselineCores),
      processCores: ((cpu.host_total ?? 0) + (cpu.remote_total ?? 0)) / 100 + weftdCores + softirqCores,
      weftdCores,
    };
  } finally {
    await server.stop('SIGTERM', 2_000);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface RowSetup {
  id: RowId;
  name: string;
  from: Endpoint;
  to: Endpoint;
  weftdPids: number[];
  notes: string[];
  runs: RunSample[];
}

function summarize(setup: RowSetup): Row {
  const { runs } = setup;
  return {
    id: setup.id,
    name: setup.name,
    runs,
    gbps: median(runs.map((r) => r.gbps)),
    retransmits: median(runs.map((r) => r.retransmits)),
    machineCoresPerGbps: median(runs.map((r) => r.machineCores / r.gbps)),
    processCoresPerGbps: median(runs.map((r) => r.processCores / r.gbps)),
    weftdCoresPerGbps: median(runs.map((r) => r.weftdCores / r.gbps)),
    notes: setup.notes,
  };
}

// ------------------------------------------------------------------------------------------------ setups

const HAND_VNI = 77;
const HAND_PORT = 4789;
const HAND_MTU = 1450;

function handMac(i: number): string {
  return `0a:58:0a:fa:00:${i.toString(16).padStart(2, '0')}`;
}

/**
 * The hand-built kernel VXLAN overlay on a 2-node cluster: 10.250.<i>.0/24 per node. With `rules`, each node
 * also gets the rules weftd installs with --ip-masq (flannel's masquerade and forward chains and weft's tunnel
 * NOTRACK, rendered by weft's own firewall planner), so the row differs from weft's only in who wrote the
 * kernel state.
 */
/** Which iptables rules the hand-built overlay gets: none, weft's --ip-masq set, or that plus --tunnel-notrack. */
type HandRules = 'none' | 'masq' | 'masq+notrack' | 'nft-masq';

async function buildHandVxlan(net: NetnsCluster, rules: HandRules): Promise<Pod[]> {
  const nodes = net.nodes;
  for (const node of nodes) {
    const i = node.index;
    const ns = node.netns;
    if (rules === 'nft-masq') {
      const policy = planFirewallPolicy({
        networks: { ipv4: parseCidr('10.250.0.0/16') },
        lease: { subnet: parseCidr(`10.250.${i}.0/24`) },
        ipMasq: true,
        forwardRules: true,
        randomFully: true,
      });
      const script = renderNftTransaction({ write: nftTables(policy), remove: [] });
      const r = await runIn(ns, 'nft', ['-f', '-'], { input: script });
      if (r.code !== 0) throw new Error(`nft -f in ${ns} failed: ${r.stderr.trim()}`);
    } else if (rules !== 'none') {
      const network = parseCidr('10.250.0.0/16');
      const subnet = parseCidr(`10.250.${i}.0/24`);
      const sets = mergeRuleSets([
        planMasqRules({ network, subnet }),
        planForwardRules({ network }),
        ...(rules === 'masq+notrack' ? [planTunnelNotrackRules({ family: 4, port: HAND_PORT })] : []),
      ]);
      for (const set of sets) {
        const text = renderRestore(set, parseIptablesSave(''));
        if (text === '') continue;
        const r = await runIn(ns, 'iptables-restore', ['--noflush'], { input: text });
        if (r.code !== 0) throw new Error(`iptables-restore in ${ns} failed: ${r.stderr.trim()}`);
      }
    }

    await runCheckedIn(ns, 'ip', [
      'link',
      'add',
      'vxh',
      'type',
      'vxlan',
      'id',
      String(HAND_VNI),
      'local',
      node.underlayIp,
      'dev',
      node.ifname,
      'dstport',
      String(HAND_PORT),
      'nolearning',
    ]);
    await runCheckedIn(ns, 'ip', [
      'link',
      'set',
      'vxh',
      'address',
      handMac(i),
      'mtu',
      String(HAND_MTU),
      'up',
    ]);
    await runCheckedIn(ns, 'ip', ['addr', 'add', `10.250.${i}.0/32`, 'dev', 'vxh']);
    for (const peer of nodes) {
      if (peer === node) continue;
      const j = peer.index;
      await runCheckedIn(ns, 'ip', [
        'neigh',
        'replace',
        `10.250.${j}.0`,
        'lladdr',
        handMac(j),
        'dev',
        'vxh',
        'nud',
        'permanent',
      ]);
      await runCheckedIn(ns, 'bridge', [
        'fdb',
        'append',
        handMac(j),
        'dev',
        'vxh',
        'dst',
        peer.underlayIp,
        'self',
        'permanent',
      ]);
      await runCheckedIn(ns, 'ip', [
        'route',
        'replace',
        `10.250.${j}.0/24`,
        'via',
        `10.250.${j}.0`,
        'dev',
        'vxh',
        'onlink',
      ]);
    }
  }
  return addHandPods(net, nodes, 'hand-vxlan', 'hand', '10.250', HAND_MTU);
}

async function udpDrops(c: WeftCluster, i: number): Promise<Record<string, number>> {
  const r = await c.net.nodes[i]!.exec('curl', [
    '--silent',
    '--max-time',
    '10',
    'http://127.0.0.1:10256/metrics',
  ]);
  const drops: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^weft_udp_drops_total\{reason="([a-z_0-9]+)"\} (\S+)$/.exec(line);
    if (m && Number(m[2]) > 0) drops[m[1]!] = Number(m[2]);
  }
  return drops;
}

async function startWeftSetup(
  id: RowId,
  name: string,
  backend: Record<string, unknown>,
  weftdArgs: string[] = [],
  netConf: Record<string, unknown> = {},
): Promise<{ c: WeftCluster; setup: RowSetup }> {
  const wireguard = backend.Type === 'wireguard';
  const c = await startWeftCluster({
    nodes: 2,
    netConf: { Network: '10.244.0.0/16', Backend: backend, ...netConf },
    // wireguard-go's socket folder is per machine: each node gets its own mount namespace and key file.
    ...(wireguard
      ? {
          mountNamespaces: true,
          weftdEnv: (node: { dir: string }) => ({ WIREGUARD_KEY_FILE: `${node.dir}/run/flannel/wgkey` }),
        }
      : {}),
    // weftd's own defaults for its timers and log level (the test fixture's are much busier), then the row's.
    weftdArgs: ['--resync-interval=30', '--probe-interval=10', '--log-level=info', ...weftdArgs],
  });
  try {
    const [a, b] = await c.addPods(1);
    return {
      c,
      setup: {
        id,
        name,
        from: a!,
        to: b!,
        weftdPids: c.weftNodes.map((w) => w.weftd!.pid),
        notes: [
          `pod MTU ${c.subnetEnv(0).FLANNEL_MTU}${weftdArgs.length > 0 ? `, ${weftdArgs.join(' ')}` : ''}`,
        ],
        runs: [],
      },
    };
  } catch (err) {
    await c.destroy();
    throw err;
  }
}

// ------------------------------------------------------------------------------------------------ main

function intOption(value: string | undefined, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}, got ${value}`);
  return n;
}

function ratio(a: Row | undefined, b: Row | undefined): number {
  return a && b && b.gbps > 0 ? a.gbps / b.gbps : Number.NaN;
}

/** The rows, by id (for `--rows`), in the order they run and print. */
const ROW_IDS = [
  'underlay',
  'hand',
  'hand-rules',
  'hand-notrack',
  'hand-nft',
  'weft',
  'weft-nomasq',
  'weft-bare',
  'weft-notrack',
  'weft-nft',
  'udp',
  'wg-hand',
  'wg',
  'wg-bare',
] as const;
type RowId = (typeof ROW_IDS)[number];

/** A two-node cluster with the hand-built overlay and its rules, plus the pods' setup row. */
async function handSetup(
  clusters: Array<{ destroy(): Promise<void> }>,
  id: RowId,
  name: string,
  rules: HandRules,
  note: string,
): Promise<{ net: NetnsCluster; setup: RowSetup }> {
  const net = await netnsCluster({ nodes: 2, withEtcdHost: false });
  clusters.push(net);
  const [p1, p2] = await buildHandVxlan(net, rules);
  return {
    net,
    setup: { id, name, from: p1!, to: p2!, weftdPids: [], notes: [`pod MTU ${HAND_MTU}, ${note}`], runs: [] },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      runs: { type: 'string', default: '3' },
      rows: { type: 'string', default: ROW_IDS.join(',') },
      json: { type: 'boolean', default: false },
    },
  });
  const seconds = intOption(values.seconds, 'seconds', 1, 60);
  const runs = intOption(values.runs, 'runs', 1, 15);
  const wanted = new Set<string>((values.rows ?? '').split(',').map((r) => r.trim()));
  for (const id of wanted) {
    if (!(ROW_IDS as readonly string[]).includes(id))
      throw new Error(`--rows: unknown row "${id}"; rows are ${ROW_IDS.join(', ')}`);
  }
  const want = (id: RowId) => wanted.has(id);
  const setups: RowSetup[] = [];
  const clusters: Array<{ destroy(): Promise<void> }> = [];
  let udpCluster: WeftCluster | undefined;
  let wgCluster: WeftCluster | undefined;
  let rows: Row[];
  try {
    if (want('underlay') || want('hand')) {
      process.stderr.write('building: underlay and hand-built kernel VXLAN\n');
      const { net, setup } = await handSetup(
        clusters,
        'hand',
        'kernel vxlan, hand-built',
        'none',
        'no iptables rules',
      );
      const [n1, n2] = net.nodes;
      if (want('underlay')) {
        setups.push({
          id: 'underlay',
          name: 'underlay',
          from: { netns: n1!.netns, ip: n1!.underlayIp },
          to: { netns: n2!.netns, ip: n2!.underlayIp },
          weftdPids: [],
          notes: ['node to node, MTU 1500'],
          runs: [],
        });
      }
      if (want('hand')) setups.push(setup);
    }
    const handRows: Array<[RowId, string, HandRules, string]> = [
      ['hand-rules', 'kernel vxlan, hand + rules', 'masq', "weft's --ip-masq and forward rules"],
      [
        'hand-notrack',
        'hand + rules + NOTRACK',
        'masq+notrack',
        "weft's --ip-masq, forward and --tunnel-notrack rules",
      ],
      ['hand-nft', 'kernel vxlan, hand + nft rules', 'nft-masq', "weft's masq and forward rules as nftables"],
    ];
    for (const [id, name, rules, note] of handRows) {
      if (!want(id)) continue;
      process.stderr.write(`building: ${name}\n`);
      setups.push((await handSetup(clusters, id, name, rules, note)).setup);
    }
    const weftRows: Array<[RowId, string, Record<string, unknown>, string[], Record<string, unknown>?]> = [
      ['weft', 'weft vxlan', { Type: 'vxlan' }, []],
      ['weft-nomasq', 'weft vxlan, no ip-masq', { Type: 'vxlan' }, ['--ip-masq=false']],
      [
        'weft-bare',
        'weft vxlan, no iptables rules',
        { Type: 'vxlan' },
        ['--ip-masq=false', '--iptables-forward-rules=false'],
      ],
      ['weft-notrack', 'weft vxlan, tunnel NOTRACK', { Type: 'vxlan' }, ['--tunnel-notrack']],
      ['weft-nft', 'weft vxlan, nftables', { Type: 'vxlan' }, [], { EnableNFTables: true }],
      ['udp', 'weft udp', { Type: 'udp' }, []],
      ['wg', 'weft wireguard', { Type: 'wireguard' }, []],
      [
        'wg-bare',
        'weft wireguard, no rules',
        { Type: 'wireguard' },
        ['--ip-masq=false', '--iptables-forward-rules=false'],
      ],
    ];
    if (want('wg-hand')) {
      process.stderr.write('building: wireguard-go, hand-built\n');
      const net = await netnsCluster({ nodes: 2, withEtcdHost: false, mountNamespaces: true });
      clusters.push(net);
      const [p1, p2] = await buildHandWireguard(net);
      const wgPids = (await Promise.all(net.nodes.map(wireguardGoPids))).flat();
      setups.push({
        id: 'wg-hand',
        name: 'wireguard-go, hand-built',
        from: p1!,
        to: p2!,
        weftdPids: wgPids,
        notes: [`pod MTU ${WG_MTU}, no iptables rules`],
        runs: [],
      });
    }
    for (const [id, name, backend, args, netConf] of weftRows) {
      if (!want(id)) continue;
      process.stderr.write(`building: ${name}\n`);
      const built = await startWeftSetup(id, name, backend, args, netConf);
      if (netConf?.EnableNFTables === true) built.setup.notes.push('EnableNFTables');
      clusters.push(built.c);
      setups.push(built.setup);
      if (id === 'udp') udpCluster = built.c;
      if (id === 'wg' || id === 'wg-bare') {
        if (id === 'wg') wgCluster = built.c;
        built.setup.weftdPids.push(...(await Promise.all(built.c.net.nodes.map(wireguardGoPids))).flat());
      }
    }

    for (let round = 1; round <= runs; round++) {
      // Each round starts one row later, so no row always runs first (or right after the same neighbour).
      const offset = (round - 1) % setups.length;
      for (const setup of [...setups.slice(offset), ...setups.slice(0, offset)]) {
        const sample = await iperfOnce(setup.from, setup.to, seconds, setup.weftdPids);
        setup.runs.push(sample);
        process.stderr.write(`  round ${round}: ${setup.name} ${sample.gbps.toFixed(2)} Gbit/s\n`);
      }
    }
    const udpSetup = setups.find((x) => x.id === 'udp');
    if (udpSetup && udpCluster) {
      udpSetup.notes.push(`drops sender ${JSON.stringify(await udpDrops(udpCluster, 0))}`);
      udpSetup.notes.push(`drops receiver ${JSON.stringify(await udpDrops(udpCluster, 1))}`);
    }
    const wgSetup = setups.find((x) => x.id === 'wg');
    if (wgSetup && wgCluster) {
      const [a, b] = wgCluster.net.pods;
      const loss = await wireguardRestartLoss(wgCluster, a!, b!);
      wgSetup.notes.push(
        `weftd SIGKILL + restart under 100 pings/s: ${loss.lost} of ${loss.sent} lost (goal 0: ${loss.lost === 0 ? 'met' : 'NOT met'}), ready again in ${loss.readyMs} ms`,
      );
      const startMs = await wireguardStartToFirstPacket(wgCluster, a!, b!);
      wgSetup.notes.push(`start (devices deleted) → first packet through the tunnel: ${startMs} ms`);
    }
    rows = setups.map(summarize);
  } finally {
    for (const c of clusters.reverse()) await c.destroy().catch(() => undefined);
  }

  const row = (id: RowId) => rows.find((r) => r.id === id);
  const underlay = row('underlay');
  const hand = row('hand');
  const handRules = row('hand-rules');
  const weftVxlan = row('weft');
  const weftVxlanPlain = row('weft-nomasq');
  const weftVxlanBare = row('weft-bare');
  const weftVxlanNotrack = row('weft-notrack');
  const handNotrack = row('hand-notrack');
  const weftUdp = row('udp');
  const weftNft = row('weft-nft');
  const handNft = row('hand-nft');
  const wgHand = row('wg-hand');
  const weftWg = row('wg');
  const weftWgBare = row('wg-bare');
  const summary = {
    weftNftVsWeftIptables: ratio(weftNft, weftVxlan),
    weftNftVsHandNft: ratio(weftNft, handNft),
    handNftVsHandIptables: ratio(handNft, handRules),
    weftVxlanNotrackVsHandVxlan: ratio(weftVxlanNotrack, hand),
    notrackGain: ratio(weftVxlanNotrack, weftVxlan),
    handNotrackGain: ratio(handNotrack, handRules),
    weftVxlanVsHandVxlan: ratio(weftVxlan, hand),
    weftVxlanVsHandVxlanWithRules: ratio(weftVxlan, handRules),
    weftVxlanNoMasqVsHandVxlan: ratio(weftVxlanPlain, hand),
    weftVxlanBareVsHandVxlan: ratio(weftVxlanBare, hand),
    weftUdpGbps: weftUdp?.gbps ?? Number.NaN,
    weftUdpVsKernelVxlan: ratio(weftUdp, hand),
    weftUdpVsUnderlay: ratio(weftUdp, underlay),
    weftWireguardVsHandWireguardGo: ratio(weftWg, wgHand),
    weftWireguardBareVsHandWireguardGo: ratio(weftWgBare, wgHand),
  };

  if (values.json) {
    console.log(JSON.stringify({ seconds, runs, rows, summary }, null, 2));
    return;
  }
  console.log(
    `iperf3 TCP, 1 stream, ${seconds} s per run, median of ${runs} runs; pod to pod across two nodes`,
  );
  console.log(
    `${'row'.padEnd(28)} ${'Gbit/s'.padStart(7)} ${'of underlay'.padStart(11)} ${'retrans'.padStart(8)} ${'cores/Gbit/s'.padStart(13)} ${'weftd'.padStart(7)} ${'machine'.padStart(8)}  notes`,
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(28)} ${r.gbps.toFixed(2).padStart(7)} ${(underlay ? `${(ratio(r, underlay) * 100).toFixed(0)}%` : '-').padStart(11)} ${String(Math.round(r.retransmits)).padStart(8)} ${r.processCoresPerGbps.toFixed(3).padStart(13)} ${r.weftdCoresPerGbps.toFixed(3).padStart(7)} ${r.machineCoresPerGbps.toFixed(3).padStart(8)}  ${r.notes.join('; ')}`,
    );
  }
  // One line per comparison whose rows ran (`--rows` may leave some out), with the goal's verdict if it has one.
  const comparisons: Array<[string, number, number?]> = [
    ['weft vxlan / hand-built vxlan (goal ≥ 0.95)', summary.weftVxlanVsHandVxlan, 0.95],
    ['weft vxlan / hand-built with the same iptables rules', summary.weftVxlanVsHandVxlanWithRules, 0.95],
    ['weft vxlan without --ip-masq / hand-built', summary.weftVxlanNoMasqVsHandVxlan, 0.95],
    ['weft vxlan without any iptables rules / hand-built', summary.weftVxlanBareVsHandVxlan, 0.95],
    ['weft vxlan with --tunnel-notrack / hand-built', summary.weftVxlanNotrackVsHandVxlan],
    ['NOTRACK on / off, weft', summary.notrackGain],
    ['NOTRACK on / off, hand-built', summary.handNotrackGain],
    ['weft vxlan nftables / weft vxlan iptables (goal ≥ 1.00)', summary.weftNftVsWeftIptables, 1],
    ['weft vxlan nftables / hand-built with the same nft rules', summary.weftNftVsHandNft, 0.95],
    ['hand-built nft rules / hand-built iptables rules', summary.handNftVsHandIptables],
    ['weft udp Gbit/s (goal ≥ 0.8)', summary.weftUdpGbps, 0.8],
    ['weft udp / kernel vxlan (stretch ≥ 0.25)', summary.weftUdpVsKernelVxlan, 0.25],
    ['weft udp / underlay', summary.weftUdpVsUnderlay],
    ['weft wireguard / hand-built wireguard-go (goal ≥ 0.95)', summary.weftWireguardVsHandWireguardGo, 0.95],
    [
      'weft wireguard without iptables rules / hand-built wireguard-go (goal ≥ 0.95)',
      summary.weftWireguardBareVsHandWireguardGo,
      0.95,
    ],
  ];
  console.log('');
  for (const [label, value, goal] of comparisons) {
    if (!Number.isFinite(value)) continue;
    const verdict = goal === undefined ? '' : value >= goal ? '  met' : '  NOT met';
    console.log(`${label}: ${value.toFixed(3)}${verdict}`);
  }
  console.log(
    'cores/Gbit/s: iperf3 client + server + both weftd + ksoftirqd, per Gbit/s; weftd: both weftd alone; ' +
      'machine: /proc/stat busy cores minus at rest (noisy unless the machine is otherwise idle). ' +
      `Per-run Gbit/s: ${rows.map((r) => `${r.name} [${r.runs.map((x) => x.gbps.toFixed(2)).join(', ')}]`).join('; ')}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
