// The udp engine's peer table at 5000 peers (issue 16): what one peer-table update and one lookup cost.
//   - the C table alone (native/test/bench_peer_table.c, -O3): a whole rebuild (every lease change rebuilds
//     and swaps the table) and the per-packet lookups (route hit, route miss, sender check);
//   - the whole update as the backend does it: UdpEngine.setPeers with N peers on a running engine (TypeScript
//     validation, N-API conversion, build, swap), on the JavaScript thread.
//
//   npm run build:dev && node dist-dev/bench/udp-peer-table.js [--peers 5000]
//
// Needs make and a C compiler; the setPeers part needs root and the built addon (it runs an engine in a
// two-namespace testbed, removed at the end). Figures are medians (the machine may be shared).
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { UdpPeer } from '../src/backend/udp/engine.js';
import { runCommandChecked } from '../src/core/index.js';
import { createTestbed, destroyTestbed, testbedPrefix } from '../testkit/udp-testbed.js';
import { REPO_ROOT } from '../testkit/weft-cluster.js';

const GOALS = { buildUs: 1000, lookupNs: 50, setPeersMs: 50 };

interface TableFigures {
  peers: number;
  buildUs: number;
  buildCpuUs: number;
  routeHitNs: number;
  routeMissNs: number;
  senderNs: number;
  tableBytes: number;
}

async function tableFigures(peers: number): Promise<TableFigures> {
  const out = await runCommandChecked(
    'make',
    ['-s', '-C', path.join(REPO_ROOT, 'native/test'), 'bench', `PEERS=${peers}`],
    {
      timeoutMs: 120_000,
      packageHint: 'make',
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as TableFigures;
}

function syntheticPeers(n: number, generation: number): UdpPeer[] {
  // /24s in 10.100.0.0/14 (never the testbed's 10.99/16), addresses that change with the generation.
  return Array.from({ length: n }, (_, i) => ({
    subnet: `10.${100 + (i >> 8)}.${i & 0xff}.0/24`,
    address: `172.${16 + ((i + generation) >> 16)}.${((i + generation) >> 8) & 0xff}.${(i + generation) & 0xff}`,
    port: 8285,
  }));
}

async function setPeersMs(n: number): Promise<number> {
  const testbed = await createTestbed(testbedPrefix(), { vnetHdr: true });
  try {
    const engine = testbed.a.engine!;
    const samples: number[] = [];
    for (let k = 0; k < 21; k++) {
      const peers = [testbed.b.asPeer, ...syntheticPeers(n - 1, k)];
      const start = process.hrtime.bigint();
      engine.setPeers(peers);
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    if (engine.stats().peers !== n)
      throw new Error(`expected ${n} peers in the engine, found ${engine.stats().peers}`);
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)]!;
  } finally {
    await destroyTestbed(testbed);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { peers: { type: 'string', default: '5000' } } });
  const peers = Number(values.peers);
  if (!Number.isInteger(peers) || peers < 2 || peers > 60000) {
    throw new Error(`--peers must be an integer 2..60000, got ${values.peers}`);
  }
  const verdict = (value: number, goal: number) => (value <= goal ? 'met' : 'NOT met');
  const small = await tableFigures(100);
  const big = await tableFigures(peers);
  console.log(`udp engine peer table, ${peers} peers (100 peers beside it), medians:`);
  console.log(
    `  rebuild (one update)   ${big.buildUs.toFixed(1).padStart(8)} µs  (${small.buildUs.toFixed(1)} µs at 100; ` +
      `${(big.buildUs / small.buildUs).toFixed(0)}x for ${peers / 100}x the peers)  goal <= ${GOALS.buildUs} µs: ${verdict(big.buildUs, GOALS.buildUs)}`,
  );
  for (const [name, value, at100] of [
    ['route lookup, hit', big.routeHitNs, small.routeHitNs],
    ['route lookup, miss', big.routeMissNs, small.routeMissNs],
    ['sender check', big.senderNs, small.senderNs],
  ] as const) {
    console.log(
      `  ${name.padEnd(22)} ${value.toFixed(1).padStart(8)} ns  (${(value / at100).toFixed(2)}x the 100-peer cost)  ` +
        `goal <= ${GOALS.lookupNs} ns: ${verdict(value, GOALS.lookupNs)}`,
    );
  }
  console.log(
    `  table memory           ${(big.tableBytes / 1024).toFixed(0).padStart(8)} KiB (two tables live: current + spare)`,
  );
  if (process.getuid?.() !== 0) {
    console.log('  setPeers on a running engine: skipped (needs root for the testbed)');
    return;
  }
  const ms = await setPeersMs(peers);
  console.log(
    `  setPeers (TS + N-API + build + swap) ${ms.toFixed(2)} ms on the JS thread  goal <= ${GOALS.setPeersMs} ms: ${verdict(ms, GOALS.setPeersMs)}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
