// What weftd's node flags cost in CPU, without the kernel or the network (whose noise hides a 10% difference on a
// shared machine): the JavaScript of one resync pass with `--peers` vxlan peers — planVxlan, a JSON round trip of
// the state (the dump's parse), planKernel against it (0 ops: the steady state) — run in child processes, one per
// flag set, rounds interleaved; CPU time (process.cpuUsage) per pass, median of the rounds, and the ratio to the
// first set. Also each child's VmHWM after the passes.
//
//   npm run build:dev && node dist-dev/bench/v8-flags.js [--peers 5000] [--passes 20] [--rounds 5] \
//     [--sets="--max-semi-space-size=1|--max-semi-space-size=1 --no-opt|"]   (sets separated by |; empty = none)
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { planVxlan } from '../src/backend/index.js';
import { parseCidr } from '../src/ip/index.js';
import { type KernelScope, type KernelState, planKernel } from '../src/kernel/index.js';
import {
  DEFAULT_VXLAN_CONFIG,
  subnetLease,
  TEST_IFACE,
  vxlanLeaseAttrs,
} from '../testkit/fixtures/backend.js';
import { procMemory } from '../testkit/proc-memory.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '5000' },
    passes: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
    sets: {
      type: 'string',
      default:
        '--max-semi-space-size=1||--max-semi-space-size=1 --optimize-for-size|--max-semi-space-size=1 --no-opt',
    },
    child: { type: 'boolean', default: false },
  },
});

/** In the child: `passes` resync passes; prints µs of CPU per pass and the peak RSS. */
function child(peerCount: number, passes: number): void {
  const networks = { ipv4: parseCidr('10.0.0.0/8') };
  const lease = (i: number) =>
    subnetLease(`10.${10 + (i >> 8)}.${i & 255}.0/24`, vxlanLeaseAttrs(`192.168.${i >> 8}.${i & 255}`));
  const own = lease(1);
  const peers = Array.from({ length: peerCount }, (_, k) => lease(k + 2));
  const scope: KernelScope = { devices: ['flannel.1'], networks: [networks.ipv4], externalDev: 'eth0' };
  const pass = () => {
    const desired = planVxlan({ vxlan: DEFAULT_VXLAN_CONFIG, networks, iface: TEST_IFACE, own, peers }).state;
    const observed = JSON.parse(JSON.stringify(desired)) as KernelState;
    return planKernel(desired, observed, scope).length;
  };
  pass(); // warm-up, as a daemon's first pass
  const start = process.cpuUsage();
  for (let i = 0; i < passes; i++) pass();
  const cpu = process.cpuUsage(start);
  process.stdout.write(JSON.stringify({ usPerPass: (cpu.user + cpu.system) / passes, ...procMemory() }));
}

function main(): void {
  const peers = Number(values.peers);
  const passes = Number(values.passes);
  const rounds = Number(values.rounds);
  for (const [name, v, max] of [
    ['peers', peers, 20_000],
    ['passes', passes, 1000],
    ['rounds', rounds, 50],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`--${name} must be an integer 1..${max}`);
  }
  const sets = values.sets.split('|').map((s) => s.split(/\s+/).filter(Boolean));
  const self = fileURLToPath(import.meta.url);
  const results = sets.map(() => ({ us: [] as number[], hwm: [] as number[] }));
  for (let r = 0; r < rounds; r++) {
    for (const [i, flags] of sets.entries()) {
      const out = execFileSync(
        process.execPath,
        [...flags, self, '--child', `--peers=${peers}`, `--passes=${passes}`],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 300_000 },
      );
      const m = JSON.parse(out) as { usPerPass: number; hwmMiB: number };
      results[i]!.us.push(m.usPerPass);
      results[i]!.hwm.push(m.hwmMiB);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(results[0]!.us);
  process.stdout.write(
    `v8-flags: CPU of one resync pass's JavaScript with ${peers} vxlan peers (plan + JSON round trip + diff), ` +
      `median of ${rounds} interleaved rounds of ${passes} passes\n`,
  );
  for (const [i, flags] of sets.entries()) {
    const us = median(results[i]!.us);
    process.stdout.write(
      `  ${(flags.join(' ') || '(no flags)').padEnd(52)} ${(us / 1000).toFixed(1).padStart(7)} ms CPU  ` +
        `${(us / base).toFixed(2)}×   VmHWM ${median(results[i]!.hwm).toFixed(1)} MiB\n`,
    );
  }
}

if (values.child) child(Number(values.peers), Number(values.passes));
else main();
