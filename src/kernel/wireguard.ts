// WireGuard devices: kernel WireGuard (`ip link add … type wireguard`) where the kernel has it, else the
// userspace `wireguard-go`, configured alike through `wg`: whole-config batches in (`wg syncconf NAME FILE`,
// the file mode 0600 in a fresh 0700 directory and removed right after; keys never in argv) and `wg show NAME
// dump` out as the observed state.
//
// Secrets: the dump's first line holds the private key and each peer line its pre-shared key. The parser keeps
// neither: only the device's public key and a SHA-256 digest of each PSK (enough to see that one changed).
// Errors name lines and fields, never their contents.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandFailedError, runCommand, runCommandChecked } from '../core/index.js';
import { isValidDeviceName } from './canonical.js';
import type { KernelCallOptions } from './types.js';

/** Where wireguard-go serves its configuration socket (one folder for every network namespace). */
export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';

export type WireguardImplementation = 'kernel' | 'wireguard-go';

/** A peer as wanted: PSK by presence only (the key itself joins at render time). */
export interface WgPeerSpec {
  publicKey: string;
  /** `ip:port` or `[ip6]:port`. */
  endpoint: string;
  /** Canonical CIDRs, sorted. */
  allowedIps: string[];
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
}

/** The configuration of one device, secrets aside. */
export interface WgDeviceSpec {
  name: string;
  listenPort: number;
  peers: WgPeerSpec[];
}

/** What `wg show NAME dump` says about a peer. */
export interface WgObservedPeer {
  publicKey: string;
  /** SHA-256 (hex) of the PSK; undefined when none is set. */
  pskDigest?: string;
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive: number;
  /** Unix seconds of the last handshake; 0 = never. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface WgObservedDevice {
  /** undefined when no private key is set. */
  publicKey?: string;
  listenPort: number;
  peers: WgObservedPeer[];
}

/** `wg show … dump` printed something this parser does not understand. */
export class WgDumpParseError extends Error {
  override name = 'WgDumpParseError';
}

/** A device could not be created or brought up, by kernel WireGuard nor by wireguard-go. */
export class WireguardDeviceError extends Error {
  override name = 'WireguardDeviceError';
}

/** The all-zero key: in a wg config, no pre-shared key. */
const NO_PSK = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** SHA-256 of a key, for comparing secrets without keeping them. */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function none(text: string): string | undefined {
  return text === '(none)' || text === '' ? undefined : text;
}

function count(text: string, what: string, line: number): number {
  if (text === 'off') return 0;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new WgDumpParseError(`wg dump line ${line}: ${what} is not a number`);
  }
  return n;
}

/** Parses `wg show NAME dump` (one device: interface line, then one line per peer, tab-separated). */
export function parseWgDump(text: string): WgObservedDevice {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const first = lines[0];
  if (first === undefined) throw new WgDumpParseError('wg dump is empty (expected an interface line)');
  const head = first.split('\t');
  if (head.length !== 4) {
    throw new WgDumpParseError(
      `wg dump line 1: expected 4 tab-separated fields (private-key public-key listen-port fwmark), found ${head.length}`,
    );
  }
  const device: WgObservedDevice = { listenPort: count(head[2]!, 'listen-port', 1), peers: [] };
  const publicKey = none(head[1]!);
  if (publicKey !== undefined) device.publicKey = publicKey;
  lines.slice(1).forEach((line, i) => {
    const f = line.split('\t');
    const n = i + 2;
    if (f.length !== 8) {
      throw new WgDumpParseError(
        `wg dump line ${n}: expected 8 tab-separated peer fields, found ${f.length}`,
      );
    }
    const psk = none(f[1]!);
    const endpoint = none(f[2]!);
    const allowed = none(f[3]!);
    const peer: WgObservedPeer = {
      publicKey: f[0]!,
      allowedIps: allowed === undefined ? [] : allowed.split(',').sort(),
      latestHandshake: count(f[4]!, 'latest-handshake', n),
      rxBytes: count(f[5]!, 'transfer-rx', n),
      txBytes: count(f[6]!, 'transfer-tx', n),
      persistentKeepalive: count(f[7]!, 'persistent-keepalive', n),
    };
    if (psk !== undefined && psk !== NO_PSK) peer.pskDigest = keyDigest(psk);
    if (endpoint !== undefined) peer.endpoint = endpoint;
    device.peers.push(peer);
  });
  return device;
}

/** The `wg setconf`/`syncconf` text for a device. Holds secrets: never log it. */
export function renderWgConfig(spec: WgDeviceSpec, secrets: { privateKey: string; psk?: string }): string {
  const out = ['[Interface]', `PrivateKey = ${secrets.privateKey}`, `ListenPort = ${spec.listenPort}`];
  for (const p of spec.peers) {
    out.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    // syncconf keeps a peer's PSK when the line is absent: the all-zero key is how a config says "none".
    out.push(`PresharedKey = ${secrets.psk ?? NO_PSK}`);
    if (p.allowedIps.length > 0) out.push(`AllowedIPs = ${p.allowedIps.join(', ')}`);
    out.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive > 0) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return `${out.join('\n')}\n`;
}

function checkName(name: string): void {
  if (!isValidDeviceName(name)) {
    throw new WireguardDeviceError(`${JSON.stringify(name)} is not a valid device name`);
  }
}

/** The device's WireGuard state, or undefined when there is no such WireGuard device. */
export async function readWgDevice(
  name: string,
  opts: KernelCallOptions = {},
): Promise<WgObservedDevice | undefined> {
  checkName(name);
  const result = await runCommand('wg', ['show', name, 'dump'], {
    ...opts,
    packageHint: 'wireguard-tools',
  });
  if (result.code !== 0) return undefined;
  return parseWgDump(result.stdout);
}

/**
 * Applies a whole device configuration in one `wg syncconf` (peers not in it are removed, changed ones
 * replaced, unchanged ones keep their sessions). `wg` opens a path (Node's stdin is a socket, which
 * `/dev/stdin` cannot open), so the config is a 0600 file in a private 0700 directory, removed at once.
 */
export async function syncWgDevice(
  spec: WgDeviceSpec,
  secrets: { privateKey: string; psk?: string },
  opts: KernelCallOptions = {},
): Promise<void> {
  checkName(spec.name);
  const dir = await mkdtemp(join(tmpdir(), 'weft-wg-'));
  let result: Awaited<ReturnType<typeof runCommand>>;
  try {
    const file = join(dir, `${spec.name}.conf`);
    await writeFile(file, renderWgConfig(spec, secrets), { mode: 0o600, flag: 'wx' });
    result = await runCommand('wg', ['syncconf', spec.name, file], {
      ...opts,
      packageHint: 'wireguard-tools',
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (result.code !== 0) {
    // wg quotes a value it rejects ("Key is not the correct length or format: `…'"): keys never reach the error.
    const stderr = result.stderr.trim().replace(/[A-Za-z0-9+/]{40,}={0,2}/g, '(key hidden)');
    throw new WireguardDeviceError(
      `wg syncconf ${spec.name} failed (exit ${result.code ?? 'by signal'}): ${stderr || 'no output'}`,
    );
  }
}

interface LinkFacts {
  kind: string;
  mtu: number;
  up: boolean;
}

async function linkFacts(name: string, opts: KernelCallOptions): Promise<LinkFacts | undefined> {
  const result = await runCommand('ip', ['-d', '-json', 'link', 'show', 'dev', name], opts);
  if (result.code !== 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    throw new WireguardDeviceError(`ip -d -json link show dev ${name} printed no JSON`);
  }
  const link = Array.isArray(parsed) ? (parsed[0] as Record<string, unknown> | undefined) : undefined;
  if (link === undefined) return undefined;
  const info = link.linkinfo as { info_kind?: unknown } | undefined;
  const flags = Array.isArray(link.flags) ? link.flags : [];
  return {
    kind: typeof info?.info_kind === 'string' ? info.info_kind : '',
    mtu: typeof link.mtu === 'number' ? link.mtu : 0,
    up: flags.includes('UP'),
  };
}

export interface EnsureWgDeviceResult {
  implementation: WireguardImplementation;
  /** false: an existing device (and its wireguard-go) was adopted. */
  created: boolean;
}

export interface EnsureWgDeviceOptions extends KernelCallOptions {
  mtu: number;
  /** Skip kernel WireGuard (tests of the userspace path on kernels that have it). */
  userspaceOnly?: boolean;
}

function socketPath(name: string): string {
  return join(WIREGUARD_SOCKET_DIR, `${name}.sock`);
}

/**
 * Makes sure a WireGuard device `name` exists, with the MTU and up. An existing kernel WireGuard device, or a
 * TUN served by a live wireguard-go (its socket answers `wg show`), is adopted as it is; anything else under
 * that name is deleted. A new device is kernel WireGuard when the kernel has it, else a detached wireguard-go
 * (it outlives weftd, so a restart does not cut traffic; the next weftd adopts it).
 */
export async function ensureWgDevice(
  name: string,
  opts: EnsureWgDeviceOptions,
): Promise<EnsureWgDeviceResult> {
  checkName(name);
  const call: KernelCallOptions = { netns: opts.netns, timeoutMs: opts.timeoutMs };
  let facts = await linkFacts(name, call);
  let result: EnsureWgDeviceResult | undefined;
  if (facts !== undefined) {
    const served = facts.kind === 'wireguard' || (await readWgDevice(name, call)) !== undefined;
    if (served) {
      result = { implementation: facts.kind === 'wireguard' ? 'kernel' : 'wireguard-go', created: false };
    } else {
      await runCommandChecked('ip', ['link', 'delete', 'dev', name], call);
      facts = undefined;
    }
  }
  if (result === undefined) {
    result = await createWgDevice(name, opts, call);
    facts = await linkFacts(name, call);
    if (facts === undefined) {
      throw new WireguardDeviceError(`${name} does not exist after ${result.implementation} created it`);
    }
  }
  if (facts !== undefined && (facts.mtu !== opts.mtu || !facts.up)) {
    await runCommandChecked('ip', ['link', 'set', 'dev', name, 'mtu', String(opts.mtu), 'up'], call);
  }
  return result;
}

async function createWgDevice(
  name: string,
  opts: EnsureWgDeviceOptions,
  call: KernelCallOptions,
): Promise<EnsureWgDeviceResult> {
  let kernelError = 'skipped (userspace only)';
  if (opts.userspaceOnly !== true) {
    const add = await runCommand('ip', ['link', 'add', 'dev', name, 'type', 'wireguard'], call);
    if (add.code === 0) return { implementation: 'kernel', created: true };
    kernelError = add.stderr.trim() || `exit ${add.code}`;
  }
  // wireguard-go forks a daemon and returns once the device and its socket exist. Without LOG_LEVEL the
  // daemon gets /dev/null for stdout and stderr; with it, it would hold our pipes open (and this call with them).
  const env = { ...process.env };
  delete env.LOG_LEVEL;
  try {
    await runCommandChecked('wireguard-go', [name], { ...call, packageHint: 'wireguard-go', env });
  } catch (err) {
    const why = err instanceof CommandFailedError ? err.message : (err as Error).message;
    throw new WireguardDeviceError(
      `cannot create WireGuard device ${name}: kernel WireGuard: ${kernelError}; wireguard-go: ${why}`,
    );
  }
  if (call.netns === undefined && !existsSync(socketPath(name))) {
    throw new WireguardDeviceError(
      `wireguard-go started for ${name} but its socket ${socketPath(name)} is missing`,
    );
  }
  return { implementation: 'wireguard-go', created: true };
}
