// Packet logic of the udp backend's data path, over plain byte arrays.
//
// The native engine (native/src/*.c) runs this per packet in C; this module is its specification and is
// what the unit tests check. Any change here must be mirrored there (and the reverse).
//
// Wire format (flannel-compatible): the UDP payload is the bare inner IPv4 packet, no header of our own.

/** Why a packet could not be parsed as an IPv4 packet. */
export type Ipv4ParseFailure = 'tooShort' | 'notIpv4' | 'badHeaderLength' | 'badTotalLength';

/** Drop reasons, named as the engine's counters are (`drops.<reason>`). */
export type DropReason =
  | 'malformed' // too short, bad IHL, bad total length, bad header checksum
  | 'notIpv4' // version nibble is not 4 (e.g. IPv6 the kernel sends into the TUN)
  | 'unknownPeer' // datagram from an address:port that is no peer's
  | 'spoofedSource' // inner source address outside the subnet of the peer that sent it
  | 'wrongDestination' // inner destination outside this node's own subnet
  | 'noRoute' // no peer subnet holds the destination (an ICMP net-unreachable may be sent back)
  | 'ttlExpired'; // TTL would reach 0

export const IPV4_MIN_HEADER_LENGTH = 20;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export interface Ipv4Header {
  headerLength: number;
  totalLength: number;
  identification: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** In 8-byte units, as on the wire. */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  /** Addresses as unsigned 32-bit integers (network order value, e.g. 10.0.0.1 = 0x0a000001). */
  source: number;
  destination: number;
}

export type Ipv4ParseResult = { ok: true; header: Ipv4Header } | { ok: false; reason: Ipv4ParseFailure };

/**
 * Parses and validates the IPv4 header at the start of `packet`. A packet is valid when it holds at least
 * 20 bytes, its version is 4, its IHL is 5..15 and fits, and its total length covers the header and fits
 * in the bytes given. Bytes past the total length (padding) are allowed; the engine ignores them.
 */
export function parseIpv4Header(packet: Uint8Array): Ipv4ParseResult {
  if (packet.length < IPV4_MIN_HEADER_LENGTH) return { ok: false, reason: 'tooShort' };
  const versionAndIhl = packet[0]!;
  if (versionAndIhl >> 4 !== 4) return { ok: false, reason: 'notIpv4' };
  const headerLength = (versionAndIhl & 0x0f) * 4;
  if (headerLength < IPV4_MIN_HEADER_LENGTH || headerLength > packet.length) {
    return { ok: false, reason: 'badHeaderLength' };
  }
  const totalLength = readU16(packet, 2);
  if (totalLength < headerLength || totalLength > packet.length)
    return { ok: false, reason: 'badTotalLength' };
  const flagsAndOffset = readU16(packet, 6);
  return {
    ok: true,
    header: {
      headerLength,
      totalLength,
      identification: readU16(packet, 4),
      dontFragment: (flagsAndOffset & 0x4000) !== 0,
      moreFragments: (flagsAndOffset & 0x2000) !== 0,
      fragmentOffset: flagsAndOffset & 0x1fff,
      ttl: packet[8]!,
      protocol: packet[9]!,
      checksum: readU16(packet, 10),
      source: readU32(packet, 12),
      destination: readU32(packet, 16),
    },
  };
}

/** Maps a parse failure to the drop counter it is counted under. */
export function dropReasonOf(failure: Ipv4ParseFailure): DropReason {
  return failure === 'notIpv4' ? 'notIpv4' : 'malformed';
}

/**
 * One's complement sum of `length` bytes from `offset` (RFC 1071), folded to 16 bits, NOT inverted.
 * `initial` lets callers chain sums (pseudo-headers).
 */
export function onesComplementSum(
  bytes: Uint8Array,
  offset = 0,
  length = bytes.length - offset,
  initial = 0,
) {
  let sum = initial;
  const end = offset + length;
  let i = offset;
  for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of a byte range: the inverted one's complement sum. */
export function internetChecksum(bytes: Uint8Array, offset = 0, length = bytes.length - offset): number {
  return ~onesComplementSum(bytes, offset, length) & 0xffff;
}

/** True when the IPv4 header checksum verifies (the sum over the header, checksum included, is 0xffff). */
export function ipv4HeaderChecksumValid(packet: Uint8Array, headerLength: number): boolean {
  return onesComplementSum(packet, 0, headerLength) === 0xffff;
}

/**
 * RFC 1624 equation 3: the new checksum after one 16-bit word of the covered data changed from `oldWord`
 * to `newWord`: HC' = ~(~HC + ~m + m'). Unlike equation 2 it never yields 0xffff for a non-zero header.
 */
export function updateChecksum(checksum: number, oldWord: number, newWord: number): number {
  let sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Decrements the TTL of the IPv4 packet in place and patches the header checksum incrementally.
 * Returns false (and leaves the packet untouched) when the TTL would reach 0: the packet must be dropped.
 */
export function decrementTtl(packet: Uint8Array): boolean {
  const ttl = packet[8]!;
  if (ttl <= 1) return false;
  const protocol = packet[9]!;
  const oldWord = (ttl << 8) | protocol;
  const newWord = ((ttl - 1) << 8) | protocol;
  packet[8] = ttl - 1;
  writeU16(packet, 10, updateChecksum(readU16(packet, 10), oldWord, newWord));
  return true;
}

/**
 * Whether a packet that has no route may be answered with ICMP: never for ICMP packets (no error loops),
 * never for fragments, never for a source that cannot be answered (0.0.0.0, multicast, broadcast).
 */
export function mayAnswerWithIcmp(header: Ipv4Header): boolean {
  if (header.protocol === IPPROTO_ICMP) return false;
  if (header.moreFragments || header.fragmentOffset !== 0) return false;
  const source = header.source;
  if (source === 0 || source >>> 28 === 0xe || source === 0xffffffff) return false;
  return true;
}

/** ICMP type 3 (destination unreachable) code 0 (net unreachable). */
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_NET_UNREACHABLE = 0;
/** TTL of the ICMP replies the engine writes into the TUN. */
export const ICMP_REPLY_TTL = 64;

/**
 * Builds the ICMP net-unreachable reply to `original` (a valid IPv4 packet): from `ownAddress` (the tunnel
 * address) to the original source, quoting the original IP header and up to 8 bytes of its payload.
 * Returns undefined when the packet must not be answered (see mayAnswerWithIcmp) or does not parse.
 */
export function buildNetUnreachable(original: Uint8Array, ownAddress: number): Uint8Array | undefined {
  const parsed = parseIpv4Header(original);
  if (!parsed.ok || !mayAnswerWithIcmp(parsed.header)) return undefined;
  const { header } = parsed;
  const quoted = Math.min(header.totalLength, header.headerLength + 8);
  const icmpLength = 8 + quoted;
  const totalLength = IPV4_MIN_HEADER_LENGTH + icmpLength;
  const reply = new Uint8Array(totalLength);
  reply[0] = 0x45;
  reply[1] = 0;
  writeU16(reply, 2, totalLength);
  writeU16(reply, 4, 0); // identification
  writeU16(reply, 6, 0); // no flags, no offset
  reply[8] = ICMP_REPLY_TTL;
  reply[9] = IPPROTO_ICMP;
  writeU32(reply, 12, ownAddress);
  writeU32(reply, 16, header.source);
  writeU16(reply, 10, internetChecksum(reply, 0, IPV4_MIN_HEADER_LENGTH));
  const icmp = IPV4_MIN_HEADER_LENGTH;
  reply[icmp] = ICMP_DEST_UNREACHABLE;
  reply[icmp + 1] = ICMP_NET_UNREACHABLE;
  // bytes icmp+2..3 checksum, icmp+4..7 unused (zero)
  reply.set(original.subarray(0, quoted), icmp + 8);
  writeU16(reply, icmp + 2, internetChecksum(reply, icmp, icmpLength));
  return reply;
}

// ---------------------------------------------------------------------------------------------------------
// Prefix table (longest-prefix match), the same shape as the engine's: one hash map per prefix length,
// probed from the longest length down, so a lookup costs one probe per distinct length (usually one).

export interface Ipv4Prefix {
  /** Network address as an unsigned 32-bit integer, host bits zero. */
  network: number;
  prefixLength: number;
}

export function prefixMask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export function prefixContains(prefix: Ipv4Prefix, address: number): boolean {
  return (address & prefixMask(prefix.prefixLength)) >>> 0 === prefix.network;
}

export class PrefixTable<T> {
  private readonly byLength = new Map<number, Map<number, T>>();
  private readonly lengthsLongestFirst: number[];

  /** Later entries with the same prefix replace earlier ones. Host bits must be zero. */
  constructor(entries: Iterable<{ prefix: Ipv4Prefix; value: T }>) {
    for (const { prefix, value } of entries) {
      if ((prefix.network & prefixMask(prefix.prefixLength)) >>> 0 !== prefix.network) {
        throw new PrefixHostBitsError(prefix);
      }
      let table = this.byLength.get(prefix.prefixLength);
      if (!table) {
        table = new Map();
        this.byLength.set(prefix.prefixLength, table);
      }
      table.set(prefix.network, value);
    }
    this.lengthsLongestFirst = [...this.byLength.keys()].sort((a, b) => b - a);
  }

  lookup(address: number): T | undefined {
    for (const length of this.lengthsLongestFirst) {
      const hit = this.byLength.get(length)!.get((address & prefixMask(length)) >>> 0);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}

export class PrefixHostBitsError extends Error {
  constructor(prefix: Ipv4Prefix) {
    super(
      `prefix ${formatIpv4(prefix.network)}/${prefix.prefixLength} has host bits set; ` +
        `expected the network address ${formatIpv4((prefix.network & prefixMask(prefix.prefixLength)) >>> 0)}`,
    );
    this.name = 'PrefixHostBitsError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// The two per-packet decisions of the engine.

export interface Peer {
  subnet: Ipv4Prefix;
  /** Public (underlay) address and UDP port of the peer's engine. */
  address: number;
  port: number;
}

/** The routing state both directions read: peers by subnet (longest prefix) and by sender address:port. */
export class PeerTable {
  readonly routes: PrefixTable<Peer>;
  private readonly senders: Set<string>;

  constructor(readonly peers: readonly Peer[]) {
    this.routes = new PrefixTable(peers.map((peer) => ({ prefix: peer.subnet, value: peer })));
    this.senders = new Set(peers.map((peer) => senderKey(peer.address, peer.port)));
  }

  isKnownSender(address: number, port: number): boolean {
    return this.senders.has(senderKey(address, port));
  }
}

export type TunPacketDecision =
  | { action: 'send'; peer: Peer; packet: Uint8Array }
  | { action: 'reply'; reply: Uint8Array; reason: 'noRoute' }
  | { action: 'drop'; reason: DropReason };

/**
 * What the engine does with a packet read from the TUN: route it to the peer whose subnet holds the
 * destination (longest prefix), TTL decremented in place; no peer → drop as noRoute, with an ICMP
 * net-unreachable to write back into the TUN when allowed.
 */
export function decideTunPacket(packet: Uint8Array, table: PeerTable, ownAddress: number): TunPacketDecision {
  const parsed = parseIpv4Header(packet);
  if (!parsed.ok) return { action: 'drop', reason: dropReasonOf(parsed.reason) };
  const inner = packet.subarray(0, parsed.header.totalLength);
  const peer = table.routes.lookup(parsed.header.destination);
  if (!peer) {
    const reply = buildNetUnreachable(inner, ownAddress);
    return reply ? { action: 'reply', reply, reason: 'noRoute' } : { action: 'drop', reason: 'noRoute' };
  }
  if (!decrementTtl(inner)) return { action: 'drop', reason: 'ttlExpired' };
  return { action: 'send', peer, packet: inner };
}

export type PeerDatagramDecision =
  | { action: 'deliver'; packet: Uint8Array }
  | { action: 'drop'; reason: DropReason };

/**
 * What the engine does with a datagram received from `senderAddress:senderPort`. Checks in this order:
 * the sender is some peer's address and port (unknownPeer); the payload is a valid IPv4 packet with a good
 * header checksum (malformed/notIpv4); the inner source lies in the subnet of that same peer, by longest
 * prefix (spoofedSource); the inner destination lies in `ownSubnet` when given (wrongDestination); TTL
 * (ttlExpired). A delivered packet has its TTL decremented in place.
 */
export function decidePeerDatagram(
  datagram: Uint8Array,
  senderAddress: number,
  senderPort: number,
  table: PeerTable,
  ownSubnet: Ipv4Prefix | undefined,
): PeerDatagramDecision {
  if (!table.isKnownSender(senderAddress, senderPort)) return { action: 'drop', reason: 'unknownPeer' };
  const parsed = parseIpv4Header(datagram);
  if (!parsed.ok) return { action: 'drop', reason: dropReasonOf(parsed.reason) };
  const { header } = parsed;
  if (!ipv4HeaderChecksumValid(datagram, header.headerLength)) return { action: 'drop', reason: 'malformed' };
  const owner = table.routes.lookup(header.source);
  if (!owner || owner.address !== senderAddress || owner.port !== senderPort) {
    return { action: 'drop', reason: 'spoofedSource' };
  }
  if (ownSubnet && !prefixContains(ownSubnet, header.destination)) {
    return { action: 'drop', reason: 'wrongDestination' };
  }
  const inner = datagram.subarray(0, header.totalLength);
  if (!decrementTtl(inner)) return { action: 'drop', reason: 'ttlExpired' };
  return { action: 'deliver', packet: inner };
}

export function senderKey(address: number, port: number): string {
  return `${address}:${port}`;
}

// ---------------------------------------------------------------------------------------------------------
// Address text <-> integers (kept local: the engine's API takes text and this module must stay dependency-free).

export class Ipv4AddressError extends Error {
  constructor(text: string, what: string) {
    super(
      `invalid IPv4 ${what} ${JSON.stringify(text)}: expected ${what === 'prefix' ? 'a.b.c.d/len' : 'a.b.c.d'}`,
    );
    this.name = 'Ipv4AddressError';
  }
}

export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) throw new Ipv4AddressError(text, 'address');
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) throw new Ipv4AddressError(text, 'address');
    const octet = Number(part);
    if (octet > 255) throw new Ipv4AddressError(text, 'address');
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.');
}

/** Parses `a.b.c.d/len`; host bits must be zero. */
export function parseIpv4Prefix(text: string): Ipv4Prefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Ipv4AddressError(text, 'prefix');
  const lengthText = text.slice(slash + 1);
  if (!/^(\d|[12]\d|3[0-2])$/.test(lengthText)) throw new Ipv4AddressError(text, 'prefix');
  const prefix = { network: parseIpv4(text.slice(0, slash)), prefixLength: Number(lengthText) };
  if ((prefix.network & prefixMask(prefix.prefixLength)) >>> 0 !== prefix.network) {
    throw new PrefixHostBitsError(prefix);
  }
  return prefix;
}

function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>>
    0
  );
}

function writeU16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = (value >>> 8) & 0xff;
  bytes[offset + 1] = value & 0xff;
}

function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}
