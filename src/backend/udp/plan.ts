// planUdp: the desired kernel state and the engine's peer table of the udp backend, a pure function of the
// config, the external interface, the own lease and the peer leases (flannel's udp backend, reconciled).
import type { UdpBackendConfig } from '../../config/index.js';
import { type Cidr, canonicalIp, containsCidr, formatCidr, formatIp, isIp } from '../../ip/index.js';
import type { DesiredKernelState, KernelScope, SelectedInterface, TunLinkSpec } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { SkipList, sortedPeers } from '../peer-check.js';
import { type DesiredBackendState, OwnLeaseMismatchError } from '../types.js';
import { UDP_DEVICE_NAME, UDP_ENCAP_OVERHEAD, type UdpPeer } from './engine.js';

export { UDP_DEVICE_NAME };
/**
 * The lease BackendType udp peers publish: none (flannel's udp backend writes only PublicIP). A lease that
 * names this type is accepted too.
 */
export const UDP_BACKEND_TYPE = 'udp';

export interface UdpPlanInput {
  udp: UdpBackendConfig;
  /** The IPv4 Network (the udp backend carries IPv4 only). */
  network: Cidr;
  iface: SelectedInterface;
  own: Lease;
  peers: readonly Lease[];
}

export interface UdpPlan extends DesiredBackendState {
  /** The engine's peer table: one entry per programmed peer lease, sorted by lease key. */
  enginePeers: UdpPeer[];
}

/** TUN MTU: the underlay MTU minus the outer IPv4 and UDP headers. */
export function udpDeviceMtu(ifaceMtu: number): number {
  return ifaceMtu - UDP_ENCAP_OVERHEAD;
}

/** The TUN device as the kernel planner creates and keeps it (`ip tuntap add … mode tun`, persistent). */
export function udpDevice(iface: SelectedInterface): TunLinkSpec {
  return { kind: 'tun', name: UDP_DEVICE_NAME, mtu: udpDeviceMtu(iface.mtu), up: true };
}

/**
 * The own subnet, or an OwnLeaseMismatchError: the udp backend needs an IPv4 lease.
 */
export function ownUdpSubnet(own: Lease): Cidr {
  if (own.subnet === undefined) {
    throw new OwnLeaseMismatchError(
      `the own lease ${own.key} has no IPv4 subnet; the udp backend carries IPv4 only`,
    );
  }
  return own.subnet;
}

/**
 * The TUN `flannel0` (MTU underlay − 28, up), its address `<own subnet network address>/32`, one route for
 * the whole Network to it, and per remote lease an engine peer `{subnet, PublicIP, Backend.Port}`.
 *
 * Peers are what flannel's udp backend programs: every lease except the own one, reached at its PublicIP on
 * this node's configured port (a lease does not publish a port). weft additionally skips, with a reason,
 * leases that name another backend type (a vxlan or host-gw node cannot decapsulate), that lie outside the
 * Network, lack a usable PublicIP, carry this node's own PublicIP (a stale lease of this node) or repeat a
 * subnet already taken.
 */
export function planUdp(input: UdpPlanInput): UdpPlan {
  const { udp, network, iface, own } = input;
  const ownSubnet = ownUdpSubnet(own);
  const device = udpDevice(iface);
  const state: DesiredKernelState = {
    links: [device],
    addresses: [{ dev: device.name, cidr: `${formatIp(ownSubnet)}/32` }],
    routes: [{ dst: formatCidr(network), dev: device.name }],
    neighbors: [],
    fdb: [],
  };
  const skipped = new SkipList();
  const enginePeers: UdpPeer[] = [];
  const ownPublicIp = iface.publicIp === undefined ? undefined : canonicalIp(iface.publicIp);
  const subnetOwner = new Map<string, string>();
  for (const peer of sortedPeers(input.peers)) {
    const subnet = peer.subnet;
    if (peer.key === own.key || (subnet !== undefined && formatCidr(subnet) === formatCidr(ownSubnet)))
      continue;
    const type = peer.attrs.backendType;
    if (type !== undefined && type !== '' && type !== UDP_BACKEND_TYPE) {
      skipped.add(peer, 4, `backend type ${type} (this node uses udp, whose leases carry no BackendType)`);
      continue;
    }
    if (subnet === undefined) {
      skipped.add(peer, 4, 'no IPv4 subnet (the udp backend carries IPv4 only)');
      continue;
    }
    if (!containsCidr(network, subnet)) {
      skipped.add(peer, 4, `subnet ${formatCidr(subnet)} is outside the Network ${formatCidr(network)}`);
      continue;
    }
    const publicIp = peer.attrs.publicIP;
    if (publicIp === '') {
      skipped.add(peer, 4, 'no PublicIP');
      continue;
    }
    if (!isIp(publicIp, 4)) {
      skipped.add(peer, 4, `PublicIP ${JSON.stringify(publicIp)} is not an IPv4 address`);
      continue;
    }
    const address = canonicalIp(publicIp);
    if (address === ownPublicIp) {
      skipped.add(peer, 4, `PublicIP ${address} is this node's own (a stale lease of this node?)`);
      continue;
    }
    const dst = formatCidr(subnet);
    const earlier = subnetOwner.get(dst);
    if (earlier !== undefined) {
      skipped.add(peer, 4, `subnet ${dst} is also leased by ${earlier}`);
      continue;
    }
    subnetOwner.set(dst, peer.key);
    enginePeers.push({ subnet: dst, address, port: udp.port });
  }
  return { state, skipped: skipped.entries, enginePeers };
}

/**
 * What the udp backend owns: the TUN, addresses inside the Network on it, and routes into the Network on it
 * or on the external interface (so host-gw routes left from an earlier backend are removed); never the own
 * subnet, whose route belongs to the bridge.
 */
export function udpScope(network: Cidr, iface: SelectedInterface, own: Lease): KernelScope {
  const protectedDsts: Cidr[] = [];
  if (own.subnet !== undefined) protectedDsts.push(own.subnet);
  return { devices: [UDP_DEVICE_NAME], networks: [network], externalDev: iface.name, protectedDsts };
}

/** A stable text of a peer table, to tell whether the engine needs a new one. */
export function peerTableKey(peers: readonly UdpPeer[]): string {
  return peers.map((p) => `${p.subnet}>${p.address}:${p.port}`).join(',');
}
