// The udp backend's data path: a native engine (native/) moving packets between the TUN device and a UDP
// socket, and the packet rules it follows (packet.ts).
export {
  DEFAULT_UDP_PORT,
  loadUdpAddon,
  type OpenTunOptions,
  openTun,
  type TunDevice,
  TunOpenError,
  tunnelAddressOf,
  UDP_ENCAP_OVERHEAD,
  UdpAddonNotBuiltError,
  UdpEngine,
  type UdpEngineDrops,
  UdpEngineOptionError,
  type UdpEngineOptions,
  UdpEngineStartError,
  type UdpEngineStats,
  UdpEngineStoppedError,
  type UdpPeer,
} from './engine.js';
export type { DropReason } from './packet.js';
