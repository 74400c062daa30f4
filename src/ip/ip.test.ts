import { IPv6, Validator } from 'ip-num';
import { describe, expect, it } from 'vitest';
import {
  containsCidr,
  formatCidr,
  formatIp,
  internetChecksum,
  isMac,
  onesComplementSum,
  overlaps,
  parseCidr,
  parseIp,
  parseMac,
  stableVtepMac,
  subnetsBetween,
} from './index.js';

describe('addresses', () => {
  it.each([
    ['10.5.52.0', '10.5.52.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['FD00:12:13::', 'fd00:12:13::'],
    ['fd00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['1:0:2:0:3:0:4:0', '1:0:2:0:3:0:4:0'],
  ])('%s formats as %s', (input, out) => {
    expect(formatIp(parseIp(input))).toBe(out);
  });

  it.each(['', '10.5.52', '10.5.52.256', '010.1.1.1', '1.2.3.4.5', 'fd00:::1', 'fe80::1%eth0', 'x'])(
    'rejects %j',
    (bad) => {
      expect(() => parseIp(bad)).toThrow(/not a valid|expected an IP/);
    },
  );
});

describe('CIDRs', () => {
  it('masks host bits unless strict', () => {
    expect(formatCidr(parseCidr('10.5.52.7/24'))).toBe('10.5.52.0/24');
    expect(() => parseCidr('10.5.52.7/24', { strict: true })).toThrow(/host bits set.*10\.5\.52\.0\/24/);
  });

  it('containment and overlap', () => {
    const net = parseCidr('10.5.0.0/16');
    expect(containsCidr(net, parseCidr('10.5.3.0/24'))).toBe(true);
    expect(containsCidr(net, parseCidr('10.6.3.0/24'))).toBe(false);
    expect(containsCidr(parseCidr('10.5.3.0/24'), net)).toBe(false);
    expect(overlaps(parseCidr('10.5.3.0/24'), net)).toBe(true);
    expect(overlaps(parseCidr('10.5.3.0/25'), parseCidr('10.5.3.128/25'))).toBe(false);
    expect(overlaps(parseCidr('10.5.3.0/24'), parseCidr('fd00::/8'))).toBe(false);
  });

  it('iterates subnets', () => {
    const all = [...subnetsBetween(parseCidr('10.5.0.0/26'), parseCidr('10.5.0.192/26'))].map(formatCidr);
    expect(all).toEqual(['10.5.0.0/26', '10.5.0.64/26', '10.5.0.128/26', '10.5.0.192/26']);
  });
});

describe('MACs', () => {
  it('parses and normalises', () => {
    expect(parseMac('C6:D2:32:6F:8F:44')).toBe('c6:d2:32:6f:8f:44');
    expect(isMac('c6:d2:32:6f:8f')).toBe(false);
    expect(isMac(42)).toBe(false);
  });

  it('derives a stable, locally administered unicast VTEP MAC', () => {
    const a = stableVtepMac('192.168.64.3', 1);
    expect(a).toBe(stableVtepMac('192.168.64.3', 1));
    expect(a).not.toBe(stableVtepMac('192.168.64.4', 1));
    expect(a).not.toBe(stableVtepMac('192.168.64.3', 2));
    const first = Number.parseInt(a.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
  });
});

describe('IPv6 parsing agrees with ip-num', () => {
  function oracle(text: string): bigint | undefined {
    const [ok] = Validator.isValidIPv6String(text);
    return ok ? IPv6.fromString(text).getValue() : undefined;
  }

  it('on random addresses in every textual form', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const groups = Array.from({ length: 8 }, () => (rand() % 4 === 0 ? 0 : rand() & 0xffff));
      const full = groups.map((g) => g.toString(16)).join(':');
      const upper = groups.map((g) => g.toString(16).toUpperCase().padStart(4, '0')).join(':');
      for (const text of [full, upper, formatIp(parseIp(full))]) {
        expect(parseIp(text).value).toBe(oracle(text));
      }
    }
  });

  it.each([
    '::',
    '::1',
    '1::',
    'fd00::1:2',
    '1:2:3:4:5:6:7::',
    '::2:3:4:5:6:7:8',
    'FFFF::ffff',
    '0:0:0:0:0:0:0:0',
  ])('%s', (text) => {
    expect(parseIp(text).value).toBe(oracle(text));
  });

  it.each([
    ':::',
    '1::2::3',
    '12345::',
    '::g',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    ':1',
    '1:',
    '1:2:3:4:5:6:7',
    'fe80::1%eth0',
    'fd00::/64',
  ])('rejects %s', (text) => {
    expect(() => parseIp(text)).toThrow(/not a valid IPv6/);
  });

  it('reads a trailing dotted IPv4', () => {
    expect(formatIp(parseIp('::ffff:192.0.2.1'))).toBe('::ffff:c000:201');
    expect(() => parseIp('::ffff:192.0.2')).toThrow(/not a valid IPv6/);
  });
});

describe('internet checksum (RFC 1071)', () => {
  it('matches the RFC 1071 example and verifies to 0 over data carrying its checksum', () => {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2; the checksum is its complement.
    const data = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(onesComplementSum(data)).toBe(0xddf2);
    expect(internetChecksum(data)).toBe(0x220d);
    // An IPv4 header (RFC 791 sample, checksum 0xb861 in bytes 10-11) checks to 0.
    const header = Uint8Array.from([
      0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
      0xa8, 0x00, 0xc7,
    ]);
    expect(internetChecksum(header)).toBe(0);
    // An odd length pads with a zero byte; offset/length select a range.
    expect(internetChecksum(Uint8Array.from([0xff, 0x01, 0x02]), 1, 2)).toBe(~0x0102 & 0xffff);
    expect(internetChecksum(Uint8Array.from([0x01]))).toBe(~0x0100 & 0xffff);
  });
});
