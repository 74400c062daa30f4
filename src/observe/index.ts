export {
  type EventLoopMonitor,
  HealthState,
  type HealthStateOptions,
  type HealthVerdict,
  type ReconcileSummary,
  startEventLoopMonitor,
} from './health.js';
export {
  type KernelOpOutcome,
  type UdpCountersSnapshot,
  type WatchSource,
  WeftMetrics,
  type WeftMetricsOptions,
} from './metrics.js';
export {
  type HealthTransition,
  PeerHealthTracker,
  PeerProber,
  type PeerProberOptions,
  type PeerProbeState,
  ProbeSocketError,
  type ProbeTarget,
  probeTargetsForLeases,
  type RejectedTarget,
} from './probe.js';
export {
  type ObserveServer,
  ObserveServerListenError,
  type ObserveServerOptions,
  startObserveServer,
} from './server.js';
export {
  type BuildStatusInput,
  buildStatusDoc,
  type PeerHealth,
  type PeerProbeView,
  parseStatusDoc,
  renderStatusTable,
  type StatusBackend,
  type StatusDoc,
  StatusDocumentError,
  type StatusLease,
  type StatusPeer,
  type StatusReconcile,
} from './status.js';
