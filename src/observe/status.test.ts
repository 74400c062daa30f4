import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import type { Lease } from '../lease/types.js';
import {
  buildStatusDoc,
  formatDuration,
  type PeerProbeView,
  parseStatusDoc,
  renderStatusTable,
  type StatusDoc,
  StatusDocumentError,
} from './status.js';

const NOW = new Date('2025-03-01T12:00:00.000Z');

function lease(
  key: string,
  subnet: string,
  publicIP: string,
  mac: string | null,
  expiration: Date | null,
): Lease {
  return {
    key,
    subnet: parseCidr(subnet),
    attrs: {
      publicIP,
      backendType: 'vxlan',
      ...(mac === null ? {} : { backendData: { VNI: 1, VtepMAC: mac } }),
    },
    expiration,
  };
}

function sampleDoc(): StatusDoc {
  const own = lease(
    '10.5.1.0-24',
    '10.5.1.0/24',
    '192.168.64.1',
    'aa:00:00:00:00:01',
    new Date(NOW.getTime() + 23 * 3600_000 + 12 * 60_000),
  );
  const peers = [
    lease('10.5.3.0-24', '10.5.3.0/24', '192.168.64.3', 'aa:00:00:00:00:03', null),
    lease('10.5.2.0-24', '10.5.2.0/24', '192.168.64.2', 'aa:00:00:00:00:02', null),
    lease('10.5.4.0-24', '10.5.4.0/24', '192.168.64.4', null, null),
  ];
  const probes = new Map<string, PeerProbeView>([
    [
      '10.5.2.0-24',
      { health: 'healthy', lastRttMs: 0.42, lossRatio: 0, lastReplyAt: new Date(NOW.getTime() - 3000) },
    ],
    [
      '10.5.3.0-24',
      { health: 'unhealthy', lastRttMs: 1.5, lossRatio: 0.25, lastReplyAt: new Date(NOW.getTime() - 65_000) },
    ],
  ]);
  return buildStatusDoc({
    version: '0.1.0',
    ownLease: own,
    backend: { type: 'vxlan', interface: 'eth0', device: 'flannel.1', mtu: 1450 },
    peers,
    probes,
    probeIntervalMs: 10_000,
    lastReconcile: { at: new Date(NOW.getTime() - 2000), ok: true, ops: 9, failed: 0, durationMs: 3.25 },
    now: NOW,
  });
}

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

describe('parseStatusDoc', () => {
  it('accepts what buildStatusDoc produces, after a JSON round trip', () => {
    const doc = sampleDoc();
    expect(parseStatusDoc(JSON.parse(JSON.stringify(doc)))).toEqual(doc);
  });

  it('names the field that is wrong', () => {
    const doc = JSON.parse(JSON.stringify(sampleDoc())) as Record<string, unknown>;
    const bad = (
      mutate: (d: Record<string, unknown> & { peers: Record<string, unknown>[] }) => void,
    ): string => {
      const copy = JSON.parse(JSON.stringify(doc)) as Record<string, unknown> & {
        peers: Record<string, unknown>[];
      };
      mutate(copy);
      try {
        parseStatusDoc(copy);
      } catch (err) {
        expect(err).toBeInstanceOf(StatusDocumentError);
        return (err as Error).message;
      }
      throw new Error('expected a StatusDocumentError');
    };
    expect(bad((d) => ((d.peers[1] as Record<string, unknown>).health = 'sick'))).toBe(
      'status.peers[1].health: expected one of healthy, unhealthy, unknown, found "sick"',
    );
    expect(bad((d) => ((d.peers[0] as Record<string, unknown>).rttMs = '1ms'))).toBe(
      'status.peers[0].rttMs: expected a number, found "1ms"',
    );
    expect(bad((d) => ((d.lease as Record<string, unknown>).expiresAt = 'tomorrow'))).toBe(
      'status.lease.expiresAt: expected an ISO time, found "tomorrow"',
    );
    expect(bad((d) => (d.peers = {} as never))).toBe('status.peers: expected an array, found an object');
    expect(bad((d) => delete d.version)).toBe(
      'status.version: expected a string, found nothing (the field is missing)',
    );
    expect(() => parseStatusDoc('hello')).toThrow('status: expected an object, found "hello"');
    expect(() => parseStatusDoc(null)).toThrow('status: expected an object, found null');
  });
});

describe('renderStatusTable', () => {
  it('prints the lease with its remaining time, the backend, the reconcile and a peer table', () => {
    const text = renderStatusTable(sampleDoc(), NOW);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'Lease:      10.5.1.0/24  public IP 192.168.64.1  expires 2025-03-02T11:12:00.000Z (in 23h12m)',
    );
    expect(lines[1]).toBe('Backend:    vxlan device flannel.1 via eth0  MTU 1450');
    expect(lines[2]).toBe('Reconcile:  ok, 2s ago: 9 ops, 0 failed, 3.3 ms');
    expect(lines[3]).toBe('Peers:      3 (1 healthy, 1 unhealthy, 1 unknown; probes every 10s)');
    expect(lines[4]).toBe('Version:    0.1.0');
    expect(lines[5]).toBe('');
    expect(lines.slice(6)).toEqual([
      'SUBNET       PUBLIC IP     VTEP MAC           HEALTH     RTT      LOSS  LAST SEEN',
      '10.5.2.0/24  192.168.64.2  aa:00:00:00:00:02  healthy    0.42 ms  0%    3s ago',
      '10.5.3.0/24  192.168.64.3  aa:00:00:00:00:03  UNHEALTHY  1.50 ms  25%   1m05s ago',
      '10.5.4.0/24  192.168.64.4  -                  unknown    -        -     -',
    ]);
  });

  it('says plainly when there is no lease, no backend, no reconcile and no peers', () => {
    const text = renderStatusTable(
      buildStatusDoc({
        version: '0.1.0',
        ownLease: null,
        backend: null,
        peers: [],
        lastReconcile: null,
        now: NOW,
      }),
      NOW,
    );
    expect(text).toBe(
      [
        'Lease:      none (weftd has not acquired a subnet yet)',
        'Backend:    not started',
        'Reconcile:  not run yet',
        'Peers:      0 (0 healthy, 0 unhealthy, 0 unknown; probes off)',
        'Version:    0.1.0',
        '',
      ].join('\n'),
    );
  });

  it('flags an expired lease, a reservation and a failed reconcile', () => {
    const doc = sampleDoc();
    const expired: StatusDoc = {
      ...doc,
      lease: doc.lease && { ...doc.lease, expiresAt: new Date(NOW.getTime() - 90_000).toISOString() },
      lastReconcile: doc.lastReconcile && {
        ...doc.lastReconcile,
        ok: false,
        failed: 2,
        error: 'dump failed',
      },
    };
    const text = renderStatusTable(expired, NOW);
    expect(text).toContain('EXPIRED 2025-03-01T11:58:30.000Z (1m30s ago)');
    expect(text).toContain('Reconcile:  FAILED (dump failed), 2s ago: 9 ops, 2 failed');
    const reserved: StatusDoc = {
      ...doc,
      lease: doc.lease && { ...doc.lease, reservation: true, expiresAt: null },
    };
    expect(renderStatusTable(reserved, NOW)).toContain('reservation (never expires)');
  });
});

describe('formatDuration', () => {
  it('uses the two largest units', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(12_000)).toBe('12s');
    expect(formatDuration(185_000)).toBe('3m05s');
    expect(formatDuration(3_720_000)).toBe('1h02m');
    expect(formatDuration(2 * 86_400_000 + 3 * 3600_000)).toBe('2d03h');
    expect(formatDuration(-5_000)).toBe('5s');
  });
});
