// Converging the kernel to 1000 vxlan peers (3000 entries: neighbour, FDB, route each): weft's path
// (planVxlan → dumpKernelState → planKernel → applyKernelOps) next to raw `ip -batch` + `bridge -batch` of the
// same entries, each in a fresh namespace, side by side in one run. Also the steady-state pass (dump + plan,
// nothing to do) that every resync costs, and a lease event's pass with N peers present (plan of N + 1 peers,
// diff against the remembered state, apply of one peer's 3 entries), its apply as two batches (a small plan,
// SMALL_PLAN_OPS) and as the three staged ones, interleaved; that event's diff by the full planner (planKernel)
// next to the incremental one weftd uses (planKernelDelta), same events, same run. Entries are written over
// rtnetlink by the native addon (weft's default when it loads) and by the iproute2 batches, interleaved in one
// run: the first pass of all entries, and a lease event's 3 ops; the event loop's longest stall during the
// netlink first pass too.
//
//   npm run build:dev && node dist-dev/bench/converge-kernel.js [--peers 1000] [--rounds 5] [--events 40]
//
// Needs root and iproute2. No packets are sent. Namespaces are `wk<4 hex>`, removed after each round.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { planVxlan, VxlanPlanMemo } from '../src/backend/index.js';
import { parseCidr } from '../src/ip/index.js';
import { runTool } from '../src/kernel/exec.js';
import {
  applyKernelOps,
  type DeltaPlan,
  dumpKernelState,
  type EntryWriter,
  entryWriter,
  type KernelOp,
  type KernelScope,
  planKernel,
  planKernelDelta,
  RememberedKernelState,
  renderKernelOp,
  type SelectedInterface,
} from '../src/kernel/index.js';
import type { Lease } from '../src/lease/index.js';
import { DEFAULT_VXLAN_CONFIG, subnetLease, vxlanLeaseAttrs } from '../testkit/fixtures/backend.js';
import { createScratchNamespace } from '../testkit/scratch-netns.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '5' },
    events: { type: 'string', default: '40' },
  },
});
const peerCount = Number(values.peers);
const rounds = Number(values.rounds);
const eventCount = Number(values.events);
if (!Number.isInteger(peerCount) || peerCount < 1 || peerCount > 10_000)
  throw new Error('--peers must be 1..10000');
if (!Number.isInteger(eventCount) || eventCount < 3 || eventCount > 1000)
  throw new Error('--events must be 3..1000');
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds must be 1..50');

const vxlan = DEFAULT_VXLAN_CONFIG;
const networks = { ipv4: parseCidr('10.0.0.0/8') };

function lease(i: number): Lease {
  return subnetLease(`10.${10 + (i >> 8)}.${i & 255}.0/24`, vxlanLeaseAttrs(`192.168.${i >> 8}.${i & 255}`));
}

const own = lease(1);
const peers = Array.from({ length: peerCount }, (_, k) => lease(k + 2));

function ifaceOf(ext: string): SelectedInterface {
  const address = { family: 4 as const, ip: '192.168.0.1', prefix: 16, scope: 'global' };
  return {
    name: ext,
    index: 0,
    mtu: 1500,
    ipv4: address,
    publicIp: '192.168.0.1',
    addresses: [address],
    reason: 'bench',
  };
}

function scopeOf(ext: string): KernelScope {
  return {
    devices: ['flannel.1'],
    networks: [networks.ipv4],
    externalDev: ext,
    protectedDsts: [own.subnet!],
  };
}

async function weftPath(writer: EntryWriter): Promise<{
  total: number;
  plan: number;
  dump: number;
  apply: number;
  steady: number;
  /** The event loop's longest stall during apply (ms). */
  stall: number;
}> {
  const ns = await createScratchNamespace('192.168.0.1/16');
  try {
    const scope = scopeOf(ns.ext);
    const t0 = performance.now();
    const desired = planVxlan({ vxlan, networks, iface: ifaceOf(ns.ext), own, peers }).state;
    const t1 = performance.now();
    const observed = await dumpKernelState(scope, { netns: ns.name });
    const t2 = performance.now();
    const ops = planKernel(desired, observed, scope);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const results = await applyKernelOps(ops, { netns: ns.name, entryWriter: writer });
    const t3 = performance.now();
    loop.disable();
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0)
      throw new Error(`weft path: ${failed.length} ops failed, first: ${failed[0]?.error}`);
    const s0 = performance.now();
    const again = planKernel(desired, await dumpKernelState(scope, { netns: ns.name }), scope);
    const s1 = performance.now();
    if (again.length !== 0) throw new Error(`weft path: not converged, ${again.length} ops left`);
    return {
      total: t3 - t0,
      plan: t1 - t0,
      dump: t2 - t1,
      apply: t3 - t2,
      steady: s1 - s0,
      stall: loop.max / 1e6,
    };
  } finally {
    ns.destroy();
  }
}

/** The same entries, rendered up front (not timed), written by two raw batch processes. */
async function rawPath(): Promise<number> {
  const ns = await createScratchNamespace('192.168.0.1/16');
  try {
    const desired = planVxlan({ vxlan, networks, iface: ifaceOf(ns.ext), own, peers }).state;
    const ops = planKernel(
      desired,
      { links: [], addresses: [], routes: [], neighbors: [], fdb: [] },
      scopeOf(ns.ext),
    );
    const ipLines: string[] = [];
    const bridgeLines: string[] = [];
    for (const op of ops) {
      const r = renderKernelOp(op);
      (r.tool === 'ip' ? ipLines : bridgeLines).push(...r.lines);
    }
    // Order as a careful hand-written script would: device and neighbours, FDB, then routes.
    const routeLines = ipLines.filter((l) => l.startsWith('route '));
    const otherLines = ipLines.filter((l) => !l.startsWith('route '));
    const t0 = performance.now();
    const a = await runTool('ip', ['-batch', '-'], { netns: ns.name, input: `${otherLines.join('\n')}\n` });
    const b = await runTool('bridge', ['-batch', '-'], {
      netns: ns.name,
      input: `${bridgeLines.join('\n')}\n`,
    });
    const c = await runTool('ip', ['-batch', '-'], { netns: ns.name, input: `${routeLines.join('\n')}\n` });
    const t1 = performance.now();
    for (const r of [a, b, c]) if (r.code !== 0) throw new Error(`raw path failed: ${r.stderr.trim()}`);
    return t1 - t0;
  } finally {
    ns.destroy();
  }
}

interface EventFigures {
  plan: number;
  /** planKernel against the remembered state (what every lease pass did before planKernelDelta). */
  fullDiff: number;
  /** planKernelDelta against the same remembered state (what weftd's lease passes do). */
  diff: number;
  apply: number;
}

type EventMode = 'netlink' | 'small' | 'staged';
const EVENT_MODES: EventMode[] = ['netlink', 'small', 'staged'];

/**
 * Lease events with every peer programmed: each a new peer, planned against the state the last pass left (as
 * weftd's lease passes do) by the full planner and by the incremental one (alternately first; same ops
 * checked), applied over rtnetlink, as a small plan (two batches) or staged (three), in turn.
 */
async function eventPasses(): Promise<Record<EventMode, EventFigures[]>> {
  const ns = await createScratchNamespace('192.168.0.1/16');
  try {
    const scope = scopeOf(ns.ext);
    const iface = ifaceOf(ns.ext);
    const current = [...peers];
    // As the backend plans in weftd: redoing only the peers that changed since the last call.
    const memo = new VxlanPlanMemo();
    const initial = planVxlan({ vxlan, networks, iface, own, peers: current }, memo).state;
    let remembered = new RememberedKernelState(initial);
    const first = await applyKernelOps(
      planKernel(initial, await dumpKernelState(scope, { netns: ns.name }), scope),
      { netns: ns.name },
    );
    if (first.some((r) => !r.ok)) throw new Error('events: programming the peers failed');
    const figures: Record<EventMode, EventFigures[]> = { netlink: [], small: [], staged: [] };
    for (let k = 0; k < eventCount; k++) {
      const mode = EVENT_MODES[k % EVENT_MODES.length]!;
      current.push(lease(peerCount + 2 + k));
      const t0 = performance.now();
      const desired = planVxlan({ vxlan, networks, iface, own, peers: current }, memo).state;
      const t1 = performance.now();
      let full: KernelOp[];
      let fullDiff: number;
      let delta: DeltaPlan;
      let diff: number;
      const timeFull = () => {
        const a = performance.now();
        full = planKernel(desired, remembered.state, scope);
        fullDiff = performance.now() - a;
      };
      const timeDelta = () => {
        const a = performance.now();
        delta = planKernelDelta(desired, remembered, scope);
        diff = performance.now() - a;
      };
      if (k % 4 < 2) {
        timeFull();
        timeDelta();
      } else {
        timeDelta();
        timeFull();
      }
      const ops = delta!.ops;
      if (!delta!.incremental || JSON.stringify(ops) !== JSON.stringify(full!))
        throw new Error(`event ${k}: the incremental plan differs from planKernel`);
      const t2 = performance.now();
      const results = await applyKernelOps(ops, {
        netns: ns.name,
        entryWriter: mode === 'netlink' ? 'netlink' : 'iproute2',
        ...(mode === 'staged' ? { smallPlanOps: 0 } : {}),
      });
      const t3 = performance.now();
      if (ops.length !== 3 || results.some((r) => !r.ok)) throw new Error(`event ${k}: ${ops.length} ops`);
      remembered = delta!.next();
      figures[mode].push({
        plan: t1 - t0,
        fullDiff: fullDiff!,
        diff: diff!,
        apply: t3 - t2,
      });
    }
    return figures;
  } finally {
    ns.destroy();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (creates network namespaces)');
  const writers: EntryWriter[] = ['netlink', 'iproute2'];
  if (entryWriter().writer !== 'netlink')
    throw new Error(`the native addon does not load: ${entryWriter().reason}`);
  const weft: Record<EntryWriter, Awaited<ReturnType<typeof weftPath>>[]> = { netlink: [], iproute2: [] };
  const raw: number[] = [];
  // One warm-up of each, not counted; then the three interleaved, round by round.
  for (const w of writers) await weftPath(w);
  await rawPath();
  for (let r = 0; r < rounds; r++) {
    for (const w of writers) weft[w].push(await weftPath(w));
    raw.push(await rawPath());
  }
  const rawTotal = median(raw);
  console.log(
    `converge ${peerCount} vxlan peers (${peerCount * 3} entries), median of ${rounds} rounds, interleaved`,
  );
  console.log(`  raw ip -batch + bridge -batch:          ${rawTotal.toFixed(1)} ms`);
  for (const w of writers) {
    const m = (f: (x: (typeof weft)[EntryWriter][number]) => number) => median(weft[w].map(f)).toFixed(1);
    const total = median(weft[w].map((x) => x.total));
    const ratio = total / rawTotal;
    console.log(
      `  weft, entries by ${w.padEnd(8)} plan+dump+diff+apply: ${total.toFixed(1)} ms  (ratio ${ratio.toFixed(2)}x; goal <= 1.2x: ${met(ratio <= 1.2)})`,
    );
    console.log(
      `    planVxlan ${m((x) => x.plan)} ms, dump ${m((x) => x.dump)} ms, planKernel+apply ${m((x) => x.apply)} ms, ` +
        `longest event-loop stall during apply ${m((x) => x.stall)} ms (max ${Math.max(...weft[w].map((x) => x.stall)).toFixed(1)})`,
    );
  }
  const applyRatio = median(weft.netlink.map((x) => x.apply)) / median(weft.iproute2.map((x) => x.apply));
  console.log(`  planKernel+apply, netlink / iproute2 batches: ${applyRatio.toFixed(2)}x`);
  console.log(
    `  steady-state pass (dump + plan, 0 ops): ${median(weft.netlink.map((x) => x.steady)).toFixed(1)} ms`,
  );
  const events = await eventPasses();
  const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(0.99 * xs.length) - 1] ?? Number.NaN;
  const row = (label: string, fs: EventFigures[]) => {
    const total = fs.map((f) => f.plan + f.diff + f.apply);
    console.log(
      `    ${label.padEnd(34)} plan ${median(fs.map((f) => f.plan)).toFixed(1)} + diff ${median(fs.map((f) => f.diff)).toFixed(1)} + apply ${median(fs.map((f) => f.apply)).toFixed(1)} ms; ` +
        `total p50 ${median(total).toFixed(1)}, p99 ${p99(total).toFixed(1)} ms (goal p99 < 50 ms: ${met(p99(total) < 50)})`,
    );
  };
  const all = [...events.netlink, ...events.small, ...events.staged];
  console.log(
    `  a lease event's pass with ${peerCount} peers present (${Math.floor(eventCount / 3)} events each, interleaved):`,
  );
  row('netlink: 3 requests, one socket', events.netlink);
  row('small plan: bridge, then ip', events.small);
  row('staged: bridge + ip, then ip', events.staged);
  const applyOf = (fs: EventFigures[]) => median(fs.map((f) => f.apply));
  console.log(
    `  a lease event's apply, netlink / two batches: ${(applyOf(events.netlink) / applyOf(events.small)).toFixed(3)}x ` +
      `(${applyOf(events.netlink).toFixed(2)} vs ${applyOf(events.small).toFixed(1)} ms)`,
  );
  const plans = all.map((f) => f.plan);
  const fullDiffs = all.map((f) => f.fullDiff);
  const diffs = all.map((f) => f.diff);
  const fullPd = all.map((f) => f.plan + f.fullDiff);
  const pd = all.map((f) => f.plan + f.diff);
  console.log(`  plan + diff of one lease event, ${peerCount} peers present (${eventCount} events):`);
  console.log(
    `    full diff (planKernel):          ${median(fullDiffs).toFixed(2)} ms p50, ${p99(fullDiffs).toFixed(2)} ms p99; plan + diff p50 ${median(fullPd).toFixed(1)}, p99 ${p99(fullPd).toFixed(1)} ms`,
  );
  console.log(
    `    incremental (planKernelDelta):   ${median(diffs).toFixed(2)} ms p50, ${p99(diffs).toFixed(2)} ms p99; plan + diff p50 ${median(pd).toFixed(1)}, p99 ${p99(pd).toFixed(1)} ms`,
  );
  console.log(
    `    diff full / incremental: ${(median(fullDiffs) / median(diffs)).toFixed(0)}x (p50); plan (planVxlan, changed peers only) ${median(plans).toFixed(1)} ms p50, ${p99(plans).toFixed(1)} ms p99`,
  );
  // Issue 16's goal is end to end (bench/converge); this is weft's own share of it, without etcd and weftd.
  const pass = events.netlink.map((f) => f.plan + f.diff + f.apply);
  console.log(
    `  goal (issue 16): one new lease → its route p99 < 50 ms: weft's pass alone (plan + diff + netlink apply) p99 ${p99(pass).toFixed(1)} ms → ${p99(pass) < 50 ? 'met' : 'NOT met'} (end to end: bench/converge)`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
