// Canonical text forms and keys for kernel entries, so desired and observed states compare with `===`.
import {
  type Cidr,
  type Family,
  formatIp,
  InvalidAddressError,
  type IpAddress,
  parseIp,
  parseMac,
} from '../ip/index.js';
import type { AddressEntry, FdbEntry, NeighborEntry, RouteEntry } from './types.js';

/** Linux allows almost anything in a device name; iproute2's batch tokenizer does not (spaces, quotes, `#`). */
const DEVICE_NAME = /^[A-Za-z0-9_.@+=-]{1,15}$/;

/** True for a device name that is valid for the kernel (≤ 15 characters) and safe in an iproute2 batch line. */
export function isValidDeviceName(name: unknown): name is string {
  return typeof name === 'string' && DEVICE_NAME.test(name) && name !== '.' && name !== '..';
}

/** The family of an address or CIDR text (by the presence of `:`). */
export function familyOfText(text: string): Family {
  return text.includes(':') ? 6 : 4;
}

// Fast paths: parsing through ip-num costs tens to hundreds of microseconds per address, which adds up to
// seconds for a dump or plan of thousands of entries. These parse the usual forms directly and fall back to
// `parseIp` (with its precise errors) for anything else.
const V4_OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const V4_TEXT = new RegExp(`^${V4_OCTET}(?:[.]${V4_OCTET}){3}$`);
const V6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

function v4Value(text: string): number {
  const [a, b, c, d] = text.split('.').map(Number) as [number, number, number, number];
  return a * 0x1000000 + b * 0x10000 + c * 0x100 + d;
}

function v6Part(part: string, allowV4Tail: boolean): number[] | undefined {
  if (part === '') return [];
  const out: number[] = [];
  const pieces = part.split(':');
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if (allowV4Tail && i === pieces.length - 1 && piece.includes('.')) {
      if (!V4_TEXT.test(piece)) return undefined;
      const v = v4Value(piece);
      out.push(Math.floor(v / 0x10000), v % 0x10000);
    } else if (HEX_GROUP.test(piece)) {
      out.push(Number.parseInt(piece, 16));
    } else {
      return undefined;
    }
  }
  return out;
}

/** The eight 16-bit groups of an IPv6 text, or undefined when it is not a plain IPv6 address. */
function v6Groups(text: string): number[] | undefined {
  if (!V6_CHARS.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  if (halves.length === 1) {
    const groups = v6Part(text, true);
    return groups !== undefined && groups.length === 8 ? groups : undefined;
  }
  const head = v6Part(halves[0]!, false);
  const tail = v6Part(halves[1]!, true);
  if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Parses an address quickly; the same result (and, via the fallback, the same errors) as `parseIp`. */
export function fastParseIp(text: string): IpAddress {
  if (typeof text === 'string') {
    if (V4_TEXT.test(text)) return { family: 4, value: BigInt(v4Value(text)) };
    const groups = text.includes(':') ? v6Groups(text) : undefined;
    if (groups !== undefined) {
      let value = 0n;
      for (const g of groups) value = (value << 16n) | BigInt(g);
      return { family: 6, value };
    }
  }
  return parseIp(text);
}

/** True when `text` is an address (of `family`, when given). */
export function isIpText(text: unknown, family?: Family): text is string {
  if (typeof text !== 'string') return false;
  try {
    const ip = fastParseIp(text);
    return family === undefined || ip.family === family;
  } catch {
    return false;
  }
}

function maskValue(family: Family, value: bigint, prefix: number): bigint {
  const bits = family === 4 ? 32 : 128;
  const all = (1n << BigInt(bits)) - 1n;
  const mask = prefix === 0 ? 0n : (all << BigInt(bits - prefix)) & all;
  return value & mask;
}

function splitPrefix(text: string): { ip: IpAddress; prefix: number } {
  const slash = text.indexOf('/');
  if (slash < 0) throw new InvalidAddressError(`"${text}" is not a CIDR (expected address/prefix-length)`);
  const ip = fastParseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new InvalidAddressError(`"${text}" has an invalid prefix length (expected 0..${max})`);
  }
  return { ip, prefix: Number(lenText) };
}

/** Parses a CIDR quickly, host bits masked (as `parseCidr`). A bare address is a host route. */
export function fastParseCidr(text: string): Cidr {
  const withPrefix = text.includes('/') ? text : `${text}/${familyOfText(text) === 4 ? 32 : 128}`;
  const { ip, prefix } = splitPrefix(withPrefix);
  return { family: ip.family, value: maskValue(ip.family, ip.value, prefix), prefix };
}

/** Canonical network text: host bits masked, `10.5.2.0/24`, `fd00:5:2::/64`. A bare address is a host route. */
export function canonicalNetwork(text: string): string {
  const c = fastParseCidr(text);
  return `${formatIp(c)}/${c.prefix}`;
}

/** Canonical interface-address text: host bits kept (`10.5.1.1/24`). */
export function canonicalInterfaceAddress(text: string): string {
  const { ip, prefix } = splitPrefix(text);
  return `${formatIp(ip)}/${prefix}`;
}

/** Canonical address text (dotted quad; RFC 5952 IPv6). */
export function canonicalIpText(text: string): string {
  if (typeof text === 'string' && V4_TEXT.test(text)) return text;
  return formatIp(fastParseIp(text));
}

export function canonicalMacText(text: string): string {
  return parseMac(text);
}

/** The kernel's metric when none is given: IPv4 0, IPv6 1024. */
export function defaultMetric(family: Family): number {
  return family === 4 ? 0 : 1024;
}

/** Identity of a route in the main table: destination and metric (what `ip route replace` matches on). */
export function routeKey(route: RouteEntry): string {
  return `${route.dst}|${route.metric ?? defaultMetric(familyOfText(route.dst))}`;
}

export function addressKey(address: AddressEntry): string {
  return `${address.dev}|${address.cidr}`;
}

export function neighborKey(neighbor: NeighborEntry): string {
  return `${neighbor.dev}|${neighbor.ip}`;
}

/** A unicast MAC has one remote per VXLAN device (the kernel ignores `append` for it). */
export function fdbMacKey(fdb: FdbEntry): string {
  return `${fdb.dev}|${fdb.mac}`;
}

/** True when two routes with the same key route the same way. */
export function sameRouteTarget(a: RouteEntry, b: RouteEntry): boolean {
  return a.dev === b.dev && (a.via ?? '') === (b.via ?? '') && (a.onlink ?? false) === (b.onlink ?? false);
}
