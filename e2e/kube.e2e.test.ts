// Kubernetes mode end to end: three namespace nodes run the real `weftd --kube-subnet-mgr` against the test API
// server, which runs as its own process inside an extra host namespace (192.168.77.101) and is driven by the
// test as a user would, with Debian's kubectl (annotating a node behind NAT, deleting a node, reading
// NetworkUnavailable), and through its admin socket where kube-controller-manager or a kubelet would act.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../testkit/index.js';
import type { RemoteApiServer } from '../testkit/kube-apiserver/remote.js';
import { makeNode } from '../testkit/kube-apiserver/server.js';
import {
  FLANNEL_ANNOTATIONS as A,
  type KubeWeftCluster,
  kubeNodeName as nodeName,
  startKubeWeftCluster,
} from '../testkit/kube-cluster.js';
import type { WeftCluster } from '../testkit/weft-cluster.js';

const NET_CONF = { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } };
const VXLAN_DEV = 'flannel.1';

/** As kube-controller-manager with --allocate-node-cidrs would assign them. */
const podCidrOf = (index: number): string => `10.244.${index}.0/24`;

interface FdbEntry {
  mac: string;
  dst?: string;
  flags?: string[];
}
interface NeighEntry {
  dst: string;
  lladdr?: string;
}
interface RouteEntry {
  dst: string;
  gateway?: string;
}

describe('kube mode: 3 nodes run weftd --kube-subnet-mgr against a test API server', () => {
  let kube: KubeWeftCluster;
  let c: WeftCluster;
  let api: RemoteApiServer;
  let pods: Pod[];

  const annotation = async (i: number, key: string): Promise<string | undefined> =>
    (await kube.node(i)).metadata.annotations?.[key];
  const vtepMac = async (i: number): Promise<string> => {
    const data = JSON.parse((await annotation(i, A.backendData)) ?? 'null') as { VtepMAC?: string } | null;
    if (!data?.VtepMAC) throw new Error(`node ${i + 1} has no VtepMAC in ${A.backendData}`);
    return data.VtepMAC;
  };
  const fdb = async (i: number): Promise<FdbEntry[]> => {
    const r = await c.net.nodes[i]!.exec('bridge', ['-json', 'fdb', 'show', 'dev', VXLAN_DEV]);
    if (r.code !== 0) throw new Error(`bridge fdb show on node ${i + 1}: ${r.stderr}`);
    return JSON.parse(r.stdout || '[]') as FdbEntry[];
  };
  /** The FDB destination node `i` uses for VTEP `mac` (undefined when it has no entry). */
  const fdbDst = async (i: number, mac: string): Promise<string | undefined> =>
    (await fdb(i)).find((e) => e.mac === mac && e.dst !== undefined)?.dst;
  const neigh = (i: number): Promise<NeighEntry[]> =>
    c.ipJson<NeighEntry[]>(i, ['neigh', 'show', 'dev', VXLAN_DEV]);
  const routesTo = (i: number, cidr: string): Promise<RouteEntry[]> =>
    c.ipJson<RouteEntry[]>(i, ['route', 'show', cidr]);
  const others = (i: number): number[] => [0, 1, 2].filter((k) => k !== i);

  /** The MAC of node `i`'s own VXLAN device (the ground truth peers must learn). */
  const deviceMac = async (i: number): Promise<string> => {
    const links = await c.ipJson<Array<{ address?: string }>>(i, ['link', 'show', VXLAN_DEV]);
    const mac = links[0]?.address;
    if (!mac) throw new Error(`node ${i + 1} has no ${VXLAN_DEV}`);
    return mac;
  };

  /**
   * Waits until node `i` published its VXLAN device's MAC and every other node sends that VTEP's traffic to
   * `ip` (FDB) and resolves node `i`'s subnet gateway to that MAC (neighbour).
   */
  const waitPeersFollow = async (i: number, ip: string): Promise<void> => {
    const mac = await deviceMac(i);
    await kube.wait(`node ${i + 1} to publish its VtepMAC ${mac}`, async () => {
      const published = await vtepMac(i);
      return published === mac || `published ${published}`;
    });
    for (const k of others(i)) {
      await kube.wait(
        `node ${k + 1}'s FDB and neighbour entries for node ${i + 1} (${mac}) to point at ${ip}`,
        async () => {
          const dst = await fdbDst(k, mac);
          const n = (await neigh(k)).find((e) => e.dst === `10.244.${i + 1}.0`);
          return (dst === ip && n?.lladdr === mac) || `fdb dst ${dst ?? 'none'}, neigh ${JSON.stringify(n)}`;
        },
      );
    }
  };

  beforeAll(async () => {
    kube = await startKubeWeftCluster({
      netConf: NET_CONF,
      // Registered by the kubelet, pod CIDR assigned by the controller manager; no flannel annotations yet.
      nodeSpec: (n) => ({ podCIDR: podCidrOf(n.index), internalIP: n.underlayIp }),
    });
    ({ cluster: c, api } = kube);
    pods = await c.addPods(2);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('leases each node its spec.podCIDR and writes flannel’s subnet.env', () => {
    for (let i = 0; i < 3; i++) {
      const env = c.subnetEnv(i);
      expect(env.FLANNEL_NETWORK).toBe('10.244.0.0/16');
      expect(env.FLANNEL_SUBNET).toBe(`10.244.${i + 1}.1/24`);
      expect(env.FLANNEL_MTU).toBe('1450');
      expect(env.FLANNEL_IPMASQ).toBe('true');
    }
  });

  it('publishes the flannel annotations and sets NetworkUnavailable=False (FlannelIsUp) on every node', async () => {
    for (let i = 0; i < 3; i++) {
      // The readiness task runs beside the watch once the files are written: allow it a moment. Read the
      // condition as an operator would.
      const jsonpath = (field: string): string =>
        `jsonpath={.status.conditions[?(@.type=="NetworkUnavailable")].${field}}`;
      await kube.wait(`node ${i + 1}'s NetworkUnavailable condition (kubectl)`, async () => {
        const status = await api.kubectl([
          'get',
          'node',
          nodeName(c.net.nodes[i]!),
          '-o',
          jsonpath('status'),
        ]);
        return status === 'False' || `status ${JSON.stringify(status)}`;
      });
      expect(await api.kubectl(['get', 'node', nodeName(c.net.nodes[i]!), '-o', jsonpath('reason')])).toBe(
        'FlannelIsUp',
      );
      const n = await kube.node(i);
      const annotations = n.metadata.annotations ?? {};
      expect(annotations[A.backendType]).toBe('vxlan');
      expect(annotations[A.publicIP]).toBe(c.net.nodes[i]!.underlayIp);
      expect(annotations[A.kubeSubnetManager]).toBe('true');
      const data = JSON.parse(annotations[A.backendData] ?? 'null') as { VNI: number; VtepMAC: string };
      expect(data.VNI).toBe(1);
      expect(data.VtepMAC).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      const cond = n.status?.conditions?.find((x) => x.type === 'NetworkUnavailable');
      expect(cond).toMatchObject({ status: 'False', reason: 'FlannelIsUp' });
      // The kubelet's own condition is kept (strategic merge by type).
      expect(n.status?.conditions?.find((x) => x.type === 'Ready')).toMatchObject({ status: 'True' });
      // Status patches never touch the spec.
      expect(n.spec?.podCIDR).toBe(podCidrOf(i + 1));
    }
  });

  it('programs every peer: route, neighbour and FDB entry per remote node', async () => {
    for (let i = 0; i < 3; i++) {
      for (const k of others(i)) {
        const mac = await vtepMac(k);
        await kube.wait(`node ${i + 1}'s entries for node ${k + 1}`, async () => {
          const routes = await routesTo(i, podCidrOf(k + 1));
          const n = (await neigh(i)).find((e) => e.dst === `10.244.${k + 1}.0`);
          const dst = await fdbDst(i, mac);
          return (
            (routes.length === 1 && n?.lladdr === mac && dst === c.net.nodes[k]!.underlayIp) ||
            `routes ${JSON.stringify(routes)}, neigh ${JSON.stringify(n)}, fdb dst ${dst}`
          );
        });
      }
    }
  });

  it('passes the full pod ping matrix', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('public-ip-overwrite (NAT): the node publishes the new public IP and its peers follow it', async () => {
    // Node 2 is now reached through another address (as behind a NAT): the operator sets public-ip-overwrite.
    const natIp = '192.168.77.52';
    const r = await c.net.nodes[1]!.exec('ip', ['addr', 'add', `${natIp}/24`, 'dev', 'eth0']);
    expect(r.code, r.stderr).toBe(0);
    await api.kubectl(['annotate', 'node', nodeName(c.net.nodes[1]!), `${A.publicIPOverwrite}=${natIp}`]);
    // weft on node 2 copies it into public-ip (the annotation peers read)...
    await kube.wait("node 2's public-ip to become the overwrite", async () => {
      const ip = await annotation(1, A.publicIP);
      return ip === natIp || `public-ip ${ip}`;
    });
    // ...and nodes 1 and 3 send node 2's VXLAN traffic there.
    await waitPeersFollow(1, natIp);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('puts its own annotations back when someone else changes them', async () => {
    // Not a user-facing knob: weft owns public-ip and restores it (public-ip-overwrite is the way to change it).
    const bogus = '192.168.77.250';
    await api.kubectl([
      'annotate',
      '--overwrite',
      'node',
      nodeName(c.net.nodes[0]!),
      `${A.publicIP}=${bogus}`,
      `${A.kubeSubnetManager}-`,
    ]);
    await kube.wait("node 1's public-ip and kube-subnet-manager to be restored", async () => {
      const n = await kube.node(0);
      const a = n.metadata.annotations ?? {};
      return (
        (a[A.publicIP] === c.net.nodes[0]!.underlayIp && a[A.kubeSubnetManager] === 'true') ||
        JSON.stringify({ publicIP: a[A.publicIP], ksm: a[A.kubeSubnetManager] })
      );
    });
    await waitPeersFollow(0, c.net.nodes[0]!.underlayIp);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('resumes its watches after the API server restarts mid-watch: a change made after the restart arrives', async () => {
    const before = (await api.requests()).total;
    await api.restart({ downMs: 1500 });
    // The operator removes the overwrite after the restart: node 2 goes back to its own address.
    await api.kubectl(['annotate', 'node', nodeName(c.net.nodes[1]!), `${A.publicIPOverwrite}-`]);
    await kube.wait("node 2's public-ip to return to its own address", async () => {
      const ip = await annotation(1, A.publicIP);
      return ip === c.net.nodes[1]!.underlayIp || `public-ip ${ip}`;
    });
    await waitPeersFollow(1, c.net.nodes[1]!.underlayIp);
    // Each weftd holds two watches (all nodes; its own node): all six come back.
    await kube.wait('all six watches to be open again', async () => {
      const info = await api.info();
      return info.openWatches >= 6 || `${info.openWatches} open`;
    });
    // They resumed from the last resourceVersion they had seen (the history still holds it): no re-list.
    const after = (await api.requests(before)).requests;
    const watches = after.filter((r) => r.watch && r.path === '/api/v1/nodes');
    const lists = after.filter((r) => !r.watch && r.method === 'GET' && r.path === '/api/v1/nodes');
    expect(watches.length).toBeGreaterThanOrEqual(6);
    for (const w of watches) expect(Number(w.query.resourceVersion ?? '0')).toBeGreaterThan(0);
    expect(lists).toEqual([]);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('removes a node deleted from the API from every peer, and adds it back when it re-registers', async () => {
    const gone = 2;
    const mac = await vtepMac(gone);
    await api.kubectl(['delete', 'node', nodeName(c.net.nodes[gone]!)]);
    for (const k of others(gone)) {
      await kube.wait(`node ${k + 1} to drop node 3's route, neighbour and FDB entry`, async () => {
        const routes = await routesTo(k, podCidrOf(gone + 1));
        const n = (await neigh(k)).filter((e) => e.dst === `10.244.${gone + 1}.0`);
        const f = (await fdb(k)).filter((e) => e.mac === mac);
        return (
          (routes.length === 0 && n.length === 0 && f.length === 0) ||
          `routes ${JSON.stringify(routes)}, neigh ${JSON.stringify(n)}, fdb ${JSON.stringify(f)}`
        );
      });
    }
    // The other two still reach each other.
    const remaining = pods.filter((p) => p.node !== c.net.nodes[gone]);
    expect(await c.pingMatrix(remaining)).toEqual([]);

    // The kubelet registers the node again (same pod CIDR, no annotations): weft on node 3 re-publishes.
    await api.addNode(
      makeNode(nodeName(c.net.nodes[gone]!), {
        podCIDR: podCidrOf(gone + 1),
        internalIP: c.net.nodes[gone]!.underlayIp,
      }),
    );
    await kube.wait("node 3's annotations to be published again", async () => {
      const a = (await kube.node(gone)).metadata.annotations ?? {};
      return a[A.kubeSubnetManager] === 'true' || JSON.stringify(a);
    });
    await waitPeersFollow(gone, c.net.nodes[gone]!.underlayIp);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('re-lists after an API server restart that lost the watch history (410 Gone) and stays consistent', async () => {
    const natIp = '192.168.77.51';
    const r = await c.net.nodes[0]!.exec('ip', ['addr', 'add', `${natIp}/24`, 'dev', 'eth0']);
    expect(r.code, r.stderr).toBe(0);
    const before = (await api.requests()).total;
    // The server goes down; a write lands meanwhile (through another API server replica); the restarted
    // server's watch history begins after that write, so every weft watch resumes from a version it no
    // longer has and must list again to learn about the write.
    await api.pause();
    await api.annotate(nodeName(c.net.nodes[0]!), { [A.publicIPOverwrite]: natIp });
    await api.compact();
    await api.resume();
    await kube.wait("node 1's public-ip to become the overwrite made while the server was down", async () => {
      const ip = await annotation(0, A.publicIP);
      return ip === natIp || `public-ip ${ip}`;
    });
    await waitPeersFollow(0, natIp);
    const after = (await api.requests(before)).requests;
    // Watches from the lost versions were answered 410 (an ERROR event in the stream), then lists followed.
    expect(
      after.filter((x) => !x.watch && x.method === 'GET' && x.path === '/api/v1/nodes').length,
    ).toBeGreaterThanOrEqual(3);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('node-public-ip acts like --public-ip: a restarted weftd uses that address for its VXLAN device', async () => {
    const i = 2;
    const chosen = '192.168.77.53';
    const r = await c.net.nodes[i]!.exec('ip', ['addr', 'add', `${chosen}/24`, 'dev', 'eth0']);
    expect(r.code, r.stderr).toBe(0);
    await api.kubectl(['annotate', 'node', nodeName(c.net.nodes[i]!), `${A.nodePublicIP}=${chosen}`]);
    await c.weftNodes[i]!.weftd!.stop('SIGTERM', 10_000);
    await c.startWeftd(i);
    await kube.wait("node 3's public-ip to become the node-public-ip", async () => {
      const ip = await annotation(i, A.publicIP);
      return ip === chosen || `public-ip ${ip}`;
    });
    await kube.wait("node 3's VXLAN device to use the node-public-ip as its local address", async () => {
      const links = await c.ipJson<Array<{ linkinfo?: { info_data?: { local?: string } } }>>(i, [
        '-d',
        'link',
        'show',
        VXLAN_DEV,
      ]);
      const local = links[0]?.linkinfo?.info_data?.local;
      return local === chosen || `local ${local}`;
    });
    await waitPeersFollow(i, chosen);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('kept every weftd running through all of it', () => {
    for (let i = 0; i < 3; i++) expect(c.weftNodes[i]!.weftd?.exited, kube.logs()).toBe(false);
  });
});
