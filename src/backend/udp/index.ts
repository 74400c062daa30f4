// The udp backend: the Backend (backend.ts), its pure planner (plan.ts), and its data path — a native engine
// (native/, with its own C unit tests and fuzzing in native/test/) moving packets between the TUN device and a
// UDP socket.
export { UdpBackend, type UdpBackendOptions, UdpDeviceMissingError } from './backend.js';
export {
  addCounters,
  countersOf,
  DROP_REASON_LABELS,
  type DropReason,
  type UdpEngineDrops,
  zeroCounters,
} from './counters.js';
export {
  DEFAULT_UDP_PORT,
  loadUdpAddon,
  type OpenTunOptions,
  openTun,
  type TunDevice,
  TunOpenError,
  UDP_ENCAP_OVERHEAD,
  UdpAddonNotBuiltError,
  UdpEngine,
  UdpEngineOptionError,
  type UdpEngineOptions,
  UdpEngineStartError,
  type UdpEngineStats,
  UdpEngineStoppedError,
  type UdpPeer,
} from './engine.js';
export {
  ownUdpSubnet,
  peerTableKey,
  planUdp,
  UDP_BACKEND_TYPE,
  UDP_DEVICE_NAME,
  type UdpPlan,
  type UdpPlanInput,
  udpDevice,
  udpDeviceMtu,
  udpScope,
} from './plan.js';
export {
  adoptResumedEngine,
  parseResumeState,
  releaseResumedUdpDataPath,
  resumeStateFile,
  resumeUdpDataPath,
  saveResumeState,
  UDP_STATE_DIR,
  type UdpResumeState,
  UdpResumeStateError,
  udpStateDir,
} from './resume.js';
