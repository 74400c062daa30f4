// `weftctl status`'s table: the own lease, backend, last reconcile, a peer summary and the peers of the page.
import type { StatusDoc } from '../../../src/observe/status.js';
import { formatDuration, renderColumns } from './columns.js';

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
  const counts = doc.peerSummary;
  const probes = doc.probes.enabled ? `probes every ${formatDuration(doc.probes.intervalMs)}` : 'probes off';
  out.push(
    `Peers:      ${counts.total} (${counts.healthy} healthy, ${counts.unhealthy} unhealthy, ${counts.unknown} unknown; ${probes})`,
  );
  const shownEnd = doc.peersOffset + doc.peers.length;
  if (doc.peersOffset > 0 || shownEnd < counts.total) {
    out.push(
      `            showing peers ${doc.peers.length === 0 ? 'none' : `${doc.peersOffset + 1}-${shownEnd}`} of ${counts.total} (--limit, --offset for others)`,
    );
  }
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
