// Root only. Feeds the rendered conflist to Debian's real CNI plugins (/usr/lib/cni) the way a runtime
// does (CNI spec 1.0: CNI_* environment, config on stdin, prevResult chaining, DEL in reverse order).
// The plugins run inside a node namespace so the bridge lands there; the pod is another namespace.
// Every namespace and temp dir is named wc<4 hex>… and removed in `finally`/afterAll even on failure.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerNamespace, runPrefix } from '../../testkit/run.js';
import { containsIp, parseCidr, parseIp } from '../ip/index.js';
import { type BridgeConflist, renderBridgeConflist } from './index.js';

const CNI_PATH = '/usr/lib/cni';
const prefix = `${runPrefix()}c`;
const nodeNs = `${prefix}n`;
const podNs = `${prefix}p`;
const dualPodNs = `${prefix}q`;
const network = parseCidr('10.77.0.0/16');
const subnet = parseCidr('10.77.3.0/24');
const HOST_PORT = 18080;
const POD_PORT = 8080;

interface Result {
  stdout: string;
  stderr: string;
  code: number | null;
}

function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: 30_000, encoding: 'utf8', env: opts.env ?? process.env },
      (error, stdout, stderr) => {
        resolve({ stdout, stderr, code: error ? (typeof error.code === 'number' ? error.code : null) : 0 });
      },
    );
    child.stdin?.on('error', () => {
      // The command may exit before reading stdin; its exit code tells.
    });
    child.stdin?.end(opts.input ?? '');
  });
}

async function inNs(name: string, cmd: string, ...args: string[]): Promise<string> {
  const r = await run('ip', ['netns', 'exec', name, cmd, ...args]);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} in ${name} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

type CniCommand = 'ADD' | 'CHECK' | 'DEL';
type PluginConf = BridgeConflist['plugins'][number];

/** What a runtime passes per call: the portMappings capability, given only to plugins that declare it. */
const runtimeConfig = { portMappings: [{ hostPort: HOST_PORT, containerPort: POD_PORT, protocol: 'tcp' }] };

/** The pod a call is about: its namespace (also used as the container id). */
interface Pod {
  ns: string;
}

/** One plugin call, run inside the node namespace. Resolves the plugin's JSON result (or null on empty). */
async function callPlugin(
  pod: Pod,
  command: CniCommand,
  conflist: BridgeConflist,
  plugin: PluginConf,
  prevResult: unknown,
): Promise<Record<string, unknown> | null> {
  const conf: Record<string, unknown> = { ...plugin, cniVersion: conflist.cniVersion, name: conflist.name };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  if ('capabilities' in plugin && plugin.capabilities.portMappings) conf.runtimeConfig = runtimeConfig;
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: `${pod.ns}-container`,
    CNI_NETNS: `/run/netns/${pod.ns}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH,
  };
  const r = await run('ip', ['netns', 'exec', nodeNs, path.join(CNI_PATH, plugin.type)], {
    input: JSON.stringify(conf),
    env,
  });
  if (r.code !== 0) {
    throw new Error(
      `CNI ${plugin.type} ${command} failed (${r.code}): ${r.stdout.trim()} ${r.stderr.trim()}`,
    );
  }
  return r.stdout.trim() === '' ? null : (JSON.parse(r.stdout) as Record<string, unknown>);
}

/** ADD runs the plugins in order, each seeing the previous result; the last result is the network's. */
async function cniAdd(pod: Pod, conflist: BridgeConflist): Promise<Record<string, unknown>> {
  let result: Record<string, unknown> | undefined;
  for (const plugin of conflist.plugins) {
    result = (await callPlugin(pod, 'ADD', conflist, plugin, result)) ?? undefined;
  }
  if (!result) throw new Error('CNI ADD produced no result');
  return result;
}

async function cniCheck(
  pod: Pod,
  conflist: BridgeConflist,
  result: unknown,
  only?: (plugin: PluginConf) => boolean,
): Promise<void> {
  for (const plugin of conflist.plugins) {
    if (!only || only(plugin)) await callPlugin(pod, 'CHECK', conflist, plugin, result);
  }
}

/** DEL runs the plugins in reverse order with the cached ADD result. */
async function cniDel(pod: Pod, conflist: BridgeConflist, result: unknown): Promise<void> {
  for (const plugin of [...conflist.plugins].reverse())
    await callPlugin(pod, 'DEL', conflist, plugin, result);
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
}

describe.skipIf(process.getuid?.() !== 0)('bridge conflist with the real CNI plugins', () => {
  let dataDir: string;
  let conflist: BridgeConflist;
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-ipam-`));
    for (const name of [nodeNs, podNs, dualPodNs]) {
      const r = await run('ip', ['netns', 'add', name]);
      if (r.code !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
      registerNamespace(name);
      await inNs(name, 'ip', 'link', 'set', 'lo', 'up');
    }
    conflist = renderBridgeConflist({ subnet, network, mtu: 1400, ipamDataDir: dataDir });
  });

  afterAll(async () => {
    if (server?.exitCode === null) server.kill('SIGKILL');
    for (const name of [podNs, dualPodNs, nodeNs]) await run('ip', ['netns', 'del', name]);
    fs.rmSync(dataDir, { recursive: true, force: true });
    const left = await run('ip', ['netns', 'list']);
    expect(left.stdout).not.toContain(prefix);
  });

  it('ADD gives the pod an address in the subnet, a default route and a route to the Network; DEL undoes it', async () => {
    const pod = { ns: podNs };
    const result = await cniAdd(pod, conflist);

    // The result the runtime gets: one address in the subnet, gateway = first address.
    const ips = result.ips as Array<{ address: string; gateway: string }>;
    expect(ips).toHaveLength(1);
    const podCidr = ips[0]?.address ?? '';
    const podIp = podCidr.split('/')[0] ?? '';
    expect(containsIp(subnet, parseIp(podIp))).toBe(true);
    expect(podCidr.endsWith('/24')).toBe(true);
    expect(ips[0]?.gateway).toBe('10.77.3.1');
    expect(result.routes).toEqual(
      expect.arrayContaining([
        { dst: '10.77.0.0/16', gw: '10.77.3.1' },
        // isDefaultGateway adds the default route.
        { dst: '0.0.0.0/0', gw: '10.77.3.1' },
      ]),
    );

    // What the kernel holds in the pod: the address, the MTU and both routes via the bridge gateway.
    const addrs = JSON.parse(await inNs(podNs, 'ip', '-j', 'addr', 'show', 'dev', 'eth0')) as Array<{
      mtu: number;
      addr_info: Array<{ family: string; local: string; prefixlen: number }>;
    }>;
    expect(addrs[0]?.mtu).toBe(1400);
    expect(addrs[0]?.addr_info).toEqual(
      expect.arrayContaining([expect.objectContaining({ family: 'inet', local: podIp, prefixlen: 24 })]),
    );
    const routes = JSON.parse(await inNs(podNs, 'ip', '-j', 'route', 'show')) as IpRoute[];
    expect(routes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: 'default', gateway: '10.77.3.1', dev: 'eth0' }),
        expect.objectContaining({ dst: '10.77.0.0/16', gateway: '10.77.3.1', dev: 'eth0' }),
      ]),
    );

    // The node side: bridge cni0 with the gateway address, the pod's veth attached in hairpin mode.
    const bridge = JSON.parse(await inNs(nodeNs, 'ip', '-j', 'addr', 'show', 'dev', 'cni0')) as Array<{
      addr_info: Array<{ local: string; prefixlen: number }>;
    }>;
    expect(bridge[0]?.addr_info).toEqual(
      expect.arrayContaining([expect.objectContaining({ local: '10.77.3.1', prefixlen: 24 })]),
    );
    const ports = JSON.parse(await inNs(nodeNs, 'bridge', '-j', '-d', 'link', 'show')) as Array<{
      master?: string;
      hairpin?: boolean;
    }>;
    expect(ports.filter((p) => p.master === 'cni0' && p.hairpin === true)).toHaveLength(1);

    // The pod reaches its gateway (an address inside this test's namespaces).
    await inNs(podNs, 'ping', '-c', '1', '-W', '5', '10.77.3.1');

    // host-local recorded the lease in the given dataDir.
    expect(fs.readdirSync(path.join(dataDir, 'weft'))).toContain(podIp);

    // portmap, chained after bridge: node port HOST_PORT reaches the pod's POD_PORT.
    const nat = await inNs(nodeNs, 'iptables-save', '-t', 'nat');
    expect(nat).toContain(`--to-destination ${podIp}:${POD_PORT}`);
    server = spawn(
      'ip',
      [
        'netns',
        'exec',
        podNs,
        process.execPath,
        '-e',
        "require('node:net').createServer((c) => c.end('hello from pod\\n')).listen(Number(process.argv[1]), () => console.log('ready'));" +
          'setTimeout(() => process.exit(0), 60000).unref();',
        String(POD_PORT),
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    await new Promise<void>((resolve, reject) => {
      server?.stdout?.on('data', (d) => String(d).includes('ready') && resolve());
      server?.on('exit', (code) => reject(new Error(`pod server exited with ${code}`)));
    });
    const reply = await inNs(
      nodeNs,
      process.execPath,
      '-e',
      "const c = require('node:net').connect(Number(process.argv[2]), process.argv[1]); let d = '';" +
        "c.setTimeout(10000, () => process.exit(2)); c.on('data', (x) => { d += x; });" +
        "c.on('end', () => { process.stdout.write(d); process.exit(0); }); c.on('error', () => process.exit(1));",
      '10.77.3.1',
      String(HOST_PORT),
    );
    expect(reply.trim()).toBe('hello from pod');
    server.kill('SIGKILL');

    // CHECK agrees with what ADD did (bridge + host-local). portmap 1.1.1's CHECK is broken whatever the
    // config: it looks for the IPv4 DNAT rules in ip6tables too (containernetworking/plugins#819).
    await cniCheck(pod, conflist, result, (plugin) => plugin.type === 'bridge');

    // DEL in reverse order: the pod interface, the lease and the port mapping are gone.
    await cniDel(pod, conflist, result);
    const links = JSON.parse(await inNs(podNs, 'ip', '-j', 'link', 'show')) as Array<{ ifname: string }>;
    expect(links.map((l) => l.ifname)).not.toContain('eth0');
    expect(fs.readdirSync(path.join(dataDir, 'weft'))).not.toContain(podIp);
    expect(await inNs(nodeNs, 'iptables-save', '-t', 'nat')).not.toContain(`${podIp}:${POD_PORT}`);
    // DEL is idempotent per the spec.
    await cniDel(pod, conflist, result);
  });

  it('a dual-stack conflist gives the pod addresses and default routes in both families', async () => {
    const dual = renderBridgeConflist({
      subnet,
      network,
      ipv6Subnet: parseCidr('fd77:0:0:3::/64'),
      ipv6Network: parseCidr('fd77::/48'),
      mtu: 1400,
      ipamDataDir: dataDir,
    });
    const pod = { ns: dualPodNs };
    const result = await cniAdd(pod, dual);
    try {
      const ips = (result.ips as Array<{ address: string }>).map((i) => i.address);
      expect(ips).toHaveLength(2);
      expect(ips.some((a) => a.startsWith('fd77:0:0:3::') && a.endsWith('/64'))).toBe(true);
      const routes6 = JSON.parse(await inNs(dualPodNs, 'ip', '-6', '-j', 'route', 'show')) as IpRoute[];
      expect(routes6).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ dst: 'default', gateway: 'fd77:0:0:3::1' }),
          expect.objectContaining({ dst: 'fd77::/48', gateway: 'fd77:0:0:3::1' }),
        ]),
      );
      // bridge CHECK passes with both families' Network routes (they name their gateway, see plugins#886).
      await cniCheck(pod, dual, result, (plugin) => plugin.type === 'bridge');
    } finally {
      await cniDel(pod, dual, result);
    }
  });
});
