// Peer probes: ICMP echo through the overlay to each peer's tunnel address (its subnet's network address on
// the vxlan device), so a broken FDB/ARP/route entry or a dead peer shows up as a health change. Three parts:
//   - `PeerHealthTracker`: the pure per-peer state machine (N consecutive losses → unhealthy, one reply → healthy);
//   - the ICMP echo codec (pure) and `IcmpPinger` (one raw socket per address family, via raw-socket);
//   - `PeerProber`: the loop: every interval (jittered), probe all peers with bounded concurrency.
// Probes go only to the addresses the daemon hands in, and (with `overlayNetworks`) only inside the overlay.
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import {
  addressAt,
  type Cidr,
  canonicalIp,
  containsIp,
  type Family,
  formatCidr,
  formatIp,
  networkAddress,
  parseIp,
} from '../ip/index.js';
import type { Lease } from '../lease/types.js';
import type { PeerHealth, PeerProbeView } from './status.js';

// ─── Targets ───────────────────────────────────────────────────────────────────────────────────────────────

/** One peer to probe: `key` names it (the peer's lease key), `address` is its tunnel address. */
export interface ProbeTarget {
  key: string;
  address: string;
}

/**
 * The address each peer answers on through the overlay, keyed by its lease key. vxlan and udp: the network
 * address of its subnet (on `flannel.N` / `flannel0`); host-gw has no tunnel device, so the first address
 * (the `cni0` bridge gateway, there once the peer's CNI set it up). IPv4 when the lease has an IPv4 subnet,
 * else its IPv6 subnet.
 */
export function probeTargetsForLeases(peers: readonly Lease[], backendType: string): ProbeTarget[] {
  const targets: ProbeTarget[] = [];
  for (const lease of peers) {
    const subnet = lease.subnet ?? lease.ipv6Subnet;
    if (subnet === undefined) continue;
    const address = backendType === 'host-gw' ? addressAt(subnet, 1n) : networkAddress(subnet);
    targets.push({ key: lease.key, address: formatIp(address) });
  }
  return targets;
}

// ─── State machine ────────────────────────────────────────────────────────────────────────────────────────

export interface PeerProbeState extends PeerProbeView {
  key: string;
  address: string;
  consecutiveLosses: number;
  /** Probes sent and lost since the peer was added. */
  sent: number;
  lost: number;
}

export interface HealthTransition {
  key: string;
  address: string;
  from: PeerHealth;
  to: PeerHealth;
  /** Losses in a row when it became unhealthy (0 when it became healthy). */
  consecutiveLosses: number;
  rttMs: number | null;
}

export interface PeerHealthTrackerOptions {
  /** Consecutive lost probes after which a peer is unhealthy (default 3). */
  unhealthyAfter?: number;
  /** How many recent probes `lossRatio` covers (default 20). */
  lossWindow?: number;
}

interface TrackedPeer {
  state: PeerProbeState;
  /** Recent results, true = lost; at most `lossWindow` long. */
  window: boolean[];
}

/** Per-peer health from probe results. Pure: no timers, no I/O; the caller passes the time. */
export class PeerHealthTracker {
  readonly unhealthyAfter: number;
  readonly lossWindow: number;
  private readonly peers = new Map<string, TrackedPeer>();

  constructor(options: PeerHealthTrackerOptions = {}) {
    this.unhealthyAfter = Math.max(1, Math.floor(options.unhealthyAfter ?? 3));
    this.lossWindow = Math.max(1, Math.floor(options.lossWindow ?? 20));
  }

  /**
   * Replaces the set of peers. New peers start `unknown`; a peer whose address changed starts over; peers
   * not listed are forgotten. Returns the keys that were added and removed.
   */
  setPeers(targets: readonly ProbeTarget[]): { added: string[]; removed: string[] } {
    const wanted = new Map(targets.map((t) => [t.key, t]));
    const added: string[] = [];
    const removed: string[] = [];
    for (const [key, tracked] of this.peers) {
      const target = wanted.get(key);
      if (target === undefined) {
        this.peers.delete(key);
        removed.push(key);
      } else if (target.address !== tracked.state.address) {
        this.peers.set(key, this.fresh(target));
      }
    }
    for (const target of targets) {
      if (!this.peers.has(target.key)) {
        this.peers.set(target.key, this.fresh(target));
        added.push(target.key);
      }
    }
    return { added, removed };
  }

  private fresh(target: ProbeTarget): TrackedPeer {
    return {
      state: {
        key: target.key,
        address: target.address,
        health: 'unknown',
        consecutiveLosses: 0,
        lastRttMs: null,
        lossRatio: null,
        lastReplyAt: null,
        sent: 0,
        lost: 0,
      },
      window: [],
    };
  }

  /**
   * Records one probe result (`rttMs` null: lost) and returns the health transition it caused, if any.
   * Results for unknown keys (a peer removed while its probe was in flight) are ignored.
   */
  record(key: string, rttMs: number | null, now: Date): HealthTransition | null {
    const tracked = this.peers.get(key);
    if (tracked === undefined) return null;
    const s = tracked.state;
    const lost = rttMs === null;
    s.sent++;
    tracked.window.push(lost);
    if (tracked.window.length > this.lossWindow) tracked.window.shift();
    s.lossRatio = tracked.window.filter((l) => l).length / tracked.window.length;
    const from = s.health;
    if (lost) {
      s.lost++;
      s.consecutiveLosses++;
      if (s.consecutiveLosses >= this.unhealthyAfter) s.health = 'unhealthy';
    } else {
      s.consecutiveLosses = 0;
      s.lastRttMs = rttMs;
      s.lastReplyAt = now;
      s.health = 'healthy';
    }
    if (s.health === from) return null;
    return {
      key,
      address: s.address,
      from,
      to: s.health,
      consecutiveLosses: lost ? s.consecutiveLosses : 0,
      rttMs,
    };
  }

  get(key: string): PeerProbeState | undefined {
    const s = this.peers.get(key)?.state;
    return s === undefined ? undefined : { ...s };
  }

  /** A copy of every peer's state, by key. */
  states(): Map<string, PeerProbeState> {
    return new Map([...this.peers].map(([k, t]) => [k, { ...t.state }]));
  }

  targets(): ProbeTarget[] {
    return [...this.peers.values()].map((t) => ({ key: t.state.key, address: t.state.address }));
  }
}

// ─── ICMP echo codec ──────────────────────────────────────────────────────────────────────────────────────

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
const ICMP_HEADER_LENGTH = 8;

/** RFC 1071 internet checksum (one's complement of the one's complement sum of 16-bit words). */
export function internetChecksum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += ((data[i] ?? 0) << 8) | (data[i + 1] ?? 0);
  if (data.length % 2 === 1) sum += (data[data.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An echo request: type, code 0, checksum, identifier, sequence, payload. IPv4 gets its checksum here; for
 * ICMPv6 the kernel fills it in (it covers a pseudo-header with the source address we do not choose).
 */
export function encodeEchoRequest(
  family: Family,
  identifier: number,
  sequence: number,
  payload: Uint8Array,
): Buffer {
  const packet = Buffer.alloc(ICMP_HEADER_LENGTH + payload.length);
  packet.writeUInt8(family === 4 ? ICMP_ECHO_REQUEST : ICMPV6_ECHO_REQUEST, 0);
  packet.writeUInt8(0, 1);
  packet.writeUInt16BE(identifier & 0xffff, 4);
  packet.writeUInt16BE(sequence & 0xffff, 6);
  packet.set(payload, ICMP_HEADER_LENGTH);
  if (family === 4) packet.writeUInt16BE(internetChecksum(packet), 2);
  return packet;
}

export interface EchoReply {
  identifier: number;
  sequence: number;
  payload: Buffer;
}

/**
 * Parses an echo reply as a raw socket delivers it: IPv4 raw sockets include the IP header (its length is
 * in the IHL field), ICMPv6 raw sockets do not. Anything else (other ICMP types, truncated or corrupt
 * packets) yields null.
 */
export function parseEchoReply(family: Family, packet: Buffer): EchoReply | null {
  let offset = 0;
  if (family === 4) {
    if (packet.length < 20) return null;
    const versionIhl = packet.readUInt8(0);
    if (versionIhl >> 4 !== 4) return null;
    offset = (versionIhl & 0x0f) * 4;
    if (offset < 20) return null;
  }
  if (packet.length < offset + ICMP_HEADER_LENGTH) return null;
  const type = packet.readUInt8(offset);
  if (type !== (family === 4 ? ICMP_ECHO_REPLY : ICMPV6_ECHO_REPLY) || packet.readUInt8(offset + 1) !== 0)
    return null;
  if (family === 4 && internetChecksum(packet.subarray(offset)) !== 0) return null;
  return {
    identifier: packet.readUInt16BE(offset + 4),
    sequence: packet.readUInt16BE(offset + 6),
    payload: packet.subarray(offset + ICMP_HEADER_LENGTH),
  };
}

// ─── Raw socket pinger ────────────────────────────────────────────────────────────────────────────────────

/** The parts of raw-socket's API used here (it ships no types). */
interface RawSocket extends EventEmitter {
  send(
    buffer: Buffer,
    offset: number,
    length: number,
    address: string,
    afterCallback: (error: Error | null, bytes: number) => void,
  ): unknown;
  close(): unknown;
}

interface RawSocketModule {
  createSocket(options: { protocol: number; addressFamily?: number; bufferSize?: number }): RawSocket;
  Protocol: { ICMP: number; ICMPv6: number };
  AddressFamily: { IPv4: number; IPv6: number };
}

let rawSocketModule: RawSocketModule | undefined;
function loadRawSocket(): RawSocketModule {
  rawSocketModule ??= createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  return rawSocketModule;
}

/** The raw ICMP socket could not be opened (not root / no CAP_NET_RAW, module not built). */
export class ProbeSocketError extends Error {
  override name = 'ProbeSocketError';
}

interface PendingEcho {
  address: string;
  sentAt: number;
  resolve: (rttMs: number | null) => void;
  timer: NodeJS.Timeout;
}

/**
 * Sends ICMP echo requests on one raw socket and matches replies by identifier, sequence, payload token and
 * source address. The socket is opened lazily and reopened after an error.
 */
export class IcmpPinger {
  /** The identifier field of every request: random per pinger, so concurrent pingers do not mix replies. */
  readonly identifier: number;
  private readonly token: Buffer;
  private socket: RawSocket | null = null;
  private sequence = 0;
  private readonly pending = new Map<number, PendingEcho>();

  constructor(
    readonly family: Family,
    private readonly logger: Logger,
    identifier?: number,
  ) {
    this.identifier = identifier ?? randomBytes(2).readUInt16BE(0);
    this.token = randomBytes(8);
  }

  private open(): RawSocket {
    if (this.socket !== null) return this.socket;
    let socket: RawSocket;
    try {
      const raw = loadRawSocket();
      socket = raw.createSocket(
        this.family === 4
          ? { protocol: raw.Protocol.ICMP, addressFamily: raw.AddressFamily.IPv4 }
          : { protocol: raw.Protocol.ICMPv6, addressFamily: raw.AddressFamily.IPv6 },
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new ProbeSocketError(
        `cannot open a raw ICMP${this.family === 6 ? 'v6' : ''} socket for peer probes: ${message}` +
          ' (needs root or CAP_NET_RAW; set --probe-interval=0 to turn probes off)',
      );
    }
    socket.on('message', (buffer: Buffer, source: string) => this.onMessage(buffer, source));
    socket.on('error', (err: Error) => {
      // raw-socket closes the socket after an error; the next ping opens a new one.
      this.logger.warn({ err: err.message, family: this.family }, 'probe socket error; reopening');
      if (this.socket === socket) this.socket = null;
    });
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
    });
    this.socket = socket;
    return socket;
  }

  private onMessage(buffer: Buffer, source: string): void {
    const reply = parseEchoReply(this.family, buffer);
    if (reply === null || reply.identifier !== this.identifier) return;
    const pending = this.pending.get(reply.sequence);
    if (pending === undefined) return;
    if (!reply.payload.subarray(0, this.token.length).equals(this.token)) return;
    let from: string;
    try {
      from = canonicalIp(source);
    } catch {
      return;
    }
    if (from !== pending.address) return;
    this.settle(reply.sequence, performance.now() - pending.sentAt);
  }

  private settle(sequence: number, rttMs: number | null): void {
    const pending = this.pending.get(sequence);
    if (pending === undefined) return;
    this.pending.delete(sequence);
    clearTimeout(pending.timer);
    pending.resolve(rttMs);
  }

  private nextSequence(): number {
    // Skip sequences still in flight (only after 65536 probes within one timeout, i.e. never in practice).
    for (let i = 0; i < 0x10000; i++) {
      this.sequence = (this.sequence + 1) & 0xffff;
      if (!this.pending.has(this.sequence)) return this.sequence;
    }
    throw new Error('no free ICMP sequence number: 65536 probes in flight');
  }

  /**
   * One echo to `address`: resolves with the round-trip time in ms, or null when no reply came within
   * `timeoutMs` or the request could not be sent. Throws `ProbeSocketError` when no socket can be opened.
   */
  ping(address: string, timeoutMs: number): Promise<number | null> {
    const target = canonicalIp(address);
    const socket = this.open();
    const sequence = this.nextSequence();
    const packet = encodeEchoRequest(this.family, this.identifier, sequence, this.token);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(sequence, null), timeoutMs);
      this.pending.set(sequence, { address: target, sentAt: performance.now(), resolve, timer });
      socket.send(packet, 0, packet.length, target, (error) => {
        if (error !== null) {
          // No route, no neighbour, link down: the peer is unreachable for this probe.
          this.logger.debug({ address: target, err: error.message }, 'probe not sent');
          this.settle(sequence, null);
        }
      });
    });
  }

  /** Closes the socket; probes in flight resolve as lost. */
  close(): void {
    for (const sequence of [...this.pending.keys()]) this.settle(sequence, null);
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    }
  }
}

// ─── The probe loop ───────────────────────────────────────────────────────────────────────────────────────

/** Runs `fn` over `items` with at most `limit` calls in flight; resolves when all have settled. */
export async function forEachBounded<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(limit), items.length));
  await Promise.all(Array.from({ length: workers }, worker));
}

/** `interval` scaled by a random factor in [1 - jitter, 1 + jitter]. */
export function jittered(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  const j = Math.min(Math.max(jitter, 0), 1);
  return Math.max(0, intervalMs * (1 + j * (2 * random() - 1)));
}

/** Fisher–Yates shuffle (a copy): each round probes peers in a new order. */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export interface PeerProberOptions extends PeerHealthTrackerOptions {
  logger: Logger;
  /** How long to wait for each reply (default 1 s; never more than the interval). */
  timeoutMs?: number;
  /** Probes in flight at once (default 16). */
  concurrency?: number;
  /** Interval jitter as a fraction (default 0.1: ±10 %). */
  jitter?: number;
  /**
   * When given, targets must lie inside one of these networks (the flannel Network): a guard so probes
   * never leave the overlay. Targets outside are rejected by `setPeers`.
   */
  overlayNetworks?: readonly Cidr[];
  /** Called after every probe with the peer's updated state (metrics). */
  onResult?: (target: ProbeTarget, rttMs: number | null, state: PeerProbeState) => void;
  /** Called on each health transition (after it is logged). */
  onTransition?: (transition: HealthTransition) => void;
  /** Called for each peer `setPeers` dropped (metrics: forget its series). */
  onPeerRemoved?: (key: string) => void;
  random?: () => number;
}

export interface RejectedTarget {
  target: ProbeTarget;
  reason: string;
}

/** Probes every peer's tunnel address each interval and tracks their health. */
export class PeerProber {
  private readonly tracker: PeerHealthTracker;
  private readonly logger: Logger;
  private readonly pingers = new Map<Family, IcmpPinger>();
  private readonly options: PeerProberOptions;
  private readonly random: () => number;
  private socketFailureLogged = false;
  /** Set by close(): probes cut short by it are not losses and must not turn peers unhealthy. */
  private closed = false;

  constructor(options: PeerProberOptions) {
    this.options = options;
    this.logger = options.logger;
    this.random = options.random ?? Math.random;
    this.tracker = new PeerHealthTracker(options);
  }

  /**
   * Replaces the peers to probe. Targets with an invalid address, or outside `overlayNetworks`, are
   * rejected (logged and returned), never probed.
   */
  setPeers(targets: readonly ProbeTarget[]): RejectedTarget[] {
    const accepted: ProbeTarget[] = [];
    const rejected: RejectedTarget[] = [];
    for (const target of targets) {
      const reason = this.targetProblem(target);
      if (reason === null) accepted.push({ key: target.key, address: canonicalIp(target.address) });
      else rejected.push({ target, reason });
    }
    for (const r of rejected) this.logger.warn({ peer: r.target.key, address: r.target.address }, r.reason);
    const { removed } = this.tracker.setPeers(accepted);
    for (const key of removed) this.options.onPeerRemoved?.(key);
    return rejected;
  }

  private targetProblem(target: ProbeTarget): string | null {
    if (typeof target.key !== 'string' || target.key === '') return 'probe target has no key; not probed';
    let ip: ReturnType<typeof parseIp>;
    try {
      ip = parseIp(target.address);
    } catch (err) {
      return `probe target address is invalid (${err instanceof Error ? err.message : String(err)}); not probed`;
    }
    const networks = this.options.overlayNetworks;
    if (networks !== undefined && !networks.some((n) => containsIp(n, ip))) {
      return `probe target ${target.address} is outside the overlay (${networks.map(formatCidr).join(', ')}); not probed`;
    }
    return null;
  }

  /** Each peer's probe state, by key. */
  states(): Map<string, PeerProbeState> {
    return this.tracker.states();
  }

  private pinger(family: Family): IcmpPinger {
    let pinger = this.pingers.get(family);
    if (pinger === undefined) {
      pinger = new IcmpPinger(family, this.logger);
      this.pingers.set(family, pinger);
    }
    return pinger;
  }

  private async probeOne(target: ProbeTarget, timeoutMs: number): Promise<void> {
    const family = parseIp(target.address).family;
    let rttMs: number | null;
    try {
      rttMs = await this.pinger(family).ping(target.address, timeoutMs);
    } catch (err) {
      if (err instanceof ProbeSocketError) throw err;
      this.logger.debug({ peer: target.key, err }, 'probe failed');
      rttMs = null;
    }
    if (this.closed) return;
    const transition = this.tracker.record(target.key, rttMs, new Date());
    const state = this.tracker.get(target.key);
    if (state === undefined) return; // removed while in flight
    this.options.onResult?.(target, rttMs, state);
    if (transition !== null) {
      this.logTransition(transition);
      this.options.onTransition?.(transition);
    }
  }

  private logTransition(t: HealthTransition): void {
    const fields = { peer: t.key, address: t.address, from: t.from, to: t.to };
    if (t.to === 'unhealthy') {
      this.logger.warn(
        { ...fields, consecutiveLosses: t.consecutiveLosses },
        `peer ${t.key} unreachable through the overlay: ${t.consecutiveLosses} probes in a row lost`,
      );
    } else if (t.from === 'unhealthy') {
      this.logger.info({ ...fields, rttMs: t.rttMs }, `peer ${t.key} reachable again through the overlay`);
    } else {
      this.logger.info({ ...fields, rttMs: t.rttMs }, `peer ${t.key} reachable through the overlay`);
    }
  }

  /**
   * Probes every current peer once (bounded concurrency, shuffled order). Throws `ProbeSocketError` when no
   * raw socket can be opened.
   */
  async probeOnce(timeoutMs = this.options.timeoutMs ?? 1_000): Promise<void> {
    this.closed = false;
    const targets = shuffled(this.tracker.targets(), this.random);
    await forEachBounded(targets, this.options.concurrency ?? 16, (t) => this.probeOne(t, timeoutMs));
  }

  /**
   * Probes every `intervalMs` (jittered) until `signal` aborts; resolves then, with the sockets closed.
   * `intervalMs` 0 turns probes off (resolves at once). A socket that cannot be opened is logged once and
   * retried each round; it never throws.
   */
  async run(intervalMs: number, signal: AbortSignal): Promise<void> {
    if (!(intervalMs > 0)) return;
    const timeoutMs = Math.min(this.options.timeoutMs ?? 1_000, intervalMs);
    const jitter = this.options.jitter ?? 0.1;
    try {
      // A random first delay spreads the nodes of a cluster that started together.
      await abortableSleep(this.random() * intervalMs * Math.max(jitter, 0), signal);
      while (!signal.aborted) {
        const started = performance.now();
        try {
          await this.probeOnce(timeoutMs);
          this.socketFailureLogged = false;
        } catch (err) {
          if (!this.socketFailureLogged) {
            this.logger.error(
              { err: err instanceof Error ? err.message : String(err) },
              'peer probes not running',
            );
            this.socketFailureLogged = true;
          }
        }
        const elapsed = performance.now() - started;
        await abortableSleep(Math.max(0, jittered(intervalMs, jitter, this.random) - elapsed), signal);
      }
    } finally {
      this.close();
    }
  }

  /** `run` in the background; errors are logged, never thrown. */
  start(intervalMs: number, signal: AbortSignal): void {
    this.run(intervalMs, signal).catch((err: unknown) => this.logger.error({ err }, 'peer prober stopped'));
  }

  /** Closes the sockets; probes in flight are dropped without a result. */
  close(): void {
    this.closed = true;
    for (const pinger of this.pingers.values()) pinger.close();
    this.pingers.clear();
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
