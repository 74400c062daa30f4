// Peer probes at 5000 peers: echoes per second, CPU and metric series, with the probe budget and the per-peer
// series cap (the defaults) next to the same prober without them, side by side in one run. The 5000 targets
// are a loopback-routed prefix inside a scratch namespace (`ip route add local 10.64.0.0/16 dev lo`): every
// address answers echo from the kernel of that namespace, no packet leaves it.
//
//   npm run build:dev && node dist-dev/bench/probes.js [--peers 5000] [--seconds 20]
//
// Needs root. Goals: echoes/s ≤ the budget (100/s) whatever the peer count; CPU ≤ 5 % of one core above a
// one-target baseline run of the same child; weft_*
// series ≤ 1000 (per-peer detail for 100 peers, aggregates for the rest).
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_PEER_SERIES } from '../src/observe/metrics.js';
import { DEFAULT_MAX_PROBES_PER_SECOND } from '../src/observe/probe/index.js';
import { type ProbeChildTotals, startProbeChild } from '../testkit/probe-runner.js';
import { createScratchNamespace } from '../testkit/scratch-netns.js';

const { values } = parseArgs({
  options: { peers: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '20' } },
});
const peers = Number(values.peers);
const seconds = Number(values.seconds);
if (!Number.isInteger(peers) || peers < 1 || peers > 60_000) throw new Error('--peers must be 1..60000');
if (!Number.isInteger(seconds) || seconds < 2 || seconds > 600) throw new Error('--seconds must be 2..600');

const INTERVAL_MS = 10_000; // weftd's default --probe-interval
const GOAL_CPU_PCT = 5;
const GOAL_SERIES = 1000;

interface Row {
  name: string;
  totals: ProbeChildTotals;
}

const ns = await createScratchNamespace('192.168.79.1/24');
const rows: Row[] = [];
try {
  await ns.ip(['route', 'add', 'local', '10.64.0.0/16', 'dev', 'lo']);
  const variants = [
    // The same process probing one peer: what the child costs before the probes (runtime, timers, monitors).
    { name: 'baseline: 1 target', args: [], count: 1 },
    {
      name: `budget ${DEFAULT_MAX_PROBES_PER_SECOND}/s, ${DEFAULT_MAX_PEER_SERIES} peers with detail`,
      args: [],
      count: peers,
    },
    {
      name: 'no budget, no series cap',
      args: ['--max-probes-per-second', '1000000', '--max-peer-series', '1000000'],
      count: peers,
    },
  ];
  for (const v of variants) {
    const run = startProbeChild(ns.name, [
      '--target-prefix',
      '10.64.0.0/16',
      '--target-count',
      String(v.count),
      '--interval-ms',
      String(INTERVAL_MS),
      '--timeout-ms',
      '1000',
      '--duration-ms',
      String(seconds * 1000),
      '--quiet',
      ...v.args,
    ]);
    rows.push({ name: v.name, totals: await run.totals });
  }
} finally {
  ns.destroy();
}

const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
process.stdout.write(
  `peer probes: ${peers} targets, --probe-interval ${INTERVAL_MS / 1000} s, ${seconds} s per variant\n\n`,
);
const cpuPctOf = (t: ProbeChildTotals): number => (100 * t.cpuMs) / t.elapsedMs;
const baselineCpu = cpuPctOf(rows[0]!.totals);
for (const { name, totals: t } of rows) {
  const rate = t.sent / (t.elapsedMs / 1000);
  const cpuPct = cpuPctOf(t) - baselineCpu;
  process.stdout.write(
    `${name}\n` +
      `  echoes/s        ${rate.toFixed(1)}  (${t.sent} in ${(t.elapsedMs / 1000).toFixed(1)} s; goal ≤ ${DEFAULT_MAX_PROBES_PER_SECOND}: ${verdict(rate <= DEFAULT_MAX_PROBES_PER_SECOND * 1.02)})\n` +
      `  CPU             ${cpuPct.toFixed(2)} % of one core above the baseline's ${baselineCpu.toFixed(2)} %  (goal ≤ ${GOAL_CPU_PCT} %: ${verdict(cpuPct <= GOAL_CPU_PCT)})\n` +
      `  series          ${t.weftSeries} weft_* (${t.peerSeries} per-peer), ${t.series} with process metrics  (goal weft_* ≤ ${GOAL_SERIES}: ${verdict(t.weftSeries <= GOAL_SERIES)})\n` +
      `  peers answered  ${t.healthy} healthy, ${t.unhealthy} unhealthy\n` +
      `  event loop      p99 ${t.eventLoopDelayMs.p99.toFixed(1)} ms, max ${t.eventLoopDelayMs.max.toFixed(1)} ms\n`,
  );
}
if (rows.length === 3) {
  const [, a, b] = rows as [Row, Row, Row];
  const rate = (t: ProbeChildTotals): number => t.sent / t.elapsedMs;
  process.stdout.write(
    `\nwithout / with budget: echoes/s ×${(rate(b.totals) / rate(a.totals)).toFixed(1)}, CPU above baseline ×${((cpuPctOf(b.totals) - baselineCpu) / Math.max(0.01, cpuPctOf(a.totals) - baselineCpu)).toFixed(1)}, weft_* series ×${(b.totals.weftSeries / a.totals.weftSeries).toFixed(1)}\n`,
  );
}
