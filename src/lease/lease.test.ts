import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../config/index.js';
import { formatCidr, parseCidr } from '../ip/index.js';
import {
  decodeLease,
  decodeLeaseAttrs,
  diffLeases,
  encodeLeaseAttrs,
  formatLeaseKey,
  InvalidLeaseError,
  InvalidLeaseKeyError,
  InvalidLeaseValueError,
  type Lease,
  leaseFitsOwnAllocation,
  leaseMisfit,
  MAX_LEASE_VALUE_BYTES,
  parseLeaseKey,
} from './index.js';

describe('lease key codec', () => {
  const good: [string, string | undefined, string | undefined][] = [
    ['10.5.52.0-24', '10.5.52.0/24', undefined],
    ['10.244.0.0-16', '10.244.0.0/16', undefined],
    ['10.12.13.0-24&fd00:12:13::-56', '10.12.13.0/24', 'fd00:12:13::/56'],
    ['10.5.52.0-24&fd00:5:34::-64', '10.5.52.0/24', 'fd00:5:34::/64'],
    ['fd00:5:34::-64', undefined, 'fd00:5:34::/64'],
    ['0.0.0.0-0', '0.0.0.0/0', undefined],
  ];
  it.each(good)('parses %s and formats it back byte for byte', (key, v4, v6) => {
    const parsed = parseLeaseKey(key);
    expect(parsed.subnet ? formatCidr(parsed.subnet) : undefined).toBe(v4);
    expect(parsed.ipv6Subnet ? formatCidr(parsed.ipv6Subnet) : undefined).toBe(v6);
    expect(formatLeaseKey(parsed)).toBe(key);
  });

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['10.5.52.0/24', /expected <IPv4 network>/],
    ['10.5.52.1-24', /host bits set.*10\.5\.52\.0-24/],
    ['10.5.52.0-33', /prefix length "33"/],
    ['10.5.052.0-24', /not a valid IPv4/],
    ['256.5.52.0-24', /not a valid IPv4/],
    ['10.5.52.0-24&FD00::-64', /expected <IPv4 network>/],
    ['10.5.52.0-24&fd00:0:0::-64', /canonical form.*fd00::-64/],
    ['10.5.52.0-24&fd00::1-64', /host bits/],
    ['10.5.52.0-24&', /expected/],
    ['10.5.52.0-04', /prefix length "04"/],
    ['garbage', /expected/],
    ['10.5.52.0-24 ', /expected/],
    [`10.5.52.0-24&${'a:'.repeat(40)}-64`, /too long/],
  ];
  it.each(bad)('rejects %j with a reason', (key, reason) => {
    let caught: unknown;
    try {
      parseLeaseKey(key);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidLeaseKeyError);
    expect((caught as InvalidLeaseKeyError).key).toBe(key);
    expect((caught as Error).message).toMatch(reason);
  });
});

describe('lease attribute codec', () => {
  // Values as flannel v0.2x writes them (json.Marshal of subnet.LeaseAttrs).
  const flannelValues = [
    '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}',
    '{"PublicIP":"10.0.0.11","PublicIPv6":null,"BackendType":"host-gw"}',
    '{"PublicIP":"10.0.0.12","PublicIPv6":null}',
    '{"PublicIP":"192.168.64.3","PublicIPv6":"fd00:64::3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"0a:58:0a:f4:00:01"}}',
    '{"PublicIP":"10.0.0.13","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"k3Q+ab/cd=","PersistentKeepaliveInterval":0}}',
    '{"PublicIP":"10.0.0.14","PublicIPv6":null,"BackendType":"extension","BackendData":{"Note":"a\\u003cb\\u0026c"}}',
    '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::5","BackendType":"vxlan","BackendV6Data":{"VNI":4096,"VtepMAC":"02:42:ac:11:00:02"}}',
  ];
  it.each(flannelValues)('round-trips a flannel value byte for byte: %s', (value) => {
    expect(encodeLeaseAttrs(decodeLeaseAttrs(value))).toBe(value);
  });

  it('decodes fields into LeaseAttrs', () => {
    const attrs = decodeLeaseAttrs(flannelValues[3] ?? '');
    expect(attrs).toEqual({
      publicIP: '192.168.64.3',
      publicIPv6: 'fd00:64::3',
      backendType: 'vxlan',
      backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' },
      backendV6Data: { VNI: 1, VtepMAC: '0a:58:0a:f4:00:01' },
    });
  });

  it('encodes in flannel field order with PublicIPv6 null and empty fields omitted', () => {
    expect(encodeLeaseAttrs({ publicIP: '10.1.2.3' })).toBe('{"PublicIP":"10.1.2.3","PublicIPv6":null}');
    expect(
      encodeLeaseAttrs({
        backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' },
        backendType: 'vxlan',
        publicIPv6: 'fd00::1',
        publicIP: '10.1.2.3',
      }),
    ).toBe(
      '{"PublicIP":"10.1.2.3","PublicIPv6":"fd00::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}',
    );
    expect(encodeLeaseAttrs({ publicIP: '', publicIPv6: 'fd00::1' })).toBe(
      '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1"}',
    );
  });

  it('matches field names case-insensitively, like Go, and normalises the MAC', () => {
    const attrs = decodeLeaseAttrs(
      '{"publicip":"10.1.2.3","backendtype":"vxlan","backenddata":{"VNI":2,"VtepMAC":"AA:BB:CC:DD:EE:FF"}}',
    );
    expect(attrs).toEqual({
      publicIP: '10.1.2.3',
      backendType: 'vxlan',
      backendData: { VNI: 2, VtepMAC: 'aa:bb:cc:dd:ee:ff' },
    });
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"PublicIP":', /not valid JSON/],
    ['an array', '[1,2]', /expected a JSON object/],
    ['a string', '"10.1.2.3"', /expected a JSON object/],
    ['null', 'null', /expected a JSON object/],
    ['PublicIP a number', '{"PublicIP":167837953}', /PublicIP: expected an IPv4 address/],
    ['PublicIP not an address', '{"PublicIP":"10.1.2.300"}', /PublicIP: expected an IPv4/],
    ['PublicIP IPv6', '{"PublicIP":"fd00::1"}', /PublicIP: expected an IPv4/],
    ['PublicIPv6 IPv4', '{"PublicIP":"10.1.2.3","PublicIPv6":"10.1.2.4"}', /PublicIPv6: expected an IPv6/],
    ['no public address', '{"BackendType":"vxlan"}', /needs a PublicIP/],
    [
      'BackendType a number',
      '{"PublicIP":"10.1.2.3","BackendType":7}',
      /BackendType: expected a backend name/,
    ],
    ['BackendType with spaces', '{"PublicIP":"10.1.2.3","BackendType":"vx lan"}', /BackendType/],
    [
      'BackendData a string',
      '{"PublicIP":"10.1.2.3","BackendData":"x"}',
      /BackendData: expected a JSON object/,
    ],
    [
      'BackendData an array',
      '{"PublicIP":"10.1.2.3","BackendData":[]}',
      /BackendData: expected a JSON object/,
    ],
    [
      'bad VtepMAC',
      '{"PublicIP":"10.1.2.3","BackendData":{"VtepMAC":"zz:bb:cc:dd:ee:ff"}}',
      /BackendData.VtepMAC: expected a MAC/,
    ],
    [
      'short VtepMAC',
      '{"PublicIP":"10.1.2.3","BackendV6Data":{"VtepMAC":"aa:bb:cc"}}',
      /BackendV6Data.VtepMAC: expected a MAC/,
    ],
    [
      'VNI a string',
      '{"PublicIP":"10.1.2.3","BackendData":{"VNI":"1"}}',
      /BackendData.VNI: expected an integer/,
    ],
    ['VNI too big', '{"PublicIP":"10.1.2.3","BackendData":{"VNI":16777216}}', /BackendData.VNI/],
    ['duplicate fields', '{"PublicIP":"10.1.2.3","publicIP":"10.1.2.4"}', /duplicate field/],
    ['huge value', `{"PublicIP":"10.1.2.3","Pad":"${'x'.repeat(MAX_LEASE_VALUE_BYTES)}"}`, /bytes \(at most/],
  ];
  it.each(bad)('rejects %s with the field and reason', (_name, value, reason) => {
    let caught: unknown;
    try {
      decodeLeaseAttrs(value);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidLeaseValueError);
    expect((caught as Error).message).toMatch(reason);
  });
});

describe('decodeLease', () => {
  it('builds a Lease from a key and a value', () => {
    const lease = decodeLease({
      key: '10.5.52.0-24',
      value: '{"PublicIP":"192.168.1.2","PublicIPv6":null}',
      expiration: null,
      revision: '17',
    });
    expect(lease.key).toBe('10.5.52.0-24');
    expect(lease.subnet && formatCidr(lease.subnet)).toBe('10.5.52.0/24');
    expect(lease.ipv6Subnet).toBeUndefined();
    expect(lease.attrs.publicIP).toBe('192.168.1.2');
    expect(lease.expiration).toBeNull();
    expect(lease.revision).toBe('17');
  });

  it('reports the key and the reason as InvalidLeaseError', () => {
    expect(() => decodeLease({ key: '10.5.52.1-24', value: '{}', expiration: null })).toThrow(
      InvalidLeaseError,
    );
    try {
      decodeLease({ key: '10.5.52.0-24', value: '{"PublicIP":1}', expiration: null });
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidLeaseError);
      expect((err as InvalidLeaseError).key).toBe('10.5.52.0-24');
      expect((err as InvalidLeaseError).reason).toMatch(/PublicIP/);
    }
  });
});

function lease(key: string, publicIP: string, mac?: string): Lease {
  return decodeLease({
    key,
    value: encodeLeaseAttrs({
      publicIP,
      backendType: 'vxlan',
      ...(mac ? { backendData: { VNI: 1, VtepMAC: mac } } : {}),
    }),
    expiration: null,
  });
}

describe('leaseMisfit / leaseFitsOwnAllocation', () => {
  const v4 = parseNetworkConfig({ Network: '10.5.0.0/16', SubnetMin: '10.5.10.0', SubnetMax: '10.5.20.0' });
  const dual = parseNetworkConfig({ Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48' });

  it('accepts a subnet inside the network with the right length', () => {
    expect(leaseMisfit(lease('10.5.52.0-24', '192.168.1.2'), v4)).toBeUndefined();
  });
  it('names a subnet outside the network', () => {
    expect(leaseMisfit(lease('10.6.52.0-24', '192.168.1.2'), v4)).toMatch(
      /outside the network 10\.5\.0\.0\/16/,
    );
  });
  it('names a wrong prefix length', () => {
    expect(leaseMisfit(lease('10.5.52.0-26', '192.168.1.2'), v4)).toMatch(/\/26, the network uses \/24/);
  });
  it('needs a subnet of an enabled family', () => {
    expect(leaseMisfit(lease('fd00:5:1::-64', '192.168.1.2'), v4)).toMatch(/no IPv4 subnet/);
  });
  it('checks the IPv6 part against IPv6Network', () => {
    expect(leaseMisfit(lease('10.5.1.0-24&fd00:5:0:1::-64', '192.168.1.2'), dual)).toBeUndefined();
    expect(leaseMisfit(lease('10.5.1.0-24&fd00:6:1::-64', '192.168.1.2'), dual)).toMatch(/IPv6 subnet/);
  });
  it('keeps own leases within SubnetMin..SubnetMax only', () => {
    expect(leaseFitsOwnAllocation({ subnet: parseCidr('10.5.10.0/24') }, v4)).toBe(true);
    expect(leaseFitsOwnAllocation({ subnet: parseCidr('10.5.21.0/24') }, v4)).toBe(false);
    expect(leaseFitsOwnAllocation({ subnet: parseCidr('10.5.10.0/25') }, v4)).toBe(false);
    expect(leaseFitsOwnAllocation({ subnet: parseCidr('10.5.1.0/24') }, dual)).toBe(false);
    expect(
      leaseFitsOwnAllocation(
        { subnet: parseCidr('10.5.1.0/24'), ipv6Subnet: parseCidr('fd00:5:0:1::/64') },
        dual,
      ),
    ).toBe(true);
  });
});

describe('diffLeases', () => {
  it('reports added, removed and changed attributes (not expiry alone)', () => {
    const a = lease('10.5.1.0-24', '192.168.1.1', 'aa:aa:aa:aa:aa:01');
    const b = lease('10.5.2.0-24', '192.168.1.2', 'aa:aa:aa:aa:aa:02');
    const c = lease('10.5.3.0-24', '192.168.1.3', 'aa:aa:aa:aa:aa:03');
    const b2 = lease('10.5.2.0-24', '192.168.1.2', 'aa:aa:aa:aa:aa:22');
    const c2 = { ...c, expiration: new Date(Date.now() + 1000) };
    const d = lease('10.5.4.0-24', '192.168.1.4');
    const before = new Map([a, b, c].map((l) => [l.key, l]));
    const after = new Map([b2, c2, d].map((l) => [l.key, l]));
    const events = diffLeases(before, after).map((e) => [
      e.type,
      e.lease.key,
      e.lease.attrs.backendData?.VtepMAC,
    ]);
    expect(events).toEqual([
      ['removed', '10.5.1.0-24', 'aa:aa:aa:aa:aa:01'],
      ['changed', '10.5.2.0-24', 'aa:aa:aa:aa:aa:22'],
      ['added', '10.5.4.0-24', undefined],
    ]);
  });
});
