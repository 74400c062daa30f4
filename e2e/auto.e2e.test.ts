// `Backend.Type: "auto"` end to end: vxlan when the kernel can run it, else udp with a warning. Here vxlan cannot
// run because its UDP port (8472) is already bound on every node before weftd starts (a realistic failure: the
// VXLAN device can be created, but bringing it up fails with "Address already in use"), so both nodes fall
// back to udp and pods still reach each other.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastRunLog, leaseRows, waitFor } from '../testkit/dataplane.js';
import { netnsCluster, type Pod, type ProcessHandle, spawnIn } from '../testkit/index.js';
import { REPO_ROOT, WeftCluster } from '../testkit/weft-cluster.js';

const NET_CONF = { Network: '10.244.0.0/16', Backend: { Type: 'auto' } };
const UDP_PEER = join(REPO_ROOT, 'dist-dev/testkit/udp-peer.js');
const VXLAN_PORT = 8472;
const FALLBACK_MSG = 'vxlan is not available here: falling back to the udp backend';

describe('auto: vxlan’s port is taken, so weftd falls back to udp', () => {
  let c: WeftCluster;
  let pods: Pod[];
  const blockers: ProcessHandle[] = [];

  beforeAll(async () => {
    const net = await netnsCluster({ nodes: 2, withEtcdHost: true });
    c = new WeftCluster(net, { nodes: 2, netConf: NET_CONF });
    c.addWeftNodes();
    await c.etcdctl(['put', '/coreos.com/network/config', JSON.stringify(NET_CONF)]);
    // Someone else holds UDP 8472 on every node before weftd starts.
    for (const node of net.nodes) {
      const blocker = await spawnIn(
        node.netns,
        process.execPath,
        [UDP_PEER, 'listen', '0.0.0.0', String(VXLAN_PORT), '170'],
        {
          logFile: join(node.dir, 'port-blocker.log'),
        },
      );
      blockers.push(blocker);
      await waitFor(`the port blocker on ${node.name}`, async () => {
        if (blocker.exited) throw new Error(`port blocker exited: ${blocker.logTail(5)}`);
        return blocker.logTail(5).includes('"listening"');
      });
    }
    for (let i = 0; i < net.nodes.length; i++) await c.startWeftd(i);
    for (let i = 0; i < net.nodes.length; i++) await c.waitReady(i);
    pods = await c.addPods(1);
  });

  afterAll(async () => {
    for (const b of blockers) await b.stop('SIGTERM', 2_000).catch(() => undefined);
    await c?.destroy();
  });

  it('warns that vxlan is unavailable, with the kernel’s reason, and runs udp', () => {
    for (let i = 0; i < 2; i++) {
      const log = lastRunLog(c, i);
      const warning = log.find((r) => r.msg === FALLBACK_MSG);
      expect(warning, c.logTail(i, 30)).toBeDefined();
      expect(warning!.level).toBe(40);
      expect(JSON.stringify(warning!.err)).toMatch(/Address already in use/);
      const ready = log.find((r) => r.msg === 'backend ready');
      expect(ready?.backend).toBe('udp');
    }
  });

  it('publishes udp leases (PublicIP only) and plumbs flannel0, not flannel.1', async () => {
    const rows = await leaseRows(c);
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.value).toEqual({ PublicIP: row.value.PublicIP, PublicIPv6: null });
    for (let i = 0; i < 2; i++) {
      const links = await c.ipJson<Array<{ ifname: string }>>(i, ['link', 'show']);
      const names = links.map((l) => l.ifname);
      expect(names).toContain('flannel0');
      expect(names).not.toContain('flannel.1');
      // The throw-away probe device is gone too.
      expect(names.filter((n) => n.startsWith('weftprobe'))).toEqual([]);
    }
    expect(c.subnetEnv(0).FLANNEL_MTU).toBe('1472');
  });

  it('carries pod traffic across the nodes', async () => {
    expect(await c.pingMatrix(pods, { count: 2 })).toEqual([]);
  });
});
