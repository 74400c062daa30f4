// Kubernetes mode, dual stack (issue 9): three namespace nodes run the real `weftd --kube-subnet-mgr` against
// the test API server (its own host namespace, 192.168.77.101). Every node has IPv4 and IPv6 on its underlay
// veth (fd77::(10+i)/64) and `spec.podCIDRs` holding one IPv4 and one IPv6 CIDR, as kube-controller-manager
// with a dual-stack --cluster-cidr assigns them; the net-conf enables IPv6 with vxlan.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globalAddresses } from '../testkit/dataplane.js';
import type { Pod } from '../testkit/index.js';
import type { RemoteApiServer } from '../testkit/kube-apiserver/remote.js';
import {
  FLANNEL_ANNOTATIONS as A,
  type KubeWeftCluster,
  kubeNodeName as nodeName,
  startKubeWeftCluster,
} from '../testkit/kube-cluster.js';
import type { WeftCluster } from '../testkit/weft-cluster.js';

const IPV6_NETWORK = 'fd00:10:244::/56';
const NET_CONF = {
  Network: '10.244.0.0/16',
  EnableIPv6: true,
  IPv6Network: IPV6_NETWORK,
  Backend: { Type: 'vxlan' },
};
const V4_DEV = 'flannel.1';
const V6_DEV = 'flannel-v6.1';

/** As kube-controller-manager with a dual-stack --cluster-cidr assigns them (1-based node index). */
const podCidr4 = (index: number): string => `10.244.${index}.0/24`;
const podCidr6 = (index: number): string => `fd00:10:244:${index}::/64`;

interface FdbEntry {
  mac: string;
  dst?: string;
}
interface NeighEntry {
  dst: string;
  lladdr?: string;
  state?: string[];
}
interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
}
interface LinkRow {
  mtu: number;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}
interface VxlanData {
  VNI?: number;
  VtepMAC?: string;
}

describe('kube mode, dual stack: 3 nodes with IPv4+IPv6 spec.podCIDRs, vxlan', () => {
  let kube: KubeWeftCluster;
  let c: WeftCluster;
  let api: RemoteApiServer;
  let pods: Pod[];

  const annotations = async (i: number): Promise<Record<string, string>> =>
    (await kube.node(i)).metadata.annotations ?? {};
  const vtep = (a: Record<string, string>, key: string): VxlanData => JSON.parse(a[key] ?? 'null') ?? {};
  const others = (i: number): number[] => [0, 1, 2].filter((k) => k !== i);

  const link = async (i: number, dev: string): Promise<LinkRow | undefined> =>
    (await c.ipJson<LinkRow[]>(i, ['-d', 'link', 'show', 'dev', dev]))[0];
  const fdb = async (i: number, dev: string): Promise<FdbEntry[]> => {
    const r = await c.net.nodes[i]!.exec('bridge', ['-json', 'fdb', 'show', 'dev', dev]);
    if (r.code !== 0) throw new Error(`bridge fdb show dev ${dev} on node ${i + 1}: ${r.stderr}`);
    return (JSON.parse(r.stdout || '[]') as FdbEntry[]).filter((e) => e.dst !== undefined);
  };
  const neigh6 = (i: number): Promise<NeighEntry[]> =>
    c.ipJson<NeighEntry[]>(i, ['-6', 'neigh', 'show', 'dev', V6_DEV, 'nud', 'permanent']);
  const routes6 = (i: number): Promise<RouteEntry[]> => c.ipJson<RouteEntry[]>(i, ['-6', 'route', 'show']);

  /** Node `i`'s v6 entries for peer `k`: route via the peer's subnet address onlink, neighbour, FDB entry. */
  const v6EntriesFor = async (i: number, k: number): Promise<true | string> => {
    const peer = await annotations(k);
    const mac = vtep(peer, A.backendV6Data).VtepMAC;
    const gw = podCidr6(k + 1).split('/')[0]!;
    const route = (await routes6(i)).find((r) => r.dst === podCidr6(k + 1));
    const n = (await neigh6(i)).find((e) => e.dst === gw);
    const f = (await fdb(i, V6_DEV)).filter((e) => e.mac === mac);
    const ok =
      mac !== undefined &&
      route?.gateway === gw &&
      route.dev === V6_DEV &&
      (route.flags ?? []).includes('onlink') &&
      n?.lladdr === mac &&
      f.length === 1 &&
      f[0]?.dst === peer[A.publicIPv6] &&
      peer[A.publicIPv6] === c.net.nodes[k]!.underlayIp6;
    return (
      ok ||
      `mac ${mac}, route ${JSON.stringify(route)}, neigh ${JSON.stringify(n)}, fdb ${JSON.stringify(f)}, ` +
        `public-ipv6 ${peer[A.publicIPv6]}`
    );
  };

  /** No IPv6 address in the pods and on the nodes is still tentative (DAD): a tentative one cannot send. */
  const waitIpv6Settled = async (): Promise<void> => {
    const namespaces = [...pods.map((p) => p.netns), ...c.net.nodes.map((n) => n.netns)];
    await kube.wait('IPv6 duplicate address detection to finish', async () => {
      for (const ns of namespaces) {
        const r = await c.net.nodes[0]!.exec('ip', ['-n', ns, '-6', '-json', 'addr', 'show', 'tentative']);
        if (r.code !== 0) return `ip addr show in ${ns}: ${r.stderr}`;
        if ((JSON.parse(r.stdout || '[]') as unknown[]).length > 0) return `${ns} has tentative addresses`;
      }
      return true;
    });
  };

  beforeAll(async () => {
    kube = await startKubeWeftCluster({
      netConf: NET_CONF,
      ipv6: true,
      nodeSpec: (n) => ({ podCIDRs: [podCidr4(n.index), podCidr6(n.index)], internalIP: n.underlayIp }),
      waitTimeoutMs: 30_000,
    });
    ({ cluster: c, api } = kube);
    pods = await c.addPods(2);
    await waitIpv6Settled();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('leases each node both of its pod CIDRs: subnet.env and the conflist carry both families', () => {
    for (let i = 0; i < 3; i++) {
      expect(c.subnetEnv(i)).toEqual({
        FLANNEL_NETWORK: '10.244.0.0/16',
        FLANNEL_SUBNET: `10.244.${i + 1}.1/24`,
        FLANNEL_IPV6_NETWORK: IPV6_NETWORK,
        FLANNEL_IPV6_SUBNET: `fd00:10:244:${i + 1}::1/64`,
        FLANNEL_MTU: '1430',
        FLANNEL_IPMASQ: 'true',
      });
      const bridge = (c.conflist(i).plugins as Array<Record<string, unknown>>)[0]!;
      expect((bridge.ipam as { ranges: unknown }).ranges).toEqual([
        [{ subnet: podCidr4(i + 1) }],
        [{ subnet: podCidr6(i + 1) }],
      ]);
    }
    for (const pod of pods) {
      expect(pod.ip).toMatch(/^10\.244\.[123]\./);
      expect(pod.ip6).toMatch(/^fd00:10:244:[123]::/);
    }
  });

  it('publishes public-ip, public-ipv6, backend-data and backend-v6-data (the VXLAN device MACs)', async () => {
    for (let i = 0; i < 3; i++) {
      await kube.wait(`node ${i + 1}'s NetworkUnavailable=False condition`, async () => {
        const cond = (await kube.node(i)).status?.conditions?.find((x) => x.type === 'NetworkUnavailable');
        return cond?.status === 'False' || JSON.stringify(cond);
      });
      const a = await annotations(i);
      expect(a[A.kubeSubnetManager]).toBe('true');
      expect(a[A.backendType]).toBe('vxlan');
      expect(a[A.publicIP]).toBe(c.net.nodes[i]!.underlayIp);
      expect(a[A.publicIPv6]).toBe(c.net.nodes[i]!.underlayIp6);
      const v4 = vtep(a, A.backendData);
      const v6 = vtep(a, A.backendV6Data);
      expect(v4.VNI).toBe(1);
      expect(v6.VNI).toBe(1);
      expect(v4.VtepMAC).toBe((await link(i, V4_DEV))?.address);
      expect(v6.VtepMAC).toBe((await link(i, V6_DEV))?.address);
      expect(v6.VtepMAC).not.toBe(v4.VtepMAC);
      // Status patches never touch the spec.
      expect((await kube.node(i)).spec?.podCIDRs).toEqual([podCidr4(i + 1), podCidr6(i + 1)]);
    }
  });

  it('has flannel-v6.1 with the /128 subnet address, local = the public IPv6, MTU underlay − 70', async () => {
    for (let i = 0; i < 3; i++) {
      const dev = await link(i, V6_DEV);
      expect(dev?.linkinfo?.info_kind).toBe('vxlan');
      expect(dev?.mtu).toBe(1430);
      const data = dev?.linkinfo?.info_data ?? {};
      expect(data.id).toBe(1);
      expect(data.local6 ?? data.local).toBe(c.net.nodes[i]!.underlayIp6);
      expect(data.link).toBe('eth0');
      expect(await globalAddresses(c, i, V6_DEV)).toEqual([`fd00:10:244:${i + 1}::/128`]);
      expect(await globalAddresses(c, i, V4_DEV)).toEqual([`10.244.${i + 1}.0/32`]);
    }
  });

  it('programs a v6 route, neighbour and FDB entry (dst = the peer public-ipv6) per peer', async () => {
    for (let i = 0; i < 3; i++) {
      for (const k of others(i)) {
        await kube.wait(`node ${i + 1}'s IPv6 entries for node ${k + 1}`, () => v6EntriesFor(i, k));
      }
      // Exactly one remote v6 FDB entry per peer, none for itself.
      const own = vtep(await annotations(i), A.backendV6Data).VtepMAC;
      const entries = await fdb(i, V6_DEV);
      expect(entries.map((e) => e.dst).sort()).toEqual(
        others(i)
          .map((k) => c.net.nodes[k]!.underlayIp6)
          .sort(),
      );
      expect(entries.some((e) => e.mac === own)).toBe(false);
    }
  });

  it('passes the full pod ping matrix over IPv4', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('passes the full pod ping matrix over IPv6', async () => {
    expect(await c.pingMatrix(pods, { family: 6 })).toEqual([]);
  });

  it('removes both families of a node deleted from the API from every peer', async () => {
    const gone = 2;
    const a = await annotations(gone);
    const mac4 = vtep(a, A.backendData).VtepMAC;
    const mac6 = vtep(a, A.backendV6Data).VtepMAC;
    await api.kubectl(['delete', 'node', nodeName(c.net.nodes[gone]!)]);
    for (const k of others(gone)) {
      await kube.wait(`node ${k + 1} to drop node 3's IPv4 and IPv6 entries`, async () => {
        const left = [
          ...(await routes6(k)).filter((r) => r.dst === podCidr6(gone + 1)),
          ...(await c.ipJson<RouteEntry[]>(k, ['route', 'show', podCidr4(gone + 1)])),
          ...(await neigh6(k)).filter((e) => e.lladdr === mac6),
          ...(await fdb(k, V6_DEV)).filter((e) => e.mac === mac6),
          ...(await fdb(k, V4_DEV)).filter((e) => e.mac === mac4),
        ];
        return left.length === 0 || `still there: ${JSON.stringify(left)}`;
      });
    }
    const remaining = pods.filter((p) => p.node !== c.net.nodes[gone]);
    expect(await c.pingMatrix(remaining, { family: 6 })).toEqual([]);
  });

  it('kept every weftd running', () => {
    for (let i = 0; i < 3; i++) expect(c.weftNodes[i]!.weftd?.exited, kube.logs()).toBe(false);
  });
});
