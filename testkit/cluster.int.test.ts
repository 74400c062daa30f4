import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NetnsCluster, netnsCluster } from './cluster.js';
import { CniPluginError, cniAdd } from './cni.js';
import { etcdctl } from './etcd.js';
import { run, runIn } from './exec.js';
import { runPrefix } from './run.js';

const conflist = {
  cniVersion: '1.0.0',
  name: 't',
  plugins: [
    {
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: '10.244.1.0/24' }]],
        routes: [{ dst: '10.244.0.0/16' }],
      },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};

async function runNamespaces(): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']);
  return out.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(runPrefix()));
}

describe('netnsCluster', () => {
  let cluster: NetnsCluster;
  beforeAll(async () => {
    cluster = await netnsCluster({ nodes: 2, extraHosts: 1 });
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('wires nodes to the underlay: node-to-node, node-to-host and gateway pings', async () => {
    const [n1, n2] = cluster.nodes;
    expect(n1!.netns).toBe(`${runPrefix()}n1`);
    expect(n1!.underlayIp).toBe('192.168.77.11');
    expect((await cluster.ping(n1!, n2!.underlayIp)).ok).toBe(true);
    expect((await cluster.ping(n2!, cluster.hosts[0]!.underlayIp)).ok).toBe(true);
    expect((await cluster.ping(n1!, cluster.gateway, { count: 1 })).ok).toBe(true);
    const fwd = await n1!.exec('sysctl', ['-n', 'net.ipv4.ip_forward']);
    expect(fwd.stdout.trim()).toBe('1');
    const route = await n1!.exec('ip', ['route', 'show', 'default']);
    expect(route.stdout).toContain('via 192.168.77.1');
  });

  it('runs a real etcd on the etcd host, reachable from a node', async () => {
    expect(cluster.etcd.endpoint).toBe('http://192.168.77.2:2379');
    await etcdctl(
      cluster.etcd.endpoint,
      ['put', '/coreos.com/network/config', '{"Network":"10.244.0.0/16"}'],
      {
        netns: cluster.nodes[1]!.netns,
      },
    );
    const got = await etcdctl(
      cluster.etcd.endpoint,
      ['get', '/coreos.com/network/config', '--print-value-only'],
      {
        netns: cluster.nodes[0]!.netns,
      },
    );
    expect(JSON.parse(got.stdout)).toEqual({ Network: '10.244.0.0/16' });
  });

  it('gives pods on one node addresses on the node bridge; they ping each other; DEL frees the address', async () => {
    const node = cluster.nodes[0]!;
    const a = await cluster.addPod(node, 'a', conflist);
    const b = await cluster.addPod(node, 'b', conflist);
    expect(a.ip).toMatch(/^10\.244\.1\.\d+$/);
    expect(b.ip).toMatch(/^10\.244\.1\.\d+$/);
    expect(a.ip).not.toBe(b.ip);

    // The bridge lives in the node namespace, the pod end in the pod namespace.
    const bridge = await node.exec('ip', ['-json', 'addr', 'show', 'cni0']);
    expect(bridge.code).toBe(0);
    expect(bridge.stdout).toContain('10.244.1.1');
    const rootBridge = await run('ip', ['link', 'show', 'cni0']);
    expect(rootBridge.code).not.toBe(0);

    // The loopback plugin brought lo up in the pod.
    const lo = await runIn(a.netns, 'ip', ['-json', 'link', 'show', 'lo']);
    expect(JSON.parse(lo.stdout)[0].operstate).toBe('UNKNOWN');
    expect((await cluster.ping(a, '127.0.0.1', { count: 1 })).ok).toBe(true);

    const ping = await cluster.ping(a, b.ip, { count: 3 });
    expect(ping.ok).toBe(true);
    expect(ping.loss).toBe(0);
    expect(ping.rttMs).toBeGreaterThan(0);
    const big = await cluster.ping(b, a.ip, { count: 1, size: 1400, dontFragment: true });
    expect(big.ok).toBe(true);
    const tooBig = await cluster.ping(b, a.ip, { count: 1, size: 1600, dontFragment: true, timeoutSec: 2 });
    expect(tooBig.ok).toBe(false);

    const allocation = path.join(node.ipamDataDir, 't', a.ip);
    expect(fs.existsSync(allocation)).toBe(true);
    await cluster.removePod(a);
    expect(fs.existsSync(allocation)).toBe(false);
    expect(fs.existsSync(`/run/netns/${a.netns}`)).toBe(false);
    expect(fs.existsSync(path.join(node.ipamDataDir, 't', b.ip))).toBe(true);
  });

  it('reports a plugin failure with the plugin error JSON', async () => {
    const node = cluster.nodes[1]!;
    const bad = {
      cniVersion: '1.0.0',
      name: 'bad',
      // `mtu` must be a number: the plugin rejects the config before touching anything.
      plugins: [{ type: 'bridge', bridge: 'cni9', mtu: 'big', ipam: { type: 'host-local' } }],
    };
    await expect(cluster.addPod(node, 'bad', bad)).rejects.toBeInstanceOf(CniPluginError);
    const err = await cniAdd(bad, {
      netns: `${node.netns}`,
      containerId: 'x',
      hostNetns: node.netns,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect((err as CniPluginError).plugin).toBe('bridge');
    expect((err as CniPluginError).code).toBeTypeOf('number');
    expect((err as CniPluginError).msg).toMatch(/mtu|unmarshal|json/i);
    // The failed addPod left no pod namespace behind.
    expect((await runNamespaces()).filter((n) => n.startsWith(`${runPrefix()}p`))).toHaveLength(1);
  });

  it('measures pod-to-pod throughput with iperf3', async () => {
    const c = await cluster.addPod(cluster.nodes[1]!, 'c', {
      ...conflist,
      plugins: [
        { ...conflist.plugins[0]!, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.2.0/24' }]] } },
      ],
    });
    const d = await cluster.addPod(cluster.nodes[1]!, 'd', {
      ...conflist,
      plugins: [
        { ...conflist.plugins[0]!, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.2.0/24' }]] } },
      ],
    });
    const result = await cluster.iperf(c, d, 1);
    expect(result.gbps).toBeGreaterThan(0);
  });

  it('destroy() removes every namespace and temp dir of the run, and is idempotent', async () => {
    const pod = await cluster.addPod(cluster.nodes[0]!, 'e', conflist);
    expect(await runNamespaces()).toContain(pod.netns);
    const tempDir = cluster.tempDir;
    const etcdDir = cluster.etcd.dataDir;
    await cluster.destroy();
    await cluster.destroy();
    expect(await runNamespaces()).toEqual([]);
    expect(fs.existsSync(tempDir)).toBe(false);
    expect(fs.existsSync(etcdDir)).toBe(false);
  });
});

describe('netnsCluster with ipv6 and no etcd host', () => {
  it('gives nodes fd77:: underlay addresses they can ping each other on', async () => {
    const cluster = await netnsCluster({ nodes: 2, ipv6: true, withEtcdHost: false });
    try {
      const [n1, n2] = cluster.nodes;
      expect(n2!.underlayIp6).toBe('fd77::12');
      expect(cluster.hasEtcd).toBe(false);
      expect(() => cluster.etcd).toThrow(/withEtcdHost/);
      expect((await cluster.ping(n1!, n2!.underlayIp6!)).ok).toBe(true);
      expect((await cluster.ping(n2!, cluster.gateway6!, { count: 1 })).ok).toBe(true);
    } finally {
      await cluster.destroy();
    }
    expect(await runNamespaces()).toEqual([]);
  });
});
