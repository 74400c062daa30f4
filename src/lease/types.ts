import type { Cidr } from '../ip/index.js';

/**
 * The attributes a node publishes with its lease: flannel's JSON value
 * `{"PublicIP":…,"PublicIPv6":…,"BackendType":…,"BackendData":…,"BackendV6Data":…}`.
 */
export interface LeaseAttrs {
  /** IPv4 public (underlay) address; empty string when the node is IPv6-only. */
  publicIP: string;
  publicIPv6?: string;
  backendType?: string;
  /** Backend specific, e.g. vxlan `{VNI, VtepMAC}`. Kept as parsed JSON. */
  backendData?: Record<string, unknown>;
  backendV6Data?: Record<string, unknown>;
}

/** One node's lease: its subnet(s), attributes and expiry. */
export interface Lease {
  /** The etcd key suffix, e.g. `10.5.52.0-24` or `10.5.52.0-24&fd00:5:34::-64`. */
  key: string;
  subnet?: Cidr;
  ipv6Subnet?: Cidr;
  attrs: LeaseAttrs;
  /**
   * When the lease expires; `null` for a reservation (a key with no etcd lease: never expires); `undefined`
   * when not looked up (peers seen through a watch: the data plane never needs their expiry, and asking etcd
   * for each peer's TTL made converging on 1000 peers 4× slower).
   */
  expiration: Date | null | undefined;
  /** etcd mod revision (or kube resourceVersion) the lease was read at; used for conditional renewals. */
  revision?: string;
}

export type LeaseEventType = 'added' | 'removed' | 'changed';

/** A change to the set of leases, as produced by a watch. `changed` carries the new lease. */
export interface LeaseEvent {
  type: LeaseEventType;
  lease: Lease;
}

/** A watch batch: a full snapshot (initial list, re-list after compaction) or incremental events. */
export type LeaseWatchBatch =
  | { type: 'snapshot'; leases: Lease[]; events: LeaseEvent[] }
  | { type: 'events'; events: LeaseEvent[] };
