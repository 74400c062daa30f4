// planKernel: the pure diff from observed to desired kernel state. Deterministic; never removes anything the
// scope does not own (see ownership.ts).
import { addressKey, fdbMacKey, neighborKey, routeKey, sameRouteTarget } from './canonical.js';
import { Ownership } from './ownership.js';
import type {
  AddressEntry,
  DesiredKernelState,
  FdbEntry,
  KernelOp,
  KernelScope,
  KernelState,
  LinkSpec,
  NeighborEntry,
  ObservedLink,
  RouteEntry,
} from './types.js';

/**
 * Why an existing device cannot be reused (its identity differs), or undefined when it can. MTU, MAC and
 * up/down are set in place; everything else the kernel fixes at creation, so the device is recreated.
 */
export function linkMismatch(desired: LinkSpec, observed: ObservedLink): string | undefined {
  if (observed.kind !== desired.kind) {
    const found = observed.kind === 'other' ? observed.type || 'plain device' : observed.kind;
    return `is a ${found}, expected ${desired.kind}`;
  }
  if (desired.kind === 'vxlan' && observed.kind === 'vxlan') {
    const diffs: string[] = [];
    if (observed.vni !== desired.vni) diffs.push(`vni ${observed.vni} (want ${desired.vni})`);
    if (observed.local !== desired.local)
      diffs.push(`local ${observed.local || 'none'} (want ${desired.local})`);
    if (observed.dev !== desired.dev) diffs.push(`dev ${observed.dev || 'none'} (want ${desired.dev})`);
    if (observed.port !== desired.port) diffs.push(`dstport ${observed.port} (want ${desired.port})`);
    if (observed.learning !== desired.learning)
      diffs.push(`learning ${observed.learning} (want ${desired.learning})`);
    if (observed.gbp !== desired.gbp) diffs.push(`gbp ${observed.gbp} (want ${desired.gbp})`);
    if (diffs.length > 0) return diffs.join(', ');
  }
  return undefined;
}

/** Ownership for a plan: the scope plus the desired links' names. */
export function planOwnership(desired: DesiredKernelState, scope: KernelScope): Ownership {
  return new Ownership(
    scope,
    desired.links.map((l) => l.name),
  );
}

/** The link ops, and the devices they delete or create (whatever was on those is gone after them). */
export function planLinks(
  desired: DesiredKernelState,
  observed: KernelState,
  owner: Ownership,
): { linkOps: KernelOp[]; vanishing: Set<string> } {
  const linkOps: KernelOp[] = [];
  /** Devices deleted by this plan: what was on them vanishes with them. */
  const vanishing = new Set<string>();

  const desiredLinks = new Map(desired.links.map((l) => [l.name, l]));
  const observedLinks = new Map<string, ObservedLink>();
  for (const l of observed.links) if (owner.ownsDevice(l.name)) observedLinks.set(l.name, l);

  for (const [name] of observedLinks) {
    if (!desiredLinks.has(name)) {
      linkOps.push({ kind: 'link-delete', name, reason: 'no longer wanted' });
      vanishing.add(name);
    }
  }
  for (const link of desired.links) {
    const found = observedLinks.get(link.name);
    if (found === undefined) {
      linkOps.push({ kind: 'link-add', link });
      vanishing.add(link.name);
      continue;
    }
    const mismatch = linkMismatch(link, found);
    if (mismatch !== undefined) {
      linkOps.push({ kind: 'link-delete', name: link.name, reason: mismatch });
      linkOps.push({ kind: 'link-add', link });
      vanishing.add(link.name);
      continue;
    }
    const set: { kind: 'link-set'; name: string; mtu?: number; mac?: string; up?: boolean } = {
      kind: 'link-set',
      name: link.name,
    };
    if (found.mtu !== link.mtu) set.mtu = link.mtu;
    if (link.kind === 'vxlan' && link.mac !== undefined && found.kind === 'vxlan' && found.mac !== link.mac) {
      set.mac = link.mac;
    }
    if (found.up !== link.up) set.up = link.up;
    if (set.mtu !== undefined || set.mac !== undefined || set.up !== undefined) linkOps.push(set);
  }
  return { linkOps, vanishing };
}

/** Address ops against the observed addresses still present after the link ops. */
export function planAddresses(
  desired: DesiredKernelState,
  present: AddressEntry[],
  owner: Ownership,
): { addressDeletes: KernelOp[]; addressAdds: KernelOp[] } {
  const addressAdds: KernelOp[] = [];
  const addressDeletes: KernelOp[] = [];
  const observedAddresses = new Set(present.map(addressKey));
  const desiredAddresses = new Set(desired.addresses.map(addressKey));
  for (const a of desired.addresses) {
    if (!observedAddresses.has(addressKey(a))) addressAdds.push({ kind: 'address-add', address: a });
  }
  for (const a of present) {
    if (!desiredAddresses.has(addressKey(a)) && owner.ownsAddress(a)) {
      addressDeletes.push({ kind: 'address-delete', address: a });
    }
  }
  return { addressDeletes, addressAdds };
}

/**
 * The ops that turn `observed` into `desired`, in apply order: links; addresses; stale routes, neighbours and
 * FDB entries removed (routes first, so no route points at a vanishing neighbour); FDB and neighbour entries
 * added; routes added last (so a new route never precedes its neighbour and FDB entry).
 *
 * `observed` may hold more than the scope (it is filtered here too). Entries of `desired` must lie inside the
 * scope (see `outOfScope`), or a later dump will not see them and they are re-applied every time.
 */
export function planKernel(
  desired: DesiredKernelState,
  observed: KernelState,
  scope: KernelScope,
): KernelOp[] {
  const owner = planOwnership(desired, scope);
  const { linkOps, vanishing } = planLinks(desired, observed, owner);
  // Entries still there after the link ops; compared against every observed entry (owned or not), removed
  // only when owned.
  const present = <T extends { dev: string }>(entries: T[]): T[] =>
    vanishing.size === 0 ? entries : entries.filter((e) => !vanishing.has(e.dev));
  const { addressDeletes, addressAdds } = planAddresses(desired, present(observed.addresses), owner);

  const routeAdds: KernelOp[] = [];
  const routeDeletes: KernelOp[] = [];
  // One key per entry and side: at thousands of peers the keys are most of a plan's time.
  const liveRoutes = present(observed.routes);
  const liveRouteKeys = liveRoutes.map(routeKey);
  const observedRoutes = new Map<string, RouteEntry>(liveRoutes.map((r, i) => [liveRouteKeys[i]!, r]));
  const desiredRouteKeys = new Set<string>();
  for (const r of desired.routes) {
    const key = routeKey(r);
    desiredRouteKeys.add(key);
    const found = observedRoutes.get(key);
    if (found === undefined || !sameRouteTarget(found, r))
      routeAdds.push({ kind: 'route-replace', route: r });
  }
  liveRoutes.forEach((r, i) => {
    if (!desiredRouteKeys.has(liveRouteKeys[i]!) && owner.ownsRoute(r))
      routeDeletes.push({ kind: 'route-delete', route: r });
  });

  const neighborAdds: KernelOp[] = [];
  const neighborDeletes: KernelOp[] = [];
  const liveNeighbors = present(observed.neighbors);
  const liveNeighborKeys = liveNeighbors.map(neighborKey);
  const observedNeighbors = new Map<string, NeighborEntry>(
    liveNeighbors.map((n, i) => [liveNeighborKeys[i]!, n]),
  );
  const desiredNeighborKeys = new Set<string>();
  for (const n of desired.neighbors) {
    const key = neighborKey(n);
    desiredNeighborKeys.add(key);
    const found = observedNeighbors.get(key);
    if (found === undefined || found.mac !== n.mac)
      neighborAdds.push({ kind: 'neighbor-replace', neighbor: n });
  }
  liveNeighbors.forEach((n, i) => {
    if (!desiredNeighborKeys.has(liveNeighborKeys[i]!) && owner.ownsNeighbor(n)) {
      neighborDeletes.push({ kind: 'neighbor-delete', neighbor: n });
    }
  });

  const fdbAdds: KernelOp[] = [];
  const fdbDeletes: KernelOp[] = [];
  const observedFdb = new Map<string, FdbEntry[]>();
  for (const f of present(observed.fdb)) {
    const key = fdbMacKey(f);
    const list = observedFdb.get(key);
    if (list === undefined) observedFdb.set(key, [f]);
    else list.push(f);
  }
  const desiredFdbKeys = new Set<string>();
  for (const f of desired.fdb) {
    const key = fdbMacKey(f);
    desiredFdbKeys.add(key);
    const found = observedFdb.get(key) ?? [];
    if (found.some((o) => o.dst === f.dst)) {
      // Extra remotes for the MAC (only possible for multicast/zero MACs): remove them.
      for (const o of found)
        if (o.dst !== f.dst && owner.ownsFdb(o)) fdbDeletes.push({ kind: 'fdb-delete', fdb: o });
      continue;
    }
    // `replace` rewrites the first remote in place (a changed PublicIP); drop any others first.
    for (const o of found.slice(1)) if (owner.ownsFdb(o)) fdbDeletes.push({ kind: 'fdb-delete', fdb: o });
    fdbAdds.push({ kind: 'fdb-replace', fdb: f });
  }
  for (const [key, list] of observedFdb) {
    if (desiredFdbKeys.has(key)) continue;
    for (const o of list) if (owner.ownsFdb(o)) fdbDeletes.push({ kind: 'fdb-delete', fdb: o });
  }

  return [
    ...linkOps,
    ...addressDeletes,
    ...addressAdds,
    ...routeDeletes,
    ...neighborDeletes,
    ...fdbDeletes,
    ...fdbAdds,
    ...neighborAdds,
    ...routeAdds,
  ];
}

/** A one-line description of an op for logs (`route-replace 10.5.2.0/24 via 10.5.2.0 dev flannel.1`). */
export function describeKernelOp(op: KernelOp): string {
  switch (op.kind) {
    case 'link-add': {
      const l = op.link;
      return l.kind === 'vxlan'
        ? `link-add ${l.name} vxlan id ${l.vni} local ${l.local} dev ${l.dev} dstport ${l.port} mtu ${l.mtu}`
        : `link-add ${l.name} tun mtu ${l.mtu}`;
    }
    case 'link-delete':
      return `link-delete ${op.name} (${op.reason})`;
    case 'link-set':
      return `link-set ${op.name}${op.mtu !== undefined ? ` mtu ${op.mtu}` : ''}${op.mac !== undefined ? ` address ${op.mac}` : ''}${op.up !== undefined ? (op.up ? ' up' : ' down') : ''}`;
    case 'address-add':
    case 'address-delete':
      return `${op.kind} ${op.address.cidr} dev ${op.address.dev}`;
    case 'route-replace':
    case 'route-delete': {
      const r = op.route;
      return `${op.kind} ${r.dst}${r.via !== undefined ? ` via ${r.via}` : ''} dev ${r.dev}${r.onlink ? ' onlink' : ''}${r.metric !== undefined ? ` metric ${r.metric}` : ''}`;
    }
    case 'neighbor-replace':
    case 'neighbor-delete':
      return `${op.kind} ${op.neighbor.ip} lladdr ${op.neighbor.mac} dev ${op.neighbor.dev}`;
    case 'fdb-replace':
    case 'fdb-delete':
      return `${op.kind} ${op.fdb.mac} dst ${op.fdb.dst} dev ${op.fdb.dev}`;
  }
}
