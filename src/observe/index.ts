export {
  type EventLoopMonitor,
  HealthState,
  type HealthStateOptions,
  type HealthVerdict,
  type ReconcileSummary,
  startEventLoopMonitor,
} from './health.js';
export {
  DEFAULT_MAX_PEER_SERIES,
  type KernelOpOutcome,
  type RenderOptions,
  type UdpCountersSnapshot,
  type WatchSource,
  WeftMetrics,
  type WeftMetricsOptions,
} from './metrics.js';
export { nodePeerProber } from './node-prober.js';
export {
  DEFAULT_MAX_PROBES_PER_SECOND,
  type HealthTransition,
  type PeerHealth,
  PeerHealthTracker,
  PeerProber,
  type PeerProberOptions,
  type PeerProbeState,
  type PeerProbeView,
  ProbeSocketError,
  type ProbeTarget,
  probeTargetsForLeases,
  type RejectedTarget,
} from './probe/index.js';
export {
  isLocalClient,
  type ObserveServer,
  ObserveServerListenError,
  type ObserveServerOptions,
  startObserveServer,
} from './server.js';
export {
  type BuildStatusInput,
  buildStatusDoc,
  DEFAULT_STATUS_PEER_LIMIT,
  pageStatusDoc,
  parseStatusPage,
  type StatusBackend,
  type StatusDoc,
  type StatusLease,
  type StatusPage,
  type StatusPeer,
  type StatusPeerSummary,
  StatusQueryError,
  type StatusReconcile,
} from './status.js';
