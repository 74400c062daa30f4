// Data-plane backends: the Backend interface, the registry by name, and the vxlan, host-gw and udp backends.
export { HostGwBackend, hostGwScope, planHostGw } from './hostgw/index.js';
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
  vxlanDevice,
  vxlanDeviceMtu,
  vxlanDeviceName,
  vxlanScope,
} from './vxlan/index.js';
