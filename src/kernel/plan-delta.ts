// planKernelDelta: planKernel against a remembered state (the desired state of the last clean pass), at the
// cost of what changed. Backends derive unchanged peers' entries as the very same objects pass after pass
// (see the vxlan and host-gw planners), so the new desired state and the remembered one are walked side by
// side and compared by identity; only the entries that differ are keyed and diffed. The ops are exactly
// planKernel's (same ops, same order); whenever that cannot be guaranteed cheaply — devices created or
// deleted, two remembered entries with one key, entries in a different order — it runs planKernel itself.
import { fdbMacKey, neighborKey, routeKey, sameRouteTarget } from './canonical.js';
import type { Ownership } from './ownership.js';
import { planAddresses, planKernel, planLinks, planOwnership } from './plan.js';
import type {
  DesiredKernelState,
  FdbEntry,
  KernelOp,
  KernelScope,
  KernelState,
  NeighborEntry,
  RouteEntry,
} from './types.js';

/** How planKernel keys, compares and removes one kind of entry. */
interface EntryKind<T> {
  key(entry: T): string;
  /** The observed entry with the desired one's key already routes/resolves/forwards as wanted. */
  same(observed: T, desired: T): boolean;
  owns(owner: Ownership, entry: T): boolean;
  replace(entry: T): KernelOp;
  remove(entry: T): KernelOp;
}

const ROUTES: EntryKind<RouteEntry> = {
  key: routeKey,
  same: sameRouteTarget,
  owns: (owner, r) => owner.ownsRoute(r),
  replace: (route) => ({ kind: 'route-replace', route }),
  remove: (route) => ({ kind: 'route-delete', route }),
};

const NEIGHBORS: EntryKind<NeighborEntry> = {
  key: neighborKey,
  same: (o, d) => o.mac === d.mac,
  owns: (owner, n) => owner.ownsNeighbor(n),
  replace: (neighbor) => ({ kind: 'neighbor-replace', neighbor }),
  remove: (neighbor) => ({ kind: 'neighbor-delete', neighbor }),
};

/** With one entry per MAC (no duplicate keys), planKernel's FDB rules reduce to the same shape as routes. */
const FDB: EntryKind<FdbEntry> = {
  key: fdbMacKey,
  same: (o, d) => o.dst === d.dst,
  owns: (owner, f) => owner.ownsFdb(f),
  replace: (fdb) => ({ kind: 'fdb-replace', fdb }),
  remove: (fdb) => ({ kind: 'fdb-delete', fdb }),
};

interface StateIndex {
  routes: Map<string, RouteEntry>;
  neighbors: Map<string, NeighborEntry>;
  fdb: Map<string, FdbEntry>;
}

/** Entries by key, or undefined when two share a key (planKernel's last-one-wins then matters: fall back). */
function indexEntries<T>(entries: readonly T[], kind: EntryKind<T>): Map<string, T> | undefined {
  const byKey = new Map<string, T>();
  for (const e of entries) {
    const key = kind.key(e);
    if (byKey.has(key)) return undefined;
    byKey.set(key, e);
  }
  return byKey;
}

/**
 * A kernel state kept between passes, with its routes, neighbours and FDB entries indexed by key (built on
 * first use). Treat it as consumed once a plan's `next()` was called: the index moves on to the new state.
 */
export class RememberedKernelState {
  /** undefined: not built yet; null: two entries share a key (delta plans fall back to planKernel). */
  private index: StateIndex | null | undefined;

  constructor(
    readonly state: KernelState,
    index?: StateIndex | null,
  ) {
    this.index = index;
  }

  /** A remembered state with its index built now (off the path of the lease event that will use it). */
  static indexed(state: KernelState): RememberedKernelState {
    const r = new RememberedKernelState(state);
    r.indexes();
    return r;
  }

  /** @internal The index, built once. */
  indexes(): StateIndex | null {
    if (this.index === undefined) {
      const routes = indexEntries(this.state.routes, ROUTES);
      const neighbors = indexEntries(this.state.neighbors, NEIGHBORS);
      const fdb = indexEntries(this.state.fdb, FDB);
      this.index = routes && neighbors && fdb ? { routes, neighbors, fdb } : null;
    }
    return this.index;
  }
}

/** What changed in one kind of entry, by identity. */
interface EntryDelta<T> {
  /** Desired entries that are not remembered (as objects), in desired order, and their keys. */
  added: T[];
  addedKeys: string[];
  /** Remembered entries that are no longer desired, in remembered order, and their keys. */
  removed: T[];
  removedKeys: string[];
}

/**
 * The remembered and the desired entries walked side by side. Undefined when an entry kept from the
 * remembered state comes in another order (or twice): the walk cannot tell what was removed, so fall back.
 */
function entryDelta<T>(
  desired: readonly T[],
  remembered: readonly T[],
  byKey: Map<string, T>,
  kind: EntryKind<T>,
): EntryDelta<T> | undefined {
  const delta: EntryDelta<T> = { added: [], addedKeys: [], removed: [], removedKeys: [] };
  const drop = (e: T) => {
    delta.removed.push(e);
    delta.removedKeys.push(kind.key(e));
  };
  let j = 0;
  for (const d of desired) {
    if (remembered[j] === d) {
      j++;
      continue;
    }
    const key = kind.key(d);
    if (byKey.get(key) !== d) {
      delta.added.push(d);
      delta.addedKeys.push(key);
      continue;
    }
    // Remembered further on: the entries before it are gone (if it lies behind, the order changed).
    const at = remembered.indexOf(d, j);
    if (at < 0) return undefined;
    for (; j < at; j++) drop(remembered[j]!);
    j = at + 1;
  }
  for (; j < remembered.length; j++) drop(remembered[j]!);
  return delta;
}

/**
 * planKernel's ops for one kind, from the delta alone. With no two remembered entries sharing a key, an entry
 * kept (same object) finds itself and needs nothing and its key stays desired; an added entry is compared with
 * the remembered entry of its key; a removed entry is deleted unless an added one took its key.
 */
function entryOps<T>(
  delta: EntryDelta<T>,
  byKey: Map<string, T>,
  kind: EntryKind<T>,
  owner: Ownership,
): { adds: KernelOp[]; deletes: KernelOp[] } {
  const adds: KernelOp[] = [];
  delta.added.forEach((d, i) => {
    const found = byKey.get(delta.addedKeys[i]!);
    if (found === undefined || !kind.same(found, d)) adds.push(kind.replace(d));
  });
  const deletes: KernelOp[] = [];
  const taken = delta.added.length === 0 ? undefined : new Set(delta.addedKeys);
  delta.removed.forEach((r, i) => {
    if (!taken?.has(delta.removedKeys[i]!) && kind.owns(owner, r)) deletes.push(kind.remove(r));
  });
  return { adds, deletes };
}

/** The remembered index moved on to the desired state; null when the desired state repeats a key. */
function advance<T>(byKey: Map<string, T>, delta: EntryDelta<T>): boolean {
  for (const key of delta.removedKeys) byKey.delete(key);
  for (let i = 0; i < delta.added.length; i++) {
    const key = delta.addedKeys[i]!;
    if (byKey.has(key)) return false;
    byKey.set(key, delta.added[i]!);
  }
  return true;
}

export interface DeltaPlan {
  /** Exactly `planKernel(desired, remembered.state, scope)`. */
  ops: KernelOp[];
  /** Whether only the changed entries were diffed (false: planKernel ran). */
  incremental: boolean;
  /** `desired` to remember after the ops all succeeded; consumes `remembered`. */
  next(): RememberedKernelState;
}

/** planKernel(desired, remembered.state, scope), diffing only the entries that changed since. */
export function planKernelDelta(
  desired: DesiredKernelState,
  remembered: RememberedKernelState,
  scope: KernelScope,
): DeltaPlan {
  const full = (): DeltaPlan => ({
    ops: planKernel(desired, remembered.state, scope),
    incremental: false,
    next: () => RememberedKernelState.indexed(desired),
  });
  const index = remembered.indexes();
  if (index === null) return full();
  const observed = remembered.state;
  const owner = planOwnership(desired, scope);
  const { linkOps, vanishing } = planLinks(desired, observed, owner);
  if (vanishing.size > 0) return full();
  const routes = entryDelta(desired.routes, observed.routes, index.routes, ROUTES);
  const neighbors = entryDelta(desired.neighbors, observed.neighbors, index.neighbors, NEIGHBORS);
  const fdb = entryDelta(desired.fdb, observed.fdb, index.fdb, FDB);
  if (routes === undefined || neighbors === undefined || fdb === undefined) return full();
  const { addressDeletes, addressAdds } = planAddresses(desired, observed.addresses, owner);
  const r = entryOps(routes, index.routes, ROUTES, owner);
  const n = entryOps(neighbors, index.neighbors, NEIGHBORS, owner);
  const f = entryOps(fdb, index.fdb, FDB, owner);
  return {
    ops: [
      ...linkOps,
      ...addressDeletes,
      ...addressAdds,
      ...r.deletes,
      ...n.deletes,
      ...f.deletes,
      ...f.adds,
      ...n.adds,
      ...r.adds,
    ],
    incremental: true,
    next: () => {
      const ok =
        advance(index.routes, routes) && advance(index.neighbors, neighbors) && advance(index.fdb, fdb);
      return new RememberedKernelState(desired, ok ? index : null);
    },
  };
}
