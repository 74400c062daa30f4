// A two-node underlay in network namespaces for the udp engine's integration test and benchmark:
// namespaces <prefix>a and <prefix>b joined by a veth (192.168.78.1/24 and .2/24), each with a TUN
// (10.99.1.0/32 and 10.99.2.0/32, route 10.99.0.0/16) driven by a UdpEngine that runs in this process
// (the TUN and the socket are created inside the namespace; the threads need not be).
// Everything is created inside the namespaces; the root namespace is never touched.

import { execFile } from 'node:child_process';
import { closeSync } from 'node:fs';
import { promisify } from 'node:util';
import { openTun, type TunDevice, UdpEngine, type UdpPeer } from '../src/backend/udp/engine.js';
import { registerNamespace, runPrefix, unregisterNamespace } from './run.js';

const run = promisify(execFile);

export const TESTBED_NETWORK = '10.99.0.0/16';
export const TESTBED_PORT = 8285;

export interface TestbedNode {
  /** Namespace name. */
  ns: string;
  nsPath: string;
  underlayAddress: string;
  subnet: string;
  tunnelAddress: string;
  tunName: string;
  engine: UdpEngine | undefined;
  /** This node as a peer of the other one. */
  asPeer: UdpPeer;
}

export interface Testbed {
  prefix: string;
  a: TestbedNode;
  b: TestbedNode;
  vnetHdr: boolean;
}

export class TestbedCommandError extends Error {
  constructor(args: readonly string[], cause: unknown) {
    const stderr = (cause as { stderr?: string }).stderr?.trim();
    super(`command failed: ${args.join(' ')}${stderr ? `: ${stderr}` : ''}`, { cause });
    this.name = 'TestbedCommandError';
  }
}

/** Runs a program (no shell) and returns its stdout. */
export async function runCommand(file: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  try {
    const { stdout } = await run(file, [...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (error) {
    throw new TestbedCommandError([file, ...args], error);
  }
}

/** Runs a program inside a namespace. */
export function inNamespace(
  ns: string,
  file: string,
  args: readonly string[],
  timeoutMs?: number,
): Promise<string> {
  return runCommand('ip', ['netns', 'exec', ns, file, ...args], timeoutMs);
}

/** The harness's run prefix plus `u` and a hex digit: short enough for interface names, swept if the run dies. */
export function testbedPrefix(): string {
  return `${runPrefix()}u${Math.floor(Math.random() * 16).toString(16)}`;
}

function node(prefix: string, side: 'a' | 'b'): TestbedNode {
  const index = side === 'a' ? 1 : 2;
  const ns = `${prefix}${side}`;
  return {
    ns,
    nsPath: `/run/netns/${ns}`,
    underlayAddress: `192.168.78.${index}`,
    subnet: `10.99.${index}.0/24`,
    tunnelAddress: `10.99.${index}.0`,
    tunName: `${prefix}t${side}`,
    engine: undefined,
    asPeer: { subnet: `10.99.${index}.0/24`, address: `192.168.78.${index}`, port: TESTBED_PORT },
  };
}

/**
 * Builds the namespaces, the veth, the TUNs with addresses and routes, and starts an engine per node with
 * the other node as its only peer. On failure everything built so far is removed before rethrowing.
 */
export async function createTestbed(prefix: string, options: { vnetHdr: boolean }): Promise<Testbed> {
  const testbed: Testbed = { prefix, a: node(prefix, 'a'), b: node(prefix, 'b'), vnetHdr: options.vnetHdr };
  try {
    for (const n of [testbed.a, testbed.b]) {
      await runCommand('ip', ['netns', 'add', n.ns]);
      registerNamespace(n.ns);
      await runCommand('ip', ['-n', n.ns, 'link', 'set', 'lo', 'up']);
    }
    const vethA = `${prefix}va`;
    const vethB = `${prefix}vb`;
    await runCommand('ip', [
      '-n',
      testbed.a.ns,
      'link',
      'add',
      vethA,
      'type',
      'veth',
      'peer',
      'name',
      vethB,
      'netns',
      testbed.b.ns,
    ]);
    for (const [n, veth] of [
      [testbed.a, vethA],
      [testbed.b, vethB],
    ] as const) {
      await runCommand('ip', ['-n', n.ns, 'addr', 'add', `${n.underlayAddress}/24`, 'dev', veth]);
      await runCommand('ip', ['-n', n.ns, 'link', 'set', veth, 'up']);
    }
    for (const n of [testbed.a, testbed.b]) {
      await startNode(testbed, n);
    }
    testbed.a.engine!.setPeers([testbed.b.asPeer]);
    testbed.b.engine!.setPeers([testbed.a.asPeer]);
    return testbed;
  } catch (error) {
    await destroyTestbed(testbed);
    throw error;
  }
}

/** Opens (or re-attaches to) a node's TUN, plumbs it, and starts its engine (no peers yet). */
export async function startNode(testbed: Testbed, n: TestbedNode): Promise<void> {
  let tun: TunDevice | undefined = openTun(n.tunName, {
    netns: n.nsPath,
    vnetHdr: testbed.vnetHdr,
    persist: true,
  });
  try {
    // Idempotent plumbing, as the kernel layer does it: replace, not add.
    // The tunnel is IPv4 only: without disable_ipv6 the kernel sends IPv6 router solicitations into the
    // TUN. ICMP net-unreachable replies come from our own tunnel address: accept_local takes them back in.
    await runCommand('ip', [
      'netns',
      'exec',
      n.ns,
      'sysctl',
      '-q',
      '-w',
      `net.ipv6.conf.${n.tunName}.disable_ipv6=1`,
      `net.ipv4.conf.${n.tunName}.accept_local=1`,
    ]);
    await runCommand('ip', ['-n', n.ns, 'addr', 'replace', `${n.tunnelAddress}/32`, 'dev', n.tunName]);
    await runCommand('ip', ['-n', n.ns, 'link', 'set', n.tunName, 'mtu', '1472', 'up']);
    await runCommand('ip', ['-n', n.ns, 'route', 'replace', TESTBED_NETWORK, 'dev', n.tunName]);
    n.engine = UdpEngine.start({
      tun,
      bindAddress: n.underlayAddress,
      bindPort: TESTBED_PORT,
      ownSubnet: n.subnet,
      netns: n.nsPath,
    });
    tun = undefined;
  } finally {
    if (tun) closeSync(tun.fd);
  }
}

/** Stops the engines and deletes the namespaces (and with them the veth and the TUNs). Never throws. */
export async function destroyTestbed(testbed: Testbed): Promise<void> {
  for (const n of [testbed.a, testbed.b]) {
    try {
      n.engine?.stop();
    } catch {
      // keep cleaning up
    }
    n.engine = undefined;
  }
  for (const n of [testbed.a, testbed.b]) {
    try {
      await runCommand('ip', ['netns', 'del', n.ns]);
      unregisterNamespace(n.ns);
    } catch {
      // not created, or already gone
    }
  }
}

/** Polls until `check` returns true (bounded); returns whether it did. For counters, never for timing. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  attempts = 100,
  intervalMs = 50,
): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return check();
}
