import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../config/index.js';
import { formatCidr, parseCidr } from '../ip/index.js';
import { writeNodeFiles } from './node-files.js';
import { readSubnetEnv } from './subnet-env.js';

describe('writeNodeFiles', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-node-files-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } });

  it("writes flannel's subnet.env and the bridge conflist for the lease, then leaves unchanged files alone", async () => {
    const input = {
      config,
      lease: { subnet: parseCidr('10.5.7.0/24') },
      mtu: 1450,
      ipMasq: true,
      subnetFile: path.join(dir, 'run/flannel/subnet.env'),
      cniConfFile: path.join(dir, 'net.d/10-weft.conflist'),
      cniIpamDataDir: path.join(dir, 'ipam'),
    };
    expect(await writeNodeFiles(input)).toEqual({ subnetFile: true, cniConfFile: true });
    const env = fs.readFileSync(input.subnetFile, 'utf8');
    expect(env).toContain('FLANNEL_NETWORK=10.5.0.0/16\n');
    expect(env).toContain('FLANNEL_SUBNET=10.5.7.1/24\n');
    expect(env).toContain('FLANNEL_MTU=1450\n');
    expect(env).toContain('FLANNEL_IPMASQ=true\n');
    const conflist = JSON.parse(fs.readFileSync(input.cniConfFile, 'utf8')) as {
      plugins: Array<{ type: string; mtu?: number; ipam?: { dataDir?: string; ranges?: unknown } }>;
    };
    const bridge = conflist.plugins.find((p) => p.type === 'bridge');
    expect(bridge?.mtu).toBe(1450);
    expect(bridge?.ipam?.dataDir).toBe(input.cniIpamDataDir);
    expect(JSON.stringify(bridge?.ipam?.ranges)).toContain('10.5.7.0/24');

    expect(await writeNodeFiles(input)).toEqual({ subnetFile: false, cniConfFile: false });
    // A new lease (after the old one was lost) rewrites both.
    const moved = await writeNodeFiles({ ...input, lease: { subnet: parseCidr('10.5.9.0/24') } });
    expect(moved).toEqual({ subnetFile: true, cniConfFile: true });
    const back = (await readSubnetEnv(input.subnetFile))?.subnet;
    expect(back && formatCidr(back)).toBe('10.5.9.0/24');
  });

  it('writes no conflist when --cni-conf-file is empty', async () => {
    const subnetFile = path.join(dir, 'subnet.env');
    const written = await writeNodeFiles({
      config,
      lease: { subnet: parseCidr('10.5.7.0/24') },
      mtu: 1450,
      ipMasq: false,
      subnetFile,
      cniConfFile: '',
    });
    expect(written).toEqual({ subnetFile: true, cniConfFile: false });
    expect(fs.readdirSync(dir)).toEqual(['subnet.env']);
  });
});
