// The udp engine's counters as the metrics want them: running totals with drop reasons in snake_case, summed
// over every engine this process ran (a re-attach or an own-subnet change starts a new engine from zero).
import type { BackendCounters } from '../types.js';
import type { UdpEngineStats } from './engine.js';

/**
 * The engine's drop reasons (its `stats().drops` keys, named in native/src/addon.c in the order of
 * `enum drop_reason` in native/src/packet.h) and the metrics' `reason` label of each. The one list of them.
 */
export const DROP_REASON_LABELS = {
  /** Too short, bad IHL, bad total length, bad header checksum, truncated datagram, bad offload header. */
  malformed: 'malformed',
  /** Not IPv4 (e.g. IPv6 router solicitations the kernel sends into the TUN). */
  notIpv4: 'not_ipv4',
  /** Datagram from an address that is no peer's public IP (any source port of a peer's IP is accepted). */
  unknownPeer: 'unknown_peer',
  /** Inner source outside the subnets of the peers at the sender's address. */
  spoofedSource: 'spoofed_source',
  /** Inner destination outside this node's subnet. */
  wrongDestination: 'wrong_destination',
  /** No peer subnet holds the destination (answered with ICMP net-unreachable where allowed). */
  noRoute: 'no_route',
  ttlExpired: 'ttl_expired',
  /** A TUN offload type the engine did not ask for. */
  unsupportedOffload: 'unsupported_offload',
  sendFailed: 'udp_send',
  tunWriteFailed: 'tun_write',
} as const;

/** A drop reason as the engine names it. */
export type DropReason = keyof typeof DROP_REASON_LABELS;

/** The engine's drop counters by reason. */
export type UdpEngineDrops = Record<DropReason, number>;

/** All totals zero, every drop reason present. */
export function zeroCounters(): BackendCounters {
  const drops: Record<string, number> = {};
  for (const label of Object.values(DROP_REASON_LABELS)) drops[label] = 0;
  return { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, drops };
}

/** One engine's stats as counters. */
export function countersOf(stats: UdpEngineStats): BackendCounters {
  const out = zeroCounters();
  out.txPackets = stats.txPackets;
  out.txBytes = stats.txBytes;
  out.rxPackets = stats.rxPackets;
  out.rxBytes = stats.rxBytes;
  for (const [name, label] of Object.entries(DROP_REASON_LABELS) as Array<[DropReason, string]>) {
    out.drops[label] = stats.drops[name] ?? 0;
  }
  return out;
}

/** The sum of two sets of totals (drop reasons of either). */
export function addCounters(a: BackendCounters, b: BackendCounters): BackendCounters {
  const drops: Record<string, number> = { ...a.drops };
  for (const [reason, n] of Object.entries(b.drops)) drops[reason] = (drops[reason] ?? 0) + n;
  return {
    txPackets: a.txPackets + b.txPackets,
    txBytes: a.txBytes + b.txBytes,
    rxPackets: a.rxPackets + b.rxPackets,
    rxBytes: a.rxBytes + b.rxBytes,
    drops,
  };
}
