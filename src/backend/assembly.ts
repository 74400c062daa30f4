// A planner's assembly of all peers (per family): each peer's derivation in key order, plus what the checks
// across peers need — the subnets (and VTEP MACs) programmed peers hold. Kept between calls (PeerPlanMemo),
// it moves on to the next peer set by deriving only the lease objects that are new, so a lease event's plan
// costs the changed peers, not all of them.
import type { Lease } from '../lease/index.js';

/** What a programmed peer holds that another may not: its subnet and, for vxlan, its VTEP MAC. */
export interface PeerClaims {
  dst: string;
  mac?: string;
}

export interface Assembly<D> {
  /** The peers, sorted by key. */
  peers: readonly Lease[];
  derivations: D[];
  /** Per peer: skipped because another peer holds its subnet or MAC (the reason); undefined when none is. */
  conflicts: (string | undefined)[] | undefined;
  /**
   * Peers whose entry another peer's serves (vxlan: two leases of one node share one FDB entry). Rare, so
   * kept as the exceptions.
   */
  shared: Set<Lease>;
  /** Programmed peers' subnets and how many programmed peers use each MAC. */
  subnets: Set<string>;
  macUsers: Map<string, number>;
}

/** Allocated at its size (the arrays are rebuilt every pass with thousands of peers: no growing copies). */
export function emptyAssembly<D>(peers: readonly Lease[]): Assembly<D> {
  return {
    peers,
    derivations: new Array<D>(peers.length),
    conflicts: undefined,
    shared: new Set(),
    subnets: new Set(),
    macUsers: new Map(),
  };
}

/** A full assembly: peer `i` is skipped because another holds what it claims. */
export function addConflict<D>(a: Assembly<D>, i: number, reason: string): void {
  a.conflicts ??= [];
  a.conflicts[i] = reason;
}

/** A full assembly: a programmed peer's claims. */
export function addClaims<D>(a: Assembly<D>, c: PeerClaims): void {
  a.subnets.add(c.dst);
  if (c.mac !== undefined) a.macUsers.set(c.mac, (a.macUsers.get(c.mac) ?? 0) + 1);
}

/**
 * The last assembly moved on to `peers` (sorted by key), deriving only new lease objects; undefined when that
 * cannot be done without the checks across all peers: the last one had a conflict, two peers share a key, or
 * a changed peer's subnet or MAC is (or was) another programmed peer's too. `prev` is consumed.
 */
export function assembleChanged<D>(
  prev: Assembly<D>,
  peers: readonly Lease[],
  derive: (peer: Lease) => D,
  claims: (d: D) => PeerClaims | undefined,
): Assembly<D> | undefined {
  if (prev.conflicts !== undefined) return undefined;
  const derivations = new Array<D>(peers.length);
  const removed: PeerClaims[] = [];
  const added: PeerClaims[] = [];
  const old = prev.peers;
  const drop = (j: number) => {
    const c = claims(prev.derivations[j]!);
    if (c !== undefined) removed.push(c);
  };
  let j = 0;
  for (let i = 0; i < peers.length; i++) {
    const peer = peers[i]!;
    if (i > 0 && peers[i - 1]!.key === peer.key) return undefined;
    // The last peers before this one's key are gone.
    for (; j < old.length && old[j] !== peer && old[j]!.key <= peer.key; j++) drop(j);
    if (old[j] === peer) {
      derivations[i] = prev.derivations[j]!;
      j++;
      continue;
    }
    const d = derive(peer);
    derivations[i] = d;
    const c = claims(d);
    if (c !== undefined) added.push(c);
  }
  for (; j < old.length; j++) drop(j);
  // Only peers whose subnet and MAC no other programmed peer shares (before and after) change alone.
  const freedSubnets = new Set<string>();
  const freedMacs = new Set<string>();
  for (const c of removed) {
    if (c.mac !== undefined) {
      if (prev.macUsers.get(c.mac) !== 1) return undefined;
      freedMacs.add(c.mac);
    }
    freedSubnets.add(c.dst);
  }
  const takenSubnets = new Set<string>();
  const takenMacs = new Set<string>();
  for (const c of added) {
    if ((prev.subnets.has(c.dst) && !freedSubnets.has(c.dst)) || takenSubnets.has(c.dst)) return undefined;
    takenSubnets.add(c.dst);
    if (c.mac === undefined) continue;
    if ((prev.macUsers.has(c.mac) && !freedMacs.has(c.mac)) || takenMacs.has(c.mac)) return undefined;
    takenMacs.add(c.mac);
  }
  const { subnets, macUsers } = prev;
  for (const c of removed) {
    subnets.delete(c.dst);
    if (c.mac !== undefined) macUsers.delete(c.mac);
  }
  for (const c of added) {
    subnets.add(c.dst);
    if (c.mac !== undefined) macUsers.set(c.mac, 1);
  }
  // A removed peer's MAC had no other user, so it was in no `shared`; kept peers stay as they were.
  return { peers, derivations, conflicts: undefined, shared: prev.shared, subnets, macUsers };
}

/**
 * What a planner keeps between calls (one per backend instance): each family's last assembly, by the context
 * the derivations depend on. Results are identical to a call without a memo.
 */
export class PeerPlanMemo<D> {
  private readonly assemblies = new Map<string, Assembly<D>>();

  /** The assembly last kept for `context` (taken out: it is consumed by moving it on). */
  take(context: string): Assembly<D> | undefined {
    const a = this.assemblies.get(context);
    this.assemblies.delete(context);
    return a;
  }

  /** Keeps the newest two contexts (a dual-stack node has one per family). */
  keep(context: string, a: Assembly<D>): void {
    this.assemblies.set(context, a);
    for (const k of this.assemblies.keys()) {
      if (this.assemblies.size <= 2) break;
      this.assemblies.delete(k);
    }
  }
}
