// Peer probes: ICMP echo through the overlay to each peer's probe address (`Backend.probeAddress`), so a
// broken FDB/ARP/route entry or a dead peer shows up as a health change. `tracker` is the per-peer state
// machine, `icmp` the echo codec and raw socket, `prober` the paced loop (a core Task).
export {
  type EchoReply,
  encodeEchoRequest,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  IcmpPinger,
  type IcmpPingerOptions,
  icmp6FilterPassing,
  icmpFilterPassing,
  ProbeSocketError,
  parseEchoReply,
} from './icmp.js';
export {
  DEFAULT_MAX_PROBES_PER_SECOND,
  jittered,
  PeerProber,
  type PeerProberOptions,
  type ProbeSocketStats,
  probeTargetsForLeases,
  type RejectedTarget,
  roundPeriodMs,
  shuffled,
} from './prober.js';
export {
  type HealthTransition,
  type PeerHealth,
  PeerHealthTracker,
  type PeerHealthTrackerOptions,
  type PeerProbeState,
  type PeerProbeView,
  type ProbeTarget,
} from './tracker.js';
