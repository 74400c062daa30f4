// The wireguard backend's peer set at 5000 peers (issue 16), beside bench/udp-peer-table.ts's udp figures:
//   - planning: planWireguard for N peer leases (pure; once per pass: the backend's `desired`, for the kernel
//     entries, and `afterReconcile`, for the device's peers, share it);
//   - rendering the whole-config batch (`renderWgConfig`, what `wg syncconf` reads);
//   - reading the device back: parseWgDump of a `wg show NAME dump` of N peers, and diffWgDevice against it
//     (in sync, and with one peer's endpoint changed): the per-pass check that decides whether to sync;
//   - with root and wireguard-go: one `wg syncconf` of N peers into a fresh wireguard-go device (in a
//     namespace of its own), one `wg show dump` of them, and the syncconf of a one-peer change.
// The per-packet lookup (allowed IPs → peer) is wireguard-go's or the kernel's, not weft's: the "per lookup"
// figure here is diffWgDevice's cost per wanted peer (one map lookup and compare each).
//
//   npm run build:dev && node dist-dev/bench/wireguard-peers.js [--peers 5000] [--rounds 21]
//
// No packets are sent (the peers' endpoints are never contacted: no handshake is started without traffic).
// The namespace is `<run prefix>g<2 hex>`, the device `<run prefix>wg`; wireguard-go is ended by its pid and
// the namespace removed at the end, also on failure. Figures are medians (the machine may be shared).

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  diffWgDevice,
  generateWireguardPrivateKey,
  planWireguard,
  wireguardDevices,
  wireguardPublicKey,
} from '../src/backend/wireguard/index.js';
import type { WireguardBackendConfig } from '../src/config/index.js';
import { runCommand } from '../src/core/index.js';
import { parseCidr } from '../src/ip/index.js';
import {
  ensureWgDevice,
  parseWgDump,
  readWgDevice,
  renderWgConfig,
  syncWgDevice,
  type WgDeviceSpec,
} from '../src/kernel/index.js';
import type { Lease } from '../src/lease/index.js';
import { subnetLease } from '../testkit/fixtures/backend.js';
import {
  registerNamespace,
  registerProcess,
  runPrefix,
  unregisterNamespace,
  unregisterProcess,
} from '../testkit/run.js';

const { values } = parseArgs({
  options: { peers: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '21' } },
});
const peerCount = Number(values.peers);
const rounds = Number(values.rounds);
if (!Number.isInteger(peerCount) || peerCount < 1 || peerCount > 50_000)
  throw new Error('--peers must be an integer 1..50000');
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 200) throw new Error('--rounds must be 1..200');

/** Issue 16's size for the peer-set figures. */
const GOAL_PEERS = 5000;
/** The live `wg syncconf` is attempted only if wireguard-go takes the peers within this. */
const SYNC_LIMIT_MS = 60_000;
const PORT = 51820;

const cfg: WireguardBackendConfig = {
  type: 'wireguard',
  listenPort: PORT,
  listenPortV6: PORT + 1,
  mtu: 0,
  mode: 'separate',
  persistentKeepaliveInterval: 0,
};
const networks = { ipv4: parseCidr('10.0.0.0/8') };
const devices = wireguardDevices(cfg, networks);

/** Peer `i`: subnet 10.<10 + i/256>.<i%256>.0/24, PublicIP 172.<16 + i/65536>.x.y (`generation` shifts it). */
function peerLease(i: number, publicKey: string, generation = 0): Lease {
  const j = i + generation;
  return subnetLease(`10.${10 + (i >> 8)}.${i & 255}.0/24`, {
    publicIP: `172.${16 + (j >> 16)}.${(j >> 8) & 255}.${j & 255}`,
    backendType: 'wireguard',
    backendData: { PublicKey: publicKey, Port: PORT },
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Median ms of `fn` over `rounds` runs (after one warm-up). */
function timeMs<T>(fn: () => T): { ms: number; last: T } {
  let last = fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    last = fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: median(samples), last };
}

/** What `wg show NAME dump` prints for a device holding exactly `spec`'s peers (no PSK, no handshakes). */
function dumpText(spec: WgDeviceSpec, privateKey: string, publicKey: string): string {
  const lines = [`${privateKey}\t${publicKey}\t${spec.listenPort}\toff`];
  for (const p of spec.peers) {
    const keepalive = p.persistentKeepalive > 0 ? String(p.persistentKeepalive) : 'off';
    lines.push(`${p.publicKey}\t(none)\t${p.endpoint}\t${p.allowedIps.join(',')}\t0\t0\t0\t${keepalive}`);
  }
  return `${lines.join('\n')}\n`;
}

interface LiveFigures {
  syncAllMs: number;
  showMs: number;
  syncOneMs: number;
  syncNoneMs: number;
  peersSeen: number;
}

/** The pids of wireguard-go processes in `netns`. */
function wireguardGoPids(netns: string): number[] {
  const out = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 10_000 });
  const pids: number[] = [];
  for (const line of out.split('\n')) {
    if (!/^\d+$/.test(line.trim())) continue;
    try {
      const comm = execFileSync('cat', [`/proc/${line.trim()}/comm`], { encoding: 'utf8' }).trim();
      if (comm === 'wireguard-go') pids.push(Number(line.trim()));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  for (let t = 0; t < ms; t += 50) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** One wireguard-go device in a namespace of its own: syncconf of every peer, show, a one-peer change. */
async function live(
  spec: WgDeviceSpec,
  changed: WgDeviceSpec,
  privateKey: string,
): Promise<LiveFigures | string> {
  if (process.getuid?.() !== 0) return 'skipped: needs root (a namespace and a TUN device)';
  for (const tool of ['wireguard-go', 'wg']) {
    const r = await runCommand('which', [tool]).catch(() => undefined);
    if (r?.code !== 0) return `skipped: ${tool} is not installed`;
  }
  const netns = `${runPrefix()}g${randomBytes(1).toString('hex')}`;
  const name = `${runPrefix()}wg`;
  const pids: number[] = [];
  registerNamespace(netns);
  execFileSync('ip', ['netns', 'add', netns], { stdio: 'ignore', timeout: 10_000 });
  try {
    await ensureWgDevice(name, { netns, mtu: 1420, userspaceOnly: true, timeoutMs: 30_000 });
    for (const pid of wireguardGoPids(netns)) {
      pids.push(pid);
      registerProcess(pid);
    }
    const call = { netns, timeoutMs: SYNC_LIMIT_MS };
    const mine = { ...spec, name };
    const t0 = performance.now();
    await syncWgDevice(mine, { privateKey }, call);
    const t1 = performance.now();
    const observed = await readWgDevice(name, call);
    const t2 = performance.now();
    await syncWgDevice({ ...changed, name }, { privateKey }, call);
    const t3 = performance.now();
    await syncWgDevice({ ...changed, name }, { privateKey }, call);
    const t4 = performance.now();
    return {
      syncAllMs: t1 - t0,
      showMs: t2 - t1,
      syncOneMs: t3 - t2,
      syncNoneMs: t4 - t3,
      peersSeen: observed?.peers.length ?? 0,
    };
  } catch (err) {
    return `failed: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      if (!(await waitGone(pid, 3_000))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      unregisterProcess(pid);
    }
    try {
      execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // already gone
    }
    unregisterNamespace(netns);
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const keys = Array.from({ length: peerCount + 1 }, () => generateWireguardPrivateKey());
  const publicKeys = keys.map(wireguardPublicKey);
  const keyMs = performance.now() - t0;
  const own = peerLease(0, publicKeys[0]!);
  const ownKey = { privateKey: keys[0]!, publicKey: publicKeys[0]! };
  const peers = Array.from({ length: peerCount }, (_, k) => peerLease(k + 1, publicKeys[k + 1]!));
  // One update: the last peer's PublicIP changed (a new endpoint).
  const updated = [...peers];
  updated[peerCount - 1] = peerLease(peerCount, publicKeys[peerCount]!, 1);
  const input = { cfg, networks, devices, ownPublicIp: '172.16.0.0', own };

  const plan = timeMs(() => planWireguard({ ...input, peers }));
  const spec = plan.last.devices[0]!;
  if (spec.peers.length !== peerCount || plan.last.skipped.length > 0) {
    throw new Error(`planned ${spec.peers.length} peers, skipped ${plan.last.skipped.length}`);
  }
  const changedSpec = planWireguard({ ...input, peers: updated }).devices[0]!;
  const render = timeMs(() => renderWgConfig(spec, { privateKey: ownKey.privateKey }));
  const text = dumpText(spec, ownKey.privateKey, ownKey.publicKey);
  const parse = timeMs(() => parseWgDump(text));
  const observed = parse.last;
  const wanted = (s: WgDeviceSpec) => ({ spec: s, publicKey: ownKey.publicKey });
  const inSync = timeMs(() => diffWgDevice(wanted(spec), observed));
  if (inSync.last.length !== 0)
    throw new Error(`diff of identical sets: ${inSync.last.slice(0, 3).join('; ')}`);
  const oneOff = timeMs(() => diffWgDevice(wanted(changedSpec), observed));
  if (oneOff.last.length !== 1) throw new Error(`expected 1 difference, found ${oneOff.last.length}`);
  // The backend's whole per-pass work for one changed lease, the device read aside: one plan (the pass's
  // `desired` and `afterReconcile` share it), the diff against the device, the render for syncconf.
  const update = timeMs(() => {
    const s = planWireguard({ ...input, peers: updated }).devices[0]!;
    if (diffWgDevice(wanted(s), observed).length > 0) renderWgConfig(s, { privateKey: ownKey.privateKey });
  });

  const us = (ms: number) => ((ms * 1000) / peerCount).toFixed(2);
  const row = (label: string, ms: number, note = '') =>
    console.log(`  ${label.padEnd(52)}${ms.toFixed(2).padStart(9)} ms ${us(ms).padStart(7)} µs/peer${note}`);
  console.log(
    `wireguard peer set, ${peerCount} peers${peerCount < GOAL_PEERS ? ` (issue 16's size: --peers ${GOAL_PEERS})` : ''}, medians of ${rounds}`,
  );
  row('planWireguard (the whole set)', plan.ms);
  row('renderWgConfig (the syncconf batch)', render.ms, ` (${(text.length / 1024).toFixed(0)} KiB dump)`);
  row('parseWgDump (`wg show dump` of every peer)', parse.ms);
  row('diffWgDevice, in sync (per lookup: µs/peer)', inSync.ms);
  row('diffWgDevice, one endpoint changed', oneOff.ms);
  row('one update: plan + diff + render', update.ms);
  console.log(`  (${peerCount + 1} X25519 key pairs generated in ${keyMs.toFixed(0)} ms, not counted)`);

  const l = await live(spec, changedSpec, ownKey.privateKey);
  if (typeof l === 'string') {
    console.log(`  wireguard-go, wg syncconf of ${peerCount} peers: ${l}`);
    return;
  }
  if (l.peersSeen !== peerCount)
    throw new Error(`wireguard-go holds ${l.peersSeen} peers, expected ${peerCount}`);
  console.log('  wireguard-go in a namespace (one run each, wall time of the wg process):');
  const liveRow = (label: string, ms: number) =>
    console.log(`    ${label.padEnd(50)}${ms.toFixed(0).padStart(7)} ms`);
  liveRow(`wg syncconf, all ${peerCount} peers into an empty device`, l.syncAllMs);
  liveRow(`wg show dump of ${peerCount} peers`, l.showMs);
  liveRow('wg syncconf, one endpoint changed', l.syncOneMs);
  liveRow('wg syncconf, nothing changed', l.syncNoneMs);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
