import { describe, expect, it } from 'vitest';
import { canonicalIp, formatIp, isIp, parseCidr, parseIp } from '../ip/index.js';
import { canonicalInterfaceAddress, canonicalNetwork, parseRouteDst } from './canonical.js';

const addresses = [
  '0.0.0.0',
  '10.5.2.0',
  '255.255.255.255',
  '192.168.1.10',
  '::',
  '::1',
  'fd00:5:2::',
  'FD00:0005:0002:0000:0000:0000:0000:0001',
  'fe80::1c52:44ff:fe19:478f',
  '2001:db8:0:0:1:0:0:1',
  '2001:db8::1:0:0:1',
  '::ffff:192.0.2.1',
  '1:2:3:4:5:6:7:8',
  '1::8',
  '1:2:3:4:5:6:7::',
];
const invalid = [
  '',
  '1.2.3',
  '1.2.3.4.5',
  '256.1.1.1',
  '01.2.3.4',
  '1.2.3.4 ',
  ':::',
  '1::2::3',
  '12345::',
  'g::1',
  '1:2:3:4:5:6:7:8:9',
  'fe80::1%eth0',
];

describe('address texts from iproute2 (ip/ is the one parser)', () => {
  it('canonicalises valid addresses', () => {
    for (const a of addresses) expect(canonicalIp(a), a).toBe(formatIp(parseIp(a)));
    expect(canonicalIp('FD00:0005:0002:0000:0000:0000:0000:0001')).toBe('fd00:5:2::1');
  });

  it('rejects invalid ones', () => {
    for (const a of invalid) {
      expect(isIp(a), JSON.stringify(a)).toBe(false);
      expect(() => parseIp(a)).toThrow();
    }
  });

  it('parses route destinations with host bits masked, and interface addresses with them kept', () => {
    expect(parseRouteDst('10.5.2.7/24')).toEqual(parseCidr('10.5.2.7/24'));
    expect(parseRouteDst('fd00:5:2::9/64')).toEqual(parseCidr('fd00:5:2::9/64'));
    expect(parseRouteDst('10.5.2.7')).toEqual(parseCidr('10.5.2.7/32'));
    expect(canonicalNetwork('10.5.2.7')).toBe('10.5.2.7/32');
    expect(canonicalNetwork('FD00:5:2::/64')).toBe('fd00:5:2::/64');
    expect(canonicalInterfaceAddress('10.5.1.1/24')).toBe('10.5.1.1/24');
    expect(() => canonicalNetwork('10.5.2.0/33')).toThrow(/invalid prefix length/);
  });
});
