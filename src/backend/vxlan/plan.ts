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
import {
  type Assembly,
  addClaims,
  addConflict,
  assembleChanged,
  emptyAssembly,
  type PeerClaims,
  PeerPlanMemo,
} from '../assembly.js';
import { dataField, isUnicastMac, subnetOf } from '../lease-fields.js';
import { enabledFamilies, type FamilyNetworks } from '../networks.js';
import {
  checkPeer,
  derivationContext,
  isOnLink,
  PeerDerivations,
  SkipList,
  sortedPeers,
} from '../peer-check.js';
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

/** What one peer lease gives on its own, for one family and context (the checks across peers come after). */
type PeerDerivation =
  | { kind: 'self' }
  | { kind: 'skip'; reason: string }
  | { kind: 'direct'; dst: string; publicIp: string; vtepMac: string; route: RouteEntry }
  | {
      kind: 'tunnel';
      /** The lease's key (a derivation belongs to one lease). */
      key: string;
      dst: string;
      publicIp: string;
      vtepMac: string;
      route: RouteEntry;
      neighbor: NeighborEntry;
      fdb: FdbEntry;
    };

interface PeerContext {
  /** Everything besides the peer that a derivation depends on, as text. */
  key: string;
  family: Family;
  vxlan: VxlanBackendConfig;
  iface: SelectedInterface;
  network: Cidr;
  own: Lease;
  dev: string;
}

function contextKey(
  vxlan: VxlanBackendConfig,
  iface: SelectedInterface,
  family: Family,
  network: Cidr,
  own: Lease,
  dev: string,
): string {
  const publicIp = ownPublicIp(iface, family);
  return derivationContext(
    {
      family,
      backendType: 'vxlan',
      network,
      own,
      ...(publicIp === undefined ? {} : { ownPublicIp: publicIp }),
    },
    vxlan.vni,
    vxlan.directRouting,
    dev,
    iface.name,
    vxlan.directRouting ? iface.addresses : null,
  );
}

/** Derivations by lease object (one per family context). */
const derivations = new PeerDerivations<PeerDerivation>();

function derivePeer(peer: Lease, ctx: PeerContext): PeerDerivation {
  return derivations.get(peer, ctx.key) ?? derivations.remember(peer, ctx.key, derivePeerUncached(peer, ctx));
}

function derivePeerUncached(peer: Lease, ctx: PeerContext): PeerDerivation {
  const { family, vxlan, iface } = ctx;
  const verdict = checkPeer(peer, {
    family,
    backendType: 'vxlan',
    network: ctx.network,
    own: ctx.own,
    ownPublicIp: ownPublicIp(iface, family),
  });
  if (verdict.kind !== 'ok') return verdict;
  const data = family === 4 ? peer.attrs.backendData : peer.attrs.backendV6Data;
  const dataName = family === 4 ? 'BackendData' : 'BackendV6Data';
  if (data === undefined) return { kind: 'skip', reason: `no ${dataName}` };
  const mac = dataField(data, 'VtepMAC');
  if (!isUnicastMac(mac)) {
    return {
      kind: 'skip',
      reason: `${dataName}.VtepMAC ${JSON.stringify(mac) ?? 'missing'} is not a unicast MAC`,
    };
  }
  const vtepMac = mac.toLowerCase();
  const vni = dataField(data, 'VNI');
  if (vni !== undefined && vni !== vxlan.vni) {
    return {
      kind: 'skip',
      reason: `${dataName}.VNI ${JSON.stringify(vni)} differs from this node's VNI ${vxlan.vni}`,
    };
  }
  const dst = formatCidr(verdict.subnet);
  const publicIp = verdict.publicIp;
  if (vxlan.directRouting && isOnLink(publicIp, iface.addresses)) {
    return { kind: 'direct', dst, publicIp, vtepMac, route: { dst, via: publicIp, dev: iface.name } };
  }
  const gateway = formatIp(verdict.subnet);
  return {
    kind: 'tunnel',
    key: peer.key,
    dst,
    publicIp,
    vtepMac,
    route: { dst, via: gateway, dev: ctx.dev, onlink: true },
    neighbor: { dev: ctx.dev, ip: gateway, mac: vtepMac },
    fdb: { dev: ctx.dev, mac: vtepMac, dst: publicIp },
  };
}

/**
 * What planVxlan keeps between calls (one per backend instance): each family's last assembly, so a call whose
 * peers changed a little redoes only those peers; the result is the same as without it.
 */
export class VxlanPlanMemo extends PeerPlanMemo<PeerDerivation> {}

/** Whether peer `i`'s FDB entry is programmed (not served by an earlier peer's entry for the same node). */
function ownsFdb(a: Assembly<PeerDerivation>, i: number): boolean {
  return a.shared.size === 0 || !a.shared.has(a.peers[i]!);
}

/** A programmed peer's subnet and VTEP MAC. */
function claimsOf(d: PeerDerivation): PeerClaims | undefined {
  return d.kind === 'direct' || d.kind === 'tunnel' ? { dst: d.dst, mac: d.vtepMac } : undefined;
}

/** Every peer in order, with the checks across peers: a subnet or a MAC (for another PublicIP) held earlier. */
function assembleAll(peers: readonly Lease[], ctx: PeerContext): Assembly<PeerDerivation> {
  const a = emptyAssembly<PeerDerivation>(peers);
  const subnetOwner = new Map<string, string>();
  const macOwner = new Map<string, Extract<PeerDerivation, { kind: 'tunnel' }>>();
  peers.forEach((peer, i) => {
    const d = derivePeer(peer, ctx);
    a.derivations[i] = d;
    if (d.kind === 'self' || d.kind === 'skip') return;
    const earlierSubnet = subnetOwner.get(d.dst);
    if (earlierSubnet !== undefined) {
      addConflict(a, i, `subnet ${d.dst} is also leased by ${earlierSubnet}`);
      return;
    }
    const earlierMac = macOwner.get(d.vtepMac);
    if (earlierMac !== undefined && earlierMac.publicIp !== d.publicIp) {
      addConflict(
        a,
        i,
        `VtepMAC ${d.vtepMac} is also used by ${earlierMac.key} (PublicIP ${earlierMac.publicIp})`,
      );
      return;
    }
    subnetOwner.set(d.dst, peer.key);
    addClaims(a, { dst: d.dst, mac: d.vtepMac });
    // Two leases of one node (same PublicIP, so same MAC) share one FDB entry.
    if (d.kind !== 'tunnel') return;
    if (earlierMac === undefined) macOwner.set(d.vtepMac, d);
    else a.shared.add(peer);
  });
  return a;
}

/**
 * Per family: the device, its `<subnet network address>/32|128` address and, per remote vxlan lease, a
 * PERMANENT neighbour (subnet network address → VtepMAC), an FDB entry (VtepMAC → PublicIP) and a route
 * `<subnet> via <subnet network address> dev flannel.N onlink` — or with DirectRouting and an on-link
 * PublicIP, a plain route `<subnet> via <PublicIP> dev <external interface>`. With a `memo` (the backend
 * keeps one), a call redoes only the peers that changed since the last call; the result is the same.
 */
export function planVxlan(input: VxlanPlanInput, memo?: VxlanPlanMemo): DesiredBackendState {
  const { vxlan, iface, own } = input;
  const state: DesiredKernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
  const skipped = new SkipList();
  const peers = sortedPeers(input.peers);
  const assembled: { family: Family; a: Assembly<PeerDerivation> }[] = [];

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
    const ctx: PeerContext = {
      key: contextKey(vxlan, iface, family, network, own, device.name),
      family,
      vxlan,
      iface,
      network,
      own,
      dev: device.name,
    };
    const prev = memo?.take(ctx.key);
    const a =
      (prev && assembleChanged(prev, peers, (peer) => derivePeer(peer, ctx), claimsOf)) ??
      assembleAll(peers, ctx);
    memo?.keep(ctx.key, a);
    assembled.push({ family, a });
  }
  // The skipped peers, and how many entries the families program: the state's arrays are allocated once.
  let routeCount = 0;
  let neighborCount = 0;
  let fdbCount = 0;
  for (const { family, a } of assembled) {
    a.derivations.forEach((d, i) => {
      const reason = d.kind === 'skip' ? d.reason : a.conflicts?.[i];
      if (reason !== undefined) skipped.add(peers[i]!, family, reason);
      else if (d.kind === 'direct') routeCount++;
      else if (d.kind === 'tunnel') {
        routeCount++;
        neighborCount++;
        if (ownsFdb(a, i)) fdbCount++;
      }
    });
  }
  const routes = new Array<RouteEntry>(routeCount);
  const neighbors = new Array<NeighborEntry>(neighborCount);
  const fdb = new Array<FdbEntry>(fdbCount);
  let r = 0;
  let n = 0;
  let f = 0;
  for (const { a } of assembled) {
    a.derivations.forEach((d, i) => {
      if ((d.kind !== 'direct' && d.kind !== 'tunnel') || a.conflicts?.[i] !== undefined) return;
      if (d.kind === 'tunnel') {
        neighbors[n++] = d.neighbor;
        if (ownsFdb(a, i)) fdb[f++] = d.fdb;
      }
      routes[r++] = d.route;
    });
  }
  state.routes = routes;
  state.neighbors = neighbors;
  state.fdb = fdb;
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
