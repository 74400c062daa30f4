export { LeaseAcquirer } from './acquire.js';
export {
  checkEndpoints,
  createEtcdClient,
  DEFAULT_CALL_TIMEOUT_MS,
  EtcdClientConfigError,
  type EtcdClientOptions,
  EtcdEndpointSkippedError,
  type EtcdTlsOptions,
  IDEMPOTENT_ETCD_METHODS,
} from './client.js';
export {
  EtcdSubnetManagerConfigError,
  LeaseLostError,
  OutOfSubnetsError,
  SubnetManagerClosedError,
} from './errors.js';
export { LeaseKeeper } from './keep.js';
export {
  DEFAULT_LEASE_TTL_SECONDS,
  EtcdSubnetManager,
  type EtcdSubnetManagerOptions,
} from './manager.js';
export { FREE_SUBNET_CANDIDATES, freeSubnets, pickFreeSubnet } from './pick.js';
export type { LeaseListing, SkippedLease } from './records.js';
export { EtcdLeaseStore, joinKey, type RawLeaseRecord } from './store.js';
