import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Cidr, cidr, parseCidr } from '../ip/index.js';
import { writeFileIfChanged } from './atomic-file.js';
import { ConflistError, formatConflist, renderBridgeConflist, writeBridgeConflist } from './conflist.js';

const v4 = { subnet: parseCidr('10.5.72.0/24'), network: parseCidr('10.5.0.0/16'), mtu: 1450 };

describe('renderBridgeConflist', () => {
  it("renders kube-flannel's cbr0 shape: bridge gateway + default gateway, hairpin, host-local, portmap", () => {
    expect(renderBridgeConflist(v4)).toEqual({
      cniVersion: '1.0.0',
      name: 'weft',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          isDefaultGateway: true,
          hairpinMode: true,
          ipMasq: false,
          mtu: 1450,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.5.72.0/24' }]],
            routes: [{ dst: '10.5.0.0/16', gw: '10.5.72.1' }],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    });
  });

  it('adds an IPv6 range and route for dual stack, and the dataDir and names when given', () => {
    const conf = renderBridgeConflist({
      ...v4,
      name: 'cbr0',
      bridge: 'weft0',
      ipv6Subnet: parseCidr('fd00:12:13:1::/64'),
      ipv6Network: parseCidr('fd00:12:13::/48'),
      ipamDataDir: '/var/lib/weft/ipam',
    });
    expect(conf.name).toBe('cbr0');
    const [bridge] = conf.plugins;
    expect(bridge.bridge).toBe('weft0');
    expect(bridge.ipam).toEqual({
      type: 'host-local',
      ranges: [[{ subnet: '10.5.72.0/24' }], [{ subnet: 'fd00:12:13:1::/64' }]],
      routes: [
        { dst: '10.5.0.0/16', gw: '10.5.72.1' },
        { dst: 'fd00:12:13::/48', gw: 'fd00:12:13:1::1' },
      ],
      dataDir: '/var/lib/weft/ipam',
    });
  });

  it('renders an IPv6-only conflist', () => {
    const conf = renderBridgeConflist({
      ipv6Subnet: parseCidr('fd00::/64'),
      ipv6Network: parseCidr('fd00::/56'),
      mtu: 1430,
    });
    expect(conf.plugins[0].ipam.ranges).toEqual([[{ subnet: 'fd00::/64' }]]);
  });

  it('refuses input the plugins would reject', () => {
    const unmasked: Cidr = { family: 4, value: cidr(4, 0x0a054801n, 32).value, prefix: 24 };
    expect(() => renderBridgeConflist({ ...v4, subnet: unmasked })).toThrow(
      /host bits set.*10\.5\.72\.0\/24/,
    );
    expect(() => renderBridgeConflist({ ...v4, subnet: parseCidr('10.6.0.0/24') })).toThrow(
      /does not lie inside/,
    );
    expect(() => renderBridgeConflist({ subnet: v4.subnet, mtu: 1450 })).toThrow(/go together/);
    expect(() => renderBridgeConflist({ mtu: 1450 })).toThrow(/neither an IPv4 nor an IPv6 subnet/);
    expect(() => renderBridgeConflist({ ...v4, mtu: 20 })).toThrow(/mtu 20/);
    expect(() => renderBridgeConflist({ ...v4, bridge: 'a-very-long-bridge-name' })).toThrow(
      /interface name/,
    );
    expect(() => renderBridgeConflist({ ...v4, name: 'bad name' })).toThrow(/valid CNI name/);
    expect(() => renderBridgeConflist({ ...v4, ipamDataDir: 'relative' })).toThrow(/absolute path/);
    expect(() => renderBridgeConflist({ ...v4, network: parseCidr('fd00::/48') })).toThrow(ConflistError);
  });
});

describe('writeFileIfChanged / writeBridgeConflist', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-conflist-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes only when the bytes change, leaving no temp files', async () => {
    const file = path.join(dir, 'net.d', '10-weft.conflist');
    const conf = renderBridgeConflist(v4);
    expect(await writeBridgeConflist(file, conf)).toBe(true);
    const firstInode = fs.statSync(file).ino;
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(conf);
    expect(fs.readFileSync(file, 'utf8')).toBe(formatConflist(conf));
    expect(await writeBridgeConflist(file, conf)).toBe(false);
    expect(fs.statSync(file).ino).toBe(firstInode);
    expect(await writeBridgeConflist(file, renderBridgeConflist({ ...v4, mtu: 1400 }))).toBe(true);
    expect(fs.statSync(file).ino).not.toBe(firstInode);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['10-weft.conflist']);
  });

  it('rewrites a file with the right bytes but the wrong mode', async () => {
    const file = path.join(dir, 'x');
    fs.writeFileSync(file, 'same', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    expect(await writeFileIfChanged(file, 'same')).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(await writeFileIfChanged(file, Buffer.from('same'))).toBe(false);
  });

  it('fails with the path and step named when the directory cannot be made', async () => {
    const blocker = path.join(dir, 'file');
    fs.writeFileSync(blocker, '');
    await expect(writeFileIfChanged(path.join(blocker, 'sub', 'x'), 'a')).rejects.toThrow(
      /cannot write .*file\/sub\/x: (reading the current file|creating directory)/,
    );
  });
});
