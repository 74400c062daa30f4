import { describe, expect, it } from 'vitest';
import { decodeLease, encodeLeaseAttrs, type Lease } from '../../../src/lease/index.js';
import { formatExpiresIn, leaseToJson, renderLeaseTable } from './index.js';

const now = new Date('2025-01-01T00:00:00Z');
const at = (seconds: number) => new Date(now.getTime() + seconds * 1000);

function lease(key: string, attrs: Parameters<typeof encodeLeaseAttrs>[0], expiration: Date | null): Lease {
  return decodeLease({ key, value: encodeLeaseAttrs(attrs), expiration, revision: '5' });
}

describe('formatExpiresIn', () => {
  it('formats hours, minutes, seconds, expired and reservations', () => {
    expect(formatExpiresIn(at(86_399), now)).toBe('23h59m');
    expect(formatExpiresIn(at(3_600), now)).toBe('1h00m');
    expect(formatExpiresIn(at(245), now)).toBe('4m05s');
    expect(formatExpiresIn(at(42), now)).toBe('42s');
    expect(formatExpiresIn(at(0), now)).toBe('expired');
    expect(formatExpiresIn(at(-5), now)).toBe('expired');
    expect(formatExpiresIn(null, now)).toBe('reservation');
  });
});

describe('renderLeaseTable', () => {
  it('lists leases by subnet with public IP, backend, VTEP MAC and expiry', () => {
    const text = renderLeaseTable(
      [
        lease(
          '10.5.52.0-24',
          {
            publicIP: '192.168.1.52',
            backendType: 'vxlan',
            backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:52' },
          },
          at(3_000),
        ),
        lease('10.5.3.0-24', { publicIP: '192.168.1.3', backendType: 'host-gw' }, null),
        lease('10.5.100.0-24', { publicIP: '192.168.1.100' }, at(86_000)),
      ],
      now,
    );
    expect(text).toBe(
      [
        'SUBNET         PUBLIC IP      BACKEND  VTEP MAC           EXPIRES IN',
        '10.5.3.0/24    192.168.1.3    host-gw  -                  reservation',
        '10.5.52.0/24   192.168.1.52   vxlan    aa:bb:cc:dd:ee:52  50m00s',
        '10.5.100.0/24  192.168.1.100  -        -                  23h53m',
        '',
      ].join('\n'),
    );
  });

  it('adds IPv6 columns when a lease has them', () => {
    const text = renderLeaseTable(
      [lease('10.5.1.0-24&fd00:5:1::-64', { publicIP: '192.168.1.1', publicIPv6: 'fd00::1' }, null)],
      now,
    );
    expect(text.split('\n')[0]).toBe(
      'SUBNET       IPV6 SUBNET    PUBLIC IP    PUBLIC IPV6  BACKEND  VTEP MAC  EXPIRES IN',
    );
    expect(text.split('\n')[1]).toContain('fd00:5:1::/64');
  });
});

describe('leaseToJson', () => {
  it('gives plain JSON values', () => {
    const json = leaseToJson(
      lease('10.5.1.0-24', { publicIP: '192.168.1.1', backendType: 'udp' }, at(90)),
      now,
    );
    expect(json).toEqual({
      key: '10.5.1.0-24',
      subnet: '10.5.1.0/24',
      ipv6Subnet: null,
      publicIP: '192.168.1.1',
      publicIPv6: null,
      backendType: 'udp',
      backendData: null,
      backendV6Data: null,
      reservation: false,
      expiration: '2025-01-01T00:01:30.000Z',
      expiresInSeconds: 90,
      revision: '5',
    });
  });
});
