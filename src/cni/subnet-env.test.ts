import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import {
  parseSubnetEnv,
  readSubnetEnv,
  renderSubnetEnv,
  type SubnetEnv,
  SubnetEnvError,
  SubnetEnvParseError,
  writeSubnetEnv,
} from './subnet-env.js';

const v4Env: SubnetEnv = {
  network: parseCidr('10.5.0.0/16'),
  subnet: parseCidr('10.5.72.0/24'),
  mtu: 1450,
  ipMasq: true,
};

const dualEnv: SubnetEnv = {
  ...v4Env,
  ipv6Network: parseCidr('fd00:12:13::/48'),
  ipv6Subnet: parseCidr('fd00:12:13:1::/64'),
  mtu: 1430,
  ipMasq: false,
};

describe('renderSubnetEnv', () => {
  it('writes the first usable address of the subnet, like flanneld', () => {
    expect(renderSubnetEnv(v4Env)).toBe(
      'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
    );
  });

  it('writes IPv6 keys after the IPv4 keys for dual stack', () => {
    expect(renderSubnetEnv(dualEnv)).toBe(
      [
        'FLANNEL_NETWORK=10.5.0.0/16',
        'FLANNEL_SUBNET=10.5.72.1/24',
        'FLANNEL_IPV6_NETWORK=fd00:12:13::/48',
        'FLANNEL_IPV6_SUBNET=fd00:12:13:1::1/64',
        'FLANNEL_MTU=1430',
        'FLANNEL_IPMASQ=false',
        '',
      ].join('\n'),
    );
  });

  it('writes an IPv6-only file without IPv4 keys', () => {
    const text = renderSubnetEnv({
      ipv6Network: parseCidr('fd00::/56'),
      ipv6Subnet: parseCidr('fd00:0:0:5::/64'),
      mtu: 1430,
      ipMasq: true,
    });
    expect(text).toBe(
      'FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_IPV6_SUBNET=fd00:0:0:5::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n',
    );
  });

  it('refuses a subnet outside the network', () => {
    expect(() => renderSubnetEnv({ ...v4Env, subnet: parseCidr('10.6.1.0/24') })).toThrow(
      /subnet 10\.6\.1\.0\/24 does not lie inside network 10\.5\.0\.0\/16/,
    );
  });

  it('refuses a network without a subnet, a wrong family, no network at all and a bad MTU', () => {
    expect(() => renderSubnetEnv({ network: parseCidr('10.5.0.0/16'), mtu: 1450, ipMasq: true })).toThrow(
      SubnetEnvError,
    );
    expect(() =>
      renderSubnetEnv({ ...v4Env, network: parseCidr('fd00::/48'), subnet: parseCidr('fd00::/64') }),
    ).toThrow(/not an IPv4 network/);
    expect(() => renderSubnetEnv({ mtu: 1450, ipMasq: true })).toThrow(/neither network nor ipv6Network/);
    expect(() => renderSubnetEnv({ ...v4Env, mtu: 0 })).toThrow(/mtu 0 is not an integer/);
    expect(() => renderSubnetEnv({ ...v4Env, mtu: 1450.5 })).toThrow(/mtu/);
  });
});

describe('parseSubnetEnv', () => {
  it('round-trips what render writes (subnets come back masked)', () => {
    expect(parseSubnetEnv(renderSubnetEnv(v4Env))).toEqual(v4Env);
    expect(parseSubnetEnv(renderSubnetEnv(dualEnv))).toEqual(dualEnv);
  });

  it('reads a file written by flanneld, with comments, blank lines, CRLF and unknown keys', () => {
    const text = [
      '# written by flanneld',
      '',
      'FLANNEL_NETWORK=10.244.0.0/16\r',
      'FLANNEL_SUBNET=10.244.3.1/24',
      '  FLANNEL_MTU=1450  ',
      'FLANNEL_IPMASQ=true',
      'DOCKER_OPTS=--bip=10.244.3.1/24',
      '',
    ].join('\n');
    expect(parseSubnetEnv(text)).toEqual({
      network: parseCidr('10.244.0.0/16'),
      subnet: parseCidr('10.244.3.0/24'),
      mtu: 1450,
      ipMasq: true,
    });
  });

  it("accepts Go's boolean spellings and quoted values", () => {
    const env = parseSubnetEnv(
      'FLANNEL_NETWORK="10.5.0.0/16"\nFLANNEL_SUBNET=10.5.1.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=0\n',
    );
    expect(env.ipMasq).toBe(false);
    expect(env.mtu).toBe(1500);
  });

  const base =
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

  it('names the line and key of a malformed value', () => {
    const bad = base.replace('FLANNEL_SUBNET=10.5.1.1/24', 'FLANNEL_SUBNET=10.5.1.300/24');
    const err = (() => {
      try {
        parseSubnetEnv(bad, '/run/flannel/subnet.env');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(SubnetEnvParseError);
    expect((err as SubnetEnvParseError).line).toBe(2);
    expect((err as SubnetEnvParseError).key).toBe('FLANNEL_SUBNET');
    expect((err as Error).message).toMatch(/^\/run\/flannel\/subnet\.env:2: FLANNEL_SUBNET: /);
  });

  it('rejects bad MTU, bad boolean, wrong family, duplicates and lines without "="', () => {
    expect(() => parseSubnetEnv(base.replace('1450', 'big'))).toThrow(
      /:3: FLANNEL_MTU: expected an integer MTU/,
    );
    expect(() => parseSubnetEnv(base.replace('=true', '=yes'))).toThrow(
      /:4: FLANNEL_IPMASQ: expected true or false/,
    );
    expect(() => parseSubnetEnv(base.replace('10.5.0.0/16', 'fd00::/48'))).toThrow(
      /:1: FLANNEL_NETWORK: "fd00::\/48" is not an IPv4 CIDR/,
    );
    expect(() => parseSubnetEnv(`${base}FLANNEL_MTU=1400\n`)).toThrow(
      /:5: FLANNEL_MTU: set again \(first set on line 3\)/,
    );
    expect(() => parseSubnetEnv(`${base}garbage\n`)).toThrow(/:5: expected KEY=VALUE/);
    expect(() => parseSubnetEnv(`${base}=x\n`)).toThrow(/:5: expected KEY=VALUE/);
    expect(() => parseSubnetEnv(`${base}1BAD=x\n`)).toThrow(/not a valid variable name/);
  });

  it('rejects a file missing required keys or with an inconsistent pair', () => {
    expect(() => parseSubnetEnv(base.replace('FLANNEL_MTU=1450\n', ''))).toThrow(/FLANNEL_MTU: missing/);
    expect(() => parseSubnetEnv(base.replace('FLANNEL_IPMASQ=true\n', ''))).toThrow(
      /FLANNEL_IPMASQ: missing/,
    );
    expect(() => parseSubnetEnv(base.replace('FLANNEL_SUBNET=10.5.1.1/24\n', ''))).toThrow(
      /FLANNEL_NETWORK and FLANNEL_SUBNET go together/,
    );
    expect(() => parseSubnetEnv(base.replace('10.5.1.1/24', '10.9.1.1/24'))).toThrow(
      /subnet.env:2: FLANNEL_SUBNET 10\.9\.1\.0\/24 does not lie inside FLANNEL_NETWORK/,
    );
    expect(() => parseSubnetEnv('FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')).toThrow(
      /neither FLANNEL_NETWORK nor FLANNEL_IPV6_NETWORK is set/,
    );
  });

  it('never throws anything but SubnetEnvParseError on odd input', () => {
    for (const text of ['', '\n\n', '=', 'FLANNEL_SUBNET=', 'FLANNEL_SUBNET=/', '\u0000=1', 'A=B=C']) {
      expect(() => parseSubnetEnv(text)).toThrow(SubnetEnvParseError);
    }
  });
});

describe('writeSubnetEnv / readSubnetEnv', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-subnet-env-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('returns undefined when the file is absent', async () => {
    expect(await readSubnetEnv(path.join(dir, 'none.env'))).toBeUndefined();
  });

  it('creates the parent directory, writes mode 0644 and reads back the same values', async () => {
    const file = path.join(dir, 'run', 'flannel', 'subnet.env');
    const previousUmask = process.umask(0o077);
    try {
      expect(await writeSubnetEnv(file, dualEnv)).toBe(true);
    } finally {
      process.umask(previousUmask);
    }
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(fs.readFileSync(file, 'utf8')).toBe(renderSubnetEnv(dualEnv));
    expect(await readSubnetEnv(file)).toEqual(dualEnv);
    // Same content: not rewritten. Different content: rewritten; no temp files left behind.
    expect(await writeSubnetEnv(file, dualEnv)).toBe(false);
    expect(await writeSubnetEnv(file, { ...dualEnv, mtu: 1400 })).toBe(true);
    expect((await readSubnetEnv(file))?.mtu).toBe(1400);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['subnet.env']);
  });

  it('names the file in parse errors', async () => {
    const file = path.join(dir, 'subnet.env');
    fs.writeFileSync(file, 'FLANNEL_MTU=abc\n');
    await expect(readSubnetEnv(file)).rejects.toThrow(`${file}:1: FLANNEL_MTU`);
  });
});
