// Data-plane backends: the Backend interface, the registry by name, and the vxlan, host-gw, udp, wireguard,
// extension and alloc backends.
export { AllocBackend } from './alloc/index.js';
export { ExtensionBackend, extensionBackendData, planExtensionPeers } from './extension/index.js';
export { HostGwBackend, HostGwPlanMemo, hostGwScope, planHostGw } from './hostgw/index.js';
export { bridgeGatewayOf, dataField, isUnicastMac, tunnelAddressOf } from './lease-fields.js';
export { enabledFamilies, type FamilyNetworks, familyNetworks } from './networks.js';
export { isOnLink, SkippedPeerLog } from './peer-check.js';
export { createBackend, registerBackend, registeredBackendTypes } from './registry.js';
export {
  type Backend,
  type BackendContext,
  type BackendCounters,
  type BackendFactory,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  OwnLeaseMismatchError,
  type PreparedBackend,
  type SkippedPeer,
  UnknownBackendError,
} from './types.js';
export { planUdp, UDP_DEVICE_NAME, UdpBackend, udpScope } from './udp/index.js';
export {
  planVxlan,
  VXLAN_OVERHEAD,
  VxlanBackend,
  type VxlanBackendOptions,
  VxlanPlanMemo,
  vxlanDevice,
  vxlanDeviceMtu,
  vxlanDeviceName,
  vxlanScope,
} from './vxlan/index.js';
export {
  DEFAULT_WIREGUARD_KEY_FILE,
  diffWgDevice,
  loadOrCreateWireguardKey,
  planWireguard,
  WIREGUARD_DEVICE,
  WIREGUARD_DEVICE_V6,
  WIREGUARD_OVERHEAD,
  WireguardBackend,
  WireguardKeyFileError,
  wireguardKeyFile,
  wireguardPublicKey,
} from './wireguard/index.js';
