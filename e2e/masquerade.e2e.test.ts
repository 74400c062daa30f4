import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restartWeftd } from '../testkit/dataplane.js';
import type { ClusterMachine, Pod, ProcessHandle } from '../testkit/index.js';
import { SOURCE_ECHO_PORT, sourceSeenBy, startSourceEcho } from '../testkit/source-echo.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

const PORT = SOURCE_ECHO_PORT;

describe('masquerade: pods reach the underlay as their node, each other as themselves', () => {
  let c: WeftCluster;
  let pods: Pod[];
  const servers: ProcessHandle[] = [];

  async function startEchoServer(where: ClusterMachine | Pod): Promise<void> {
    servers.push(await startSourceEcho(c.net, where));
  }

  const seenSource = sourceSeenBy;

  beforeAll(async () => {
    // --tunnel-notrack is off by default; the NOTRACK tests below turn it on (and off again on node 2).
    c = await startWeftCluster({
      nodes: 2,
      extraHosts: 1,
      nodeArgs: { 0: ['--tunnel-notrack'], 1: ['--tunnel-notrack'] },
    });
    pods = await c.addPods(1);
  });

  afterAll(async () => {
    for (const s of servers) await s.stop('SIGTERM', 2_000).catch(() => undefined);
    await c?.destroy();
  });

  it('installs flannel’s masquerade chain on every node', async () => {
    for (const node of c.net.nodes) {
      const r = await node.exec('iptables-save', ['-t', 'nat']);
      expect(r.stdout).toContain('-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
      expect(r.stdout).toMatch(
        /-A FLANNEL-POSTRTG -s 10\.244\.0\.0\/16 ! -d 224\.0\.0\.0\/4 .*-j MASQUERADE/,
      );
    }
  });

  it('pod → a host outside the Network arrives with the node’s address', async () => {
    const host = c.net.hosts[0]!;
    await startEchoServer(host);
    for (const pod of pods) {
      expect(await seenSource(pod, host.underlayIp)).toBe(pod.node.underlayIp);
      expect((await c.net.ping(pod, host.underlayIp, { count: 2 })).ok).toBe(true);
    }
  });

  it('pod → pod on another node keeps the pod’s address', async () => {
    const [a, b] = pods as [Pod, Pod];
    await startEchoServer(b);
    expect(await seenSource(a, b.ip)).toBe(a.ip);
  });

  /** The node's conntrack table (this namespace's), one entry per line. */
  async function conntrackEntries(node: ClusterMachine): Promise<string[]> {
    const r = await node.exec('cat', ['/proc/net/nf_conntrack']);
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** Packets the NOTRACK rule of `chain` in the raw table has matched on `node`, or undefined if absent. */
  async function notrackPackets(node: ClusterMachine, chain: string): Promise<number | undefined> {
    const r = await node.exec('iptables', ['-t', 'raw', '-L', chain, '-v', '-n', '-x']);
    if (r.code !== 0) return undefined;
    const line = r.stdout.split('\n').find((l) => /\bNOTRACK\b/.test(l) && /dpt:8472/.test(l));
    return line === undefined ? undefined : Number(line.trim().split(/\s+/)[0]);
  }

  it('--tunnel-notrack: tracks the pods’ connections but not the VXLAN packets carrying them', async () => {
    const [a, b] = pods as [Pod, Pod];
    expect(await seenSource(a, b.ip)).toBe(a.ip);
    for (const node of c.net.nodes) {
      const raw = await node.exec('iptables-save', ['-t', 'raw']);
      expect(raw.stdout).toContain(
        '-A PREROUTING -m comment --comment "weft tunnel notrack" -j WEFT-NOTRACK-IN',
      );
      expect(raw.stdout).toContain(
        '-A OUTPUT -m comment --comment "weft tunnel notrack" -j WEFT-NOTRACK-OUT',
      );
      // Both rules saw the tunnel's packets in each direction.
      expect(await notrackPackets(node, 'WEFT-NOTRACK-IN')).toBeGreaterThan(0);
      expect(await notrackPackets(node, 'WEFT-NOTRACK-OUT')).toBeGreaterThan(0);
      const entries = await conntrackEntries(node);
      // The inner TCP connection is tracked on both nodes (masquerade and kube-proxy's DNAT need that) …
      expect(entries.some((l) => l.includes(`src=${a.ip} dst=${b.ip}`) && l.includes(`dport=${PORT}`))).toBe(
        true,
      );
      // … the outer VXLAN packets are not.
      expect(entries.filter((l) => l.includes('dport=8472'))).toEqual([]);
    }
  });

  it('restarted without --tunnel-notrack, weftd removes the jumps, and pods still talk', async () => {
    const node = c.net.nodes[1]!;
    const w = c.weftNodes[1]!;
    await w.weftd?.stop('SIGTERM', 10_000);
    w.args = [];
    await restartWeftd(c, 1);
    const raw = await node.exec('iptables-save', ['-t', 'raw']);
    expect(raw.stdout).not.toContain('-j WEFT-NOTRACK-IN');
    expect(raw.stdout).not.toContain('-j WEFT-NOTRACK-OUT');
    const [a, b] = pods as [Pod, Pod];
    expect(await seenSource(a, b.ip)).toBe(a.ip);
    // Now node 2 tracks the VXLAN packets it sends to node 1.
    expect((await conntrackEntries(node)).some((l) => l.includes('dport=8472'))).toBe(true);
  });
});
