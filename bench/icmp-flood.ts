// An ICMP flood against a probing node, with and without the kernel ICMP filter on the probe sockets, and
// with and without the flood, side by side in one run. Node A (a scratch namespace) runs the peer prober
// (probing a loopback-routed prefix, so it has echo replies of its own) and serves /healthz; node B floods
// A's underlay address with echo requests (`ping -f`, bounded by count and deadline). Reported per variant:
// packets the probe sockets handed to JavaScript, event-loop delay, CPU, and /healthz answers polled from
// inside A during the run.
//
//   npm run build:dev && node dist-dev/bench/icmp-flood.js [--seconds 5] [--count 300000]
//
// Needs root and ping (iputils) and curl. Goals with the filter under flood: JavaScript sees no more packets
// than without the flood (≤ 1.1×), event-loop p99 ≤ 2× the quiet run's (or ≤ 5 ms), every /healthz 200.
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
import { type ProbeChildTotals, startProbeChild } from '../testkit/probe-runner.js';
import { createScratchPair } from '../testkit/scratch-netns.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, count: { type: 'string', default: '300000' } },
});
const seconds = Number(values.seconds);
const count = Number(values.count);
if (!Number.isInteger(seconds) || seconds < 2 || seconds > 120) throw new Error('--seconds must be 2..120');
if (!Number.isInteger(count) || count < 1 || count > 10_000_000)
  throw new Error('--count must be 1..10000000');

const HEALTHZ_PORT = 10299;

function run(file: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout }),
    );
  });
}

interface Variant {
  filter: boolean;
  flood: boolean;
}

interface Row extends Variant {
  totals: ProbeChildTotals;
  healthz: { ok: number; total: number; maxMs: number };
  floodSent: number;
}

const [a, b] = await createScratchPair('192.168.78.1/24', '192.168.78.2/24');
const rows: Row[] = [];
try {
  await a.ip(['route', 'add', 'local', '10.64.0.0/16', 'dev', 'lo']);
  const variants: Variant[] = [
    { filter: true, flood: false },
    { filter: true, flood: true },
    { filter: false, flood: false },
    { filter: false, flood: true },
  ];
  for (const v of variants) {
    const child = startProbeChild(a.name, [
      '--target-prefix',
      '10.64.0.0/16',
      '--target-count',
      '50',
      '--interval-ms',
      '1000',
      '--duration-ms',
      String(seconds * 1000),
      '--healthz-port',
      String(HEALTHZ_PORT),
      '--quiet',
      ...(v.filter ? [] : ['--no-icmp-filter']),
    ]);
    await child.started;
    const flood = v.flood
      ? run(
          'ip',
          [
            'netns',
            'exec',
            b.name,
            'ping',
            '-f',
            '-q',
            '-c',
            String(count),
            '-w',
            String(seconds - 1),
            '192.168.78.1',
          ],
          (seconds + 10) * 1000,
        )
      : Promise.resolve({ code: 0, stdout: '' });
    const healthz = { ok: 0, total: 0, maxMs: 0 };
    const deadline = Date.now() + (seconds - 1) * 1000;
    while (Date.now() < deadline) {
      const t0 = performance.now();
      const r = await run(
        'ip',
        [
          'netns',
          'exec',
          a.name,
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--max-time',
          '2',
          `http://127.0.0.1:${HEALTHZ_PORT}/healthz`,
        ],
        5000,
      );
      healthz.maxMs = Math.max(healthz.maxMs, performance.now() - t0);
      healthz.total++;
      if (r.stdout.trim() === '200') healthz.ok++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const floodResult = await flood;
    const floodSent = Number(/(\d+) packets transmitted/.exec(floodResult.stdout)?.[1] ?? 0);
    rows.push({ ...v, totals: await child.totals, healthz, floodSent });
  }
} finally {
  a.destroy();
  b.destroy();
}

const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
const received = (t: ProbeChildTotals): number => t.sockets.reduce((n, s) => n + s.received, 0);
const find = (filter: boolean, flood: boolean): Row | undefined =>
  rows.find((r) => r.filter === filter && r.flood === flood);
process.stdout.write(`ICMP flood: ${seconds} s per variant, prober with 50 targets every 1 s\n\n`);
for (const r of rows) {
  const t = r.totals;
  process.stdout.write(
    `filter ${r.filter ? 'on ' : 'off'}, ${r.flood ? `flood (${r.floodSent} echo requests)` : 'no flood'}\n` +
      `  packets to JS   ${received(t)}  (${t.sent} echoes sent)\n` +
      `  event loop      p50 ${t.eventLoopDelayMs.p50.toFixed(2)} ms, p99 ${t.eventLoopDelayMs.p99.toFixed(2)} ms, max ${t.eventLoopDelayMs.max.toFixed(1)} ms\n` +
      `  CPU             ${((100 * t.cpuMs) / t.elapsedMs).toFixed(1)} % of one core\n` +
      `  /healthz        ${r.healthz.ok}/${r.healthz.total} answered 200, slowest ${r.healthz.maxMs.toFixed(0)} ms (curl included)\n`,
  );
}
const quiet = find(true, false);
const flooded = find(true, true);
const unfiltered = find(false, true);
if (quiet && flooded && unfiltered) {
  const q = quiet.totals;
  const f = flooded.totals;
  const jsRatio = received(f) / Math.max(1, received(q));
  const p99Ok = f.eventLoopDelayMs.p99 <= Math.max(2 * q.eventLoopDelayMs.p99, 5);
  process.stdout.write(
    `\nwith the filter, flood / quiet: packets to JS ×${jsRatio.toFixed(2)} (goal ≤ 1.1: ${verdict(jsRatio <= 1.1)}), ` +
      `event-loop p99 ${f.eventLoopDelayMs.p99.toFixed(2)} vs ${q.eventLoopDelayMs.p99.toFixed(2)} ms (goal ≤ 2× or ≤ 5 ms: ${verdict(p99Ok)}), ` +
      `/healthz ${flooded.healthz.ok}/${flooded.healthz.total} (goal all 200: ${verdict(flooded.healthz.ok === flooded.healthz.total)})\n` +
      `under flood, without / with the filter: packets to JS ×${(received(unfiltered.totals) / Math.max(1, received(f))).toFixed(0)}, ` +
      `CPU ×${(unfiltered.totals.cpuMs / Math.max(1, f.cpuMs)).toFixed(1)}\n`,
  );
}
