export { FREE_SUBNET_CANDIDATES, freeSubnets } from './allocate.js';
export {
  checkEndpoints,
  createEtcdClient,
  DEFAULT_CALL_TIMEOUT_MS,
  EtcdClientConfigError,
  type EtcdClientOptions,
  EtcdEndpointSkippedError,
  type EtcdTlsOptions,
} from './client.js';
export {
  EtcdSubnetManagerConfigError,
  LeaseLostError,
  OutOfSubnetsError,
  SubnetManagerClosedError,
} from './errors.js';
export {
  DEFAULT_LEASE_TTL_SECONDS,
  EtcdSubnetManager,
  type EtcdSubnetManagerOptions,
  type EtcdWatchEvent,
  type LeaseListing,
  type SkippedLease,
} from './manager.js';
export { EtcdLeaseStore, joinKey, type RawLeaseRecord } from './store.js';
