// weftctl's strict parser of weftd's `/status` document: it comes over the network, so every field is
// validated and a wrong one is named with its path.
import type {
  PeerHealth,
  StatusBackend,
  StatusDoc,
  StatusLease,
  StatusPeer,
  StatusPeerSummary,
  StatusReconcile,
} from '../../../src/observe/status.js';

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

function count(o: Obj, key: string, where: string): number {
  const v = num(o, key, where);
  if (!Number.isInteger(v) || v < 0)
    throw new StatusDocumentError(`${where}.${key}: expected a count (integer ≥ 0), found ${describe(v)}`);
  return v;
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
  // A weftd from before paging sends neither: then `peers` is every peer.
  let peerSummary: StatusPeerSummary;
  if (o.peerSummary === undefined) {
    peerSummary = { total: peers.length, healthy: 0, unhealthy: 0, unknown: 0 };
    for (const p of peers) peerSummary[p.health]++;
  } else {
    const s = expectObject(o.peerSummary, 'status.peerSummary');
    peerSummary = {
      total: count(s, 'total', 'status.peerSummary'),
      healthy: count(s, 'healthy', 'status.peerSummary'),
      unhealthy: count(s, 'unhealthy', 'status.peerSummary'),
      unknown: count(s, 'unknown', 'status.peerSummary'),
    };
  }
  const peersOffset = o.peersOffset === undefined ? 0 : count(o, 'peersOffset', 'status');
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
    peerSummary,
    peersOffset,
    peers,
    lastReconcile,
    probes: {
      enabled: bool(probes, 'enabled', 'status.probes'),
      intervalMs: num(probes, 'intervalMs', 'status.probes'),
    },
  };
}
