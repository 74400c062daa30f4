// nftables mode end to end (issue 14): 3 dual-stack nodes, vxlan, `"EnableNFTables": true`, --tunnel-notrack.
// No iptables rule of weft's or flannel's; flannel's two tables; pods masqueraded to the outside, not to each
// other; a hand edit repaired within a check period without rewriting anything else; a restart into iptables
// mode (config change) leaves no table behind, and back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restartWeftd, waitFor } from '../testkit/dataplane.js';
import type { ClusterMachine, Pod, ProcessHandle } from '../testkit/index.js';
import { sourceSeenBy, startSourceEcho } from '../testkit/source-echo.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

const NET_CONF = {
  Network: '10.244.0.0/16',
  EnableIPv6: true,
  IPv6Network: 'fd00:10:244::/56',
  Backend: { Type: 'vxlan' },
  EnableNFTables: true,
};

describe('nftables mode: 3 nodes vxlan with EnableNFTables', () => {
  let c: WeftCluster;
  let pods: Pod[];
  const servers: ProcessHandle[] = [];

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 3,
      ipv6: true,
      extraHosts: 1,
      netConf: NET_CONF,
      weftdArgs: ['--tunnel-notrack', '--iptables-resync', '1'],
    });
    pods = await c.addPods(1);
  });

  afterAll(async () => {
    for (const s of servers) await s.stop('SIGTERM', 2_000).catch(() => undefined);
    await c?.destroy();
  });

  async function nftTables(node: ClusterMachine): Promise<string[]> {
    const r = await node.exec('nft', ['list', 'tables']);
    return r.stdout.split('\n').filter((l) => l.startsWith('table flannel') || / flannel-ipv[46]$/.test(l));
  }

  it("shows flannel's two tables on every node and no weft or flannel chain in iptables-save", async () => {
    for (const node of c.net.nodes) {
      expect(await nftTables(node)).toEqual(['table ip flannel-ipv4', 'table ip6 flannel-ipv6']);
      for (const tool of ['iptables-save', 'ip6tables-save']) {
        const r = await node.exec(tool, []);
        expect(r.code).toBe(0);
        expect(r.stdout).not.toMatch(/FLANNEL|WEFT|flanneld|weft/);
      }
      const v4 = (await node.exec('nft', ['list', 'table', 'ip', 'flannel-ipv4'])).stdout;
      expect(v4).toContain('meta mark & 0x00004000 == 0x00004000 return');
      expect(v4).toContain('ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random');
      expect(v4).toContain('udp dport 8472 fib daddr type local notrack');
    }
  });

  it('passes the pod ping matrix', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('pod → a host outside the Network arrives with the node’s address', async () => {
    const host = c.net.hosts[0]!;
    servers.push(await startSourceEcho(c.net, host));
    for (const pod of pods) expect(await sourceSeenBy(pod, host.underlayIp)).toBe(pod.node.underlayIp);
  });

  it('pod → pod on another node keeps the pod’s address', async () => {
    const [a, b, d] = pods as [Pod, Pod, Pod];
    servers.push(await startSourceEcho(c.net, b));
    expect(await sourceSeenBy(a, b.ip)).toBe(a.ip);
    expect(await sourceSeenBy(d, b.ip)).toBe(d.ip);
  });

  it('the VXLAN packets skip conntrack (tunnel NOTRACK in nftables)', async () => {
    const [a, b] = pods as [Pod, Pod];
    expect(await sourceSeenBy(a, b.ip)).toBe(a.ip);
    for (const node of c.net.nodes.slice(0, 2)) {
      const entries = (await node.exec('cat', ['/proc/net/nf_conntrack'])).stdout;
      expect(entries).not.toContain('dport=8472');
    }
  });

  it('a rule deleted by hand is back within one check period; the other tables keep their rule handles', async () => {
    const node = c.net.nodes[0]!;
    const listing = async (family: string, table: string): Promise<string> =>
      (await node.exec('nft', ['-a', 'list', 'table', family, table])).stdout;
    const v6Before = await listing('ip6', 'flannel-ipv6');
    const m = /ip saddr 10\.244\.0\.0\/16 accept comment "flanneld forward" # handle (\d+)/.exec(
      await listing('ip', 'flannel-ipv4'),
    );
    expect(m).not.toBeNull();
    const del = await node.exec('nft', ['delete', 'rule', 'ip', 'flannel-ipv4', 'forward', 'handle', m![1]!]);
    expect(del.code).toBe(0);
    await waitFor(
      'the forward rule to be back',
      async () => (await listing('ip', 'flannel-ipv4')).includes('ip saddr 10.244.0.0/16 accept'),
      10_000,
    );
    // Several check periods have run meanwhile (--iptables-resync 1): the unchanged table was not rewritten.
    expect(await listing('ip6', 'flannel-ipv6')).toBe(v6Before);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('restarted in iptables mode (config change) and back: no stale table, no stale chain', async () => {
    const node = c.net.nodes[1]!;
    const iptablesConf = { ...NET_CONF, EnableNFTables: false };
    await c.etcdctl(['put', '/coreos.com/network/config', JSON.stringify(iptablesConf)]);
    await c.weftNodes[1]!.weftd?.stop('SIGTERM', 10_000);
    await restartWeftd(c, 1);
    expect(await nftTables(node)).toEqual([]);
    expect((await node.exec('iptables-save', ['-t', 'nat'])).stdout).toContain('-j FLANNEL-POSTRTG');

    await c.etcdctl(['put', '/coreos.com/network/config', JSON.stringify(NET_CONF)]);
    await c.weftNodes[1]!.weftd?.stop('SIGTERM', 10_000);
    await restartWeftd(c, 1);
    expect(await nftTables(node)).toEqual(['table ip flannel-ipv4', 'table ip6 flannel-ipv6']);
    for (const tool of ['iptables-save', 'ip6tables-save']) {
      expect((await node.exec(tool, [])).stdout).not.toMatch(/FLANNEL|WEFT/);
    }
    expect(await c.pingMatrix(pods)).toEqual([]);
  });
});
