import type { Logger } from 'pino';
import type { BackendConfig, NetworkConfig } from '../config/index.js';
import type { Task } from '../core/index.js';
import type { Family } from '../ip/index.js';
import type { DesiredKernelState, KernelScope, SelectedInterface } from '../kernel/index.js';
import type { Lease, LeaseAttrs } from '../lease/index.js';

/** What a backend is prepared with at start-up (and again when the interface or config changes). */
export interface BackendContext {
  config: NetworkConfig;
  /** The external interface (see `selectInterface`). */
  iface: SelectedInterface;
  /** The own lease, when re-preparing after it is known (vxlan and host-gw do not need it). */
  lease?: Lease;
  /** Where a backend with in-process work (udp's engine) logs; silent when absent. */
  logger?: Logger;
  /** How long one of the extension backend's commands may run (`--extension-command-timeout`; default 30 s). */
  commandTimeoutMs?: number;
}

export interface PreparedBackend {
  /** The attributes to publish with the lease (PublicIP, BackendType, BackendData …). */
  attrs: LeaseAttrs;
  /** The MTU pods get (FLANNEL_MTU). */
  mtu: number;
  /**
   * The UDP port the backend's outer (encapsulated) packets go to, and the families they are sent over; absent
   * for backends without a tunnel (host-gw). The daemon exempts these packets from conntrack.
   */
  tunnel?: { port: number; families: readonly Family[] };
  /** Long-running work of the backend (e.g. supervising wireguard-go): the daemon runs these as Tasks too. */
  tasks?: Task[];
}

/** Address family: `ip`'s, re-exported for backends. */
export type { Family };

/** A peer lease the backend did not program, and why (logged by the daemon, shown by `/status`). */
export interface SkippedPeer {
  key: string;
  family: Family;
  reason: string;
}

export interface DesiredBackendState {
  state: DesiredKernelState;
  skipped: SkippedPeer[];
}

/**
 * A data-plane backend: computes the kernel state that reaches every peer. Shape follows flannel's Backend;
 * `desired` and `scope` are pure so the reconcile loop can diff against a kernel dump.
 */
export interface Backend {
  readonly name: string;
  /** Validates the interface and config, derives device facts; returns the lease attributes and MTU. */
  prepare(ctx: BackendContext): Promise<PreparedBackend>;
  /** The kernel state for this node given its own lease and all leases (the own lease among them is ignored). */
  desired(own: Lease, peers: readonly Lease[]): DesiredBackendState;
  /** What this backend owns in the kernel, for `dumpKernelState` and `planKernel`. */
  scope(own: Lease): KernelScope;
  /** The MTU pods get; valid after `prepare`. */
  mtu(): number;
  /**
   * The address a peer answers ICMP echo on through this backend's data path (the peer prober's target), or
   * undefined when the peer cannot be probed (no subnet, no data path).
   */
  probeAddress(peer: Lease): string | undefined;
  /** The device traffic leaves through (`flannel.1`, `flannel0`); none for host-gw. For `/status`. */
  readonly device?: string;
  /** Runs after each reconcile pass (the udp backend hands its engine the new peer table here). */
  afterReconcile?(own: Lease, peers: readonly Lease[]): Promise<void> | void;
  /** Releases what the backend holds in-process (sockets, engines); kernel state stays. */
  close?(): Promise<void> | void;
  /** Running totals of an in-process data path (udp), for the metrics; undefined when there is none yet. */
  counters?(): BackendCounters | undefined;
}

/**
 * Running totals of an in-process data path since the daemon started (the shape `WeftMetrics.udpCounters`
 * takes): `tx` = TUN → peers, `rx` = peers → TUN, inner-packet bytes, drops by snake_case reason.
 */
/**
 * Monotonic counters of an in-process data path (udp), since it started. `tx` is TUN → UDP (encapsulated
 * towards peers), `rx` is UDP → TUN (decapsulated from peers).
 */
export interface BackendCounters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /** Dropped packets by reason, e.g. `no_route`, `ttl_expired`, `malformed`, `tun_write`, `udp_send`. */
  drops: Record<string, number>;
}

export type BackendFactory = (config: BackendConfig) => Backend;

/** The backend cannot run with this interface or config (e.g. host-gw behind NAT). */
export class BackendPrepareError extends Error {
  override name = 'BackendPrepareError';
}

/** `desired`, `scope` or `mtu` was called before `prepare`. */
export class BackendNotPreparedError extends Error {
  override name = 'BackendNotPreparedError';
  constructor(backend: string, method: string) {
    super(`${backend} backend: ${method}() called before prepare()`);
  }
}

/** The own lease lacks what the enabled families need (e.g. no IPv6 subnet with EnableIPv6). */
export class OwnLeaseMismatchError extends Error {
  override name = 'OwnLeaseMismatchError';
}

/** No backend is registered under the configured type. */
export class UnknownBackendError extends Error {
  override name = 'UnknownBackendError';
  constructor(
    readonly type: string,
    readonly known: string[],
  ) {
    super(
      `unknown backend type ${JSON.stringify(type)}: registered backends are ${known.join(', ') || 'none'}`,
    );
  }
}
