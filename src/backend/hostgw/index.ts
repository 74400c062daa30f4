// The host-gw backend: plain routes to every peer's subnet via its PublicIP; all nodes share one L2 network.
import type { KernelScope, SelectedInterface } from '../../kernel/index.js';
import type { Lease, LeaseAttrs } from '../../lease/index.js';
import { bridgeGatewayOf } from '../lease-fields.js';
import { type FamilyNetworks, familyNetworks } from '../networks.js';
import {
  type Backend,
  type BackendContext,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  type PreparedBackend,
} from '../types.js';
import { HostGwPlanMemo, hostGwScope, planHostGw } from './plan.js';

export { HostGwPlanMemo, hostGwScope, planHostGw } from './plan.js';

interface Prepared {
  networks: FamilyNetworks;
  iface: SelectedInterface;
}

export class HostGwBackend implements Backend {
  readonly name = 'host-gw';
  private prepared: Prepared | undefined;
  /** The last pass's assembled peers: a lease event's pass redoes only the peers that changed. */
  private readonly planMemo = new HostGwPlanMemo();

  /** No tunnel device: a peer answers on its `cni0` bridge gateway, the first address of its subnet. */
  probeAddress(peer: Lease): string | undefined {
    return bridgeGatewayOf(peer);
  }

  async prepare(ctx: BackendContext): Promise<PreparedBackend> {
    const networks = familyNetworks(ctx.config);
    const { iface } = ctx;
    if (networks.ipv4 === undefined && networks.ipv6 === undefined) {
      throw new BackendPrepareError('host-gw: neither IPv4 nor IPv6 is enabled in the network config');
    }
    // Peers route to our PublicIP as a next hop on their link: it must be an address this interface holds.
    const checks: Array<[string | undefined, string | undefined, string]> = [];
    if (networks.ipv4 !== undefined) checks.push([iface.publicIp, iface.ipv4?.ip, 'IPv4']);
    if (networks.ipv6 !== undefined) checks.push([iface.publicIpv6, iface.ipv6?.ip, 'IPv6']);
    for (const [publicIp, ifaceIp, label] of checks) {
      if (publicIp === undefined || ifaceIp === undefined) {
        throw new BackendPrepareError(`host-gw: ${iface.name} has no ${label} address to publish`);
      }
      if (publicIp !== ifaceIp) {
        throw new BackendPrepareError(
          `host-gw: the public ${label} ${publicIp} differs from ${iface.name}'s address ${ifaceIp}, so this node is behind NAT; host-gw needs every node's PublicIP on a shared L2 network (use vxlan, or drop --public-ip)`,
        );
      }
    }
    const attrs: LeaseAttrs = { publicIP: iface.publicIp ?? '', backendType: 'host-gw' };
    if (iface.publicIpv6 !== undefined) attrs.publicIPv6 = iface.publicIpv6;
    this.prepared = { networks, iface };
    return { attrs, mtu: iface.mtu };
  }

  desired(own: Lease, peers: readonly Lease[]): DesiredBackendState {
    const p = this.require('desired');
    return planHostGw({ networks: p.networks, iface: p.iface, own, peers }, this.planMemo);
  }

  scope(own: Lease): KernelScope {
    const p = this.require('scope');
    return hostGwScope(p.networks, p.iface, own);
  }

  mtu(): number {
    return this.require('mtu').iface.mtu;
  }

  private require(method: string): Prepared {
    if (this.prepared === undefined) throw new BackendNotPreparedError(this.name, method);
    return this.prepared;
  }
}
