// Soak under churn (issue #13 item 16): a 3-node weft vxlan cluster (real weftd, real etcd host, real CNI pods,
// all in the run's network namespaces) while, for `--minutes` (default 10):
//   - 200 synthetic peer leases (flannel's key layout and value format, written straight into etcd, each with
//     a distinct PublicIP inside the underlay 192.168.77.0/24 and its own VtepMAC; nothing answers there) are
//     churned: every 100 ms one is removed, one added and one changed (at random a new PublicIP + its VtepMAC,
//     or the same PublicIP with a new VtepMAC, as a restarted flanneld would publish), each its own etcd call;
//   - etcd is restarted every minute (SIGTERM and SIGKILL alternately, same data dir);
//   - one weftd is restarted every two minutes (SIGKILL and SIGTERM alternately, then started again): nodes 2
//     and 3 take turns, node 1's weftd lives through the whole run (the memory trend is read on it);
//   - every pod pings every other pod at 5/s (`ping -i 0.2`), both ways, the whole run.
// It reports lost pings (between the pods of nodes whose weftd is not being restarted at that moment, and over
// all pairs), each weftd's RSS and VmHWM at start and end, the kernel state of each node against what the leases
// in etcd imply (once the churn has settled on lease events alone, and again after one resync pass), how long a
// route deleted by hand on node 1 mid-churn takes to come back (one resync at most), and the churn actually done.
// weftd runs with the product's resync (30 s), probe (10 s) and log level (info) defaults.
//
//   npm run build && npm run build:dev && node dist-dev/bench/soak.js [--minutes 10] [--peers 200] [--seed 1]
//
// Needs root, etcd, iproute2, ping and the CNI plugins. Traffic stays inside the namespaces this script creates
// (run prefix wt<4 hex>); the synthetic PublicIPs are unassigned addresses of the run's own underlay. Everything
// is removed at the end, also on failure. The leases are written by testkit's etcd writer, a client started inside
// node 1's namespace (etcd is only reachable on the underlay).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stableVtepMac } from '../src/ip/index.js';
import {
  countLogMessages,
  kernelEntries,
  LEASE_PREFIX,
  leaseRows,
  networkAddress,
  restartWeftd,
  waitFor,
} from '../testkit/dataplane.js';
import { EtcdLeaseWriter, type EtcdWriterStep } from '../testkit/etcd-lease-writer.js';
import { type Pod, type ProcessHandle, sleep, UNDERLAY_PREFIX4 } from '../testkit/index.js';
import { prng } from '../testkit/prng.js';
import { procMemory } from '../testkit/proc-memory.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';
import { weftdGet } from '../testkit/weftd-http.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    peers: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
  },
});

const VNI = 1;
const DEVICE = 'flannel.1';
const TICK_MS = 100;
const ETCD_RESTART_EVERY_MS = 60_000;
const WEFTD_RESTART_EVERY_MS = 120_000;
/** weftd restarts fall between etcd restarts: at 1.5 min, 3.5 min, … */
const WEFTD_RESTART_OFFSET_MS = 90_000;
/** weftd's own default: the bench measures the product as deployed, not the testkit's fast 2 s. */
const RESYNC_S = 30;
const PING_INTERVAL_S = 0.2;
/** A pod's pings count against a restarted node from its stop until this long after it is ready again. */
const RESTART_GRACE_MS = 5_000;
/** `flat`: RSS at the end at most this much above the start. */
const FLAT_RATIO = 1.1;
/** Synthetic subnets 10.244.16.0/24 and up; the nodes lease theirs from 10.244.1.0–10.244.15.0. */
const SYNTHETIC_THIRD_OCTET = 16;
const NET_CONF = {
  Network: '10.244.0.0/16',
  SubnetLen: 24,
  SubnetMin: '10.244.1.0',
  SubnetMax: '10.244.15.0',
  Backend: { Type: 'vxlan', VNI },
};
/** Unassigned underlay addresses for the synthetic PublicIPs (nodes are .11–.13, etcd .2, the gateway .1). */
const SYNTHETIC_IPS = Array.from({ length: 231 }, (_, i) => `${UNDERLAY_PREFIX4}.${20 + i}`);

function intOption(name: 'minutes' | 'peers' | 'seed', min: number, max: number): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`--${name} must be an integer ${min}..${max}`);
  return v;
}

// ------------------------------------------------------------------------------------------------ churn

interface SyntheticLease {
  publicIp: string;
  mac: string;
}

/** The one synthetic lease the churn leaves alone: its route on node 1 is deleted by hand mid-run. */
const PINNED_SLOT = 0;
/** When that route is deleted (between the first etcd restart and the first weftd restart). */
const HAND_DELETE_AT_MS = 45_000;

function slotKey(slot: number): string {
  return `${LEASE_PREFIX}10.244.${SYNTHETIC_THIRD_OCTET + slot}.0-24`;
}

function leaseValue(l: SyntheticLease): string {
  return JSON.stringify({
    PublicIP: l.publicIp,
    PublicIPv6: null,
    BackendType: 'vxlan',
    BackendData: { VNI, VtepMAC: l.mac },
  });
}

/**
 * What the bench believes etcd holds for the synthetic slots, and the next operations. After a failed request
 * it is read back from etcd (a timed-out put may still have landed).
 */
class Churn {
  readonly present = new Map<number, SyntheticLease>();
  readonly counts = {
    adds: 0,
    removes: 0,
    ipChanges: 0,
    macChanges: 0,
    ticks: 0,
    failedTicks: 0,
    lateTicks: 0,
  };
  private macCounter = 0;

  constructor(
    private readonly slots: number,
    private readonly random: () => number,
  ) {}

  private pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.random() * items.length)];
  }

  private freeIps(): string[] {
    const used = new Set([...this.present.values()].map((l) => l.publicIp));
    return SYNTHETIC_IPS.filter((ip) => !used.has(ip));
  }

  /** A MAC weftd never derives (first octet 0x0e; derived ones are random with 0x02 set). */
  private freshMac(): string {
    this.macCounter++;
    const n = this.macCounter;
    return ['0e', 'a5', (n >> 16) & 255, (n >> 8) & 255, n & 255, 1]
      .map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0')))
      .join(':');
  }

  initial(count: number): EtcdWriterStep[] {
    const steps: EtcdWriterStep[] = [];
    for (let slot = 0; slot < count; slot++) {
      const publicIp = SYNTHETIC_IPS[slot]!;
      const lease = { publicIp, mac: stableVtepMac(publicIp, VNI) };
      this.present.set(slot, lease);
      steps.push({ put: slotKey(slot), value: leaseValue(lease) });
    }
    return steps;
  }

  /** One tick: remove one, add one (another slot), change one; applied to the model as planned. */
  tick(): { steps: EtcdWriterStep[]; kinds: Array<keyof Churn['counts']> } {
    const steps: EtcdWriterStep[] = [];
    const kinds: Array<keyof Churn['counts']> = [];
    const removed = this.pick([...this.present.keys()].filter((s) => s !== PINNED_SLOT));
    if (removed !== undefined) {
      this.present.delete(removed);
      steps.push({ del: slotKey(removed) });
      kinds.push('removes');
    }
    const freeSlots = Array.from({ length: this.slots }, (_, s) => s).filter(
      (s) => !this.present.has(s) && s !== removed,
    );
    const added = this.pick(freeSlots);
    const addIp = this.pick(this.freeIps());
    if (added !== undefined && addIp !== undefined) {
      const lease = { publicIp: addIp, mac: stableVtepMac(addIp, VNI) };
      this.present.set(added, lease);
      steps.push({ put: slotKey(added), value: leaseValue(lease) });
      kinds.push('adds');
    }
    const changed = this.pick([...this.present.keys()].filter((s) => s !== added && s !== PINNED_SLOT));
    if (changed !== undefined) {
      const old = this.present.get(changed)!;
      const newIp = this.random() < 0.5 ? this.pick(this.freeIps()) : undefined;
      const lease =
        newIp !== undefined
          ? { publicIp: newIp, mac: stableVtepMac(newIp, VNI) }
          : { publicIp: old.publicIp, mac: this.freshMac() };
      this.present.set(changed, lease);
      steps.push({ put: slotKey(changed), value: leaseValue(lease) });
      kinds.push(newIp !== undefined ? 'ipChanges' : 'macChanges');
    }
    return { steps, kinds };
  }

  /** Replaces the model with what etcd holds. */
  reload(kvs: Record<string, string>): void {
    this.present.clear();
    for (const [key, value] of Object.entries(kvs)) {
      const m = /^.*\/10\.244\.(\d+)\.0-24$/.exec(key);
      const slot = m ? Number(m[1]) - SYNTHETIC_THIRD_OCTET : -1;
      if (slot < 0 || slot >= this.slots) continue;
      const v = JSON.parse(value) as { PublicIP: string; BackendData: { VtepMAC: string } };
      this.present.set(slot, { publicIp: v.PublicIP, mac: v.BackendData.VtepMAC });
    }
  }
}

// ------------------------------------------------------------------------------------------------ pings

interface PingStream {
  from: Pod;
  to: Pod;
  handle: ProcessHandle;
  logFile: string;
}

interface PingTally {
  /** Sent times (ms since the epoch) of the echoes whose fate is known (sent ≥ 2 s before the pings stopped). */
  sentAt: number[];
  /** … of those never answered. */
  lostAt: number[];
}

/**
 * Reads `ping -D -O` output: which sequence numbers were answered and when each was sent (the reply's
 * timestamp minus its RTT; unanswered ones from their neighbours at the ping interval).
 */
function tallyPings(logFile: string, stoppedAt: number): PingTally {
  const sentAt = new Map<number, number>();
  let transmitted = 0;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const reply = /^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) .*time=([\d.]+) ms/.exec(line);
    if (reply) {
      sentAt.set(Number(reply[2]), Number(reply[1]) * 1000 - Number(reply[3]));
      continue;
    }
    const summary = /(\d+) packets transmitted/.exec(line);
    if (summary) transmitted = Number(summary[1]);
  }
  const known = [...sentAt.keys()].sort((a, b) => a - b);
  const estimate = (seq: number): number => {
    // The nearest answered echo, then the interval.
    let best = known[0] ?? seq;
    for (const k of known) if (Math.abs(k - seq) < Math.abs(best - seq)) best = k;
    return (sentAt.get(best) ?? stoppedAt) + (seq - best) * PING_INTERVAL_S * 1000;
  };
  const tally: PingTally = { sentAt: [], lostAt: [] };
  for (let seq = 1; seq <= transmitted; seq++) {
    const at = sentAt.get(seq) ?? estimate(seq);
    if (at > stoppedAt - 2_000) continue;
    tally.sentAt.push(at);
    if (!sentAt.has(seq)) tally.lostAt.push(at);
  }
  return tally;
}

// ------------------------------------------------------------------------------------------------ checks

/**
 * Node `i`'s vxlan routes, neighbours and FDB entries against what the leases in etcd imply (every other
 * node's lease: route `<subnet> via <network address> onlink`, neighbour `<network address> → VtepMAC`, FDB
 * `VtepMAC → PublicIP`). Returns the differences, '' for none.
 */
async function kernelVersusLeases(c: WeftCluster, i: number): Promise<{ diff: string[]; leases: number }> {
  const rows = await leaseRows(c);
  const own = c.net.nodes[i]!.underlayIp;
  const expected = new Set<string>();
  for (const row of rows) {
    if (row.value.PublicIP === own) continue;
    const gw = networkAddress(row.subnet);
    const mac = row.value.BackendData?.VtepMAC?.toLowerCase() ?? '?';
    expected.add(`route ${row.subnet} via ${gw}`);
    expected.add(`neigh ${gw} lladdr ${mac}`);
    expected.add(`fdb ${mac} dst ${row.value.PublicIP}`);
  }
  const k = await kernelEntries(c, i, DEVICE);
  const observed = new Set<string>([
    ...k.routes.filter((r) => r.dev === DEVICE).map((r) => `route ${r.dst} via ${r.gateway ?? '-'}`),
    ...k.neighbors.map((n) => `neigh ${n.dst} lladdr ${n.lladdr ?? '-'}`),
    ...k.fdb.map((f) => `fdb ${f.mac} dst ${f.dst}`),
  ]);
  const diff = [
    ...[...expected].filter((e) => !observed.has(e)).map((e) => `missing ${e}`),
    ...[...observed].filter((o) => !expected.has(o)).map((o) => `extra   ${o}`),
  ];
  return { diff, leases: rows.length - 1 };
}

/** weftd's `weft_reconciles_total` (all results) on node `i`. */
async function reconcileCount(c: WeftCluster, i: number): Promise<number> {
  const body = (await weftdGet(c.net.nodes[i]!, '/metrics')).body;
  let n = 0;
  for (const m of body.matchAll(/^weft_reconciles_total\{[^}]*\}\s+(\S+)/gm)) n += Number(m[1]);
  return n;
}

// ------------------------------------------------------------------------------------------------ main

interface Window {
  node: number;
  from: number;
  to: number;
}

const goal = (met: boolean) => (met ? 'met' : 'NOT met');
const fmt = (v: number) => v.toFixed(1);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (creates network namespaces)');
  const minutes = intOption('minutes', 1, 60);
  const peerCount = intOption('peers', 1, 200);
  const random = prng(intOption('seed', 0, 2 ** 31));
  const durationMs = minutes * 60_000;

  let c: WeftCluster | undefined;
  let writer: EtcdLeaseWriter | undefined;
  const pings: PingStream[] = [];
  try {
    c = await startWeftCluster({
      nodes: 3,
      netConf: NET_CONF,
      // The product's defaults for resync, probes and logging; --ip-masq as in the testkit.
      weftdArgs: [`--resync-interval=${RESYNC_S}`, '--probe-interval=10', '--log-level=info'],
    });
    const cluster = c;
    const pods = await cluster.addPods(1);
    // etcd calls while etcd restarts would otherwise wait for it: the churn gives up on them after 2 s instead.
    writer = new EtcdLeaseWriter(cluster.net.nodes[0]!.netns, cluster.etcdEndpoint, { callTimeoutMs: 2_000 });
    const w = writer;

    // The synthetic leases share one etcd lease that outlives the run, as real nodes' keys carry a TTL.
    const grant = await w.tryRequest({ op: 'grant', count: 1, ttl: durationMs / 1000 + 3600 });
    if (!grant.ok) throw new Error(`etcd lease grant failed: ${grant.error}`);
    const leaseId = grant.ids![0]!;
    const churn = new Churn(Math.min(240, SYNTHETIC_IPS.length), random);
    const initial = await w.tryRequest({ op: 'steps', steps: churn.initial(peerCount), lease: leaseId });
    if (!initial.ok) throw new Error(`writing the ${peerCount} synthetic leases failed: ${initial.error}`);
    for (let i = 0; i < 3; i++) {
      await waitFor(
        `node ${i + 1} to program the ${peerCount + 2} peers`,
        async () => (await kernelVersusLeases(cluster, i)).diff.length === 0,
        60_000,
        500,
      );
    }
    await sleep(3_000);

    const count = Math.ceil((durationMs + 120_000) / (PING_INTERVAL_S * 1000));
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        const logFile = join(cluster.net.tempDir, `ping-${from.name}-${to.name}.log`);
        const args = ['-n', '-D', '-O', '-i', String(PING_INTERVAL_S), '-W', '1', '-c', String(count), to.ip];
        const handle = await cluster.net.spawnIn(from.netns, cluster.net.tempDir, 'ping', args, { logFile });
        pings.push({ from, to, handle, logFile });
      }
    }

    const startMemory = cluster.weftNodes.map((n) => procMemory(n.weftd!.pid));
    const trend: string[] = [`0 s: ${fmt(startMemory[0]!.rssMiB)}`];
    /** n1's RSS under churn (MiB), every 30 s: from the first minute on, the start is still warming up. */
    const churnRss: Array<{ at: number; rss: number }> = [];
    const startedAt = Date.now();
    console.log(
      `soak: 3 nodes, ${peerCount} synthetic peers, ${minutes} min of churn (ticks of ${TICK_MS} ms), ` +
        `pings at ${1 / PING_INTERVAL_S}/s between ${pods.length} pods both ways`,
    );

    const restarts: Window[] = [];
    const etcdRestarts: Array<{ from: number; to: number; signal: string }> = [];
    const weftdRestarts: Array<{ node: number; signal: string; ms: number }> = [];
    const background: Array<Promise<void>> = [];
    let etcdDue = ETCD_RESTART_EVERY_MS;
    let weftdDue = WEFTD_RESTART_OFFSET_MS;
    let trendDue = 30_000;
    let reloads = 0;
    let needReload = false;
    // A route weftd owns, deleted by hand during the churn: weftd should put it back within one resync.
    const pinned = `10.244.${SYNTHETIC_THIRD_OCTET + PINNED_SLOT}.0/24`;
    let handDelete: Promise<{ at: number; backAfterMs: number | undefined }> | undefined;
    const deleteByHand = async () => {
      const node = cluster.net.nodes[0]!;
      const del = await node.exec('ip', ['route', 'del', pinned, 'dev', DEVICE]);
      if (del.code !== 0) throw new Error(`ip route del ${pinned} on n1: ${del.stderr}`);
      const at = Date.now();
      // Polled until it is back or 60 s after the churn's end, at most.
      for (let k = 0; k < 2_000 && Date.now() < startedAt + durationMs + 60_000; k++) {
        await sleep(500);
        const r = await node.exec('ip', ['route', 'show', pinned, 'dev', DEVICE]);
        if (r.stdout.trim() !== '') return { at, backAfterMs: Date.now() - at };
      }
      return { at, backAfterMs: undefined };
    };
    let etcdRestartCount = 0;
    let weftdRestartCount = 0;

    const restartEtcd = async (k: number) => {
      const from = Date.now();
      const signal = k % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
      if (signal === 'SIGKILL') await cluster.net.etcd.kill();
      await cluster.net.etcd.restart();
      etcdRestarts.push({ from, to: Date.now(), signal });
    };
    const restartNode = async (k: number) => {
      // Nodes 2 and 3 (index 1, 2) take turns; each gets both signals over four restarts.
      const i = [1, 2, 2, 1][k % 4]!;
      const signal = k % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
      const from = Date.now();
      await cluster.weftNodes[i]!.weftd!.stop(signal, 10_000);
      await restartWeftd(cluster, i, 90_000);
      const ready = Date.now();
      weftdRestarts.push({ node: i + 1, signal, ms: ready - from });
      restarts.push({ node: i, from, to: ready + RESTART_GRACE_MS });
    };

    // The churn: one tick each TICK_MS (a tick that overruns, e.g. while etcd is down, delays the next).
    const maxTicks = Math.ceil(durationMs / TICK_MS) + 10;
    for (let t = 0; t < maxTicks; t++) {
      const elapsed = Date.now() - startedAt;
      if (elapsed >= durationMs) break;
      if (elapsed >= etcdDue) {
        background.push(restartEtcd(etcdRestartCount++));
        etcdDue += ETCD_RESTART_EVERY_MS;
      }
      if (elapsed >= weftdDue) {
        background.push(restartNode(weftdRestartCount++));
        weftdDue += WEFTD_RESTART_EVERY_MS;
      }
      if (elapsed >= trendDue) {
        const rss = procMemory(cluster.weftNodes[0]!.weftd!.pid).rssMiB;
        churnRss.push({ at: elapsed, rss });
        trend.push(`${Math.round(elapsed / 1000)} s: ${fmt(rss)}`);
        trendDue += 30_000;
      }
      if (elapsed >= HAND_DELETE_AT_MS && handDelete === undefined) handDelete = deleteByHand();
      churn.counts.ticks++;
      // After a failed tick the model is read back from etcd before the churn goes on.
      if (needReload) {
        const list = await w.tryRequest({ op: 'list', prefix: LEASE_PREFIX });
        if (list.ok) {
          churn.reload(list.kvs!);
          reloads++;
          needReload = false;
        }
      }
      if (!needReload) {
        const { steps, kinds } = churn.tick();
        const r = await w.tryRequest({ op: 'steps', steps, lease: leaseId });
        const done = r.done ?? 0;
        for (const kind of kinds.slice(0, done)) churn.counts[kind]++;
        if (!r.ok) needReload = true;
      }
      if (needReload) churn.counts.failedTicks++;
      const next = startedAt + (t + 1) * TICK_MS;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else churn.counts.lateTicks++;
    }
    const churnEnded = Date.now();
    if (handDelete) background.push(handDelete.then(() => undefined));
    const background_ = await Promise.allSettled(background);
    for (const b of background_) if (b.status === 'rejected') throw b.reason;
    // The model may be off after failed ticks; what counts below is what etcd holds.
    const list = await w.tryRequest({ op: 'list', prefix: LEASE_PREFIX });
    if (list.ok) churn.reload(list.kvs!);

    // 1. The lease events alone (no resync: every pass re-arms the resync timer): bounded wait for equality.
    const settled: Array<{ diff: string[]; leases: number }> = [];
    const settleFrom = Date.now();
    for (let i = 0; i < 3; i++) {
      let last = await kernelVersusLeases(cluster, i);
      for (let k = 0; k < 20 && last.diff.length > 0; k++) {
        await sleep(500);
        last = await kernelVersusLeases(cluster, i);
      }
      settled.push(last);
    }
    const settleMs = Date.now() - settleFrom;
    // 2. One resync pass: weftd resyncs RESYNC_S after its last pass; seen as weft_reconciles_total rising.
    const passesBefore = await Promise.all([0, 1, 2].map((i) => reconcileCount(cluster, i)));
    await sleep((RESYNC_S + 3) * 1000);
    const passesAfter = await Promise.all([0, 1, 2].map((i) => reconcileCount(cluster, i)));
    const resynced: Array<{ diff: string[]; leases: number }> = [];
    for (let i = 0; i < 3; i++) resynced.push(await kernelVersusLeases(cluster, i));

    const endMemory = cluster.weftNodes.map((n) => procMemory(n.weftd!.pid));
    const endAges = cluster.weftNodes.map((_, i) => countLogMessages(cluster, i, 'weftd starting'));
    trend.push(`end: ${fmt(endMemory[0]!.rssMiB)}`);

    const stoppedAt = Date.now();
    for (const p of pings) await p.handle.stop('SIGINT', 3_000);
    await sleep(200);

    // ---- report
    const lostStable: string[] = [];
    const lostRestarting: string[] = [];
    let sentStable = 0;
    let sentAll = 0;
    const inWindow = (node: number, at: number) =>
      restarts.some((r) => r.node === node && at >= r.from && at <= r.to);
    const clock = (at: number) => `${((at - startedAt) / 1000).toFixed(1)} s`;
    for (const p of pings) {
      const tally = tallyPings(p.logFile, stoppedAt);
      sentAll += tally.sentAt.length;
      const a = p.from.node.index - 1;
      const b = p.to.node.index - 1;
      // Echoes sent while neither end's weftd was being restarted count as "stable".
      sentStable += tally.sentAt.filter((at) => !inWindow(a, at) && !inWindow(b, at)).length;
      for (const at of tally.lostAt) {
        const label = `${p.from.name}→${p.to.name} at ${clock(at)}`;
        if (inWindow(a, at) || inWindow(b, at)) lostRestarting.push(label);
        else lostStable.push(label);
      }
    }
    const lostAll = lostStable.length + lostRestarting.length;

    console.log('');
    console.log(
      `churn done in ${fmt((churnEnded - startedAt) / 60_000)} min: ${churn.counts.adds} adds, ${churn.counts.removes} removes, ` +
        `${churn.counts.ipChanges + churn.counts.macChanges} changes (${churn.counts.ipChanges} new PublicIP + VtepMAC, ` +
        `${churn.counts.macChanges} new VtepMAC) in ${churn.counts.ticks} ticks, ${churn.counts.failedTicks} failed (etcd down; model re-read ${reloads}×), ` +
        `${churn.counts.lateTicks} started late; ${churn.present.size} synthetic leases in etcd at the end`,
    );
    console.log(
      `  etcd restarts: ${etcdRestarts.length} (${etcdRestarts.map((e) => `${e.signal} at ${clock(e.from)}, healthy after ${e.to - e.from} ms`).join('; ')})`,
    );
    console.log(
      `  weftd restarts: ${weftdRestarts.length} (${weftdRestarts.map((r) => `n${r.node} ${r.signal}, ready after ${r.ms} ms`).join('; ')})`,
    );
    console.log('');
    console.log(
      `lost pings between stable nodes' pods: ${lostStable.length} of ${sentStable} (goal 0: ${goal(lostStable.length === 0)})` +
        (lostStable.length > 0 ? `\n    ${lostStable.slice(0, 20).join('\n    ')}` : ''),
    );
    console.log(
      `lost pings over all pairs, also across the restarted weftd: ${lostAll} of ${sentAll} (goal 0: ${goal(lostAll === 0)})` +
        (lostRestarting.length > 0 ? `\n    ${lostRestarting.slice(0, 20).join('\n    ')}` : ''),
    );
    console.log('');
    console.log(`weftd memory (MiB; flat = RSS at the end ≤ ${FLAT_RATIO}× the start):`);
    for (let i = 0; i < 3; i++) {
      const s = startMemory[i]!;
      const e = endMemory[i]!;
      const ratio = e.rssMiB / s.rssMiB;
      const note =
        endAges[i]! > 1
          ? `the process at the end is start #${endAges[i]} (restarted)`
          : 'one process the whole run';
      console.log(
        `  n${i + 1}: RSS ${fmt(s.rssMiB)} → ${fmt(e.rssMiB)} (${ratio.toFixed(3)}×), VmHWM ${fmt(s.hwmMiB)} → ${fmt(e.hwmMiB)}; ${note} ` +
          `(goal flat: ${goal(ratio <= FLAT_RATIO)})`,
      );
    }
    console.log(`  n1 RSS over the run: ${trend.join(', ')}`);
    const warm = churnRss.find((r) => r.at >= 60_000);
    const last = churnRss.at(-1);
    if (warm && last && last !== warm) {
      const ratio = last.rss / warm.rss;
      console.log(
        `  n1 RSS under churn, ${Math.round(warm.at / 1000)} s → ${Math.round(last.at / 1000)} s: ${fmt(warm.rss)} → ${fmt(last.rss)} ` +
          `(${ratio.toFixed(3)}×; goal flat: ${goal(ratio <= FLAT_RATIO)})`,
      );
    }
    console.log('');
    console.log(
      `kernel state vs leases in etcd, per node (${DEVICE} routes, PERMANENT neighbours, FDB entries; goal: equal):`,
    );
    for (let i = 0; i < 3; i++) {
      const s = settled[i]!;
      const r = resynced[i]!;
      const resyncRan = passesAfter[i]! > passesBefore[i]!;
      console.log(
        `  n${i + 1}, ${r.leases} other leases: after the churn on lease events alone (${fmt(settleMs / 1000)} s for all nodes): ` +
          `${s.diff.length} differences (${goal(s.diff.length === 0)}); after one resync ` +
          `(${resyncRan ? `${passesAfter[i]! - passesBefore[i]!} pass(es) seen` : 'NO pass seen'}): ${r.diff.length} differences (${goal(r.diff.length === 0 && resyncRan)})`,
      );
      for (const d of s.diff.slice(0, 10)) console.log(`      events: ${d}`);
      for (const d of r.diff.slice(0, 10)) console.log(`      resync: ${d}`);
    }
    if (handDelete) {
      const h = await handDelete;
      const bound = (RESYNC_S + 5) * 1000;
      const back =
        h.backAfterMs === undefined
          ? 'never back'
          : `back after ${fmt(h.backAfterMs / 1000)} s (${h.at + h.backAfterMs <= churnEnded ? 'during' : 'only after'} the churn)`;
      console.log(
        `  route ${pinned} deleted by hand on n1 at ${clock(h.at)}, during the churn: ${back} ` +
          `(goal within one resync, ≤ ${bound / 1000} s: ${goal(h.backAfterMs !== undefined && h.backAfterMs <= bound)})`,
      );
    }
    console.log(
      '(2 cores shared with other work: pings near restarts and the memory figures can be disturbed by load)',
    );
  } catch (err) {
    if (c) {
      for (let i = 0; i < c.weftNodes.length; i++)
        console.error(`--- n${i + 1} weftd log:\n${c.logTail(i, 20)}`);
    }
    throw err;
  } finally {
    for (const p of pings) await p.handle.stop('SIGINT', 2_000).catch(() => undefined);
    await writer?.close().catch(() => undefined);
    await c?.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
