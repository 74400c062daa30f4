// Reading peer leases for the planners: per-family subnet and public address, backend data (case-insensitive,
// as Go's decoder reads it), on-link tests, and the checks every backend shares.
import {
  addressAt,
  type Cidr,
  cidr,
  cidrEquals,
  containsCidr,
  containsIp,
  formatCidr,
  formatIp,
  isMac,
  networkAddress,
} from '../ip/index.js';
import {
  canonicalIpText as canonicalIp,
  type InterfaceAddress,
  isIpText as isIp,
  fastParseIp as parseIp,
} from '../kernel/index.js';
import type { Lease } from '../lease/index.js';
import type { Family, SkippedPeer } from './types.js';

/** A field of a backend-data object, looked up case-insensitively. */
export function dataField(data: Record<string, unknown> | undefined, name: string): unknown {
  if (data === undefined) return undefined;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(data)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

export function subnetOf(lease: Lease, family: Family): Cidr | undefined {
  return family === 4 ? lease.subnet : lease.ipv6Subnet;
}

export function publicIpOf(lease: Lease, family: Family): string | undefined {
  const ip = family === 4 ? lease.attrs.publicIP : lease.attrs.publicIPv6;
  return ip === undefined || ip === '' ? undefined : ip;
}

export function backendDataOf(lease: Lease, family: Family): Record<string, unknown> | undefined {
  return family === 4 ? lease.attrs.backendData : lease.attrs.backendV6Data;
}

/**
 * A peer's tunnel address: the network address of its subnet (IPv4 when it has one, else IPv6), which the
 * peer's tunnel device (`flannel.N`, `flannel0`) carries. The probe address of the tunnelling backends.
 */
export function tunnelAddressOf(peer: Lease): string | undefined {
  const subnet = peer.subnet ?? peer.ipv6Subnet;
  return subnet === undefined ? undefined : formatIp(networkAddress(subnet));
}

/** A peer's bridge gateway: the first address of its subnet (`cni0`, once the peer's CNI set it up). */
export function bridgeGatewayOf(peer: Lease): string | undefined {
  const subnet = peer.subnet ?? peer.ipv6Subnet;
  return subnet === undefined ? undefined : formatIp(addressAt(subnet, 1n));
}

/** A unicast MAC (bit 0 of the first octet clear): a VTEP MAC can never be a group address. */
export function isUnicastMac(mac: unknown): mac is string {
  return isMac(mac) && (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0;
}

/** True when `ip` lies in a subnet directly attached to the interface (reachable without a gateway). */
export function isOnLink(ip: string, addresses: readonly InterfaceAddress[]): boolean {
  const target = parseIp(ip);
  return addresses.some(
    (a) =>
      a.family === target.family &&
      a.scope === 'global' &&
      containsIp(cidr(a.family, parseIp(a.ip).value, a.prefix), target),
  );
}

/** Peers in a stable order (by key), so a plan never depends on watch order. */
export function sortedPeers(peers: readonly Lease[]): Lease[] {
  return [...peers].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** What every backend checks per peer and family before programming it. */
export interface PeerCheck {
  family: Family;
  backendType: string;
  network: Cidr;
  own: Lease;
  ownPublicIp?: string;
}

export type PeerVerdict =
  | { kind: 'self' }
  | { kind: 'skip'; reason: string }
  | { kind: 'ok'; subnet: Cidr; publicIp: string };

/** The shared checks: not the own lease, same backend type, a subnet inside the Network, a public address. */
export function checkPeer(peer: Lease, check: PeerCheck): PeerVerdict {
  const { family, own } = check;
  const ownSubnet = subnetOf(own, family);
  const subnet = subnetOf(peer, family);
  if (peer.key === own.key || (subnet !== undefined && cidrEquals(subnet, ownSubnet)))
    return { kind: 'self' };
  const type = peer.attrs.backendType;
  if (type !== check.backendType) {
    return {
      kind: 'skip',
      reason: type ? `backend type ${type} (this node uses ${check.backendType})` : 'no BackendType',
    };
  }
  if (subnet === undefined) return { kind: 'skip', reason: `no IPv${family} subnet` };
  if (!containsCidr(check.network, subnet)) {
    return {
      kind: 'skip',
      reason: `subnet ${formatCidr(subnet)} is outside the Network ${formatCidr(check.network)}`,
    };
  }
  const publicIp = publicIpOf(peer, family);
  if (publicIp === undefined)
    return { kind: 'skip', reason: `no ${family === 4 ? 'PublicIP' : 'PublicIPv6'}` };
  if (!isIp(publicIp, family)) {
    return {
      kind: 'skip',
      reason: `${family === 4 ? 'PublicIP' : 'PublicIPv6'} ${JSON.stringify(publicIp)} is not an IPv${family} address`,
    };
  }
  const canonical = canonicalIp(publicIp);
  if (check.ownPublicIp !== undefined && canonical === canonicalIp(check.ownPublicIp)) {
    return { kind: 'skip', reason: `PublicIP ${canonical} is this node's own (a stale lease of this node?)` };
  }
  return { kind: 'ok', subnet, publicIp: canonical };
}

/** Collects skipped peers. */
export class SkipList {
  readonly entries: SkippedPeer[] = [];
  add(peer: Lease, family: Family, reason: string): void {
    this.entries.push({ key: peer.key, family, reason });
  }
}
