// planWireguard: the desired state of the wireguard backend — per device its listen port and one peer per
// remote wireguard lease (public key, endpoint, the peer's subnets as allowed IPs), plus the kernel entries
// (own subnet address /32 or /128 on the device, one scope-link route for the Network). And diffWgDevice: why
// an observed device differs from the wanted one. Pure; secrets never enter here (the PSK only as a digest).
import type { WireguardBackendConfig } from '../../config/index.js';
import { isWireguardKey } from '../../config/index.js';
import { type Cidr, canonicalIp, containsCidr, formatCidr, formatIp, isIp } from '../../ip/index.js';
import type {
  DesiredKernelState,
  KernelScope,
  WgDeviceSpec,
  WgObservedDevice,
  WgPeerSpec,
} from '../../kernel/index.js';
import type { Lease, LeaseAttrs } from '../../lease/index.js';
import { backendDataOf, dataField, subnetOf } from '../lease-fields.js';
import type { FamilyNetworks } from '../networks.js';
import { SkipList, sortedPeers } from '../peer-check.js';
import type { Family, SkippedPeer } from '../types.js';

export const WIREGUARD_DEVICE = 'flannel-wg';
export const WIREGUARD_DEVICE_V6 = 'flannel-wg-v6';
/** IPv6 outer header (40) + UDP (8) + WireGuard data header and tag (32): flannel's fixed overhead. */
export const WIREGUARD_OVERHEAD = 80;

/** One device this node runs: its name, listen port and the families it carries. */
export interface WgDeviceLayout {
  name: string;
  port: number;
  families: Family[];
}

/** `separate`: one device per family; every other mode one `flannel-wg` for both. */
export function wireguardDevices(cfg: WireguardBackendConfig, networks: FamilyNetworks): WgDeviceLayout[] {
  const families: Family[] = [];
  if (networks.ipv4 !== undefined) families.push(4);
  if (networks.ipv6 !== undefined) families.push(6);
  if (cfg.mode !== 'separate') return [{ name: WIREGUARD_DEVICE, port: cfg.listenPort, families }];
  return families.map((f) =>
    f === 4
      ? { name: WIREGUARD_DEVICE, port: cfg.listenPort, families: [4] }
      : { name: WIREGUARD_DEVICE_V6, port: cfg.listenPortV6, families: [6] },
  );
}

/** The lease attributes: flannel's `{"PublicKey","Port"}` per family. */
export function wireguardLeaseAttrs(
  devices: readonly WgDeviceLayout[],
  publicKey: string,
  publicIp: string | undefined,
  publicIpv6: string | undefined,
): LeaseAttrs {
  const attrs: LeaseAttrs = { publicIP: publicIp ?? '', backendType: 'wireguard' };
  if (publicIpv6 !== undefined) attrs.publicIPv6 = publicIpv6;
  for (const d of devices) {
    if (d.families.includes(4)) attrs.backendData = { PublicKey: publicKey, Port: d.port };
    if (d.families.includes(6)) attrs.backendV6Data = { PublicKey: publicKey, Port: d.port };
  }
  return attrs;
}

export interface WireguardPlanInput {
  cfg: WireguardBackendConfig;
  networks: FamilyNetworks;
  devices: readonly WgDeviceLayout[];
  ownPublicIp?: string;
  ownPublicIpv6?: string;
  own: Lease;
  peers: readonly Lease[];
}

export interface WireguardPlan {
  state: DesiredKernelState;
  devices: WgDeviceSpec[];
  skipped: SkippedPeer[];
}

function networkOf(networks: FamilyNetworks, family: Family): Cidr | undefined {
  return family === 4 ? networks.ipv4 : networks.ipv6;
}

function publicAddress(lease: Lease, family: Family): string | undefined {
  const ip = family === 4 ? lease.attrs.publicIP : lease.attrs.publicIPv6;
  return ip !== undefined && ip !== '' && isIp(ip, family) ? canonicalIp(ip) : undefined;
}

/** The peer's public key and port for a family's data; port 0 / missing = our own listen port (old flannel). */
function keyAndPort(
  lease: Lease,
  family: Family,
  localPort: number,
): { key: string; port: number } | { error: string } {
  const data = backendDataOf(lease, family);
  const label = family === 4 ? 'BackendData' : 'BackendV6Data';
  if (data === undefined) return { error: `no ${label}` };
  const key = dataField(data, 'PublicKey');
  if (typeof key !== 'string' || !isWireguardKey(key)) {
    return { error: `${label}.PublicKey is not a WireGuard public key (44 characters of base64)` };
  }
  const port = dataField(data, 'Port');
  if (port === undefined || port === null || port === 0) return { key, port: localPort };
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return { error: `${label}.Port ${JSON.stringify(port)} is not a UDP port` };
  }
  return { key, port };
}

function endpointText(ip: string, family: Family, port: number): string {
  return family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Which endpoint family a single-device peer is dialled on. */
function endpointFamily(mode: WireguardBackendConfig['mode'], peer: Lease): Family | undefined {
  const v4 = publicAddress(peer, 4) !== undefined;
  const v6 = publicAddress(peer, 6) !== undefined;
  if (mode === 'ipv4') return v4 ? 4 : undefined;
  if (mode === 'ipv6') return v6 ? 6 : undefined;
  // auto: IPv4 when the peer publishes one, else IPv6 (an IPv6-only peer).
  return v4 ? 4 : v6 ? 6 : undefined;
}

export function planWireguard(input: WireguardPlanInput): WireguardPlan {
  const { cfg, networks, own } = input;
  const state: DesiredKernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
  const skipped = new SkipList();
  const specs: WgDeviceSpec[] = [];
  const ownIps = new Set(
    [input.ownPublicIp, input.ownPublicIpv6].filter((x): x is string => !!x).map(canonicalIp),
  );
  for (const device of input.devices) {
    const peers: WgPeerSpec[] = [];
    for (const family of device.families) {
      const network = networkOf(networks, family)!;
      const subnet = subnetOf(own, family);
      if (subnet !== undefined) {
        state.addresses.push({
          dev: device.name,
          cidr: `${formatIp(subnet)}/${family === 4 ? 32 : 128}`,
        });
      }
      state.routes.push({ dst: formatCidr(network), dev: device.name });
    }
    const seenKeys = new Map<string, string>();
    for (const peer of sortedPeers(input.peers)) {
      if (peer.key === own.key) continue;
      const fam0 = device.families[0]!;
      if (peer.attrs.backendType !== 'wireguard') {
        const t = peer.attrs.backendType;
        skipped.add(peer, fam0, t ? `backend type ${t} (this node uses wireguard)` : 'no BackendType');
        continue;
      }
      const allowed: string[] = [];
      let isSelf = false;
      for (const family of device.families) {
        const subnet = subnetOf(peer, family);
        if (subnet === undefined) continue;
        const ownSubnet = subnetOf(own, family);
        if (ownSubnet !== undefined && formatCidr(ownSubnet) === formatCidr(subnet)) isSelf = true;
        const network = networkOf(networks, family)!;
        if (!containsCidr(network, subnet)) {
          skipped.add(
            peer,
            family,
            `subnet ${formatCidr(subnet)} is outside the Network ${formatCidr(network)}`,
          );
          continue;
        }
        allowed.push(formatCidr(subnet));
      }
      if (isSelf) continue;
      if (allowed.length === 0) {
        skipped.add(peer, fam0, `no subnet of the families ${device.name} carries`);
        continue;
      }
      const epFamily =
        cfg.mode === 'separate' ? (device.families[0] as Family) : endpointFamily(cfg.mode, peer);
      const ip = epFamily === undefined ? undefined : publicAddress(peer, epFamily);
      if (epFamily === undefined || ip === undefined) {
        skipped.add(peer, fam0, `no public address to dial in mode ${cfg.mode}`);
        continue;
      }
      if (ownIps.has(ip)) {
        skipped.add(peer, fam0, `PublicIP ${ip} is this node's own (a stale lease of this node?)`);
        continue;
      }
      // Single device: the key is the same in both data fields; take the endpoint family's, else the other.
      let kp = keyAndPort(peer, epFamily, device.port);
      if ('error' in kp && cfg.mode !== 'separate') {
        const other = keyAndPort(peer, epFamily === 4 ? 6 : 4, device.port);
        if (!('error' in other)) kp = other;
      }
      if ('error' in kp) {
        skipped.add(peer, fam0, kp.error);
        continue;
      }
      const earlier = seenKeys.get(kp.key);
      if (earlier !== undefined) {
        skipped.add(peer, fam0, `public key is also used by ${earlier}`);
        continue;
      }
      seenKeys.set(kp.key, peer.key);
      peers.push({
        publicKey: kp.key,
        endpoint: endpointText(ip, epFamily, kp.port),
        allowedIps: allowed.sort(),
        persistentKeepalive: cfg.persistentKeepaliveInterval,
      });
    }
    specs.push({ name: device.name, listenPort: device.port, peers });
  }
  return { state, devices: specs, skipped: skipped.entries };
}

/** What the backend owns: addresses and routes on its devices (the devices themselves are made outside). */
export function wireguardScope(
  networks: FamilyNetworks,
  devices: readonly WgDeviceLayout[],
  own: Lease,
): KernelScope {
  const protectedDsts: Cidr[] = [];
  if (own.subnet !== undefined) protectedDsts.push(own.subnet);
  if (own.ipv6Subnet !== undefined) protectedDsts.push(own.ipv6Subnet);
  const nets = [networks.ipv4, networks.ipv6].filter((n): n is Cidr => n !== undefined);
  return { devices: [], entryDevices: devices.map((d) => d.name), networks: nets, protectedDsts };
}

export interface WgWanted {
  spec: WgDeviceSpec;
  publicKey: string;
  /** Digest of the PSK every peer should have; undefined = none. */
  pskDigest?: string;
}

/**
 * Why the observed device differs from the wanted one (empty = in sync): missing, other key or port, peers
 * missing or not wanted, or a peer's endpoint, allowed IPs, PSK or keepalive changed. Public keys are not
 * secrets and name the peers.
 */
export function diffWgDevice(wanted: WgWanted, observed: WgObservedDevice | undefined): string[] {
  if (observed === undefined) return ['device not configured'];
  const reasons: string[] = [];
  if (observed.publicKey !== wanted.publicKey) reasons.push('private key differs');
  if (observed.listenPort !== wanted.spec.listenPort)
    reasons.push(`listen port ${observed.listenPort} (want ${wanted.spec.listenPort})`);
  const seen = new Map(observed.peers.map((p) => [p.publicKey, p]));
  const wantedKeys = new Set(wanted.spec.peers.map((p) => p.publicKey));
  for (const p of observed.peers) if (!wantedKeys.has(p.publicKey)) reasons.push(`peer ${p.publicKey} stale`);
  for (const p of wanted.spec.peers) {
    const o = seen.get(p.publicKey);
    if (o === undefined) {
      reasons.push(`peer ${p.publicKey} missing`);
      continue;
    }
    if (o.endpoint !== p.endpoint) reasons.push(`peer ${p.publicKey} endpoint ${o.endpoint ?? 'none'}`);
    if (o.allowedIps.join(',') !== [...p.allowedIps].sort().join(','))
      reasons.push(`peer ${p.publicKey} allowed IPs ${o.allowedIps.join(',') || 'none'}`);
    if (o.pskDigest !== wanted.pskDigest) reasons.push(`peer ${p.publicKey} pre-shared key differs`);
    if (o.persistentKeepalive !== p.persistentKeepalive)
      reasons.push(`peer ${p.publicKey} keepalive ${o.persistentKeepalive}`);
  }
  return reasons;
}
