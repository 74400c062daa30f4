// Data-plane backends: the Backend interface, the registry by name, and the vxlan and host-gw planners.
export { HostGwBackend, hostGwScope, planHostGw } from './hostgw/index.js';
export { enabledFamilies, type FamilyNetworks, familyNetworks } from './networks.js';
export { dataField, isOnLink, isUnicastMac } from './peers.js';
export { createBackend, registerBackend, registeredBackendTypes } from './registry.js';
export {
  type Backend,
  type BackendContext,
  type BackendFactory,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  OwnLeaseMismatchError,
  type PreparedBackend,
  type SkippedPeer,
  UnknownBackendError,
} from './types.js';
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
