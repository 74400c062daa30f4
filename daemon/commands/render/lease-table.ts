// `weftctl leases`: the lease table and the lease as plain JSON.
import { formatCidr } from '../../../src/ip/index.js';
import type { Lease } from '../../../src/lease/index.js';
import { renderColumns } from './columns.js';

/** `23h59m`, `4m05s`, `42s`, `expired`; `reservation` for a lease without expiry. */
export function formatExpiresIn(expiration: Date | null | undefined, now: Date): string {
  if (expiration === null) return 'reservation';
  if (expiration === undefined) return 'unknown';
  const seconds = Math.floor((expiration.getTime() - now.getTime()) / 1000);
  if (seconds <= 0) return 'expired';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

function sortKey(lease: Lease): [number, bigint] {
  const c = lease.subnet ?? lease.ipv6Subnet;
  return [c?.family ?? 9, c?.value ?? 0n];
}

/** Leases ordered by subnet (IPv4 first), for stable output. */
export function sortLeases(leases: readonly Lease[]): Lease[] {
  return [...leases].sort((a, b) => {
    const [fa, va] = sortKey(a);
    const [fb, vb] = sortKey(b);
    if (fa !== fb) return fa - fb;
    return va < vb ? -1 : va > vb ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  });
}

function vtepMac(data: Record<string, unknown> | undefined): string | undefined {
  const mac = data?.VtepMAC;
  return typeof mac === 'string' ? mac : undefined;
}

/**
 * A plain-text table: SUBNET, (IPV6 SUBNET), PUBLIC IP, (PUBLIC IPV6), BACKEND, VTEP MAC, EXPIRES IN.
 * The IPv6 columns appear only when some lease has them.
 */
export function renderLeaseTable(leases: readonly Lease[], now: Date): string {
  const sorted = sortLeases(leases);
  const anyV6Subnet = sorted.some((l) => l.ipv6Subnet);
  const anyV6Ip = sorted.some((l) => l.attrs.publicIPv6);
  const header = [
    'SUBNET',
    ...(anyV6Subnet ? ['IPV6 SUBNET'] : []),
    'PUBLIC IP',
    ...(anyV6Ip ? ['PUBLIC IPV6'] : []),
    'BACKEND',
    'VTEP MAC',
    'EXPIRES IN',
  ];
  const rows = sorted.map((l) => {
    const mac = [vtepMac(l.attrs.backendData), vtepMac(l.attrs.backendV6Data)].filter(Boolean);
    return [
      l.subnet ? formatCidr(l.subnet) : '-',
      ...(anyV6Subnet ? [l.ipv6Subnet ? formatCidr(l.ipv6Subnet) : '-'] : []),
      l.attrs.publicIP || '-',
      ...(anyV6Ip ? [l.attrs.publicIPv6 ?? '-'] : []),
      l.attrs.backendType ?? '-',
      mac.length > 0 ? [...new Set(mac)].join(',') : '-',
      formatExpiresIn(l.expiration, now),
    ];
  });
  return `${renderColumns(header, rows)}\n`;
}

/** One lease as plain JSON (for `-o json`): strings, numbers and null only. */
export function leaseToJson(lease: Lease, now: Date): Record<string, unknown> {
  return {
    key: lease.key,
    subnet: lease.subnet ? formatCidr(lease.subnet) : null,
    ipv6Subnet: lease.ipv6Subnet ? formatCidr(lease.ipv6Subnet) : null,
    publicIP: lease.attrs.publicIP || null,
    publicIPv6: lease.attrs.publicIPv6 ?? null,
    backendType: lease.attrs.backendType ?? null,
    backendData: lease.attrs.backendData ?? null,
    backendV6Data: lease.attrs.backendV6Data ?? null,
    reservation: lease.expiration === null,
    expiration: lease.expiration ? lease.expiration.toISOString() : null,
    expiresInSeconds: lease.expiration
      ? Math.max(0, Math.floor((lease.expiration.getTime() - now.getTime()) / 1000))
      : null,
    revision: lease.revision ?? null,
  };
}
