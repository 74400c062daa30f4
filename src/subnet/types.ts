import type { NetworkConfig } from '../config/index.js';
import type { ErrorFields, Task } from '../core/index.js';
import type { Lease, LeaseAttrs, LeaseWatchBatch } from '../lease/index.js';

/** Why the own lease changed under the daemon. */
export type OwnLeaseChange =
  | { type: 'renewed'; lease: Lease }
  | { type: 'reacquired'; lease: Lease; previous: Lease; reason: string };

/**
 * Every outcome of the lease keeper, for health and metrics (`weft_lease_held`,
 * `weft_lease_renewal_failures_total`, `weft_lease_lost_total`):
 * - `ok`: a renewal or a periodic check confirmed the key is still ours (`lease` is the current version);
 * - `failed`: a renewal or check could not reach etcd; retried after `retryInMs`. `expired` is true once the
 *   lease's expiry has passed without a successful renewal (the key is probably gone);
 * - `lost`: the key was deleted, expired or taken over; re-acquisition starts at once;
 * - `reacquired`: a new (or the same) subnet is held again after a loss.
 */
export type LeaseRenewalOutcome =
  | { type: 'ok'; lease: Lease }
  | { type: 'failed'; lease: Lease; error: ErrorFields; retryInMs: number; expired: boolean }
  | { type: 'lost'; lease: Lease; reason: string }
  | { type: 'reacquired'; lease: Lease; previous: Lease; reason: string };

/** Optional hooks of `keepLease`: the Task heartbeat and the renewal outcomes. */
export interface KeepLeaseHooks {
  /** Called after each successful renewal or check (the keeper is alive and the key is ours). */
  beat?: (() => void) | undefined;
  onOutcome?: ((outcome: LeaseRenewalOutcome) => void) | undefined;
}

/** Optional hooks of `watchLeases`. */
export interface WatchLeasesHooks {
  /** Called after each batch and each idle confirmation (the store said "nothing new up to revision R"). */
  beat?: (() => void) | undefined;
}

/**
 * Health of a lease watch (etcd or kube), for logs and metrics: connections, reconnects, re-lists, values
 * that could not be used. The one definition for both lease sources.
 */
export type WatchHealthEvent =
  | { type: 'connected'; endpoint: string | undefined }
  | { type: 'reconnect'; reason: string }
  | { type: 'relist'; reason: string }
  | { type: 'skipped'; key: string; reason: string };

/**
 * Where leases live: etcd (flannel's key layout) or the Kubernetes API (node annotations).
 * Shape follows flannel's SubnetManager; see design.md.
 */
export interface SubnetManager {
  readonly kind: 'etcd' | 'kube';
  /**
   * How often `keepLease` and `watchLeases` beat their hooks when healthy (absent: the manager does not beat,
   * see `leaseKeeperTask`).
   */
  readonly heartbeatPeriods?: { leaseKeeperMs: number; leaseWatchMs: number } | undefined;
  /** Reads the network config, waiting (and logging periodically) until it exists. */
  getNetworkConfig(signal?: AbortSignal): Promise<NetworkConfig>;
  /** Acquires (or reuses) this node's lease. `previousSubnet*` come from the old subnet file. */
  acquireLease(request: AcquireRequest, signal?: AbortSignal): Promise<Lease>;
  /**
   * Keeps the lease: renews before expiry (conditionally), re-acquires it when it is lost, and reports
   * each change through `onChange` (and every outcome through `hooks.onOutcome`). Resolves when `signal` aborts.
   */
  keepLease(
    lease: Lease,
    onChange: (change: OwnLeaseChange) => void,
    signal: AbortSignal,
    hooks?: KeepLeaseHooks,
  ): Promise<void>;
  /** Lists then watches all leases: first batch is a snapshot; resumes after disconnects. */
  watchLeases(signal: AbortSignal, hooks?: WatchLeasesHooks): AsyncIterable<LeaseWatchBatch>;
  /**
   * Kubernetes mode: the operator's `node-public-ip[v6]` annotations on this node, which the daemon uses as
   * `--public-ip[v6]` when choosing the external interface.
   */
  readNodePublicIPOverride?(signal?: AbortSignal): Promise<{ publicIP?: string; publicIPv6?: string }>;
  /**
   * Kube: the task that keeps `NetworkUnavailable=False` on this node (retries on its own; a 4xx slowly).
   * The daemon runs it beside the other tasks (it never holds up peers being programmed).
   */
  networkReadyTask?(): Task | undefined;
  close(): Promise<void>;
}

export interface AcquireRequest {
  config: NetworkConfig;
  attrs: LeaseAttrs;
  previousSubnet?: string | undefined;
  previousIPv6Subnet?: string | undefined;
}
