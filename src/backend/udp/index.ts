// The udp backend: the Backend (backend.ts), its pure planner (plan.ts), and its data path — a native engine
// (native/) moving packets between the TUN device and a UDP socket — with the packet rules it follows (packet.ts).
export { UdpBackend, type UdpBackendOptions, UdpDeviceMissingError } from './backend.js';
export { addCounters, countersOf, DROP_REASON_LABELS, zeroCounters } from './counters.js';
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
export {
  ownUdpSubnet,
  peerTableKey,
  planUdp,
  UDP_BACKEND_TYPE,
  UDP_DEVICE_NAME,
  type UdpPlan,
  type UdpPlanInput,
  udpDevice,
  udpDeviceMtu,
  udpScope,
} from './plan.js';
