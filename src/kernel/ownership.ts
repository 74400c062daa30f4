// What weft owns in the kernel (see KernelScope). The dump reads only this and the planner deletes only this,
// so the bridge CNI plugin's `cni0` and its route to the node's own subnet, other routes on the external
// interface and everything else on the node stay untouched.
import { type Cidr, cidrEquals, containsCidr, containsIp, parseIp } from '../ip/index.js';
import { parseRouteDst } from './canonical.js';
import type { AddressEntry, FdbEntry, KernelScope, KernelState, NeighborEntry, RouteEntry } from './types.js';

/** Ownership tests bound to one scope; `extraDevices` are the desired links' names (always weft's). */
export class Ownership {
  private readonly devices: Set<string>;
  /** Devices whose links are planned (`devices` minus `entryDevices`). */
  private readonly linkDevices: Set<string>;
  private readonly cidrCache = new Map<string, Cidr | null>();

  constructor(
    private readonly scope: KernelScope,
    extraDevices: Iterable<string> = [],
  ) {
    this.linkDevices = new Set([...scope.devices, ...extraDevices]);
    this.devices = new Set([...this.linkDevices, ...(scope.entryDevices ?? [])]);
  }

  ownsDevice(name: string): boolean {
    return this.linkDevices.has(name);
  }

  /** An address inside a Network on a weft device (link-local and other addresses stay). */
  ownsAddress(address: AddressEntry): boolean {
    if (!this.devices.has(address.dev)) return false;
    const slash = address.cidr.indexOf('/');
    let ip: ReturnType<typeof parseIp>;
    try {
      ip = parseIp(slash < 0 ? address.cidr : address.cidr.slice(0, slash));
    } catch {
      return false;
    }
    return this.scope.networks.some((n) => containsIp(n, ip));
  }

  /**
   * A route made by weft: not kernel-made, dst inside a Network, dst not protected (the own subnet), on a
   * weft device or on the external interface.
   */
  ownsRoute(route: RouteEntry): boolean {
    if (route.protocol === 'kernel') return false;
    if (!this.devices.has(route.dev) && route.dev !== this.scope.externalDev) return false;
    const dst = this.cidr(route.dst);
    if (dst === null) return false;
    if ((this.scope.protectedDsts ?? []).some((p) => cidrEquals(p, dst))) return false;
    return this.scope.networks.some((n) => containsCidr(n, dst));
  }

  ownsNeighbor(neighbor: NeighborEntry): boolean {
    return this.devices.has(neighbor.dev);
  }

  ownsFdb(fdb: FdbEntry): boolean {
    return this.devices.has(fdb.dev);
  }

  private cidr(text: string): Cidr | null {
    let cached = this.cidrCache.get(text);
    if (cached === undefined) {
      try {
        cached = parseRouteDst(text);
      } catch {
        cached = null;
      }
      this.cidrCache.set(text, cached);
    }
    return cached;
  }
}

/** The part of a kernel state that a scope owns. */
export function filterOwned(state: KernelState, scope: KernelScope): KernelState {
  const owner = new Ownership(scope);
  return {
    links: state.links.filter((l) => owner.ownsDevice(l.name)),
    addresses: state.addresses.filter((a) => owner.ownsAddress(a)),
    routes: state.routes.filter((r) => owner.ownsRoute(r)),
    neighbors: state.neighbors.filter((n) => owner.ownsNeighbor(n)),
    fdb: state.fdb.filter((f) => owner.ownsFdb(f)),
  };
}

/**
 * Entries of a desired state that a dump with this scope would not see (the planner would then re-apply them
 * on every pass). Backends keep this empty; tests check it.
 */
export function outOfScope(desired: KernelState, scope: KernelScope): string[] {
  const owner = new Ownership(
    scope,
    desired.links.map((l) => l.name),
  );
  const problems: string[] = [];
  for (const l of desired.links) if (!scope.devices.includes(l.name)) problems.push(`link ${l.name}`);
  for (const a of desired.addresses)
    if (!owner.ownsAddress(a)) problems.push(`address ${a.cidr} dev ${a.dev}`);
  for (const r of desired.routes) if (!owner.ownsRoute(r)) problems.push(`route ${r.dst} dev ${r.dev}`);
  for (const n of desired.neighbors)
    if (!owner.ownsNeighbor(n)) problems.push(`neighbor ${n.ip} dev ${n.dev}`);
  for (const f of desired.fdb) if (!owner.ownsFdb(f)) problems.push(`fdb ${f.mac} dev ${f.dev}`);
  return problems;
}
