import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deviceMac,
  dfPingEdge,
  kernelEntries,
  leaseRows,
  routeTo,
  txPackets,
  vxlanLeaseRows,
} from '../testkit/dataplane.js';
import type { Pod } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

describe('vxlan with DirectRouting: 3 nodes on one L2 × 2 pods', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 3,
      netConf: { Network: '10.244.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } },
    });
    pods = await c.addPods(2);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes three flannel-format vxlan leases with the device’s VTEP MAC', async () => {
    const rows = await vxlanLeaseRows(c);
    for (const row of rows) {
      const i = c.net.nodes.findIndex((n) => n.underlayIp === row.value.PublicIP);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(row.value.BackendData?.VtepMAC).toBe(await deviceMac(c, i, 'flannel.1'));
    }
  });

  it('writes subnet.env with the VXLAN MTU', () => {
    const env = c.subnetEnv(0);
    expect(env.FLANNEL_NETWORK).toBe('10.244.0.0/16');
    expect(env.FLANNEL_MTU).toBe('1450');
  });

  it('routes every on-link peer via its PublicIP on eth0, with no neighbour or FDB entries', async () => {
    const rows = await leaseRows(c);
    for (let i = 0; i < 3; i++) {
      const entries = await kernelEntries(c, i, 'flannel.1');
      const own = rows.find((r) => r.value.PublicIP === c.net.nodes[i]!.underlayIp)!;
      for (const peer of rows.filter((r) => r !== own)) {
        expect(routeTo(entries, peer.subnet), `node ${i + 1} route to ${peer.subnet}`).toMatchObject({
          gateway: peer.value.PublicIP,
          dev: 'eth0',
        });
      }
      expect(entries.routes.filter((r) => r.dev === 'flannel.1')).toEqual([]);
      expect(entries.neighbors).toEqual([]);
      expect(entries.fdb).toEqual([]);
    }
  });

  it('passes the full pod ping matrix without sending through flannel.1', async () => {
    const before = await Promise.all([0, 1, 2].map((i) => txPackets(c, i, 'flannel.1')));
    expect(await c.pingMatrix(pods)).toEqual([]);
    const after = await Promise.all([0, 1, 2].map((i) => txPackets(c, i, 'flannel.1')));
    expect(after).toEqual(before);
  });

  it('has the MTU right: 1422-byte DF ping passes, 1423 fails', async () => {
    const a = pods[0]!;
    const b = pods[2]!;
    expect(await dfPingEdge(c, a, b.ip, 1422)).toMatchObject({ fits: true, oneMore: false });
  });

  it('carries TCP between pods on different nodes (iperf3)', async () => {
    const r = await c.net.iperf(pods[0]!, pods[4]!, 1);
    expect(r.gbps).toBeGreaterThan(0);
  });
});
