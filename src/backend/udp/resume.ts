// Resuming the udp data path at start-up, before anything slow (etcd, interface listing, the first reconcile
// pass): the engine dies with weftd, but flannel0 is persistent, so a restarted weftd can attach a new engine
// to it at once with the peer table its predecessor last used. The backend writes that table to a state file
// whenever it changes (`saveResumeState`); `resumeUdpDataPath` reads it first thing; the UdpBackend then
// adopts the running engine in `prepare` (`adoptResumedEngine`) and corrects its peers after the first pass.
//
// The saved table may be stale for the moments until that pass (a peer that left meanwhile is still
// accepted); everything in it is validated as the engine validates any peer table.
import { closeSync, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { errorFields } from '../../core/index.js';
// Only light imports: weftd may load this module before the rest of the daemon to resume even sooner.
import { openTun, UDP_DEVICE_NAME, UdpEngine, type UdpPeer } from './engine.js';

/**
 * Where the state files live unless the daemon says otherwise (it passes the directory of its subnet file,
 * /run/flannel by default): one file per bind address and port (several nodes may share a directory).
 */
export const UDP_STATE_DIR = '/run/flannel';

let stateDirectory = UDP_STATE_DIR;

/** The directory the last resumeUdpDataPath call named: where the backend saves its table. */
export function udpStateDir(): string {
  return stateDirectory;
}

const STATE_VERSION = 1;

export interface UdpResumeState {
  bindAddress: string;
  port: number;
  ownSubnet: string;
  vnetHdr: boolean;
  peers: UdpPeer[];
}

export class UdpResumeStateError extends Error {
  override name = 'UdpResumeStateError';
}

/** The state file of one bind address and port. */
export function resumeStateFile(bindAddress: string, port: number, dir = UDP_STATE_DIR): string {
  return path.join(dir, `weft-udp-${bindAddress}-${port}.json`);
}

/** Writes the state atomically (temp file + rename), readable by root only. */
export async function saveResumeState(state: UdpResumeState, dir = UDP_STATE_DIR): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = resumeStateFile(state.bindAddress, state.port, dir);
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify({ version: STATE_VERSION, ...state })}\n`, { mode: 0o600 });
  await rename(temp, file);
}

/** Parses a state file's text; throws UdpResumeStateError naming what is wrong. */
export function parseResumeState(text: string, where: string): UdpResumeState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UdpResumeStateError(`${where}: not JSON (${(err as Error).message})`);
  }
  const v = value as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || v.version !== STATE_VERSION) {
    throw new UdpResumeStateError(`${where}: expected an object with "version": ${STATE_VERSION}`);
  }
  const text_ = (key: string): string => {
    if (typeof v[key] !== 'string') throw new UdpResumeStateError(`${where}: "${key}" must be a string`);
    return v[key] as string;
  };
  if (typeof v.port !== 'number' || typeof v.vnetHdr !== 'boolean' || !Array.isArray(v.peers)) {
    throw new UdpResumeStateError(
      `${where}: expected "port" (number), "vnetHdr" (boolean) and "peers" (array)`,
    );
  }
  const peers = v.peers.map((p: unknown, i: number): UdpPeer => {
    const peer = p as Record<string, unknown>;
    if (
      typeof peer !== 'object' ||
      peer === null ||
      typeof peer.subnet !== 'string' ||
      typeof peer.address !== 'string' ||
      typeof peer.port !== 'number'
    ) {
      throw new UdpResumeStateError(`${where}: peers[${i}] must be {subnet, address, port}`);
    }
    return { subnet: peer.subnet, address: peer.address, port: peer.port };
  });
  // Addresses, prefixes and ports are checked again by UdpEngine.start and setPeers.
  return {
    bindAddress: text_('bindAddress'),
    port: v.port,
    ownSubnet: text_('ownSubnet'),
    vnetHdr: v.vnetHdr,
    peers,
  };
}

function localIpv4Addresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') out.add(a.address);
  }
  return out;
}

interface Resumed {
  engine: UdpEngine;
  state: UdpResumeState;
  logged: boolean;
  /** When the engine started (ms since the epoch). */
  at: number;
}

function logResumed(logger: Logger, r: Resumed): void {
  r.logged = true;
  logger.info(
    {
      device: UDP_DEVICE_NAME,
      bind: `${r.state.bindAddress}:${r.state.port}`,
      peers: r.state.peers.length,
      startedAt: new Date(r.at).toISOString(),
    },
    'udp: data path resumed from the last peer table',
  );
}

let resumed: Resumed | undefined;

/**
 * Starts the udp engine on an existing flannel0 from the state file of one of this host's addresses, if
 * there is one. Never throws: whatever is missing or wrong is logged and the backend starts the engine the
 * slow way. Returns whether the data path runs.
 */
export async function resumeUdpDataPath(logger?: Logger, dir = UDP_STATE_DIR): Promise<boolean> {
  stateDirectory = dir;
  if (resumed !== undefined) {
    // Resumed earlier (weftd calls this before loading the daemon, without a logger): say so now.
    if (!resumed.logged && logger !== undefined) logResumed(logger, resumed);
    return true;
  }
  if (!existsSync(`/proc/sys/net/ipv4/conf/${UDP_DEVICE_NAME}`)) return false;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /^weft-udp-.*\.json$/.test(n));
  } catch {
    return false;
  }
  const local = localIpv4Addresses();
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const state = parseResumeState(await readFile(file, 'utf8'), file);
      if (!local.has(state.bindAddress)) continue;
      const tun = openTun(UDP_DEVICE_NAME, { persist: true, vnetHdr: state.vnetHdr });
      let engine: UdpEngine;
      try {
        engine = UdpEngine.start({
          tun,
          bindAddress: state.bindAddress,
          bindPort: state.port,
          ownSubnet: state.ownSubnet,
        });
      } catch (err) {
        closeSync(tun.fd);
        throw err;
      }
      try {
        engine.setPeers(state.peers);
      } catch (err) {
        engine.stop();
        throw err;
      }
      resumed = { engine, state, logged: false, at: Date.now() };
      if (logger !== undefined) logResumed(logger, resumed);
      return true;
    } catch (err) {
      logger?.warn({ err: errorFields(err), file }, 'udp: cannot resume the data path from this state file');
    }
  }
  return false;
}

/**
 * Hands the resumed engine to the backend when it fits what the backend would start (same address, port and
 * TUN mode); a resumed engine that does not fit is stopped. Returns undefined when there is none.
 */
export function adoptResumedEngine(bindAddress: string, port: number, vnetHdr: boolean): Resumed | undefined {
  const r = resumed;
  resumed = undefined;
  if (r === undefined) return undefined;
  if (r.state.bindAddress === bindAddress && r.state.port === port && r.state.vnetHdr === vnetHdr) return r;
  r.engine.stop();
  return undefined;
}

/** Stops a resumed engine nobody adopted (the daemon chose another backend). */
export function releaseResumedUdpDataPath(): void {
  resumed?.engine.stop();
  resumed = undefined;
}
