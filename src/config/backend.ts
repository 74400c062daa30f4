// The `Backend` object of the network config: one type per backend, flannel's keys and defaults, parsed and
// validated (secrets are never echoed in an error).
import { type Json, KeyReader, NetworkConfigError } from './key-reader.js';

export type BackendType = 'vxlan' | 'host-gw' | 'udp' | 'auto' | 'wireguard' | 'extension' | 'alloc';
export const BACKEND_TYPES: readonly BackendType[] = [
  'vxlan',
  'host-gw',
  'udp',
  'auto',
  'wireguard',
  'extension',
  'alloc',
];

export interface VxlanBackendConfig {
  type: 'vxlan';
  vni: number;
  /** UDP destination port; 0 = the kernel's default (8472). */
  port: number;
  /** The underlay MTU (flannel's meaning: the device gets MTU − 50, IPv6 − 70); 0 = the interface's MTU. */
  mtu: number;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
}

export interface HostGwBackendConfig {
  type: 'host-gw';
}

export interface UdpBackendConfig {
  type: 'udp';
  port: number;
}

/** weft's addition: vxlan when the kernel allows it, udp otherwise. Carries the settings of both. */
export interface AutoBackendConfig {
  type: 'auto';
  vxlan: VxlanBackendConfig;
  udp: UdpBackendConfig;
}

/** flannel's `Mode`: one device per family (`separate`) or one device for both, with the endpoint family chosen. */
export type WireguardMode = 'separate' | 'auto' | 'ipv4' | 'ipv6';
export const WIREGUARD_MODES: readonly WireguardMode[] = ['separate', 'auto', 'ipv4', 'ipv6'];

export interface WireguardBackendConfig {
  type: 'wireguard';
  /** Pre-shared key (base64, 32 bytes) applied to every peer; a secret: never logged or serialised. */
  psk?: string;
  listenPort: number;
  listenPortV6: number;
  /** Underlay MTU override; 0 = the external interface's MTU. The device gets this minus 80. */
  mtu: number;
  mode: WireguardMode;
  /** Seconds; 0 = off. */
  persistentKeepaliveInterval: number;
}

/** flannel's extension backend: the user's own shell commands. */
export interface ExtensionBackendConfig {
  type: 'extension';
  preStartupCommand: string;
  postStartupCommand: string;
  subnetAddCommand: string;
  subnetRemoveCommand: string;
}

/** flannel's alloc backend: the lease only. */
export interface AllocBackendConfig {
  type: 'alloc';
}

export type BackendConfig =
  | VxlanBackendConfig
  | HostGwBackendConfig
  | UdpBackendConfig
  | AutoBackendConfig
  | WireguardBackendConfig
  | ExtensionBackendConfig
  | AllocBackendConfig;

export const DEFAULT_VXLAN_PORT = 8472;
export const DEFAULT_UDP_PORT = 8285;
export const DEFAULT_WIREGUARD_PORT = 51820;
export const DEFAULT_WIREGUARD_PORT_V6 = 51821;

export function parseBackend(input: unknown): BackendConfig {
  // Better than flannel: a missing Backend means vxlan (flannel silently picks udp, flannel #1221).
  if (input === undefined) return vxlanDefaults();
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new NetworkConfigError('Backend', input, 'must be an object like {"Type": "vxlan"}');
  }
  const r = new KeyReader(input as Json, 'Backend');
  const typeText = r.string('Type') ?? 'vxlan';
  const type = typeText.toLowerCase() === 'hostgw' ? 'host-gw' : typeText.toLowerCase();
  switch (type) {
    case 'vxlan':
      return vxlanConfig(r);
    case 'host-gw':
      return { type: 'host-gw' };
    case 'udp':
      return udpConfig(r);
    case 'auto':
      // `Port` is the vxlan port here; the udp fallback's port is `UDPPort` (default 8285).
      return {
        type: 'auto',
        vxlan: vxlanConfig(r),
        udp: { type: 'udp', port: r.int('UDPPort', DEFAULT_UDP_PORT, 1, 65535) },
      };
    case 'wireguard':
      return wireguardConfig(r);
    case 'extension':
      return {
        type: 'extension',
        preStartupCommand: r.string('PreStartupCommand') ?? '',
        postStartupCommand: r.string('PostStartupCommand') ?? '',
        subnetAddCommand: r.string('SubnetAddCommand') ?? '',
        subnetRemoveCommand: r.string('SubnetRemoveCommand') ?? '',
      };
    case 'alloc':
      return { type: 'alloc' };
    default:
      throw new NetworkConfigError('Backend.Type', typeText, `must be one of ${BACKEND_TYPES.join(', ')}`);
  }
}

function vxlanDefaults(): VxlanBackendConfig {
  return { type: 'vxlan', vni: 1, port: 0, mtu: 0, gbp: false, learning: false, directRouting: false };
}

function vxlanConfig(r: KeyReader): VxlanBackendConfig {
  return {
    type: 'vxlan',
    vni: r.int('VNI', 1, 0, 0xffffff),
    port: r.int('Port', 0, 0, 65535),
    mtu: r.int('MTU', 0, 0, 65535),
    gbp: r.bool('GBP', false),
    learning: r.bool('Learning', false),
    directRouting: r.bool('DirectRouting', false),
  };
}

/** A WireGuard key as `wg` prints it: 32 bytes in standard base64 (44 characters ending in `=`). */
export function isWireguardKey(text: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text);
}

function wireguardConfig(r: KeyReader): WireguardBackendConfig {
  const psk = r.get('PSK');
  if (psk !== undefined && psk !== '' && (typeof psk !== 'string' || !isWireguardKey(psk))) {
    // The value is a secret: the error names the field and the rule, never the value.
    throw new NetworkConfigError(
      'Backend.PSK',
      '(hidden)',
      'must be a WireGuard key: 32 bytes in base64 (44 characters, as `wg genpsk` prints)',
    );
  }
  const listenPort = r.int('ListenPort', DEFAULT_WIREGUARD_PORT, 0, 65535);
  const listenPortV6 = r.int('ListenPortV6', DEFAULT_WIREGUARD_PORT_V6, 0, 65535);
  const modeText = r.string('Mode') ?? 'separate';
  const mode = modeText.toLowerCase() as WireguardMode;
  if (!WIREGUARD_MODES.includes(mode)) {
    throw new NetworkConfigError('Backend.Mode', modeText, `must be one of ${WIREGUARD_MODES.join(', ')}`);
  }
  const out: WireguardBackendConfig = {
    type: 'wireguard',
    listenPort: listenPort === 0 ? DEFAULT_WIREGUARD_PORT : listenPort,
    listenPortV6: listenPortV6 === 0 ? DEFAULT_WIREGUARD_PORT_V6 : listenPortV6,
    mtu: r.int('MTU', 0, 0, 65535),
    mode,
    persistentKeepaliveInterval: r.int('PersistentKeepaliveInterval', 0, 0, 65535),
  };
  if (typeof psk === 'string' && psk !== '') out.psk = psk;
  return out;
}

function udpConfig(r: KeyReader): UdpBackendConfig {
  const port = r.int('Port', DEFAULT_UDP_PORT, 0, 65535);
  return { type: 'udp', port: port === 0 ? DEFAULT_UDP_PORT : port };
}

/** The vxlan UDP port weft programs: `Port`, or the kernel's default 8472 when 0. */
export function vxlanPort(cfg: VxlanBackendConfig): number {
  return cfg.port === 0 ? DEFAULT_VXLAN_PORT : cfg.port;
}
