import { describe, expect, it } from 'vitest';
import { lease, NOW, sampleDoc } from '../../testkit/fixtures/status.js';
import {
  buildStatusDoc,
  DEFAULT_STATUS_PEER_LIMIT,
  pageStatusDoc,
  parseStatusPage,
  type StatusDoc,
  StatusQueryError,
} from './status.js';

describe('buildStatusDoc', () => {
  it('describes the own lease, backend, peers sorted by subnet with probe health, and the last reconcile', () => {
    const doc = sampleDoc();
    expect(doc.generatedAt).toBe(NOW.toISOString());
    expect(doc.lease).toEqual({
      subnet: '10.5.1.0/24',
      ipv6Subnet: null,
      publicIP: '192.168.64.1',
      publicIPv6: null,
      expiresAt: '2025-03-02T11:12:00.000Z',
      reservation: false,
    });
    expect(doc.peers.map((p) => p.subnet)).toEqual(['10.5.2.0/24', '10.5.3.0/24', '10.5.4.0/24']);
    expect(doc.peers[0]).toEqual({
      subnet: '10.5.2.0/24',
      ipv6Subnet: null,
      publicIP: '192.168.64.2',
      vtepMAC: 'aa:00:00:00:00:02',
      health: 'healthy',
      rttMs: 0.42,
      lossPct: 0,
      lastSeen: '2025-03-01T11:59:57.000Z',
    });
    expect(doc.peers[1]?.lossPct).toBe(25);
    expect(doc.peers[2]).toMatchObject({
      health: 'unknown',
      rttMs: null,
      lossPct: null,
      lastSeen: null,
      vtepMAC: null,
    });
    expect(doc.lastReconcile).toEqual({
      at: '2025-03-01T11:59:58.000Z',
      ok: true,
      ops: 9,
      failed: 0,
      durationMs: 3.25,
      error: null,
    });
    expect(doc.probes).toEqual({ enabled: true, intervalMs: 10_000 });
  });

  it('marks a reservation and reports no lease before one is acquired', () => {
    const reserved = buildStatusDoc({
      version: 'x',
      ownLease: lease('10.5.9.0-24', '10.5.9.0/24', '192.168.64.9', null, null),
      backend: null,
      peers: [],
      lastReconcile: null,
    });
    expect(reserved.lease).toMatchObject({ reservation: true, expiresAt: null });
    expect(reserved.probes.enabled).toBe(false);
    const none = buildStatusDoc({
      version: 'x',
      ownLease: null,
      backend: null,
      peers: [],
      lastReconcile: null,
    });
    expect(none.lease).toBeNull();
  });
});

describe('/status paging', () => {
  const many = (n: number): StatusDoc =>
    buildStatusDoc({
      version: 'x',
      ownLease: null,
      backend: null,
      peers: Array.from({ length: n }, (_, i) =>
        lease(
          `10.6.${i >> 8}.${i & 255}-32`,
          `10.6.${i >> 8}.${i & 255}/32`,
          `192.168.${i >> 8}.${i & 255}`,
          null,
          null,
        ),
      ),
      probes: new Map([
        ['10.6.0.1-32', { health: 'unhealthy', lastRttMs: null, lossRatio: 1, lastReplyAt: null }],
      ]),
      lastReconcile: null,
    });

  it('counts every peer in the summary whatever page is served', () => {
    const doc = many(1200);
    expect(doc.peerSummary).toEqual({ total: 1200, healthy: 0, unhealthy: 1, unknown: 1199 });
    const first = pageStatusDoc(doc, parseStatusPage(new URLSearchParams()));
    expect(first.peers).toHaveLength(DEFAULT_STATUS_PEER_LIMIT);
    expect(first.peersOffset).toBe(0);
    expect(first.peerSummary.total).toBe(1200);
    const last = pageStatusDoc(doc, parseStatusPage(new URLSearchParams('limit=300&offset=1000')));
    expect(last.peersOffset).toBe(1000);
    expect(last.peers.map((p) => p.subnet)).toEqual(doc.peers.slice(1000, 1200).map((p) => p.subnet));
    expect(pageStatusDoc(doc, { limit: 10, offset: 5000 }).peers).toEqual([]);
  });

  it('refuses a page that is not one, naming the parameter', () => {
    for (const [query, message] of [
      ['limit=-1', '/status?limit= must be an integer 0..5000, found "-1"'],
      ['limit=5001', '/status?limit= must be an integer 0..5000, found "5001"'],
      ['offset=x', `/status?offset= must be an integer 0..${Number.MAX_SAFE_INTEGER}, found "x"`],
    ] as const) {
      expect(() => parseStatusPage(new URLSearchParams(query))).toThrow(new StatusQueryError(message));
    }
  });
});
