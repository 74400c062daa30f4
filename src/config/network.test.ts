import { describe, expect, it } from 'vitest';
import { formatCidr, formatIp } from '../ip/index.js';
import {
  NetworkConfigError,
  networkConfigToJson,
  networkConfigWarnings,
  parseNetworkConfig,
  parseNetworkConfigText,
  vxlanPort,
} from './index.js';

interface ValidCase {
  name: string;
  input: Record<string, unknown>;
  expect: {
    network?: string;
    subnetLen?: number;
    subnetMin?: string;
    subnetMax?: string;
    ipv6Network?: string;
    ipv6SubnetLen?: number;
    ipv6SubnetMin?: string;
    ipv6SubnetMax?: string;
    backend?: Record<string, unknown>;
    enableIPv4?: boolean;
    enableIPv6?: boolean;
  };
}

const valid: ValidCase[] = [
  {
    name: 'minimal /16 gets /24 subnets, second to last subnet, vxlan by default',
    input: { Network: '10.5.0.0/16' },
    expect: {
      network: '10.5.0.0/16',
      subnetLen: 24,
      subnetMin: '10.5.1.0',
      subnetMax: '10.5.255.0',
      backend: { type: 'vxlan', vni: 1, port: 0, mtu: 0, directRouting: false },
    },
  },
  {
    name: 'keys match case-insensitively',
    input: { network: '10.5.0.0/16', subnetlen: 26, BACKEND: { type: 'host-gw' } },
    expect: { network: '10.5.0.0/16', subnetLen: 26, backend: { type: 'host-gw' } },
  },
  { name: '/22 network still gets /24', input: { Network: '10.0.0.0/22' }, expect: { subnetLen: 24 } },
  { name: '/23 network gets prefix+2', input: { Network: '10.0.0.0/23' }, expect: { subnetLen: 25 } },
  {
    name: '/28 network gets /30',
    input: { Network: '10.0.0.0/28' },
    expect: { subnetLen: 30, subnetMin: '10.0.0.4', subnetMax: '10.0.0.12' },
  },
  {
    name: 'host bits of Network are masked',
    input: { Network: '10.5.3.7/16' },
    expect: { network: '10.5.0.0/16' },
  },
  {
    name: 'SubnetLen 0 means the default',
    input: { Network: '10.5.0.0/16', SubnetLen: 0 },
    expect: { subnetLen: 24 },
  },
  {
    name: 'explicit SubnetMin/SubnetMax as addresses',
    input: { Network: '10.5.0.0/16', SubnetMin: '10.5.10.0', SubnetMax: '10.5.20.0' },
    expect: { subnetMin: '10.5.10.0', subnetMax: '10.5.20.0' },
  },
  {
    name: 'SubnetMin as a CIDR with the subnet length',
    input: { Network: '10.5.0.0/16', SubnetMin: '10.5.10.0/24' },
    expect: { subnetMin: '10.5.10.0' },
  },
  {
    name: 'SubnetMin may be the network address itself',
    input: { Network: '10.5.0.0/16', SubnetMin: '10.5.0.0' },
    expect: { subnetMin: '10.5.0.0' },
  },
  {
    name: 'SubnetLen 30 is the largest allowed',
    input: { Network: '10.5.0.0/16', SubnetLen: 30 },
    expect: { subnetLen: 30, subnetMax: '10.5.255.252' },
  },
  {
    name: 'vxlan with every key',
    input: {
      Network: '10.5.0.0/16',
      Backend: {
        Type: 'vxlan',
        VNI: 42,
        Port: 4789,
        MTU: 1400,
        GBP: true,
        Learning: true,
        DirectRouting: true,
      },
    },
    expect: {
      backend: {
        type: 'vxlan',
        vni: 42,
        port: 4789,
        mtu: 1400,
        gbp: true,
        learning: true,
        directRouting: true,
      },
    },
  },
  {
    name: 'IPv6 /124 network: the smallest flannel accepts, split into four /126',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/124' },
    expect: { ipv6SubnetLen: 126, ipv6SubnetMin: 'fd00::4', ipv6SubnetMax: 'fd00::c' },
  },
  {
    name: 'vxlan keys are case-insensitive',
    input: { Network: '10.5.0.0/16', Backend: { type: 'VXLAN', vni: 7, directrouting: true } },
    expect: { backend: { type: 'vxlan', vni: 7, directRouting: true } },
  },
  {
    name: 'udp default port 8285',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'udp' } },
    expect: { backend: { type: 'udp', port: 8285 } },
  },
  {
    name: 'udp explicit port',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'udp', Port: 9000 } },
    expect: { backend: { type: 'udp', port: 9000 } },
  },
  {
    name: 'hostgw spelling',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'hostgw' } },
    expect: { backend: { type: 'host-gw' } },
  },
  {
    name: 'auto carries vxlan and udp settings',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'auto', VNI: 3, UDPPort: 9100 } },
    expect: { backend: { type: 'auto' } },
  },
  {
    name: 'Backend without Type means vxlan',
    input: { Network: '10.5.0.0/16', Backend: { VNI: 5 } },
    expect: { backend: { type: 'vxlan', vni: 5 } },
  },
  {
    name: 'Backend null means vxlan',
    input: { Network: '10.5.0.0/16', Backend: null },
    expect: { backend: { type: 'vxlan' } },
  },
  {
    name: 'dual stack defaults',
    input: { Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:10:5::/48' },
    expect: {
      enableIPv6: true,
      ipv6Network: 'fd00:10:5::/48',
      ipv6SubnetLen: 64,
      ipv6SubnetMin: 'fd00:10:5:1::',
      ipv6SubnetMax: 'fd00:10:5:ffff::',
    },
  },
  {
    name: 'IPv6 only',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/56' },
    expect: { enableIPv4: false, ipv6SubnetLen: 64, ipv6SubnetMin: 'fd00:0:0:1::' },
  },
  {
    name: 'IPv6 /63 network gets prefix+2',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/63' },
    expect: { ipv6SubnetLen: 65 },
  },
  {
    name: 'IPv6 upper-case address normalised',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'FD00:AB::/48', IPv6SubnetLen: 60 },
    expect: { ipv6Network: 'fd00:ab::/48', ipv6SubnetLen: 60 },
  },
  {
    name: 'IPv6 SubnetMin/Max',
    input: {
      EnableIPv4: false,
      EnableIPv6: true,
      IPv6Network: 'fd00::/48',
      IPv6SubnetMin: 'fd00:0:0:10::',
      IPv6SubnetMax: 'fd00:0:0:20::',
    },
    expect: { ipv6SubnetMin: 'fd00:0:0:10::', ipv6SubnetMax: 'fd00:0:0:20::' },
  },
  {
    name: 'IPv6 fields ignored when IPv6 is disabled',
    input: { Network: '10.5.0.0/16', IPv6Network: 'not-an-address' },
    expect: { enableIPv6: false, network: '10.5.0.0/16' },
  },
];

interface InvalidCase {
  name: string;
  input: unknown;
  field: string;
  message: RegExp;
}

const invalid: InvalidCase[] = [
  { name: 'not an object', input: [], field: '(document)', message: /JSON object/ },
  { name: 'null document', input: null, field: '(document)', message: /JSON object/ },
  { name: 'missing Network', input: {}, field: 'Network', message: /required/ },
  { name: 'Network not a string', input: { Network: 42 }, field: 'Network', message: /CIDR string/ },
  { name: 'Network without prefix', input: { Network: '10.5.0.0' }, field: 'Network', message: /not a CIDR/ },
  { name: 'Network bad address', input: { Network: '10.5.300.0/16' }, field: 'Network', message: /IPv4/ },
  {
    name: 'Network prefix too long',
    input: { Network: '10.5.0.0/33' },
    field: 'Network',
    message: /prefix length/,
  },
  { name: 'Network is IPv6', input: { Network: 'fd00::/48' }, field: 'Network', message: /IPv4 CIDR/ },
  { name: 'network too small', input: { Network: '10.5.0.0/29' }, field: 'Network', message: /too small/ },
  {
    name: 'SubnetLen above 30',
    input: { Network: '10.5.0.0/16', SubnetLen: 31 },
    field: 'SubnetLen',
    message: /at most 30/,
  },
  {
    name: 'SubnetLen fewer than four subnets',
    input: { Network: '10.5.0.0/16', SubnetLen: 17 },
    field: 'SubnetLen',
    message: /at least the network prefix \+ 2/,
  },
  {
    name: 'SubnetLen not integer',
    input: { Network: '10.5.0.0/16', SubnetLen: 24.5 },
    field: 'SubnetLen',
    message: /integer/,
  },
  {
    name: 'SubnetLen string',
    input: { Network: '10.5.0.0/16', SubnetLen: '24' },
    field: 'SubnetLen',
    message: /integer/,
  },
  {
    name: 'SubnetMin outside network',
    input: { Network: '10.5.0.0/16', SubnetMin: '10.6.0.0' },
    field: 'SubnetMin',
    message: /inside the network/,
  },
  {
    name: 'SubnetMax unaligned',
    input: { Network: '10.5.0.0/16', SubnetMax: '10.5.3.7' },
    field: 'SubnetMax',
    message: /aligned/,
  },
  {
    name: 'SubnetMin after SubnetMax',
    input: { Network: '10.5.0.0/16', SubnetMin: '10.5.20.0', SubnetMax: '10.5.10.0' },
    field: 'SubnetMin',
    message: /after/,
  },
  {
    name: 'SubnetMin CIDR with other length',
    input: { Network: '10.5.0.0/16', SubnetMin: '10.5.10.0/25' },
    field: 'SubnetMin',
    message: /differs/,
  },
  {
    name: 'SubnetMin not a string',
    input: { Network: '10.5.0.0/16', SubnetMin: 5 },
    field: 'SubnetMin',
    message: /string/,
  },
  {
    name: 'SubnetMin wrong family',
    input: { Network: '10.5.0.0/16', SubnetMin: 'fd00::' },
    field: 'SubnetMin',
    message: /IPv4/,
  },
  {
    name: 'EnableIPv4 not boolean',
    input: { Network: '10.5.0.0/16', EnableIPv4: 'yes' },
    field: 'EnableIPv4',
    message: /true or false/,
  },
  {
    name: 'both families disabled',
    input: { EnableIPv4: false },
    field: 'EnableIPv4',
    message: /at least one/,
  },
  {
    name: 'IPv6 enabled without IPv6Network',
    input: { Network: '10.5.0.0/16', EnableIPv6: true },
    field: 'IPv6Network',
    message: /required/,
  },
  {
    name: 'IPv6Network is IPv4',
    input: { Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: '10.6.0.0/16' },
    field: 'IPv6Network',
    message: /IPv6 CIDR/,
  },
  {
    name: 'IPv6SubnetLen above 126 (flannel: "SubnetLen must be less than /127")',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/48', IPv6SubnetLen: 127 },
    field: 'IPv6SubnetLen',
    message: /at most 126/,
  },
  {
    name: 'IPv6 network too small',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/126' },
    field: 'IPv6Network',
    message: /too small/,
  },
  {
    name: 'IPv6 network too small: /125 (flannel: minimum useful prefix is /124)',
    input: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00::/125' },
    field: 'IPv6Network',
    message: /too small.*\/124/,
  },
  {
    name: 'Backend not an object',
    input: { Network: '10.5.0.0/16', Backend: 'vxlan' },
    field: 'Backend',
    message: /object/,
  },
  {
    name: 'unknown backend type',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'ipip' } },
    field: 'Backend.Type',
    message: /one of vxlan, host-gw, udp, auto, wireguard, extension, alloc/,
  },
  {
    name: 'VNI out of range',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', VNI: 16777216 } },
    field: 'Backend.VNI',
    message: /between 0 and 16777215/,
  },
  {
    name: 'VNI negative',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', VNI: -1 } },
    field: 'Backend.VNI',
    message: /between/,
  },
  {
    name: 'vxlan port out of range',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', Port: 70000 } },
    field: 'Backend.Port',
    message: /between 0 and 65535/,
  },
  {
    name: 'DirectRouting not boolean',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', DirectRouting: 'true' } },
    field: 'Backend.DirectRouting',
    message: /true or false/,
  },
  {
    name: 'udp port not an integer',
    input: { Network: '10.5.0.0/16', Backend: { Type: 'udp', Port: '8285' } },
    field: 'Backend.Port',
    message: /integer/,
  },
  {
    name: 'Backend.Type not a string',
    input: { Network: '10.5.0.0/16', Backend: { Type: 1 } },
    field: 'Backend.Type',
    message: /string/,
  },
  {
    name: 'duplicate keys differing in case',
    input: { Network: '10.5.0.0/16', network: '10.6.0.0/16' },
    field: 'network',
    message: /duplicate/,
  },
  {
    name: 'Network with leading-zero octet',
    input: { Network: '010.5.0.0/16' },
    field: 'Network',
    message: /decimal octets/,
  },
];

describe('network config: valid inputs', () => {
  it.each(valid)('$name', ({ input, expect: want }) => {
    const cfg = parseNetworkConfig(input);
    if (want.network) expect(formatCidr(cfg.ipv4!.network)).toBe(want.network);
    if (want.subnetLen) expect(cfg.ipv4!.subnetLen).toBe(want.subnetLen);
    if (want.subnetMin) expect(formatIp(cfg.ipv4!.subnetMin)).toBe(want.subnetMin);
    if (want.subnetMax) expect(formatIp(cfg.ipv4!.subnetMax)).toBe(want.subnetMax);
    if (want.ipv6Network) expect(formatCidr(cfg.ipv6!.network)).toBe(want.ipv6Network);
    if (want.ipv6SubnetLen) expect(cfg.ipv6!.subnetLen).toBe(want.ipv6SubnetLen);
    if (want.ipv6SubnetMin) expect(formatIp(cfg.ipv6!.subnetMin)).toBe(want.ipv6SubnetMin);
    if (want.ipv6SubnetMax) expect(formatIp(cfg.ipv6!.subnetMax)).toBe(want.ipv6SubnetMax);
    if (want.backend) expect(cfg.backend).toMatchObject(want.backend);
    if (want.enableIPv4 !== undefined) expect(cfg.enableIPv4).toBe(want.enableIPv4);
    if (want.enableIPv6 !== undefined) expect(cfg.enableIPv6).toBe(want.enableIPv6);
  });
});

describe('network config: invalid inputs name the field, value and rule', () => {
  it.each(invalid)('$name', ({ input, field, message }) => {
    let caught: unknown;
    try {
      parseNetworkConfig(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NetworkConfigError);
    const err = caught as NetworkConfigError;
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    expect(err.message).toContain(field);
  });
});

describe('network config: text and round trip', () => {
  it('reports invalid JSON with the source', () => {
    expect(() => parseNetworkConfigText('{"Network": ', '/etc/kube-flannel/net-conf.json')).toThrow(
      /net-conf.json is not valid JSON/,
    );
  });

  it('keeps unknown keys for a warning instead of failing (flannel ignores them)', () => {
    const cfg = parseNetworkConfig({
      Network: '10.5.0.0/16',
      EnableSomethingNew: false,
      Backend: { Type: 'vxlan', Foo: 1 },
    });
    expect(cfg.unknownKeys).toEqual(['EnableSomethingNew']);
  });

  it('reads EnableNFTables (default false), rejects a non-boolean, and writes it back', () => {
    expect(parseNetworkConfig({ Network: '10.5.0.0/16' }).enableNFTables).toBe(false);
    const cfg = parseNetworkConfig({ Network: '10.5.0.0/16', enableNFTables: true });
    expect(cfg.enableNFTables).toBe(true);
    expect(cfg.unknownKeys).toEqual([]);
    expect(networkConfigToJson(cfg).EnableNFTables).toBe(true);
    expect(() => parseNetworkConfig({ Network: '10.5.0.0/16', EnableNFTables: 'yes' })).toThrow(
      /EnableNFTables.*must be true or false/,
    );
  });

  it('warns that a config without Backend runs vxlan here but udp on flanneld, and names unknown keys', () => {
    const bare = parseNetworkConfig({ Network: '10.5.0.0/16', Colour: 'blue' });
    expect(bare.backend.type).toBe('vxlan');
    const warnings = networkConfigWarnings(bare);
    expect(warnings.map((w) => w.fields)).toEqual([
      { backend: 'vxlan', flanneldBackend: 'udp' },
      { keys: ['Colour'] },
    ]);
    expect(warnings[0]!.msg).toMatch(/flanneld picks udp.*mixing flanneld and weftd nodes/);
    const explicit = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } });
    expect(networkConfigWarnings(explicit)).toEqual([]);
  });

  it('auto backend keeps the vxlan port and a separate udp port', () => {
    const cfg = parseNetworkConfig({
      Network: '10.5.0.0/16',
      Backend: { Type: 'auto', Port: 4789, UDPPort: 9100 },
    });
    expect(cfg.backend).toMatchObject({ type: 'auto', vxlan: { port: 4789 }, udp: { port: 9100 } });
  });

  it('vxlan port 0 means the kernel default 8472', () => {
    const cfg = parseNetworkConfig({ Network: '10.5.0.0/16' });
    expect(cfg.backend.type).toBe('vxlan');
    if (cfg.backend.type === 'vxlan') expect(vxlanPort(cfg.backend)).toBe(8472);
  });

  it('serialises back to a config that parses to the same values', () => {
    const cfg = parseNetworkConfig({
      Network: '10.5.0.0/16',
      SubnetLen: 26,
      EnableIPv6: true,
      IPv6Network: 'fd00::/48',
      Backend: { Type: 'vxlan', VNI: 9, DirectRouting: true },
    });
    const again = parseNetworkConfig(networkConfigToJson(cfg));
    expect(again.ipv4).toEqual(cfg.ipv4);
    expect(again.ipv6).toEqual(cfg.ipv6);
    expect(again.backend).toEqual(cfg.backend);
  });
});
