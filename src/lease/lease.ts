import { type Cidr, containsCidr, formatCidr } from '../ip/index.js';
import { decodeLeaseAttrs, InvalidLeaseValueError, leaseAttrsEqual } from './attrs.js';
import { InvalidLeaseKeyError, parseLeaseKey } from './key.js';
import type { Lease, LeaseEvent } from './types.js';

/**
 * The parts of a network config that decide whether a lease fits (structurally `NetworkConfig` from
 * `src/config`; declared here so `lease/` depends on `ip/` only).
 */
export interface LeaseFamilyNetwork {
  network: Cidr;
  subnetLen: number;
  subnetMin: Cidr;
  subnetMax: Cidr;
}

export interface LeaseNetworkConfig {
  ipv4?: LeaseFamilyNetwork | undefined;
  ipv6?: LeaseFamilyNetwork | undefined;
}

/** A stored lease that cannot be used: its key, and why. Callers log it and skip the lease. */
export class InvalidLeaseError extends Error {
  override name = 'InvalidLeaseError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`lease ${JSON.stringify(key.length > 120 ? `${key.slice(0, 117)}...` : key)} skipped: ${reason}`);
  }
}

export interface StoredLease {
  /** Key suffix after `<prefix>/subnets/`. */
  key: string;
  /** The stored value (JSON text). */
  value: string;
  expiration: Date | null;
  revision?: string;
}

/** Decodes one stored key/value into a Lease. Throws `InvalidLeaseError` (key + reason); never anything else. */
export function decodeLease(stored: StoredLease): Lease {
  let subnets: ReturnType<typeof parseLeaseKey>;
  try {
    subnets = parseLeaseKey(stored.key);
  } catch (err) {
    throw new InvalidLeaseError(stored.key, err instanceof InvalidLeaseKeyError ? err.reason : String(err));
  }
  let attrs: ReturnType<typeof decodeLeaseAttrs>;
  try {
    attrs = decodeLeaseAttrs(stored.value);
  } catch (err) {
    throw new InvalidLeaseError(
      stored.key,
      err instanceof InvalidLeaseValueError ? err.message : String(err),
    );
  }
  const lease: Lease = { key: stored.key, attrs, expiration: stored.expiration };
  if (subnets.subnet) lease.subnet = subnets.subnet;
  if (subnets.ipv6Subnet) lease.ipv6Subnet = subnets.ipv6Subnet;
  if (stored.revision !== undefined) lease.revision = stored.revision;
  return lease;
}

function fitsFamily(subnet: Cidr, net: LeaseFamilyNetwork, label: string): string | undefined {
  if (!containsCidr(net.network, subnet)) {
    return `${label} subnet ${formatCidr(subnet)} is outside the network ${formatCidr(net.network)}`;
  }
  if (subnet.prefix !== net.subnetLen) {
    return `${label} subnet ${formatCidr(subnet)} has prefix length /${subnet.prefix}, the network uses /${net.subnetLen}`;
  }
  return undefined;
}

/**
 * Why a (peer) lease cannot be used with this network config, or undefined when it can. The subnet of each
 * enabled family that the lease carries must lie inside that family's Network with its SubnetLen; the lease
 * must carry a subnet of at least one enabled family, and a public address for each subnet it is used for.
 */
export function leaseMisfit(lease: Lease, config: LeaseNetworkConfig): string | undefined {
  const v4 = config.ipv4 && lease.subnet ? lease.subnet : undefined;
  const v6 = config.ipv6 && lease.ipv6Subnet ? lease.ipv6Subnet : undefined;
  if (!v4 && !v6) {
    const enabled = [config.ipv4 ? 'IPv4' : '', config.ipv6 ? 'IPv6' : ''].filter(Boolean).join(' or ');
    return `carries no ${enabled} subnet`;
  }
  if (v4 && config.ipv4) {
    const reason = fitsFamily(v4, config.ipv4, 'IPv4');
    if (reason) return reason;
    if (lease.attrs.publicIP === '') return 'has an IPv4 subnet but no PublicIP';
  }
  if (v6 && config.ipv6) {
    const reason = fitsFamily(v6, config.ipv6, 'IPv6');
    if (reason) return reason;
    if (!lease.attrs.publicIPv6 && lease.attrs.publicIP === '')
      return 'has an IPv6 subnet but no public address';
  }
  return undefined;
}

/**
 * True when this node may keep using the lease as its own (flannel's `isSubnetConfigCompat`): each enabled
 * family's subnet is present, between SubnetMin and SubnetMax, with SubnetLen; no subnet of a disabled family.
 */
export function leaseFitsOwnAllocation(
  subnets: { subnet?: Cidr; ipv6Subnet?: Cidr },
  config: LeaseNetworkConfig,
): boolean {
  const inRange = (s: Cidr | undefined, net: LeaseFamilyNetwork | undefined): boolean => {
    if (!net) return s === undefined;
    return (
      s !== undefined &&
      s.family === net.network.family &&
      s.prefix === net.subnetLen &&
      s.value >= net.subnetMin.value &&
      s.value <= net.subnetMax.value
    );
  };
  return inRange(subnets.subnet, config.ipv4) && inRange(subnets.ipv6Subnet, config.ipv6);
}

function sameLease(a: Lease, b: Lease): boolean {
  return leaseAttrsEqual(a.attrs, b.attrs);
}

/**
 * Events that turn `before` into `after` (both keyed by lease key): `added`, `removed`, and `changed` when
 * the attributes differ (a new VtepMAC or PublicIP must reach the kernel; flannel's diff only compares
 * subnets). A change of expiry alone (a renewal) is not an event. Sorted by key for stable output.
 */
export function diffLeases(
  before: ReadonlyMap<string, Lease>,
  after: ReadonlyMap<string, Lease>,
): LeaseEvent[] {
  const events: LeaseEvent[] = [];
  for (const [key, lease] of before) {
    if (!after.has(key)) events.push({ type: 'removed', lease });
  }
  for (const [key, lease] of after) {
    const old = before.get(key);
    if (!old) events.push({ type: 'added', lease });
    else if (!sameLease(old, lease)) events.push({ type: 'changed', lease });
  }
  return events.sort((a, b) => (a.lease.key < b.lease.key ? -1 : a.lease.key > b.lease.key ? 1 : 0));
}
