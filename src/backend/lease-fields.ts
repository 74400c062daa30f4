// Reading the fields of a lease the planners need: per-family subnet, public address and backend data
// (case-insensitive, as Go's decoder reads it), the addresses a peer's devices carry, and what a VTEP MAC must
// look like.
import { addressAt, type Cidr, type Family, formatIp, isMac, networkAddress } from '../ip/index.js';
import type { Lease } from '../lease/index.js';

/** A field of a backend-data object, looked up case-insensitively. */
export function dataField(data: Record<string, unknown> | undefined, name: string): unknown {
  if (data === undefined) return undefined;
  // The exact spelling first (flannel writes `VtepMAC`, `VNI`, `PublicKey`): no scan in the common case.
  if (Object.hasOwn(data, name)) return data[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(data)) if (k.toLowerCase() === lower) return data[k];
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

/** A unicast MAC (bit 0 of the first octet clear): a VTEP MAC can never be a group address. */
export function isUnicastMac(mac: unknown): mac is string {
  return isMac(mac) && (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0;
}

/**
 * A peer's tunnel address: the network address of its subnet (IPv4 when it has one, else IPv6), which the
 * peer's tunnel device (`flannel.N`, `flannel0`, `flannel-wg`) carries. The probe address of the tunnelling backends.
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
