// Which node's lease stands for each pod CIDR. Two nodes can claim the same CIDR (a re-registered node beside
// its stale twin, a hand-edited spec); only one lease per key may reach the kernel. The node that claimed a
// key first keeps it; later claimants wait behind it and take over, in claim order, when it goes. Snapshots
// and single-node updates go through the same index, so a relist and an event stream agree.
import { diffLeases, type Lease, type LeaseEvent } from '../../lease/index.js';

/** A node whose lease is shadowed by another node holding the same key. */
export interface LeaseConflict {
  node: string;
  key: string;
  /** The node whose lease is used for the key. */
  holder: string;
}

export interface LeaseIndexChange {
  events: LeaseEvent[];
  /** Claims that the update left shadowed (for a warning naming both nodes). */
  conflicts: LeaseConflict[];
}

export class NodeLeaseIndex {
  private readonly byNode = new Map<string, Lease>();
  /** Claimants of each key, in claim order: the first one holds it. */
  private readonly claims = new Map<string, string[]>();

  get size(): number {
    return this.claims.size;
  }

  /** The lease used for each key now. */
  leases(): Lease[] {
    const out: Lease[] = [];
    for (const [key] of this.claims) {
      const lease = this.holderLease(key);
      if (lease) out.push(lease);
    }
    return out;
  }

  private holderLease(key: string): Lease | undefined {
    const holder = this.claims.get(key)?.[0];
    return holder === undefined ? undefined : this.byNode.get(holder);
  }

  private effective(keys: Iterable<string>): Map<string, Lease> {
    const out = new Map<string, Lease>();
    for (const key of keys) {
      const lease = this.holderLease(key);
      if (lease) out.set(key, lease);
    }
    return out;
  }

  private unclaim(node: string, key: string): void {
    const list = this.claims.get(key);
    if (!list) return;
    const at = list.indexOf(node);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.claims.delete(key);
  }

  private claim(node: string, key: string, conflicts: LeaseConflict[]): void {
    const list = this.claims.get(key);
    if (!list) {
      this.claims.set(key, [node]);
      return;
    }
    if (!list.includes(node)) list.push(node);
    const holder = list[0] as string;
    if (holder !== node) conflicts.push({ node, key, holder });
  }

  /** One node's new lease (undefined: it is gone or no longer a lease). Returns the events on the used leases. */
  set(node: string, lease: Lease | undefined): LeaseIndexChange {
    const previous = this.byNode.get(node);
    const keys = new Set<string>();
    if (previous) keys.add(previous.key);
    if (lease) keys.add(lease.key);
    const before = this.effective(keys);
    const conflicts: LeaseConflict[] = [];
    if (previous && previous.key !== lease?.key) this.unclaim(node, previous.key);
    if (lease) {
      this.byNode.set(node, lease);
      this.claim(node, lease.key, conflicts);
    } else {
      this.byNode.delete(node);
    }
    return { events: diffLeases(before, this.effective(keys)), conflicts };
  }

  /**
   * A full list replaces everything: holders that still claim their key keep it; keys new to the index go to
   * the first claimant in list order. Returns the events that turn the old used set into the new one.
   */
  replaceAll(entries: Iterable<readonly [string, Lease]>): LeaseIndexChange & { leases: Lease[] } {
    const before = this.effective(this.claims.keys());
    const previousClaims = new Map(this.claims);
    this.byNode.clear();
    this.claims.clear();
    const byKey = new Map<string, string[]>();
    for (const [node, lease] of entries) {
      this.byNode.set(node, lease);
      const list = byKey.get(lease.key);
      if (list) list.push(node);
      else byKey.set(lease.key, [node]);
    }
    const conflicts: LeaseConflict[] = [];
    for (const [key, nodes] of byKey) {
      // Keep the old claim order for nodes that were already claimants; newcomers queue behind them.
      const old = previousClaims.get(key) ?? [];
      const ordered = [...old.filter((n) => nodes.includes(n)), ...nodes.filter((n) => !old.includes(n))];
      this.claims.set(key, ordered);
      const holder = ordered[0] as string;
      for (const node of ordered.slice(1)) conflicts.push({ node, key, holder });
    }
    const after = this.effective(this.claims.keys());
    return { events: diffLeases(before, after), conflicts, leases: [...after.values()] };
  }
}
