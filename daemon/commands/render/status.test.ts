import { describe, expect, it } from 'vitest';
import { buildStatusDoc, pageStatusDoc, type StatusDoc } from '../../../src/observe/status.js';
import { NOW, sampleDoc } from '../../../testkit/fixtures/status.js';
import { formatDuration, parseStatusDoc, renderStatusTable, StatusDocumentError } from './index.js';

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
  it('counts every peer from the summary and says which page it shows', () => {
    const doc = pageStatusDoc(sampleDoc(), { offset: 1, limit: 1 });
    const lines = renderStatusTable(doc, NOW).split('\n');
    expect(lines).toContain('Peers:      3 (1 healthy, 1 unhealthy, 1 unknown; probes every 10s)');
    expect(lines).toContain('            showing peers 2-2 of 3 (--limit, --offset for others)');
    expect(lines.filter((l) => l.startsWith('10.5.'))).toEqual([
      '10.5.3.0/24  192.168.64.3  aa:00:00:00:00:03  UNHEALTHY  1.50 ms  25%   1m05s ago',
    ]);
  });

  it('reads a document from a weftd without paging (no summary): every peer is in it', () => {
    const { peerSummary: _s, peersOffset: _o, ...old } = JSON.parse(JSON.stringify(sampleDoc()));
    const doc = parseStatusDoc(old);
    expect(doc.peerSummary).toEqual({ total: 3, healthy: 1, unhealthy: 1, unknown: 1 });
    expect(doc.peersOffset).toBe(0);
  });

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
