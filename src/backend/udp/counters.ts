// The udp engine's counters as the metrics want them: running totals with drop reasons in snake_case, summed
// over every engine this process ran (a re-attach or an own-subnet change starts a new engine from zero).
import type { BackendCounters } from '../types.js';
import type { UdpEngineDrops, UdpEngineStats } from './engine.js';

/** The metrics' `reason` label of each engine drop counter. */
export const DROP_REASON_LABELS: Readonly<Record<keyof UdpEngineDrops, string>> = {
  malformed: 'malformed',
  notIpv4: 'not_ipv4',
  unknownPeer: 'unknown_peer',
  spoofedSource: 'spoofed_source',
  wrongDestination: 'wrong_destination',
  noRoute: 'no_route',
  ttlExpired: 'ttl_expired',
  unsupportedOffload: 'unsupported_offload',
  sendFailed: 'udp_send',
  tunWriteFailed: 'tun_write',
};

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
  for (const [name, label] of Object.entries(DROP_REASON_LABELS) as Array<[keyof UdpEngineDrops, string]>) {
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
