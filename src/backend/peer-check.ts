// The checks every backend runs on a peer lease before programming it, the list of peers it skipped (and why),
// and the log of those skips: a newly skipped peer is a warning naming the lease, a repeat is debug.
import type { Logger } from 'pino';
import {
  type Cidr,
  canonicalIp,
  cidr,
  cidrEquals,
  containsCidr,
  containsIp,
  type Family,
  formatCidr,
  isIp,
  parseIp,
} from '../ip/index.js';
import type { InterfaceAddress } from '../kernel/index.js';
import type { Lease } from '../lease/index.js';
import { publicIpOf, subnetOf } from './lease-fields.js';
import type { SkippedPeer } from './types.js';

/** True when `ip` lies in a subnet directly attached to the interface (reachable without a gateway). */
export function isOnLink(ip: string, addresses: readonly InterfaceAddress[]): boolean {
  const target = parseIp(ip);
  return addresses.some(
    (a) =>
      a.family === target.family &&
      a.scope === 'global' &&
      containsIp(cidr(a.family, parseIp(a.ip).value, a.prefix), target),
  );
}

/** Peers in a stable order (by key), so a plan never depends on watch order. */
export function sortedPeers(peers: readonly Lease[]): Lease[] {
  return [...peers].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** What every backend checks per peer and family before programming it. */
export interface PeerCheck {
  family: Family;
  backendType: string;
  network: Cidr;
  own: Lease;
  ownPublicIp?: string;
}

export type PeerVerdict =
  | { kind: 'self' }
  | { kind: 'skip'; reason: string }
  | { kind: 'ok'; subnet: Cidr; publicIp: string };

/** The shared checks: not the own lease, same backend type, a subnet inside the Network, a public address. */
export function checkPeer(peer: Lease, check: PeerCheck): PeerVerdict {
  const { family, own } = check;
  const ownSubnet = subnetOf(own, family);
  const subnet = subnetOf(peer, family);
  if (peer.key === own.key || (subnet !== undefined && cidrEquals(subnet, ownSubnet)))
    return { kind: 'self' };
  const type = peer.attrs.backendType;
  if (type !== check.backendType) {
    return {
      kind: 'skip',
      reason: type
        ? `backend type ${type} (this node uses ${check.backendType})`
        : `no BackendType: a lease of flannel's udp backend (PublicIP only); this node uses ${check.backendType} and cannot reach it — every node needs the same Backend.Type`,
    };
  }
  if (subnet === undefined) return { kind: 'skip', reason: `no IPv${family} subnet` };
  if (!containsCidr(check.network, subnet)) {
    return {
      kind: 'skip',
      reason: `subnet ${formatCidr(subnet)} is outside the Network ${formatCidr(check.network)}`,
    };
  }
  const publicIp = publicIpOf(peer, family);
  if (publicIp === undefined)
    return { kind: 'skip', reason: `no ${family === 4 ? 'PublicIP' : 'PublicIPv6'}` };
  if (!isIp(publicIp, family)) {
    return {
      kind: 'skip',
      reason: `${family === 4 ? 'PublicIP' : 'PublicIPv6'} ${JSON.stringify(publicIp)} is not an IPv${family} address`,
    };
  }
  const canonical = canonicalIp(publicIp);
  if (check.ownPublicIp !== undefined && canonical === canonicalIp(check.ownPublicIp)) {
    return { kind: 'skip', reason: `PublicIP ${canonical} is this node's own (a stale lease of this node?)` };
  }
  return { kind: 'ok', subnet, publicIp: canonical };
}

/**
 * The context of a peer derivation as text: what every backend's checks depend on besides the lease (the
 * family, the Network, the own lease and this node's public address), then the planner's own parts.
 */
export function derivationContext(check: PeerCheck, ...own: unknown[]): string {
  const ownSubnet = subnetOf(check.own, check.family);
  return JSON.stringify([
    check.family,
    formatCidr(check.network),
    check.own.key,
    ownSubnet === undefined ? null : formatCidr(ownSubnet),
    check.ownPublicIp ?? null,
    check.backendType,
    ...own,
  ]);
}

/**
 * What a planner derived from one peer lease, remembered by lease object: leases are immutable (a changed
 * lease is a new object), so with thousands of peers a pass derives only the leases that changed, and
 * unchanged peers keep the very same entry objects (the lease-event plan then skips them by identity, see
 * planKernelDelta). `context` names everything besides the lease a derivation depends on.
 */
export class PeerDerivations<D> {
  private readonly cache = new WeakMap<Lease, { context: string; derivation: D }[]>();

  /** The derivation of `peer` in `context`, or undefined when it has none yet (then `remember` one). */
  get(peer: Lease, context: string): D | undefined {
    const cached = this.cache.get(peer);
    if (cached === undefined) return undefined;
    for (const c of cached) if (c.context === context) return c.derivation;
    return undefined;
  }

  remember(peer: Lease, context: string, derivation: D): D {
    // One slot per context (a dual-stack node has two); a changed context replaces the oldest.
    const slots = (this.cache.get(peer) ?? []).slice(-1);
    slots.push({ context, derivation });
    this.cache.set(peer, slots);
    return derivation;
  }
}

/** Collects skipped peers. */
export class SkipList {
  readonly entries: SkippedPeer[] = [];
  add(peer: Lease, family: Family, reason: string): void {
    this.entries.push({ key: peer.key, family, reason });
  }
}

/**
 * Logs the peers a pass skipped: a peer skipped for a new reason is a warning naming its lease and the reason
 * (so a mixed cluster is never silent), one skipped for the same reason as in the previous pass is debug.
 */
export class SkippedPeerLog {
  private previous = new Set<string>();

  report(skipped: readonly SkippedPeer[], logger: Logger): void {
    const current = new Set<string>();
    for (const s of skipped) {
      const id = `${s.key}|${s.family}|${s.reason}`;
      current.add(id);
      const level = this.previous.has(id) ? 'debug' : 'warn';
      logger[level]({ peer: s.key, family: s.family, reason: s.reason }, 'peer lease not programmed');
    }
    this.previous = current;
  }
}
