// ICMP echo for the peer prober: the codec (pure) and `IcmpPinger`, one raw socket per address family (via
// raw-socket) with a kernel filter so only echo replies ever reach JavaScript.
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { errorFields, errorMessage } from '../../core/index.js';
import { canonicalIp, type Family, internetChecksum } from '../../ip/index.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
const ICMP_HEADER_LENGTH = 8;

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

// ─── Kernel filters ──────────────────────────────────────────────────────────────────────────────────────

/** `setsockopt(SOL_RAW, ICMP_FILTER)` (linux/icmp.h): a 32-bit mask of ICMP types (0..31) to drop. */
export const SOL_RAW = 255;
export const ICMP_FILTER = 1;
/** `setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER)` (netinet/icmp6.h): 256 bits, one per type, set = block. */
export const IPPROTO_ICMPV6 = 58;
export const ICMP6_FILTER = 1;

function writeU32(buf: Buffer, value: number, offset: number): void {
  // The kernel reads these words in the host's byte order.
  if (endianness() === 'LE') buf.writeUInt32LE(value >>> 0, offset);
  else buf.writeUInt32BE(value >>> 0, offset);
}

/** The `ICMP_FILTER` value that lets only `type` through (types ≥ 32 are never filtered by the kernel). */
export function icmpFilterPassing(type: number): Buffer {
  const buf = Buffer.alloc(4);
  writeU32(buf, ~(1 << type), 0);
  return buf;
}

/** The `ICMP6_FILTER` value (struct icmp6_filter: eight 32-bit words) that lets only `type` through. */
export function icmp6FilterPassing(type: number): Buffer {
  const buf = Buffer.alloc(32);
  for (let word = 0; word < 8; word++) {
    writeU32(buf, word === type >> 5 ? ~(1 << (type & 31)) : 0xffffffff, word * 4);
  }
  return buf;
}

// ─── Raw socket pinger ───────────────────────────────────────────────────────────────────────────────────

/** The parts of raw-socket's API used here (it ships no types). */
interface RawSocket extends EventEmitter {
  send(
    buffer: Buffer,
    offset: number,
    length: number,
    address: string,
    afterCallback: (error: Error | null, bytes: number) => void,
  ): unknown;
  setOption(level: number, option: number, value: Buffer, length: number): void;
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

/** The raw ICMP socket could not be opened or filtered (not root / no CAP_NET_RAW, module not built). */
export class ProbeSocketError extends Error {
  override name = 'ProbeSocketError';
}

interface PendingEcho {
  address: string;
  sentAt: number;
  resolve: (rttMs: number | null) => void;
  timer: NodeJS.Timeout;
}

export interface IcmpPingerOptions {
  /** The identifier field of every request; random by default, so concurrent pingers do not mix replies. */
  identifier?: number;
  /**
   * Install the kernel filter that passes only echo replies (default true). Without it every ICMP packet
   * reaching the host (requests, errors, other programs' replies) wakes the event loop; off only to measure that.
   */
  kernelFilter?: boolean;
}

/**
 * Sends ICMP echo requests on one raw socket and matches replies by identifier, sequence, payload token and
 * source address. The socket is opened lazily and reopened after an error.
 */
export class IcmpPinger {
  readonly identifier: number;
  readonly kernelFilter: boolean;
  /** Packets the socket delivered to JavaScript (whatever they were): what the kernel filter keeps low. */
  received = 0;
  private readonly token: Buffer;
  private socket: RawSocket | null = null;
  private sequence = 0;
  private readonly pending = new Map<number, PendingEcho>();

  constructor(
    readonly family: Family,
    private readonly logger: Logger,
    options: IcmpPingerOptions = {},
  ) {
    this.identifier = options.identifier ?? randomBytes(2).readUInt16BE(0);
    this.kernelFilter = options.kernelFilter ?? true;
    this.token = randomBytes(8);
  }

  /** Opens the socket unless it is open. Throws `ProbeSocketError` when it cannot be opened or filtered. */
  open(): void {
    if (this.socket !== null) return;
    const v = this.family === 6 ? 'v6' : '';
    let socket: RawSocket;
    try {
      const raw = loadRawSocket();
      socket = raw.createSocket(
        this.family === 4
          ? { protocol: raw.Protocol.ICMP, addressFamily: raw.AddressFamily.IPv4 }
          : { protocol: raw.Protocol.ICMPv6, addressFamily: raw.AddressFamily.IPv6 },
      );
    } catch (err) {
      throw new ProbeSocketError(
        `cannot open a raw ICMP${v} socket for peer probes: ${errorMessage(err)}` +
          ' (needs root or CAP_NET_RAW; set --probe-interval=0 to turn probes off)',
      );
    }
    if (this.kernelFilter) {
      try {
        if (this.family === 4) socket.setOption(SOL_RAW, ICMP_FILTER, icmpFilterPassing(ICMP_ECHO_REPLY), 4);
        else socket.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, icmp6FilterPassing(ICMPV6_ECHO_REPLY), 32);
      } catch (err) {
        try {
          socket.close();
        } catch {
          // Closing a socket that failed setsockopt: nothing more to release.
        }
        throw new ProbeSocketError(
          `cannot set the ICMP${v} filter on the probe socket: ${errorMessage(err)}` +
            ' (without it every ICMP packet reaching the host would be handled by weftd; probes stay off)',
        );
      }
    }
    socket.on('message', (buffer: Buffer, source: string) => this.onMessage(buffer, source));
    socket.on('error', (err: Error) => {
      // raw-socket closes the socket after an error; the next echo opens a new one.
      this.logger.warn({ err: errorFields(err), family: this.family }, 'probe socket error; reopening');
      if (this.socket === socket) this.socket = null;
    });
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
    });
    this.socket = socket;
  }

  private onMessage(buffer: Buffer, source: string): void {
    this.received++;
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
    // Skip sequences still in flight (only after 65536 echoes within one timeout, i.e. never in practice).
    for (let i = 0; i < 0x10000; i++) {
      this.sequence = (this.sequence + 1) & 0xffff;
      if (!this.pending.has(this.sequence)) return this.sequence;
    }
    throw new Error('no free ICMP sequence number: 65536 echoes in flight');
  }

  /**
   * One echo to `address`: resolves with the round-trip time in ms, or null when no reply came within
   * `timeoutMs` or the request could not be sent. Throws `ProbeSocketError` when no socket can be opened.
   */
  ping(address: string, timeoutMs: number): Promise<number | null> {
    const target = canonicalIp(address);
    this.open();
    const socket = this.socket as RawSocket;
    const sequence = this.nextSequence();
    const packet = encodeEchoRequest(this.family, this.identifier, sequence, this.token);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(sequence, null), timeoutMs);
      this.pending.set(sequence, { address: target, sentAt: performance.now(), resolve, timer });
      socket.send(packet, 0, packet.length, target, (error) => {
        if (error !== null) {
          // No route, no neighbour, link down: the peer is unreachable for this echo.
          this.logger.debug({ address: target, err: errorFields(error) }, 'probe not sent');
          this.settle(sequence, null);
        }
      });
    });
  }

  /** Closes the socket; echoes in flight resolve as lost. */
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
