// Stored lease records turned into leases: key and value parsing, fit against the network config, and the
// small predicates acquisition, keeping and watching share.
import type { FamilyNetwork, NetworkConfig } from '../../config/index.js';
import { errorMessage } from '../../core/index.js';
import { type Cidr, canonicalIp, isIp, overlaps } from '../../ip/index.js';
import {
  decodeLeaseAttrs,
  type Lease,
  type LeaseAttrs,
  type LeaseKeySubnets,
  leaseMisfit,
  parseLeaseKey,
} from '../../lease/index.js';
import type { EtcdLeaseStore, RawLeaseRecord } from './store.js';

/** A stored key that was not used, and why. */
export interface SkippedLease {
  key: string;
  reason: string;
}

export interface LeaseListing {
  leases: Lease[];
  skipped: SkippedLease[];
  /** Store revision of the listing. */
  revision: bigint;
}

export interface ParsedRecord {
  record: RawLeaseRecord;
  subnets: LeaseKeySubnets | undefined;
  attrs: LeaseAttrs | undefined;
  reason: string | undefined;
}

/** Parses a record's key and (unless `keyOnly`, e.g. from a keys-only list) its value. */
export function parseRecord(record: RawLeaseRecord, keyOnly = false): ParsedRecord {
  let subnets: LeaseKeySubnets | undefined;
  try {
    subnets = parseLeaseKey(record.key);
  } catch (err) {
    return { record, subnets: undefined, attrs: undefined, reason: errorMessage(err) };
  }
  if (keyOnly) return { record, subnets, attrs: undefined, reason: undefined };
  try {
    return { record, subnets, attrs: decodeLeaseAttrs(record.value), reason: undefined };
  } catch (err) {
    return { record, subnets, attrs: undefined, reason: errorMessage(err) };
  }
}

export function toLease(
  record: RawLeaseRecord,
  subnets: LeaseKeySubnets,
  attrs: LeaseAttrs,
  expiration: Date | null | undefined,
): Lease {
  const lease: Lease = { key: record.key, attrs, expiration, revision: record.modRevision };
  if (subnets.subnet) lease.subnet = subnets.subnet;
  if (subnets.ipv6Subnet) lease.ipv6Subnet = subnets.ipv6Subnet;
  return lease;
}

/**
 * A key only blocks allocation when it is smaller than the whole network: a garbage key such as
 * `0.0.0.0-0` must not make every subnet look taken.
 */
export function blocking(subnet: Cidr | undefined, net: FamilyNetwork | undefined): subnet is Cidr {
  return (
    subnet !== undefined &&
    net !== undefined &&
    subnet.family === net.network.family &&
    subnet.prefix > net.network.prefix
  );
}

export function subnetsOverlap(a: LeaseKeySubnets, b: LeaseKeySubnets): boolean {
  return (
    (a.subnet !== undefined && b.subnet !== undefined && overlaps(a.subnet, b.subnet)) ||
    (a.ipv6Subnet !== undefined && b.ipv6Subnet !== undefined && overlaps(a.ipv6Subnet, b.ipv6Subnet))
  );
}

/** Whether `a` carries the public address of `b` (IPv4, or IPv6 for an IPv6-only node). */
export function samePublicAddress(a: LeaseAttrs, b: LeaseAttrs): boolean {
  if (b.publicIP !== '') return a.publicIP === b.publicIP;
  // An IPv6 address has several spellings (`fd00::2`, `fd00:0:0::2`): compare the canonical ones.
  return b.publicIPv6 !== undefined && a.publicIPv6 !== undefined && sameIp(a.publicIPv6, b.publicIPv6);
}

function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  return isIp(a) && isIp(b) && canonicalIp(a) === canonicalIp(b);
}

/** Why the own key is not ours any more, from what it holds now. */
export function describeChange(current: RawLeaseRecord | undefined): string {
  if (!current) return 'the key no longer exists (deleted or expired)';
  try {
    const attrs = decodeLeaseAttrs(current.value);
    return `the key was rewritten by someone else (PublicIP ${attrs.publicIP || attrs.publicIPv6})`;
  } catch (err) {
    return `the key was overwritten with an invalid value (${errorMessage(err)})`;
  }
}

/**
 * Splits records into usable leases and skipped keys (unparsable, or not fitting `config` when given).
 * Expiries are looked up in etcd (`lookupExpirations`) or taken from what the store already knows.
 */
export async function classifyRecords(
  store: EtcdLeaseStore,
  records: RawLeaseRecord[],
  config: NetworkConfig | undefined,
  lookupExpirations = true,
): Promise<{ leases: Map<string, Lease>; skipped: SkippedLease[] }> {
  const usable: { record: RawLeaseRecord; subnets: LeaseKeySubnets; attrs: LeaseAttrs }[] = [];
  const skipped: SkippedLease[] = [];
  for (const record of records) {
    const parsed = parseRecord(record);
    if (!parsed.subnets || !parsed.attrs) {
      skipped.push({ key: record.key, reason: parsed.reason ?? 'unreadable' });
      continue;
    }
    if (config) {
      const misfit = leaseMisfit(
        { key: record.key, ...parsed.subnets, attrs: parsed.attrs, expiration: null },
        config,
      );
      if (misfit) {
        skipped.push({ key: record.key, reason: `does not fit the network config: ${misfit}` });
        continue;
      }
    }
    usable.push({ record, subnets: parsed.subnets, attrs: parsed.attrs });
  }
  const ids = usable.map((u) => u.record.leaseId);
  const expirations = lookupExpirations ? await store.expirations(ids) : store.knownExpirations(ids);
  const leases = new Map<string, Lease>();
  for (const u of usable) {
    leases.set(u.record.key, toLease(u.record, u.subnets, u.attrs, expirations.get(u.record.leaseId)));
  }
  return { leases, skipped };
}
