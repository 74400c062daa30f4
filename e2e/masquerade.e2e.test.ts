import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './dataplane.js';
import { type ClusterMachine, type Pod, type ProcessHandle, runIn } from './harness/index.js';
import { startWeftCluster, type WeftCluster } from './weft-cluster.js';

const PORT = 8080;

/** A TCP server that answers every connection with the address it came from. */
const SOURCE_ECHO_SERVER = `
const net = require('node:net');
net.createServer((s) => s.end(s.remoteAddress + '\\n'))
  .listen(${PORT}, '0.0.0.0', () => console.log('listening'));
`;

/** Connects to argv[1]:PORT and prints the reply. */
const SOURCE_ECHO_CLIENT = `
const s = require('node:net').connect(${PORT}, process.argv[1]);
let reply = '';
s.setTimeout(5000, () => { console.error('timeout'); process.exit(2); });
s.on('data', (d) => { reply += d; });
s.on('end', () => console.log(reply.trim()));
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

describe('masquerade: pods reach the underlay as their node, each other as themselves', () => {
  let c: WeftCluster;
  let pods: Pod[];
  const servers: ProcessHandle[] = [];

  async function startEchoServer(where: ClusterMachine | Pod): Promise<void> {
    const server =
      'spawn' in where
        ? await where.spawn(process.execPath, ['-e', SOURCE_ECHO_SERVER])
        : await c.net.spawnIn(where.netns, where.node.dir, process.execPath, ['-e', SOURCE_ECHO_SERVER]);
    servers.push(server);
    await waitFor('the source-echo server to listen', async () => {
      if (server.exited) throw new Error(`server exited: ${server.logTail(10)}`);
      return server.logTail(5).includes('listening');
    });
  }

  /** The source address `to` sees for a TCP connection from `from`. */
  async function seenSource(from: Pod, toIp: string): Promise<string> {
    const r = await runIn(from.netns, process.execPath, ['-e', SOURCE_ECHO_CLIENT, toIp], {
      timeoutMs: 15_000,
    });
    if (r.code !== 0) throw new Error(`connect ${from.name} → ${toIp}:${PORT} failed: ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  beforeAll(async () => {
    c = await startWeftCluster({ nodes: 2, extraHosts: 1 });
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
});
