// wireguard with IPv6: dual stack in `separate` mode (flannel-wg for IPv4 on 51820, flannel-wg-v6 for IPv6 on
// 51821, dialled over the matching family) and `Mode: auto` on an IPv6-only network, whose peers publish no
// IPv4 PublicIP and are dialled over IPv6 by the one flannel-wg.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseOfNode } from '../testkit/dataplane.js';
import { type Pod, pollUntil, runIn } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

const IPV6_NETWORK = 'fd00:10:244::/56';

interface WgData {
  PublicKey?: string;
  Port?: number;
}

function start(netConf: Record<string, unknown>): Promise<WeftCluster> {
  return startWeftCluster({
    nodes: 2,
    ipv6: true,
    mountNamespaces: true,
    netConf,
    weftdEnv: (node) => ({ WIREGUARD_KEY_FILE: join(node.dir, 'run/flannel/wgkey') }),
  });
}

/**
 * Waits until no IPv6 address in the pods and on the nodes is still tentative (DAD, about a second after the
 * CNI plugins add them): a tentative address neither sends nor receives.
 */
async function waitIpv6Settled(c: WeftCluster, pods: Pod[]): Promise<void> {
  const namespaces = [...pods.map((p) => p.netns), ...c.net.nodes.map((n) => n.netns)];
  const settled = await pollUntil(
    async () => {
      for (const ns of namespaces) {
        const r = await runIn(ns, 'ip', ['-6', '-json', 'addr', 'show', 'tentative']);
        if (r.code !== 0 || (JSON.parse(r.stdout || '[]') as unknown[]).length > 0) return undefined;
      }
      return true;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  );
  if (settled === undefined) throw new Error('IPv6 duplicate address detection still running after 15 s');
}

/** `wg show DEVICE endpoints` on node `i`: public key → endpoint. */
async function endpoints(c: WeftCluster, i: number, device: string): Promise<string[]> {
  const r = await c.net.nodes[i]!.exec('wg', ['show', device, 'endpoints']);
  if (r.code !== 0) throw new Error(`wg show ${device} endpoints on node ${i + 1}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t')[1] ?? '');
}

describe('wireguard dual stack, Mode separate', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await start({
      Network: '10.244.0.0/16',
      EnableIPv6: true,
      IPv6Network: IPV6_NETWORK,
      Backend: { Type: 'wireguard', Mode: 'separate' },
    });
    pods = await c.addPods(2);
    await waitIpv6Settled(c, pods);
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes BackendData on ListenPort and BackendV6Data on ListenPortV6 with one key', async () => {
    const row = await leaseOfNode(c, 0);
    const v4 = row.value.BackendData as WgData;
    const v6 = (row.value as { BackendV6Data?: WgData }).BackendV6Data;
    expect(v4.Port).toBe(51820);
    expect(v6?.Port).toBe(51821);
    expect(v6?.PublicKey).toBe(v4.PublicKey);
  });

  it('dials IPv4 peers on flannel-wg and IPv6 peers on flannel-wg-v6', async () => {
    expect(await endpoints(c, 0, 'flannel-wg')).toEqual([`${c.net.nodes[1]!.underlayIp}:51820`]);
    expect(await endpoints(c, 0, 'flannel-wg-v6')).toEqual([`[${c.net.nodes[1]!.underlayIp6}]:51821`]);
  });

  it('passes the pod ping matrix over IPv4 and over IPv6', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
    expect(await c.pingMatrix(pods, { family: 6 })).toEqual([]);
  });
});

describe('wireguard Mode auto with IPv6-only peers', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await start({
      EnableIPv4: false,
      EnableIPv6: true,
      IPv6Network: IPV6_NETWORK,
      Backend: { Type: 'wireguard', Mode: 'auto' },
    });
    pods = await c.addPods(2);
    await waitIpv6Settled(c, pods);
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('dials the IPv6-only peer over IPv6 on the one flannel-wg and passes the ping matrix', async () => {
    expect(await endpoints(c, 0, 'flannel-wg')).toEqual([`[${c.net.nodes[1]!.underlayIp6}]:51820`]);
    const v6 = await c.net.nodes[0]!.exec('ip', ['link', 'show', 'flannel-wg-v6']);
    expect(v6.code).not.toBe(0);
    expect(await c.pingMatrix(pods, { family: 6 })).toEqual([]);
  });
});
