// Canonical text forms and keys for kernel entries, so desired and observed states compare with `===`.
import {
  type Cidr,
  type Family,
  formatIp,
  InvalidAddressError,
  type IpAddress,
  parseCidr,
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

function splitPrefix(text: string): { ip: IpAddress; prefix: number } {
  const slash = text.indexOf('/');
  if (slash < 0) throw new InvalidAddressError(`"${text}" is not a CIDR (expected address/prefix-length)`);
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new InvalidAddressError(`"${text}" has an invalid prefix length (expected 0..${max})`);
  }
  return { ip, prefix: Number(lenText) };
}

/** A route destination as the kernel prints it: a CIDR, host bits masked, or a bare address (a host route). */
export function parseRouteDst(text: string): Cidr {
  return parseCidr(text.includes('/') ? text : `${text}/${familyOfText(text) === 4 ? 32 : 128}`);
}

/** Canonical network text: host bits masked, `10.5.2.0/24`, `fd00:5:2::/64`. A bare address is a host route. */
export function canonicalNetwork(text: string): string {
  const c = parseRouteDst(text);
  return `${formatIp(c)}/${c.prefix}`;
}

/** Canonical interface-address text: host bits kept (`10.5.1.1/24`). */
export function canonicalInterfaceAddress(text: string): string {
  const { ip, prefix } = splitPrefix(text);
  return `${formatIp(ip)}/${prefix}`;
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
