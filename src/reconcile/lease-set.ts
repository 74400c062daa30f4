import type { Lease, LeaseEvent, LeaseWatchBatch } from '../lease/types.js';

/** What a watch batch changed, for logs and metrics. */
export interface LeaseSetChanges {
  added: number;
  removed: number;
  changed: number;
  snapshot: boolean;
}

/**
 * The lease set: the daemon's view of all leases (its own among them), keyed by lease key, fed by watch batches. A snapshot replaces the whole set
 * (re-list after compaction or a 410), so peers that vanished while the watch was down are dropped.
 */
export class LeaseSet {
  private readonly leases = new Map<string, Lease>();

  apply(batch: LeaseWatchBatch): LeaseSetChanges {
    const counts: LeaseSetChanges = { added: 0, removed: 0, changed: 0, snapshot: batch.type === 'snapshot' };
    if (batch.type === 'snapshot') {
      const next = new Map(batch.leases.map((l) => [l.key, l]));
      for (const key of this.leases.keys()) if (!next.has(key)) counts.removed++;
      for (const [key, lease] of next) {
        const old = this.leases.get(key);
        if (!old) counts.added++;
        else if (!sameLease(old, lease)) counts.changed++;
      }
      this.leases.clear();
      for (const [k, v] of next) this.leases.set(k, v);
      return counts;
    }
    for (const e of batch.events) this.applyEvent(e, counts);
    return counts;
  }

  private applyEvent(e: LeaseEvent, counts: LeaseSetChanges): void {
    if (e.type === 'removed') {
      if (this.leases.delete(e.lease.key)) counts.removed++;
      return;
    }
    const had = this.leases.has(e.lease.key);
    this.leases.set(e.lease.key, e.lease);
    if (had) counts.changed++;
    else counts.added++;
  }

  /** All leases except the one with `ownKey`. */
  peers(ownKey: string | undefined): Lease[] {
    // One array per pass (thousands of peers), allocated at its size: no growing or filtering copies.
    const out = new Array<Lease>(this.leases.size);
    let n = 0;
    for (const l of this.leases.values()) if (l.key !== ownKey) out[n++] = l;
    out.length = n;
    return out;
  }

  get size(): number {
    return this.leases.size;
  }
}

function sameLease(a: Lease, b: Lease): boolean {
  return (
    JSON.stringify(a.attrs) === JSON.stringify(b.attrs) && a.expiration?.getTime() === b.expiration?.getTime()
  );
}
