// The `/status` JSON document: what weftd serves and `weftctl status` reads. One type, a builder the daemon
// uses, a strict parser the CLI uses (the document comes over the network: validate every field), and the
// table renderer.
import { formatCidr } from '../ip/index.js';
import type { Lease } from '../lease/types.js';
import type { ReconcileSummary } from './health.js';

export type PeerHealth = 'healthy' | 'unhealthy' | 'unknown';

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

export interface StatusDoc {
  version: string;
  /** ISO time the document was made. */
  generatedAt: string;
  lease: StatusLease | null;
  backend: StatusBackend | null;
  peers: StatusPeer[];
  lastReconcile: StatusReconcile | null;
  probes: { enabled: boolean; intervalMs: number };
}

/** What the prober knows about one peer (a subset of `PeerProbeState`). */
export interface PeerProbeView {
  health: PeerHealth;
  lastRttMs: number | null;
  lossRatio: number | null;
  lastReplyAt: Date | null;
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

/** The `/status` document did not have the expected shape. */
export class StatusDocumentError extends Error {
  override name = 'StatusDocumentError';
}

type Obj = Record<string, unknown>;

function expectObject(value: unknown, where: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StatusDocumentError(`${where}: expected an object, found ${describe(value)}`);
  }
  return value as Obj;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing (the field is missing)';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function str(o: Obj, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string')
    throw new StatusDocumentError(`${where}.${key}: expected a string, found ${describe(v)}`);
  return v;
}

function strOrNull(o: Obj, key: string, where: string): string | null {
  const v = o[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') {
    throw new StatusDocumentError(`${where}.${key}: expected a string or null, found ${describe(v)}`);
  }
  return v;
}

function num(o: Obj, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new StatusDocumentError(`${where}.${key}: expected a number, found ${describe(v)}`);
  }
  return v;
}

function numOrNull(o: Obj, key: string, where: string): number | null {
  const v = o[key];
  if (v === null || v === undefined) return null;
  return num(o, key, where);
}

function bool(o: Obj, key: string, where: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean')
    throw new StatusDocumentError(`${where}.${key}: expected true or false, found ${describe(v)}`);
  return v;
}

function isoOrNull(o: Obj, key: string, where: string): string | null {
  const v = strOrNull(o, key, where);
  if (v !== null && Number.isNaN(Date.parse(v))) {
    throw new StatusDocumentError(`${where}.${key}: expected an ISO time, found ${describe(v)}`);
  }
  return v;
}

const HEALTH_VALUES: readonly PeerHealth[] = ['healthy', 'unhealthy', 'unknown'];

function parsePeer(value: unknown, where: string): StatusPeer {
  const o = expectObject(value, where);
  const health = o.health;
  if (typeof health !== 'string' || !HEALTH_VALUES.includes(health as PeerHealth)) {
    throw new StatusDocumentError(
      `${where}.health: expected one of ${HEALTH_VALUES.join(', ')}, found ${describe(health)}`,
    );
  }
  return {
    subnet: strOrNull(o, 'subnet', where),
    ipv6Subnet: strOrNull(o, 'ipv6Subnet', where),
    publicIP: str(o, 'publicIP', where),
    vtepMAC: strOrNull(o, 'vtepMAC', where),
    health: health as PeerHealth,
    rttMs: numOrNull(o, 'rttMs', where),
    lossPct: numOrNull(o, 'lossPct', where),
    lastSeen: isoOrNull(o, 'lastSeen', where),
  };
}

/** Validates a `/status` document (e.g. from `JSON.parse`). Throws `StatusDocumentError` naming the field. */
export function parseStatusDoc(value: unknown): StatusDoc {
  const o = expectObject(value, 'status');
  const leaseValue = o.lease;
  let lease: StatusLease | null = null;
  if (leaseValue !== null && leaseValue !== undefined) {
    const l = expectObject(leaseValue, 'status.lease');
    lease = {
      subnet: strOrNull(l, 'subnet', 'status.lease'),
      ipv6Subnet: strOrNull(l, 'ipv6Subnet', 'status.lease'),
      publicIP: str(l, 'publicIP', 'status.lease'),
      publicIPv6: strOrNull(l, 'publicIPv6', 'status.lease'),
      expiresAt: isoOrNull(l, 'expiresAt', 'status.lease'),
      reservation: bool(l, 'reservation', 'status.lease'),
    };
  }
  let backend: StatusBackend | null = null;
  if (o.backend !== null && o.backend !== undefined) {
    const b = expectObject(o.backend, 'status.backend');
    backend = {
      type: str(b, 'type', 'status.backend'),
      interface: str(b, 'interface', 'status.backend'),
      device: strOrNull(b, 'device', 'status.backend'),
      mtu: num(b, 'mtu', 'status.backend'),
    };
  }
  if (!Array.isArray(o.peers))
    throw new StatusDocumentError(`status.peers: expected an array, found ${describe(o.peers)}`);
  const peers = o.peers.map((p, i) => parsePeer(p, `status.peers[${i}]`));
  let lastReconcile: StatusReconcile | null = null;
  if (o.lastReconcile !== null && o.lastReconcile !== undefined) {
    const r = expectObject(o.lastReconcile, 'status.lastReconcile');
    const at = isoOrNull(r, 'at', 'status.lastReconcile');
    if (at === null)
      throw new StatusDocumentError('status.lastReconcile.at: expected an ISO time, found null');
    lastReconcile = {
      at,
      ok: bool(r, 'ok', 'status.lastReconcile'),
      ops: num(r, 'ops', 'status.lastReconcile'),
      failed: num(r, 'failed', 'status.lastReconcile'),
      durationMs: num(r, 'durationMs', 'status.lastReconcile'),
      error: strOrNull(r, 'error', 'status.lastReconcile'),
    };
  }
  const probes = expectObject(o.probes, 'status.probes');
  const generatedAt = isoOrNull(o, 'generatedAt', 'status');
  return {
    version: str(o, 'version', 'status'),
    generatedAt: generatedAt ?? new Date(0).toISOString(),
    lease,
    backend,
    peers,
    lastReconcile,
    probes: {
      enabled: bool(probes, 'enabled', 'status.probes'),
      intervalMs: num(probes, 'intervalMs', 'status.probes'),
    },
  };
}

/** `1h02m`, `3m05s`, `12s`, `850ms`: a short human duration. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  const totalSeconds = Math.floor(abs / 1000);
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  if (days > 0) return `${days}d${String(hours).padStart(2, '0')}h`;
  if (hours > 0) return `${hours}h${String(minutes).padStart(2, '0')}m`;
  if (minutes > 0) return `${minutes}m${String(seconds).padStart(2, '0')}s`;
  return `${seconds}s`;
}

function formatRtt(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(1)} ms`;
}

function formatLoss(pct: number | null): string {
  if (pct === null) return '-';
  return `${pct.toFixed(pct > 0 && pct < 10 ? 1 : 0)}%`;
}

function ago(iso: string | null, now: number): string {
  if (iso === null) return '-';
  const ms = now - Date.parse(iso);
  return ms >= 0 ? `${formatDuration(ms)} ago` : `in ${formatDuration(ms)}`;
}

/** Left-aligned columns separated by two spaces, header first. */
export function renderColumns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The readable form of a status document, as `weftctl status` prints it. `now` for relative times. */
export function renderStatusTable(doc: StatusDoc, now: Date = new Date()): string {
  const nowMs = now.getTime();
  const out: string[] = [];
  const lease = doc.lease;
  if (lease === null) {
    out.push('Lease:      none (weftd has not acquired a subnet yet)');
  } else {
    const subnets = [lease.subnet, lease.ipv6Subnet].filter((s): s is string => s !== null).join(', ');
    const publicIPs = [lease.publicIP, lease.publicIPv6].filter((s): s is string => s !== null && s !== '');
    let expiry: string;
    if (lease.reservation || lease.expiresAt === null) expiry = 'reservation (never expires)';
    else {
      const remaining = Date.parse(lease.expiresAt) - nowMs;
      expiry =
        remaining >= 0
          ? `expires ${lease.expiresAt} (in ${formatDuration(remaining)})`
          : `EXPIRED ${lease.expiresAt} (${formatDuration(remaining)} ago)`;
    }
    out.push(`Lease:      ${subnets || '-'}  public IP ${publicIPs.join(', ') || '-'}  ${expiry}`);
  }
  const backend = doc.backend;
  if (backend === null) out.push('Backend:    not started');
  else {
    const device = backend.device === null ? '' : ` device ${backend.device}`;
    out.push(`Backend:    ${backend.type}${device} via ${backend.interface}  MTU ${backend.mtu}`);
  }
  const rec = doc.lastReconcile;
  if (rec === null) out.push('Reconcile:  not run yet');
  else {
    const verdict = rec.ok ? 'ok' : `FAILED${rec.error ? ` (${rec.error})` : ''}`;
    out.push(
      `Reconcile:  ${verdict}, ${ago(rec.at, nowMs)}: ${rec.ops} ops, ${rec.failed} failed, ${rec.durationMs.toFixed(1)} ms`,
    );
  }
  const counts = { healthy: 0, unhealthy: 0, unknown: 0 };
  for (const p of doc.peers) counts[p.health]++;
  const probes = doc.probes.enabled ? `probes every ${formatDuration(doc.probes.intervalMs)}` : 'probes off';
  out.push(
    `Peers:      ${doc.peers.length} (${counts.healthy} healthy, ${counts.unhealthy} unhealthy, ${counts.unknown} unknown; ${probes})`,
  );
  out.push(`Version:    ${doc.version}`);
  if (doc.peers.length > 0) {
    out.push('');
    const rows = doc.peers.map((p) => [
      [p.subnet, p.ipv6Subnet].filter((s): s is string => s !== null).join(',') || '-',
      p.publicIP || '-',
      p.vtepMAC ?? '-',
      p.health === 'unhealthy' ? 'UNHEALTHY' : p.health,
      formatRtt(p.rttMs),
      formatLoss(p.lossPct),
      ago(p.lastSeen, nowMs),
    ]);
    out.push(renderColumns(['SUBNET', 'PUBLIC IP', 'VTEP MAC', 'HEALTH', 'RTT', 'LOSS', 'LAST SEEN'], rows));
  }
  return `${out.join('\n')}\n`;
}
