import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dfPingEdge, vxlanLeaseRows } from '../testkit/dataplane.js';
import type { Pod } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

describe('vxlan: 3 nodes × 2 pods with real weftd, etcd and CNI plugins', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await startWeftCluster({ nodes: 3, extraHosts: 1 });
    pods = await c.addPods(2);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes three flannel-format leases in etcd', async () => {
    const rows = await vxlanLeaseRows(c);
    for (const row of rows) {
      expect(row.value.BackendData?.VtepMAC).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    }
    expect(new Set(rows.map((r) => r.value.PublicIP))).toEqual(new Set(c.net.nodes.map((n) => n.underlayIp)));
  });

  it('writes flannel’s subnet.env', () => {
    const env = c.subnetEnv(0);
    expect(env.FLANNEL_NETWORK).toBe('10.244.0.0/16');
    expect(env.FLANNEL_SUBNET).toMatch(/^10\.244\.\d+\.1\/24$/);
    expect(env.FLANNEL_MTU).toBe('1450');
    expect(env.FLANNEL_IPMASQ).toBe('true');
  });

  it('passes the full pod ping matrix', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
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
