// planHostGw: the desired kernel state of the host-gw backend — one plain route per peer,
// `<remote subnet> via <remote PublicIP> dev <external interface>`. Pure.
import { type Cidr, formatCidr } from '../../ip/index.js';
import type { DesiredKernelState, KernelScope, RouteEntry, SelectedInterface } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { enabledFamilies, type FamilyNetworks } from '../networks.js';
import { checkPeer, isOnLink, SkipList, sortedPeers } from '../peer-check.js';
import type { DesiredBackendState } from '../types.js';

export interface HostGwPlanInput {
  networks: FamilyNetworks;
  iface: SelectedInterface;
  own: Lease;
  peers: readonly Lease[];
}

/**
 * Per family, per remote host-gw lease whose PublicIP is on-link: a route via that PublicIP on the external
 * interface. A peer behind a router cannot be reached this way and is skipped (the kernel would refuse the
 * route: "Nexthop has invalid gateway").
 */
export function planHostGw(input: HostGwPlanInput): DesiredBackendState {
  const { iface, own } = input;
  const state: DesiredKernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
  const skipped = new SkipList();
  for (const [family, network] of enabledFamilies(input.networks)) {
    const seen = new Map<string, string>();
    const routes: RouteEntry[] = [];
    for (const peer of sortedPeers(input.peers)) {
      const verdict = checkPeer(peer, {
        family,
        backendType: 'host-gw',
        network,
        own,
        ownPublicIp: family === 4 ? iface.publicIp : iface.publicIpv6,
      });
      if (verdict.kind === 'self') continue;
      if (verdict.kind === 'skip') {
        skipped.add(peer, family, verdict.reason);
        continue;
      }
      if (!isOnLink(verdict.publicIp, iface.addresses)) {
        const subnets = iface.addresses
          .filter((a) => a.family === family && a.scope === 'global')
          .map((a) => `${a.ip}/${a.prefix}`);
        skipped.add(
          peer,
          family,
          `PublicIP ${verdict.publicIp} is not on-link on ${iface.name} (${subnets.join(', ') || `no IPv${family} address`}): host-gw needs all nodes on one L2 network`,
        );
        continue;
      }
      const dst = formatCidr(verdict.subnet);
      const earlier = seen.get(dst);
      if (earlier !== undefined) {
        skipped.add(peer, family, `subnet ${dst} is also leased by ${earlier}`);
        continue;
      }
      seen.set(dst, peer.key);
      routes.push({ dst, via: verdict.publicIp, dev: iface.name });
    }
    state.routes.push(...routes);
  }
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
