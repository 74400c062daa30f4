/** Address family: 4 or 6. */
export type Family = 4 | 6;

/** An IP address as a family plus its numeric value (network byte order, as a bigint). */
export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

/** A CIDR network with host bits cleared. */
export interface Cidr {
  readonly family: Family;
  /** Network address (host bits zero). */
  readonly value: bigint;
  readonly prefix: number;
}

export class InvalidAddressError extends Error {
  override name = 'InvalidAddressError';
}

export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

function computeMask(family: Family, prefix: number): bigint {
  const bits = bitsOf(family);
  const all = (1n << BigInt(bits)) - 1n;
  return prefix === 0 ? 0n : (all << BigInt(bits - prefix)) & all;
}

/** Every mask, computed once: planners mask thousands of subnets per pass, and BigInt shifts allocate. */
const MASKS: Record<Family, readonly bigint[]> = {
  4: Array.from({ length: 33 }, (_, p) => computeMask(4, p)),
  6: Array.from({ length: 129 }, (_, p) => computeMask(6, p)),
};

function maskOf(family: Family, prefix: number): bigint {
  return MASKS[family][prefix] ?? computeMask(family, prefix);
}

// One strict decimal octet 0-255 without leading zeros ("010" is ambiguous: octal or decimal).
const V4_OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const V4_TEXT = new RegExp(`^${V4_OCTET}(?:[.]${V4_OCTET}){3}$`);

/** The value of a dotted quad already checked by V4_TEXT (digit by digit: no arrays on the hot path). */
function v4Value(text: string): number {
  let value = 0;
  let octet = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      value = value * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return value * 256 + octet;
}

/**
 * Parses an IPv4 or IPv6 address: weft's one IP parser, on every hot path (lease decoding, kernel dumps, plans
 * of thousands of entries). Rejects leading zeros in IPv4 octets ("010.1.2.3": octal or decimal?), zone ids
 * and prefixes.
 */
export function parseIp(text: string): IpAddress {
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) {
    throw new InvalidAddressError(`expected an IP address, found ${JSON.stringify(text)}`);
  }
  if (V4_TEXT.test(text)) return { family: 4, value: BigInt(v4Value(text)) };
  if (text.includes(':')) {
    const value = parseIpv6Value(text);
    if (value === undefined) throw new InvalidAddressError(`"${text}" is not a valid IPv6 address`);
    return { family: 6, value };
  }
  throw new InvalidAddressError(`"${text}" is not a valid IPv4 address (expected four decimal octets 0-255)`);
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * RFC 4291 text → value, or undefined. Hand-written: ip-num's object-based parse costs ~25 µs per address;
 * ip-num stays the oracle in tests. Accepts `::` compression and a trailing dotted IPv4 (`::ffff:192.0.2.1`);
 * rejects zone ids and prefixes.
 */
function parseIpv6Value(text: string): bigint | undefined {
  const gap = text.indexOf('::');
  if (gap >= 0 && text.indexOf('::', gap + 1) >= 0) return undefined;
  const headText = gap >= 0 ? text.slice(0, gap) : text;
  const tailText = gap >= 0 ? text.slice(gap + 2) : '';
  const head = headText === '' ? [] : headText.split(':');
  const tail = tailText === '' ? [] : tailText.split(':');
  const groups: number[] = [];
  const pushGroups = (parts: string[], isLast: boolean): boolean => {
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (isLast && i === parts.length - 1 && part.includes('.')) {
        if (!V4_TEXT.test(part)) return false;
        const v4 = v4Value(part);
        groups.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
        continue;
      }
      if (!HEX_GROUP.test(part)) return false;
      groups.push(Number.parseInt(part, 16));
    }
    return true;
  };
  if (!pushGroups(head, gap < 0)) return undefined;
  const headCount = groups.length;
  if (!pushGroups(tail, true)) return undefined;
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return undefined;
  const zeros = 8 - groups.length;
  groups.splice(headCount, 0, ...new Array<number>(zeros).fill(0));
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** True when `text` parses as an address of the given family (any family when omitted). */
export function isIp(text: unknown, family?: Family): text is string {
  if (typeof text !== 'string') return false;
  try {
    const ip = parseIp(text);
    return family === undefined || ip.family === family;
  } catch {
    return false;
  }
}

/** Formats an address: dotted quad, or RFC 5952 compressed lower-case IPv6. */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups (length >= 2) becomes "::" (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** Normalises an address string (e.g. upper-case or expanded IPv6) to its canonical text. */
export function canonicalIp(text: string): string {
  // A valid dotted quad is already canonical: no bigint round trip on the hot path.
  if (typeof text === 'string' && V4_TEXT.test(text)) return text;
  return formatIp(parseIp(text));
}

export interface ParseCidrOptions {
  /** Reject host bits instead of masking them (the bridge/host-local plugins reject them). Default false. */
  strict?: boolean;
}

/** Parses "a.b.c.d/len" or "v6/len". Host bits are masked unless `strict`. */
export function parseCidr(text: string, options: ParseCidrOptions = {}): Cidr {
  if (typeof text !== 'string') throw new InvalidAddressError(`expected a CIDR string, found ${typeof text}`);
  const slash = text.indexOf('/');
  if (slash < 0) throw new InvalidAddressError(`"${text}" is not a CIDR (expected address/prefix-length)`);
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const max = bitsOf(ip.family);
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new InvalidAddressError(`"${text}" has an invalid prefix length (expected 0..${max})`);
  }
  const prefix = Number(lenText);
  const value = ip.value & maskOf(ip.family, prefix);
  if (options.strict && value !== ip.value) {
    throw new InvalidAddressError(
      `"${text}" has host bits set (the network address is ${formatIp({ family: ip.family, value })}/${prefix})`,
    );
  }
  return { family: ip.family, value, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.prefix}`;
}

export function cidr(family: Family, value: bigint, prefix: number): Cidr {
  return { family, value: value & maskOf(family, prefix), prefix };
}

/** Number of addresses in the network. */
export function sizeOf(c: Cidr): bigint {
  return 1n << BigInt(bitsOf(c.family) - c.prefix);
}

/** Last address in the network (broadcast for IPv4). */
export function lastAddress(c: Cidr): IpAddress {
  return { family: c.family, value: c.value + sizeOf(c) - 1n };
}

export function containsIp(c: Cidr, ip: IpAddress): boolean {
  return c.family === ip.family && (ip.value & maskOf(c.family, c.prefix)) === c.value;
}

/** True when `inner` lies entirely inside `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && inner.prefix >= outer.prefix && containsIp(outer, inner);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return containsCidr(a, b) || containsCidr(b, a);
}

export function cidrEquals(a: Cidr | undefined, b: Cidr | undefined): boolean {
  if (!a || !b) return a === b;
  return a.family === b.family && a.value === b.value && a.prefix === b.prefix;
}

/** The address `offset` past the network address (e.g. offset 1 = flannel's gateway/first usable address). */
export function addressAt(c: Cidr, offset: bigint): IpAddress {
  return { family: c.family, value: c.value + offset };
}

/** The network address as an IpAddress. */
export function networkAddress(c: Cidr): IpAddress {
  return { family: c.family, value: c.value };
}

/** The subnet of length `len` that follows `c` (same length). */
export function nextSubnet(c: Cidr): Cidr {
  return { family: c.family, value: c.value + sizeOf(c), prefix: c.prefix };
}

/** Iterates the subnets of length `len` from `first` to `last` inclusive (both must have length `len`). */
export function* subnetsBetween(first: Cidr, last: Cidr): Generator<Cidr> {
  for (let s = first; s.value <= last.value; s = nextSubnet(s)) yield s;
}
