import { type Cidr, type Family, formatIp, InvalidAddressError, parseIp } from '../ip/index.js';

/** A lease key that is not flannel's `<a.b.c.d>-<len>[&<v6>-<len>]`. Names the key and what is wrong. */
export class InvalidLeaseKeyError extends Error {
  override name = 'InvalidLeaseKeyError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`lease key ${JSON.stringify(key.length > 120 ? `${key.slice(0, 117)}...` : key)}: ${reason}`);
  }
}

/** The subnet(s) a lease key names. At least one is present. */
export interface LeaseKeySubnets {
  subnet?: Cidr;
  ipv6Subnet?: Cidr;
}

/** Longest key accepted: a full dual-stack key is at most 15+3+1+39+4 characters. */
const MAX_KEY_LENGTH = 80;

const V4_PART = '([0-9]{1,3}(?:\\.[0-9]{1,3}){3})-([0-9]{1,2})';
const V6_PART = '([0-9a-f:]{2,39})-([0-9]{1,3})';
const DUAL_KEY = new RegExp(`^${V4_PART}(?:&${V6_PART})?$`);
const V6_ONLY_KEY = new RegExp(`^${V6_PART}$`);

/**
 * Formats a lease key: `10.5.52.0-24`, dual stack `10.5.52.0-24&fd00:5:34::-64` (lower-case, compressed
 * IPv6, as flannel's `MakeSubnetKey` writes it), IPv6 only `fd00:5:34::-64`.
 */
export function formatLeaseKey(subnets: LeaseKeySubnets): string {
  const { subnet, ipv6Subnet } = subnets;
  if (subnet && subnet.family !== 4) throw new RangeError('lease key: subnet must be an IPv4 CIDR');
  if (ipv6Subnet && ipv6Subnet.family !== 6)
    throw new RangeError('lease key: ipv6Subnet must be an IPv6 CIDR');
  const v4 = subnet ? `${formatIp(subnet)}-${subnet.prefix}` : undefined;
  const v6 = ipv6Subnet ? `${formatIp(ipv6Subnet)}-${ipv6Subnet.prefix}` : undefined;
  if (v4 && v6) return `${v4}&${v6}`;
  if (v4) return v4;
  if (v6) return v6;
  throw new RangeError('lease key: at least one of subnet and ipv6Subnet is required');
}

/**
 * Parses a lease key (the part after `<prefix>/subnets/`). Strict: the address must be the network
 * address in canonical text (no host bits, no leading zeros, lower-case compressed IPv6), so that
 * `formatLeaseKey(parseLeaseKey(k)) === k` for every key accepted.
 */
export function parseLeaseKey(key: string): LeaseKeySubnets {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidLeaseKeyError(String(key), 'empty key');
  if (key.length > MAX_KEY_LENGTH) {
    throw new InvalidLeaseKeyError(key, `too long (${key.length} characters, at most ${MAX_KEY_LENGTH})`);
  }
  const dual = DUAL_KEY.exec(key);
  let out: LeaseKeySubnets;
  if (dual) {
    out = { subnet: partToCidr(key, dual[1] ?? '', dual[2] ?? '', 4) };
    if (dual[3] !== undefined) out.ipv6Subnet = partToCidr(key, dual[3], dual[4] ?? '', 6);
  } else {
    const v6 = V6_ONLY_KEY.exec(key);
    if (!v6) {
      throw new InvalidLeaseKeyError(
        key,
        'expected <IPv4 network>-<prefix length>, optionally followed by &<IPv6 network>-<prefix length> ' +
          '(e.g. 10.5.52.0-24 or 10.5.52.0-24&fd00:5:34::-64), or <IPv6 network>-<prefix length>',
      );
    }
    out = { ipv6Subnet: partToCidr(key, v6[1] ?? '', v6[2] ?? '', 6) };
  }
  const canonical = formatLeaseKey(out);
  if (canonical !== key) {
    throw new InvalidLeaseKeyError(key, `not in canonical form (expected ${JSON.stringify(canonical)})`);
  }
  return out;
}

function partToCidr(key: string, addressText: string, lengthText: string, family: Family): Cidr {
  let value: bigint;
  try {
    const ip = parseIp(addressText);
    if (ip.family !== family)
      throw new InvalidAddressError(`"${addressText}" is not an IPv${family} address`);
    value = ip.value;
  } catch (err) {
    throw new InvalidLeaseKeyError(key, (err as Error).message);
  }
  const bits = family === 4 ? 32 : 128;
  const prefix = Number(lengthText);
  if (!/^(0|[1-9][0-9]*)$/.test(lengthText) || prefix > bits) {
    throw new InvalidLeaseKeyError(key, `prefix length "${lengthText}" is not in 0..${bits}`);
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n) {
    const network = formatIp({ family, value: value & ~hostMask });
    throw new InvalidLeaseKeyError(
      key,
      `host bits set: the key must name the network address (${network}-${prefix}), not ${addressText}`,
    );
  }
  return { family, value, prefix };
}
