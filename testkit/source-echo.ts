// A TCP "who are you" pair for masquerade tests: the server answers every connection with the source address
// it saw, so a test can tell a masqueraded connection (the node's address) from a direct one (the pod's).
import { waitFor } from './dataplane.js';
import { type ClusterMachine, type NetnsCluster, type Pod, type ProcessHandle, runIn } from './index.js';

export const SOURCE_ECHO_PORT = 8080;

const SERVER = `
const net = require('node:net');
net.createServer((s) => s.end(s.remoteAddress + '\\n'))
  .listen(${SOURCE_ECHO_PORT}, '0.0.0.0', () => console.log('listening'));
`;

const CLIENT = `
const s = require('node:net').connect(${SOURCE_ECHO_PORT}, process.argv[1]);
let reply = '';
s.setTimeout(5000, () => { console.error('timeout'); process.exit(2); });
s.on('data', (d) => { reply += d; });
s.on('end', () => console.log(reply.trim()));
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

/** Starts the server on a machine (node or extra host) or in a pod; resolves once it listens. */
export async function startSourceEcho(
  net: NetnsCluster,
  where: ClusterMachine | Pod,
): Promise<ProcessHandle> {
  const server =
    'spawn' in where
      ? await where.spawn(process.execPath, ['-e', SERVER])
      : await net.spawnIn(where.netns, where.node.dir, process.execPath, ['-e', SERVER]);
  await waitFor('the source-echo server to listen', async () => {
    if (server.exited) throw new Error(`server exited: ${server.logTail(10)}`);
    return server.logTail(5).includes('listening');
  });
  return server;
}

/** The source address the server at `toIp` saw for a TCP connection from pod `from`. */
export async function sourceSeenBy(from: Pod, toIp: string): Promise<string> {
  const r = await runIn(from.netns, process.execPath, ['-e', CLIENT, toIp], { timeoutMs: 15_000 });
  if (r.code !== 0) {
    throw new Error(`connect ${from.name} → ${toIp}:${SOURCE_ECHO_PORT} failed: ${r.stderr.trim()}`);
  }
  return r.stdout.trim();
}
