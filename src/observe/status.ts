// The `/status` JSON document: what weftd serves and `weftctl status` reads. The type, the builder the daemon
// uses, and the paging the server applies (`?limit=&offset=`). Parsing and rendering for weftctl live in
// daemon/commands/render/.
import { formatCidr } from '../ip/index.js';
import type { Lease } from '../lease/types.js';
import type { ReconcileSummary } from './health.js';
import type { PeerHealth, PeerProbeView } from './probe/tracker.js';

export type { PeerHealth, PeerProbeView } from './probe/tracker.js';

export interface StatusLease {
  /** IPv4 subnet in CIDR form, e.g. `10.5.52.0/24`; null for an IPv6-only lease. */
  subnet: string | null;
  ipv6Subnet: string | null;
  publicIP: string;
  publicIPv6: string | null;
  /** ISO time at which the lease expires unless renewed; null for a reservation. */
  expiresAt: string | null;
  reservation: boolean;
}

export interface StatusBackend {
  /** `vxlan`, `host-gw` or `udp`. */
  type: string;
  /** The external (underlay) interface. */
  interface: string;
  /** The overlay device (`flannel.1`, `flannel0`), null for host-gw. */
  device: string | null;
  mtu: number;
}

export interface StatusPeer {
  subnet: string | null;
  ipv6Subnet: string | null;
  publicIP: string;
  vtepMAC: string | null;
  health: PeerHealth;
  /** Round-trip time of the last answered probe. */
  rttMs: number | null;
  /** Lost probes over the recent window, in percent. */
  lossPct: number | null;
  /** ISO time of the last probe reply. */
  lastSeen: string | null;
}

export interface StatusReconcile {
  at: string;
  ok: boolean;
  ops: number;
  failed: number;
  durationMs: number;
  error: string | null;
}

export interface StatusPeerSummary {
  total: number;
  healthy: number;
  unhealthy: number;
  unknown: number;
}

export interface StatusDoc {
  version: string;
  /** ISO time the document was made. */
  generatedAt: string;
  lease: StatusLease | null;
  backend: StatusBackend | null;
  /** Every peer counted, whatever page `peers` holds. */
  peerSummary: StatusPeerSummary;
  /** The index of `peers[0]` among all peers (sorted by subnet): `peers` is one page of them. */
  peersOffset: number;
  peers: StatusPeer[];
  lastReconcile: StatusReconcile | null;
  probes: { enabled: boolean; intervalMs: number };
}

export interface BuildStatusInput {
  version: string;
  ownLease: Lease | null;
  backend: StatusBackend | null;
  peers: readonly Lease[];
  /** Probe state by peer key (`Lease.key`); peers without an entry show `unknown`. */
  probes?: ReadonlyMap<string, PeerProbeView>;
  probeIntervalMs?: number;
  lastReconcile: ReconcileSummary | null;
  now?: Date;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Builds the document from the daemon's state (plain data in, plain data out). */
export function buildStatusDoc(input: BuildStatusInput): StatusDoc {
  const lease = input.ownLease;
  const peers = [...input.peers]
    .map((p): StatusPeer => {
      const probe = input.probes?.get(p.key);
      const data = p.attrs.backendData ?? {};
      return {
        subnet: p.subnet ? formatCidr(p.subnet) : null,
        ipv6Subnet: p.ipv6Subnet ? formatCidr(p.ipv6Subnet) : null,
        publicIP: p.attrs.publicIP !== '' ? p.attrs.publicIP : (p.attrs.publicIPv6 ?? ''),
        vtepMAC: stringOrNull(data.VtepMAC),
        health: probe?.health ?? 'unknown',
        rttMs: probe?.lastRttMs ?? null,
        lossPct: probe?.lossRatio === null || probe?.lossRatio === undefined ? null : probe.lossRatio * 100,
        lastSeen: probe?.lastReplyAt ? probe.lastReplyAt.toISOString() : null,
      };
    })
    .sort((a, b) => (a.subnet ?? a.ipv6Subnet ?? '').localeCompare(b.subnet ?? b.ipv6Subnet ?? ''));
  const rec = input.lastReconcile;
  const peerSummary: StatusPeerSummary = { total: peers.length, healthy: 0, unhealthy: 0, unknown: 0 };
  for (const p of peers) peerSummary[p.health]++;
  return {
    version: input.version,
    generatedAt: (input.now ?? new Date()).toISOString(),
    lease: lease
      ? {
          subnet: lease.subnet ? formatCidr(lease.subnet) : null,
          ipv6Subnet: lease.ipv6Subnet ? formatCidr(lease.ipv6Subnet) : null,
          publicIP: lease.attrs.publicIP,
          publicIPv6: stringOrNull(lease.attrs.publicIPv6),
          expiresAt: lease.expiration ? lease.expiration.toISOString() : null,
          reservation: lease.expiration === null,
        }
      : null,
    backend: input.backend,
    peerSummary,
    peersOffset: 0,
    peers,
    lastReconcile: rec
      ? {
          at: rec.at.toISOString(),
          ok: rec.ok,
          ops: rec.ops,
          failed: rec.failed,
          durationMs: rec.durationMs,
          error: rec.error ?? null,
        }
      : null,
    probes: { enabled: (input.probeIntervalMs ?? 0) > 0, intervalMs: input.probeIntervalMs ?? 0 },
  };
}

/** Peers a `/status` answer holds when the request does not say (`?limit=`); the summary counts them all. */
export const DEFAULT_STATUS_PEER_LIMIT = 500;
/** The largest `?limit=` accepted. */
export const MAX_STATUS_PEER_LIMIT = 5000;

export interface StatusPage {
  offset: number;
  limit: number;
}

/** A `/status` query that is not a valid page (the server answers 400 with the message). */
export class StatusQueryError extends Error {
  override name = 'StatusQueryError';
}

function queryInt(query: URLSearchParams, name: string, fallback: number, max: number): number {
  const text = query.get(name);
  if (text === null) return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) > max) {
    throw new StatusQueryError(
      `/status?${name}= must be an integer 0..${max}, found ${JSON.stringify(text.slice(0, 20))}`,
    );
  }
  return Number(text);
}

/** The page a `/status` query asks for: `?limit=` (default 500, at most 5000) and `?offset=` (default 0). */
export function parseStatusPage(query: URLSearchParams): StatusPage {
  return {
    limit: queryInt(query, 'limit', DEFAULT_STATUS_PEER_LIMIT, MAX_STATUS_PEER_LIMIT),
    offset: queryInt(query, 'offset', 0, Number.MAX_SAFE_INTEGER),
  };
}

/** The document with only the peers of `page` (the summary still counts every peer). */
export function pageStatusDoc(doc: StatusDoc, page: StatusPage): StatusDoc {
  const offset = Math.min(page.offset, doc.peers.length);
  return {
    ...doc,
    peersOffset: doc.peersOffset + offset,
    peers: doc.peers.slice(offset, offset + page.limit),
  };
}
