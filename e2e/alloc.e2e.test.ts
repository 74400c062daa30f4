// flannel's alloc backend with real weftd: each node takes a lease and writes its files; no device and no
// route into the Network appears.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseRows } from '../testkit/dataplane.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

describe('alloc: leases and files, no data path', () => {
  let c: WeftCluster;

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 2,
      netConf: { Network: '10.244.0.0/16', Backend: { Type: 'alloc' } },
    });
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('takes one alloc lease per node and writes subnet.env and the conflist', async () => {
    const rows = await leaseRows(c);
    expect(rows.map((r) => r.value.BackendType)).toEqual(['alloc', 'alloc']);
    for (let i = 0; i < 2; i++) {
      const env = c.subnetEnv(i);
      expect(rows.map((r) => r.subnet.replace('.0/24', '.1/24'))).toContain(env.FLANNEL_SUBNET);
      expect(env.FLANNEL_MTU).toBe('1500');
      expect(c.conflist(i)).toMatchObject({ plugins: expect.any(Array) });
    }
  });

  it('creates no device and no route into the Network', async () => {
    for (let i = 0; i < 2; i++) {
      const links = await c.ipJson<Array<{ ifname: string }>>(i, ['link', 'show']);
      expect(links.map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
      expect(await c.ipJson(i, ['route', 'show', 'root', '10.244.0.0/16'])).toEqual([]);
    }
  });
});
