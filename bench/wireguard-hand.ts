// The wireguard rows' helpers for bench/dataplane.ts: a hand-built pair of wireguard-go devices with ideal
// settings (the same layout weft makes: address /32, one scope-link route for the Network, MTU 1500 − 80, no
// iptables rules, no keepalive), and the two timings of weft's wireguard backend: start → first packet through
// the tunnel, and a weftd SIGKILL + restart → how many pings are lost.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ClusterNode, type NetnsCluster, type Pod, runIn, sleep } from '../testkit/index.js';
import type { WeftCluster } from '../testkit/weft-cluster.js';
import { weftdGet } from '../testkit/weftd-http.js';

export const WG_MTU = 1420;

/**
 * One pod per node on a hand-built data path: the bridge plugin with `<prefix>.<node index>.0/24`, the given
 * MTU, no masquerade (the hand-built rows' netfilter is the bare one).
 */
export async function addHandPods(
  net: NetnsCluster,
  nodes: readonly ClusterNode[],
  name: string,
  podPrefix: string,
  subnetPrefix: string,
  mtu: number,
): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (const node of nodes) {
    const conflist = {
      cniVersion: '1.0.0',
      name,
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          isDefaultGateway: true,
          ipMasq: false,
          hairpinMode: true,
          mtu,
          ipam: { type: 'host-local', ranges: [[{ subnet: `${subnetPrefix}.${node.index}.0/24` }]] },
        },
      ],
    };
    pods.push(await net.addPod(node, `${podPrefix}${node.index}`, conflist as never));
  }
  return pods;
}
const WG_PORT = 51820;

async function checked(node: ClusterNode, cmd: string, args: string[], input?: string): Promise<string> {
  const r = await node.exec(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} on ${node.name} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** The pids of the wireguard-go processes in a node's namespace (they do the data path's work). */
export async function wireguardGoPids(node: ClusterNode): Promise<number[]> {
  const r = await runIn(node.netns, 'ip', ['netns', 'pids', node.netns]);
  const pids = r.stdout
    .split('\n')
    .filter((l) => /^\d+$/.test(l.trim()))
    .map(Number);
  const out: number[] = [];
  for (const pid of pids) {
    const comm = await runIn(node.netns, 'cat', [`/proc/${pid}/comm`]);
    if (comm.stdout.trim() === 'wireguard-go') out.push(pid);
  }
  return out;
}

/** Two nodes (`mountNamespaces: true`), 10.251.<i>.0/24 each, joined by hand-configured wireguard-go. */
export async function buildHandWireguard(net: NetnsCluster): Promise<Pod[]> {
  const keys = new Map<number, { priv: string; pub: string }>();
  for (const node of net.nodes) {
    const priv = await checked(node, 'wg', ['genkey']);
    keys.set(node.index, { priv, pub: await checked(node, 'wg', ['pubkey'], `${priv}\n`) });
  }
  for (const node of net.nodes) {
    const i = node.index;
    await checked(node, 'wireguard-go', ['wgh']);
    const keyFile = join(node.dir, 'wgh.key');
    writeFileSync(keyFile, `${keys.get(i)!.priv}\n`, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
    const args = ['set', 'wgh', 'private-key', keyFile, 'listen-port', String(WG_PORT)];
    for (const peer of net.nodes) {
      if (peer === node) continue;
      args.push('peer', keys.get(peer.index)!.pub, 'endpoint', `${peer.underlayIp}:${WG_PORT}`);
      args.push('allowed-ips', `10.251.${peer.index}.0/24`);
    }
    await checked(node, 'wg', args);
    await checked(node, 'ip', ['addr', 'add', `10.251.${i}.0/32`, 'dev', 'wgh']);
    await checked(node, 'ip', ['link', 'set', 'wgh', 'mtu', String(WG_MTU), 'up']);
    await checked(node, 'ip', ['route', 'add', '10.251.0.0/16', 'dev', 'wgh']);
  }
  return addHandPods(net, net.nodes, 'hand-wg', 'wgh', '10.251', WG_MTU);
}

/** Pings `to` from `from` once every 50 ms until one answers; resolves with the milliseconds it took. */
async function firstAnswer(from: Pod, to: Pod, limitMs: number): Promise<number> {
  const started = Date.now();
  for (let attempt = 0; attempt < 10_000 && Date.now() - started < limitMs; attempt++) {
    const r = await runIn(from.netns, 'ping', ['-n', '-c', '1', '-W', '0.2', to.ip]);
    if (r.code === 0) return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`no answer from ${to.ip} within ${limitMs} ms`);
}

/**
 * Start → first packet: both weftd stopped, both devices deleted (their wireguard-go exits with them), then
 * both weftd started at once; milliseconds until a pod on node 1 gets an answer from a pod on node 2.
 */
export async function wireguardStartToFirstPacket(c: WeftCluster, from: Pod, to: Pod): Promise<number> {
  for (const w of c.weftNodes) await w.weftd?.stop('SIGTERM', 5_000);
  for (const n of c.net.nodes) await n.exec('ip', ['link', 'del', 'flannel-wg']);
  await sleep(500);
  const started = Date.now();
  await Promise.all(c.weftNodes.map((_, i) => c.startWeftd(i)));
  await firstAnswer(from, to, 60_000);
  return Date.now() - started;
}

/** SIGKILL + restart of node 1's weftd under a 100/s ping: pings lost, and ms until weftd is ready again. */
export async function wireguardRestartLoss(
  c: WeftCluster,
  from: Pod,
  to: Pod,
): Promise<{ lost: number; sent: number; readyMs: number }> {
  const pinger = runIn(from.netns, 'ping', ['-n', '-q', '-c', '400', '-i', '0.01', '-W', '1', to.ip], {
    timeoutMs: 60_000,
  });
  await sleep(500);
  await c.weftNodes[0]!.weftd!.kill();
  const started = Date.now();
  await c.startWeftd(0);
  for (let attempt = 0; attempt < 600; attempt++) {
    const r = await weftdGet(c.net.nodes[0]!, '/readyz').catch(() => undefined);
    if (r?.status === 200) break;
    await sleep(100);
  }
  const readyMs = Date.now() - started;
  const out = (await pinger).stdout;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const sent = Number(m?.[1] ?? 0);
  return { sent, lost: sent - Number(m?.[2] ?? 0), readyMs };
}
