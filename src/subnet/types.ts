import type { NetworkConfig } from '../config/index.js';
import type { Lease, LeaseAttrs, LeaseWatchBatch } from '../lease/index.js';

/** Why the own lease changed under the daemon. */
export type OwnLeaseChange =
  | { type: 'renewed'; lease: Lease }
  /** A renewal attempt failed (etcd unreachable …); the keeper retries. The lease is still `lease`. */
  | { type: 'renewal-failed'; lease: Lease; error: string }
  | { type: 'reacquired'; lease: Lease; previous: Lease; reason: string };

/**
 * Where leases live: etcd (flannel's key layout) or the Kubernetes API (node annotations).
 * Shape follows flannel's SubnetManager; see design.md.
 */
export interface SubnetManager {
  readonly kind: 'etcd' | 'kube';
  /** Reads the network config, waiting (and logging periodically) until it exists. */
  getNetworkConfig(signal?: AbortSignal): Promise<NetworkConfig>;
  /** Acquires (or reuses) this node's lease. `previousSubnet*` come from the old subnet file. */
  acquireLease(request: AcquireRequest, signal?: AbortSignal): Promise<Lease>;
  /**
   * Keeps the lease: renews before expiry (conditionally), re-acquires it when it is lost, and reports
   * each change through `onChange`. Resolves when `signal` aborts.
   */
  keepLease(lease: Lease, onChange: (change: OwnLeaseChange) => void, signal: AbortSignal): Promise<void>;
  /** Lists then watches all leases: first batch is a snapshot; resumes after disconnects. */
  watchLeases(signal: AbortSignal): AsyncIterable<LeaseWatchBatch>;
  /**
   * Kubernetes mode: the operator's `node-public-ip[v6]` annotations on this node, which the daemon uses as
   * `--public-ip[v6]` when choosing the external interface.
   */
  readNodePublicIPOverride?(signal?: AbortSignal): Promise<{ publicIP?: string; publicIPv6?: string }>;
  /** Called once the network is plumbed (kube: NetworkUnavailable=False). */
  markNetworkReady?(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export interface AcquireRequest {
  config: NetworkConfig;
  attrs: LeaseAttrs;
  previousSubnet?: string;
  previousIPv6Subnet?: string;
}
