// A scratch network namespace for the kernel integration test and bench/converge-kernel.ts: named
// `wk<4 hex>`, holding a veth pair that plays the external interface, removed by `destroy()` and, should the
// process exit first, by an exit hook.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runTool } from '../src/kernel/exec.js';
import { registerNamespace, runPrefix, unregisterNamespace } from './run.js';

export interface ScratchNamespace {
  /** `wk<4 hex>` */
  name: string;
  /** The external interface inside the namespace (`<name>e`), with `address` on it, up. */
  ext: string;
  /** The other end of the veth: here (`<name>p`, up, no address) or, for a pair, in the other node. */
  peer: string;
  /** Runs `ip -n <name> <args>` and throws on a non-zero exit. */
  ip(args: string[]): Promise<string>;
  /** Runs `bridge -n <name> <args>` and throws on a non-zero exit. */
  bridge(args: string[]): Promise<string>;
  destroy(): void;
}

const live = new Set<string>();
let hooked = false;

function deleteNamespace(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // Already gone.
  }
  live.delete(name);
  unregisterNamespace(name);
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const name of [...live]) deleteNamespace(name);
  });
}

function handle(name: string, ext: string, peer: string): ScratchNamespace {
  const run = async (tool: 'ip' | 'bridge', args: string[]): Promise<string> => {
    const result = await runTool(tool, args, { netns: name });
    if (result.code !== 0) throw new Error(`${tool} -n ${name} ${args.join(' ')}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  return {
    name,
    ext,
    peer,
    ip: (args) => run('ip', args),
    bridge: (args) => run('bridge', args),
    destroy: () => deleteNamespace(name),
  };
}

function addNamespace(name: string): void {
  live.add(name);
  // Registered with the test harness so its sweeper removes it if this process dies first.
  registerNamespace(name);
  execFileSync('ip', ['netns', 'add', name], { stdio: 'ignore', timeout: 10_000 });
}

/** Creates `wk<4 hex>` with a veth pair; `address` (e.g. `192.168.77.1/24`) goes on the external end. */
export async function createScratchNamespace(address: string): Promise<ScratchNamespace> {
  installExitHook();
  const name = `${runPrefix()}k${randomBytes(1).toString('hex')}`;
  addNamespace(name);
  const ns = handle(name, `${name}e`, `${name}p`);
  try {
    await ns.ip(['link', 'add', ns.ext, 'type', 'veth', 'peer', 'name', ns.peer]);
    await ns.ip(['addr', 'add', address, 'dev', ns.ext]);
    for (const dev of ['lo', ns.ext, ns.peer]) await ns.ip(['link', 'set', dev, 'up']);
  } catch (err) {
    ns.destroy();
    throw err;
  }
  return ns;
}

/**
 * Two nodes `wk<4 hex>a` and `wk<4 hex>b` joined by one veth pair (each node's `ext`), with `addressA` and
 * `addressB` on the two ends: the smallest underlay for a two-node data-plane test.
 */
export async function createScratchPair(
  addressA: string,
  addressB: string,
): Promise<[ScratchNamespace, ScratchNamespace]> {
  installExitHook();
  const base = `${runPrefix()}k${randomBytes(1).toString('hex')}`;
  addNamespace(`${base}a`);
  const a = handle(`${base}a`, `${base}a0`, `${base}b0`);
  const b = handle(`${base}b`, `${base}b0`, `${base}a0`);
  try {
    addNamespace(b.name);
    await a.ip(['link', 'add', a.ext, 'type', 'veth', 'peer', 'name', b.ext, 'netns', b.name]);
    await a.ip(['addr', 'add', addressA, 'dev', a.ext]);
    await b.ip(['addr', 'add', addressB, 'dev', b.ext]);
    for (const [ns, dev] of [
      [a, 'lo'],
      [a, a.ext],
      [b, 'lo'],
      [b, b.ext],
    ] as const)
      await ns.ip(['link', 'set', dev, 'up']);
  } catch (err) {
    a.destroy();
    b.destroy();
    throw err;
  }
  return [a, b];
}
