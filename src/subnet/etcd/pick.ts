// Picking a free subnet: the first free ones in order (flannel's way, and the fallback for a nearly full
// network) and one uniformly at random over the whole SubnetMin..SubnetMax range (weft's: nodes booting
// together rarely pick the same). Pure: the taken subnets in, a subnet out.
import type { FamilyNetwork } from '../../config/index.js';
import { bitsOf, type Cidr } from '../../ip/index.js';

/** flannel's window (random among the first 100 free); `freeSubnets`' default limit. */
export const FREE_SUBNET_CANDIDATES = 100;
/** Random probes before `pickFreeSubnet` falls back to listing free subnets (a nearly full network). */
const RANDOM_PROBES = 64;
/** Free subnets listed by the fallback at most (an IPv6 range can hold billions). */
const FALLBACK_CANDIDATES = 65_536;

/**
 * The first `limit` subnets of `net` (SubnetMin..SubnetMax in SubnetLen steps) that overlap none of
 * `taken`. Pure; O((taken + limit) log taken): taken ranges are sorted once and skipped over.
 */
export function freeSubnets(
  net: FamilyNetwork,
  taken: readonly Cidr[],
  limit = FREE_SUBNET_CANDIDATES,
): Cidr[] {
  const family = net.network.family;
  const step = 1n << (BigInt(bitsOf(family)) - BigInt(net.subnetLen));
  const ranges = takenRanges(net, taken);
  const out: Cidr[] = [];
  let i = 0;
  for (let value = net.subnetMin.value; value <= net.subnetMax.value && out.length < limit; ) {
    const end = value + step - 1n;
    // Ranges are merged and sorted: skip those that end before this candidate.
    while (i < ranges.length && (ranges[i]?.end ?? 0n) < value) i++;
    const r = ranges[i];
    if (r && r.start <= end) {
      // Jump to the first aligned subnet after the covering range.
      const next = ((r.end + 1n + step - 1n) / step) * step;
      value = next > value ? next : value + step;
      continue;
    }
    out.push({ family, value, prefix: net.subnetLen });
    value += step;
  }
  return out;
}

interface Range {
  start: bigint;
  end: bigint;
}

/** Taken subnets of `net`'s family as sorted, merged address ranges. */
function takenRanges(net: FamilyNetwork, taken: readonly Cidr[]): Range[] {
  const family = net.network.family;
  const bits = BigInt(bitsOf(family));
  const sorted = taken
    .filter((c) => c.family === family)
    .map((c) => ({ start: c.value, end: c.value + (1n << (bits - BigInt(c.prefix))) - 1n }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: Range[] = [];
  for (const r of sorted) {
    const last = merged[merged.length - 1];
    if (last && r.start <= last.end + 1n) {
      if (r.end > last.end) last.end = r.end;
    } else merged.push({ ...r });
  }
  return merged;
}

/** A uniform random integer in [0, n) from a [0,1) source (n may exceed 2^53 for IPv6 ranges). */
function randomBelow(n: bigint, random: () => number): bigint {
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return BigInt(Math.floor(random() * Number(n)));
  let r = 0n;
  for (let bits = 0n; 1n << bits < n * 1024n; bits += 32n) {
    r = (r << 32n) | BigInt(Math.floor(random() * 2 ** 32));
  }
  return r % n;
}

/**
 * One free subnet picked uniformly at random among all free subnets of `net` (rejection sampling over the
 * whole SubnetMin..SubnetMax range, then a listing fallback when the network is nearly full). Hundreds of
 * nodes starting together thus rarely pick the same subnet, unlike flannel's "first 100 free".
 */
export function pickFreeSubnet(
  net: FamilyNetwork,
  taken: readonly Cidr[],
  random: () => number = Math.random,
): Cidr | undefined {
  const family = net.network.family;
  const step = 1n << (BigInt(bitsOf(family)) - BigInt(net.subnetLen));
  const first = net.subnetMin.value;
  if (net.subnetMax.value < first) return undefined;
  const count = (net.subnetMax.value - first) / step + 1n;
  const ranges = takenRanges(net, taken);
  const isFree = (value: bigint): boolean => {
    const end = value + step - 1n;
    // The last range starting at or before `end` is the only one that can overlap (ranges are merged).
    let lo = 0;
    let hi = ranges.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((ranges[mid]?.start ?? 0n) <= end) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 || (ranges[found]?.end ?? -1n) < value;
  };
  for (let i = 0; i < RANDOM_PROBES; i++) {
    const value = first + randomBelow(count, random) * step;
    if (isFree(value)) return { family, value, prefix: net.subnetLen };
  }
  return pickRandom(freeSubnets(net, taken, FALLBACK_CANDIDATES), random);
}

/** Picks one element at random (`random` in [0,1), injectable for tests). */
export function pickRandom<T>(items: readonly T[], random: () => number = Math.random): T | undefined {
  if (items.length === 0) return undefined;
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}
