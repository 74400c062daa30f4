import type { FamilyNetwork } from '../../config/index.js';
import { bitsOf, type Cidr } from '../../ip/index.js';

/** flannel picks at random among the first this-many free subnets, so concurrent nodes rarely collide. */
export const FREE_SUBNET_CANDIDATES = 100;

/**
 * The first `limit` subnets of `net` (SubnetMin..SubnetMax in SubnetLen steps) that overlap none of
 * `taken`. Pure; O((taken + limit) log taken): taken ranges are sorted once and skipped over, so a large,
 * mostly full network costs no more than a small one.
 */
export function freeSubnets(
  net: FamilyNetwork,
  taken: readonly Cidr[],
  limit = FREE_SUBNET_CANDIDATES,
): Cidr[] {
  const family = net.network.family;
  const bits = BigInt(bitsOf(family));
  const step = 1n << (bits - BigInt(net.subnetLen));
  const ranges = taken
    .filter((c) => c.family === family)
    .map((c) => ({ start: c.value, end: c.value + (1n << (bits - BigInt(c.prefix))) - 1n }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Cidr[] = [];
  let i = 0;
  // The furthest end among ranges that start before the candidate (ranges may nest or overlap).
  let coveredUntil = -1n;
  for (let value = net.subnetMin.value; value <= net.subnetMax.value && out.length < limit; ) {
    const end = value + step - 1n;
    while (i < ranges.length && (ranges[i]?.start ?? 0n) <= end) {
      const r = ranges[i];
      if (r && r.end > coveredUntil) coveredUntil = r.end;
      i++;
    }
    if (coveredUntil >= value) {
      // Jump to the first aligned subnet after the covering range.
      const next = ((coveredUntil + 1n + step - 1n) / step) * step;
      value = next > value ? next : value + step;
      continue;
    }
    out.push({ family, value, prefix: net.subnetLen });
    value += step;
  }
  return out;
}

/** Picks one element at random (`random` in [0,1), injectable for tests). */
export function pickRandom<T>(items: readonly T[], random: () => number = Math.random): T | undefined {
  if (items.length === 0) return undefined;
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}
