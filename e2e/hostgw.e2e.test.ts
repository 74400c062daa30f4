import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dfPingEdge, kernelEntries, leaseRows, routeTo } from '../testkit/dataplane.js';
import type { Pod } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

describe('host-gw: 3 nodes × 2 pods with real weftd, etcd and CNI plugins', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 3,
      netConf: { Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } },
    });
    pods = await c.addPods(2);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes three flannel-format host-gw leases (no BackendData)', async () => {
    const rows = await leaseRows(c);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row.key).toMatch(/^\/coreos\.com\/network\/subnets\/10\.244\.\d+\.0-24$/);
      expect(row.value.BackendType).toBe('host-gw');
      expect(row.value.BackendData ?? undefined).toBeUndefined();
      expect(row.leaseId).not.toBe('0');
    }
    expect(new Set(rows.map((r) => r.value.PublicIP))).toEqual(new Set(c.net.nodes.map((n) => n.underlayIp)));
  });

  it('writes subnet.env with the underlay MTU', () => {
    const env = c.subnetEnv(0);
    expect(env.FLANNEL_NETWORK).toBe('10.244.0.0/16');
    expect(env.FLANNEL_SUBNET).toMatch(/^10\.244\.\d+\.1\/24$/);
    expect(env.FLANNEL_MTU).toBe('1500');
    expect(env.FLANNEL_IPMASQ).toBe('true');
  });

  it('routes every peer subnet via its PublicIP on eth0 and creates no VXLAN device', async () => {
    const rows = await leaseRows(c);
    for (let i = 0; i < 3; i++) {
      const entries = await kernelEntries(c, i);
      const own = rows.find((r) => r.value.PublicIP === c.net.nodes[i]!.underlayIp)!;
      for (const peer of rows.filter((r) => r !== own)) {
        const route = routeTo(entries, peer.subnet);
        expect(route, `node ${i + 1} route to ${peer.subnet}`).toMatchObject({
          gateway: peer.value.PublicIP,
          dev: 'eth0',
        });
      }
      // The own subnet stays the bridge's.
      expect(routeTo(entries, own.subnet)?.dev).toBe('cni0');
      const link = await c.net.nodes[i]!.exec('ip', ['link', 'show', 'dev', 'flannel.1']);
      expect(link.code).not.toBe(0);
    }
  });

  it('passes the full pod ping matrix', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('has the MTU right: 1472-byte DF ping passes, 1473 fails', async () => {
    const a = pods[0]!;
    const b = pods[2]!;
    expect(await dfPingEdge(c, a, b.ip, 1472)).toMatchObject({ fits: true, oneMore: false });
  });

  it('carries TCP between pods on different nodes (iperf3)', async () => {
    const r = await c.net.iperf(pods[0]!, pods[4]!, 1);
    expect(r.gbps).toBeGreaterThan(0);
  });
});
