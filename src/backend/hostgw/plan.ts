// planHostGw: the desired kernel state of the host-gw backend — one plain route per peer,
// `<remote subnet> via <remote PublicIP> dev <external interface>`. Pure (an optional memo only saves work).
import { type Cidr, type Family, formatCidr } from '../../ip/index.js';
import type { DesiredKernelState, KernelScope, RouteEntry, SelectedInterface } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import {
  type Assembly,
  addClaims,
  addConflict,
  assembleChanged,
  emptyAssembly,
  type PeerClaims,
  PeerPlanMemo,
} from '../assembly.js';
import { enabledFamilies, type FamilyNetworks } from '../networks.js';
import {
  checkPeer,
  derivationContext,
  isOnLink,
  PeerDerivations,
  SkipList,
  sortedPeers,
} from '../peer-check.js';
import type { DesiredBackendState } from '../types.js';

export interface HostGwPlanInput {
  networks: FamilyNetworks;
  iface: SelectedInterface;
  own: Lease;
  peers: readonly Lease[];
}

/** What one peer lease gives on its own, for one family (the subnet check across peers comes after). */
type PeerDerivation =
  | { kind: 'self' }
  | { kind: 'skip'; reason: string }
  | { kind: 'route'; dst: string; route: RouteEntry };

const derivations = new PeerDerivations<PeerDerivation>();

function derivePeer(
  peer: Lease,
  family: Family,
  network: Cidr,
  own: Lease,
  iface: SelectedInterface,
): PeerDerivation {
  const verdict = checkPeer(peer, {
    family,
    backendType: 'host-gw',
    network,
    own,
    ownPublicIp: family === 4 ? iface.publicIp : iface.publicIpv6,
  });
  if (verdict.kind !== 'ok') return verdict;
  if (!isOnLink(verdict.publicIp, iface.addresses)) {
    const subnets = iface.addresses
      .filter((a) => a.family === family && a.scope === 'global')
      .map((a) => `${a.ip}/${a.prefix}`);
    return {
      kind: 'skip',
      reason: `PublicIP ${verdict.publicIp} is not on-link on ${iface.name} (${subnets.join(', ') || `no IPv${family} address`}): host-gw needs all nodes on one L2 network`,
    };
  }
  const dst = formatCidr(verdict.subnet);
  return { kind: 'route', dst, route: { dst, via: verdict.publicIp, dev: iface.name } };
}

/**
 * What planHostGw keeps between calls (one per backend instance): each family's last assembly, so a call
 * whose peers changed a little redoes only those peers; the result is the same as without it.
 */
export class HostGwPlanMemo extends PeerPlanMemo<PeerDerivation> {}

function claimsOf(d: PeerDerivation): PeerClaims | undefined {
  return d.kind === 'route' ? { dst: d.dst } : undefined;
}

/** Every peer in order, with the check across peers: a subnet held by an earlier peer. */
function assembleAll(
  peers: readonly Lease[],
  derive: (peer: Lease) => PeerDerivation,
): Assembly<PeerDerivation> {
  const a = emptyAssembly<PeerDerivation>(peers);
  const seen = new Map<string, string>();
  peers.forEach((peer, i) => {
    const d = derive(peer);
    a.derivations[i] = d;
    if (d.kind !== 'route') return;
    const earlier = seen.get(d.dst);
    if (earlier !== undefined) {
      addConflict(a, i, `subnet ${d.dst} is also leased by ${earlier}`);
      return;
    }
    seen.set(d.dst, peer.key);
    addClaims(a, { dst: d.dst });
  });
  return a;
}

/**
 * Per family, per remote host-gw lease whose PublicIP is on-link: a route via that PublicIP on the external
 * interface. A peer behind a router cannot be reached this way and is skipped (the kernel would refuse the
 * route: "Nexthop has invalid gateway"). With a `memo` (the backend keeps one), a call redoes only the peers
 * that changed since the last call; the result is the same.
 */
export function planHostGw(input: HostGwPlanInput, memo?: HostGwPlanMemo): DesiredBackendState {
  const { iface, own } = input;
  const state: DesiredKernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
  const skipped = new SkipList();
  const peers = sortedPeers(input.peers);
  const assembled: { family: Family; a: Assembly<PeerDerivation> }[] = [];
  for (const [family, network] of enabledFamilies(input.networks)) {
    const ownPublicIp = family === 4 ? iface.publicIp : iface.publicIpv6;
    const context = derivationContext(
      { family, backendType: 'host-gw', network, own, ...(ownPublicIp === undefined ? {} : { ownPublicIp }) },
      iface.name,
      iface.addresses,
    );
    const derive = (peer: Lease) =>
      derivations.get(peer, context) ??
      derivations.remember(peer, context, derivePeer(peer, family, network, own, iface));
    const prev = memo?.take(context);
    const a = (prev && assembleChanged(prev, peers, derive, claimsOf)) ?? assembleAll(peers, derive);
    memo?.keep(context, a);
    assembled.push({ family, a });
  }
  // The skipped peers, and how many routes the families program: the routes are allocated once.
  let count = 0;
  for (const { family, a } of assembled) {
    a.derivations.forEach((d, i) => {
      const reason = d.kind === 'skip' ? d.reason : a.conflicts?.[i];
      if (reason !== undefined) skipped.add(peers[i]!, family, reason);
      else if (d.kind === 'route') count++;
    });
  }
  const routes = new Array<RouteEntry>(count);
  let r = 0;
  for (const { a } of assembled) {
    a.derivations.forEach((d, i) => {
      if (d.kind === 'route' && a.conflicts?.[i] === undefined) routes[r++] = d.route;
    });
  }
  state.routes = routes;
  return { state, skipped: skipped.entries };
}

/** What host-gw owns: routes into the Networks on the external interface, never the own subnet. */
export function hostGwScope(networks: FamilyNetworks, iface: SelectedInterface, own: Lease): KernelScope {
  const protectedDsts: Cidr[] = [];
  if (own.subnet !== undefined) protectedDsts.push(own.subnet);
  if (own.ipv6Subnet !== undefined) protectedDsts.push(own.ipv6Subnet);
  return {
    devices: [],
    networks: enabledFamilies(networks).map(([, n]) => n),
    externalDev: iface.name,
    protectedDsts,
  };
}
