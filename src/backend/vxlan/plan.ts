// planVxlan: the desired kernel state of the vxlan backend, a pure function of the config, the external
// interface, the own lease and the peer leases (flannel's vxlan backend, reconciled).
import type { VxlanBackendConfig } from '../../config/index.js';
import { vxlanPort } from '../../config/index.js';
import type { Family } from '../../ip/index.js';
import { type Cidr, canonicalIp, formatCidr, formatIp, stableVtepMac } from '../../ip/index.js';
import type {
  DesiredKernelState,
  FdbEntry,
  KernelScope,
  NeighborEntry,
  RouteEntry,
  SelectedInterface,
  VxlanLinkSpec,
} from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { dataField, isUnicastMac, subnetOf } from '../lease-fields.js';
import { enabledFamilies, type FamilyNetworks } from '../networks.js';
import { checkPeer, isOnLink, SkipList, sortedPeers } from '../peer-check.js';
import { type DesiredBackendState, OwnLeaseMismatchError } from '../types.js';

/** VXLAN encapsulation overhead: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14; IPv6 outer adds 20. */
export const VXLAN_OVERHEAD = { 4: 50, 6: 70 } as const;

export interface VxlanPlanInput {
  vxlan: VxlanBackendConfig;
  networks: FamilyNetworks;
  iface: SelectedInterface;
  own: Lease;
  peers: readonly Lease[];
}

/** `flannel.<VNI>` / `flannel-v6.<VNI>`. */
export function vxlanDeviceName(family: Family, vni: number): string {
  return family === 4 ? `flannel.${vni}` : `flannel-v6.${vni}`;
}

/**
 * Device MTU: the underlay MTU minus the encapsulation overhead. `Backend.MTU` is the underlay MTU when set
 * (flannel's `pkg/backend/vxlan/device.go`: device = MTU − 50), else the external interface's MTU.
 */
export function vxlanDeviceMtu(vxlan: VxlanBackendConfig, ifaceMtu: number, family: Family): number {
  return (vxlan.mtu > 0 ? vxlan.mtu : ifaceMtu) - VXLAN_OVERHEAD[family];
}

/** This node's public address of a family (the lease's PublicIP / PublicIPv6). */
function ownPublicIp(iface: SelectedInterface, family: Family): string | undefined {
  return family === 4 ? iface.publicIp : iface.publicIpv6;
}

/** The VXLAN device of one family, or an OwnLeaseMismatchError naming what is missing. */
export function vxlanDevice(
  vxlan: VxlanBackendConfig,
  iface: SelectedInterface,
  family: Family,
): VxlanLinkSpec {
  const local = family === 4 ? iface.ipv4 : iface.ipv6;
  const publicIp = ownPublicIp(iface, family);
  if (local === undefined || publicIp === undefined) {
    throw new OwnLeaseMismatchError(
      `vxlan over IPv${family} needs an IPv${family} address on ${iface.name} (found ${iface.addresses.map((a) => `${a.ip}/${a.prefix}`).join(', ') || 'none'})`,
    );
  }
  return {
    kind: 'vxlan',
    name: vxlanDeviceName(family, vxlan.vni),
    vni: vxlan.vni,
    // The VTEP binds the interface's own address; PublicIP may be a NAT address the node does not hold.
    local: canonicalIp(local.ip),
    dev: iface.name,
    port: vxlanPort(vxlan),
    learning: vxlan.learning,
    gbp: vxlan.gbp,
    mtu: vxlanDeviceMtu(vxlan, iface.mtu, family),
    mac: stableVtepMac(canonicalIp(publicIp), vxlan.vni),
    up: true,
  };
}

/**
 * Per family: the device, its `<subnet network address>/32|128` address and, per remote vxlan lease, a
 * PERMANENT neighbour (subnet network address → VtepMAC), an FDB entry (VtepMAC → PublicIP) and a route
 * `<subnet> via <subnet network address> dev flannel.N onlink` — or with DirectRouting and an on-link
 * PublicIP, a plain route `<subnet> via <PublicIP> dev <external interface>`.
 */
export function planVxlan(input: VxlanPlanInput): DesiredBackendState {
  const { vxlan, iface, own } = input;
  const state: DesiredKernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
  const skipped = new SkipList();
  const peers = sortedPeers(input.peers);

  for (const [family, network] of enabledFamilies(input.networks)) {
    const ownSubnet = subnetOf(own, family);
    if (ownSubnet === undefined) {
      throw new OwnLeaseMismatchError(
        `the own lease ${own.key} has no IPv${family} subnet but IPv${family} is enabled`,
      );
    }
    const device = vxlanDevice(vxlan, iface, family);
    state.links.push(device);
    state.addresses.push({ dev: device.name, cidr: `${formatIp(ownSubnet)}/${family === 4 ? 32 : 128}` });

    const routes: RouteEntry[] = [];
    const neighbors: NeighborEntry[] = [];
    const fdb: FdbEntry[] = [];
    const subnetOwner = new Map<string, string>();
    const macOwner = new Map<string, { key: string; publicIp: string }>();
    for (const peer of peers) {
      const verdict = checkPeer(peer, {
        family,
        backendType: 'vxlan',
        network,
        own,
        ownPublicIp: ownPublicIp(iface, family),
      });
      if (verdict.kind === 'self') continue;
      if (verdict.kind === 'skip') {
        skipped.add(peer, family, verdict.reason);
        continue;
      }
      const data = family === 4 ? peer.attrs.backendData : peer.attrs.backendV6Data;
      const dataName = family === 4 ? 'BackendData' : 'BackendV6Data';
      if (data === undefined) {
        skipped.add(peer, family, `no ${dataName}`);
        continue;
      }
      const mac = dataField(data, 'VtepMAC');
      if (!isUnicastMac(mac)) {
        skipped.add(
          peer,
          family,
          `${dataName}.VtepMAC ${JSON.stringify(mac) ?? 'missing'} is not a unicast MAC`,
        );
        continue;
      }
      const vtepMac = mac.toLowerCase();
      const vni = dataField(data, 'VNI');
      if (vni !== undefined && vni !== vxlan.vni) {
        skipped.add(
          peer,
          family,
          `${dataName}.VNI ${JSON.stringify(vni)} differs from this node's VNI ${vxlan.vni}`,
        );
        continue;
      }
      const dst = formatCidr(verdict.subnet);
      const earlierSubnet = subnetOwner.get(dst);
      if (earlierSubnet !== undefined) {
        skipped.add(peer, family, `subnet ${dst} is also leased by ${earlierSubnet}`);
        continue;
      }
      const earlierMac = macOwner.get(vtepMac);
      if (earlierMac !== undefined && earlierMac.publicIp !== verdict.publicIp) {
        skipped.add(
          peer,
          family,
          `VtepMAC ${vtepMac} is also used by ${earlierMac.key} (PublicIP ${earlierMac.publicIp})`,
        );
        continue;
      }
      subnetOwner.set(dst, peer.key);

      if (vxlan.directRouting && isOnLink(verdict.publicIp, iface.addresses)) {
        routes.push({ dst, via: verdict.publicIp, dev: iface.name });
        continue;
      }
      const gateway = formatIp(verdict.subnet);
      neighbors.push({ dev: device.name, ip: gateway, mac: vtepMac });
      // Two leases of one node (same PublicIP, so same MAC) share one FDB entry.
      if (earlierMac === undefined) {
        macOwner.set(vtepMac, { key: peer.key, publicIp: verdict.publicIp });
        fdb.push({ dev: device.name, mac: vtepMac, dst: verdict.publicIp });
      }
      routes.push({ dst, via: gateway, dev: device.name, onlink: true });
    }
    state.routes.push(...routes);
    state.neighbors.push(...neighbors);
    state.fdb.push(...fdb);
  }
  return { state, skipped: skipped.entries };
}

/**
 * What the vxlan backend owns: both families' devices of this VNI (so a disabled family's device is removed),
 * routes into the Networks on them or on the external interface (DirectRouting), never the own subnet.
 */
export function vxlanScope(
  vxlan: VxlanBackendConfig,
  networks: FamilyNetworks,
  iface: SelectedInterface,
  own: Lease,
): KernelScope {
  const protectedDsts: Cidr[] = [];
  if (own.subnet !== undefined) protectedDsts.push(own.subnet);
  if (own.ipv6Subnet !== undefined) protectedDsts.push(own.ipv6Subnet);
  return {
    devices: [vxlanDeviceName(4, vxlan.vni), vxlanDeviceName(6, vxlan.vni)],
    networks: enabledFamilies(networks).map(([, n]) => n),
    externalDev: iface.name,
    protectedDsts,
  };
}
