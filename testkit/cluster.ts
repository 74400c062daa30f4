// A multi-node cluster made of network namespaces, all named with the run prefix:
//   <base>u   the underlay: bridge br0 with 192.168.77.1/24 (fd77::1/64), the nodes' gateway
//   <base>n1… nodes: eth0 = 192.168.77.(10+i)/24 (fd77::(10+i)/64), default route via the gateway
//   <base>e   the etcd host: 192.168.77.2, running a real etcd on its underlay address
//   <base>h1… extra hosts: 192.168.77.(100+i)
//   <base>p1… pods, made by the real CNI plugins run inside their node's namespace
// Nothing is created in the root namespace: both ends of every veth are created inside namespaces.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CniConflist, type CniResult, cniAdd, cniDel, cniLoopback, parseConflist } from './cni.js';
import { type EtcdServer, startEtcd } from './etcd.js';
import {
  type ProcessHandle,
  type RunOptions,
  type RunResult,
  run,
  runChecked,
  runCheckedIn,
  runIn,
  type SpawnOptions,
  sleep,
  spawnIn,
} from './exec.js';
import { createNodeMountNs, nodeNsArgv } from './mount-ns.js';
import {
  makeRunTempDir,
  registerNamespace,
  releaseNamespaceSync,
  removeRunTempDir,
  runPrefix,
  unregisterNamespace,
} from './run.js';

export const UNDERLAY_PREFIX4 = '192.168.77';
export const UNDERLAY_GATEWAY4 = '192.168.77.1';
export const UNDERLAY_GATEWAY6 = 'fd77::1';
export const ETCD_HOST_IP4 = '192.168.77.2';
export const UNDERLAY_BRIDGE = 'br0';
/** The interface name of the underlay veth inside every node and host namespace. */
export const UNDERLAY_IFNAME = 'eth0';

export interface NetnsClusterOptions {
  nodes: number;
  /** Also give the underlay fd77::/64 addresses. */
  ipv6?: boolean;
  /** Run etcd on its own host on the underlay (default true). */
  withEtcdHost?: boolean;
  /** Extra test hosts h1…hN on the underlay (default 0). */
  extraHosts?: number;
  /** Extra etcd flags for the etcd host. */
  etcdArgs?: string[];
  /**
   * Give each node its own mount namespace with a tmpfs on /run/wireguard (mount-ns.ts), as a real machine
   * has: wireguard-go's sockets of different nodes would collide in the one shared folder otherwise.
   */
  mountNamespaces?: boolean;
}

/** Anything with a namespace (a node, host, pod) or a namespace name. */
export type NetnsLike = string | { netns: string };

export interface ClusterMachine {
  readonly name: string;
  readonly netns: string;
  readonly underlayIp: string;
  readonly underlayIp6: string | undefined;
  /** The underlay interface inside the namespace. */
  readonly ifname: string;
  /** A per-machine temp dir for logs and state. */
  readonly dir: string;
  /** The node's mount namespace file, with `mountNamespaces` (exec and spawn enter it). */
  readonly mountNs?: string;
  /** Runs a command inside the namespace (resolves with any exit code). */
  exec(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a long-lived process inside the namespace; stopped by destroy(). Logs to `dir` by default. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): Promise<ProcessHandle>;
}

export interface ClusterNode extends ClusterMachine {
  /** 1-based node number. */
  readonly index: number;
  /** host-local's dataDir for pods of this node (put into conflists that do not set one). */
  readonly ipamDataDir: string;
}

export interface ClusterHost extends ClusterMachine {
  readonly index: number;
}

export interface Pod {
  readonly name: string;
  readonly netns: string;
  readonly node: ClusterNode;
  readonly containerId: string;
  readonly ifname: string;
  /** First IPv4 address (no prefix length), '' when the pod has none. */
  readonly ip: string;
  readonly ip6: string | undefined;
  readonly result: CniResult;
  readonly conflist: CniConflist;
}

export interface PingOptions {
  count?: number;
  /** ICMP payload size (`-s`). */
  size?: number;
  /** Forbid fragmentation (`-M do`). */
  dontFragment?: boolean;
  /** Overall deadline (`-w`), default 5 s. */
  timeoutSec?: number;
}

export interface PingResult {
  /** Every echo was answered. */
  ok: boolean;
  transmitted: number;
  received: number;
  /** Packet loss in percent. */
  loss: number;
  /** Average round-trip time, NaN when nothing came back. */
  rttMs: number;
  output: string;
}

export interface IperfResult {
  gbps: number;
  /** The parsed `iperf3 -J` output of the client. */
  report: unknown;
}

export interface AddPodOptions {
  /** Interface name in the pod (default eth0). */
  ifname?: string;
  /** Runtime config by capability (e.g. portMappings). */
  capabilityArgs?: Record<string, unknown>;
  /** Skip the `loopback` plugin (it runs unless the conflist already has it). */
  skipLoopback?: boolean;
}

export class ClusterSetupError extends Error {
  constructor(step: string, cause: unknown) {
    super(`netnsCluster: ${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'ClusterSetupError';
  }
}

function netnsOf(target: NetnsLike): string {
  return typeof target === 'string' ? target : target.netns;
}

function ipOnly(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** Parses iputils ping's summary lines. */
export function parsePingOutput(output: string, exitCode: number | null): PingResult {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  const transmitted = counts ? Number(counts[1]) : 0;
  const received = counts ? Number(counts[2]) : 0;
  const lossMatch = /([\d.]+)% packet loss/.exec(output);
  const loss = lossMatch ? Number(lossMatch[1]) : 100;
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(output);
  return {
    ok: exitCode === 0 && transmitted > 0 && received === transmitted,
    transmitted,
    received,
    loss,
    rttMs: rtt ? Number(rtt[1]) : Number.NaN,
    output,
  };
}

/** Which cluster bases are in use in this process, so two live clusters never share names. */
const liveBases = new Set<string>();

function allocateBase(): string {
  const prefix = runPrefix();
  for (let k = 1; k < 100; k++) {
    const base = k === 1 ? prefix : `${prefix}${k}`;
    if (!liveBases.has(base)) {
      liveBases.add(base);
      return base;
    }
  }
  throw new Error('more than 99 live clusters in one process');
}

export class NetnsCluster {
  readonly nodes: ClusterNode[] = [];
  readonly hosts: ClusterHost[] = [];
  readonly pods: Pod[] = [];
  readonly underlayNetns: string;
  readonly gateway = UNDERLAY_GATEWAY4;
  readonly gateway6: string | undefined;
  readonly tempDir: string;
  private etcdServer: EtcdServer | undefined;
  private readonly namespaces: string[] = [];
  private readonly processes: ProcessHandle[] = [];
  private podCounter = 0;
  private destroyed = false;
  private destroying: Promise<void> | undefined;
  private spawnCounter = 0;

  /** Use `netnsCluster()`. */
  constructor(
    readonly base: string,
    readonly options: NetnsClusterOptions,
  ) {
    this.underlayNetns = `${base}u`;
    this.gateway6 = options.ipv6 ? UNDERLAY_GATEWAY6 : undefined;
    this.tempDir = makeRunTempDir('cluster');
  }

  /** The etcd on the etcd host; its endpoint (http://192.168.77.2:2379) is reachable from every node. */
  get etcd(): EtcdServer {
    if (!this.etcdServer) throw new Error('this cluster was made with withEtcdHost: false: it has no etcd');
    return this.etcdServer;
  }

  get hasEtcd(): boolean {
    return this.etcdServer !== undefined;
  }

  private async addNamespace(name: string): Promise<void> {
    registerNamespace(name);
    this.namespaces.push(name);
    await runChecked('ip', ['netns', 'add', name]);
    await runChecked('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  /** @internal Builds the underlay and all machines. */
  async build(): Promise<void> {
    const u = this.underlayNetns;
    await this.addNamespace(u);
    await runChecked('ip', ['-n', u, 'link', 'add', UNDERLAY_BRIDGE, 'type', 'bridge']);
    await runChecked('ip', ['-n', u, 'addr', 'add', `${UNDERLAY_GATEWAY4}/24`, 'dev', UNDERLAY_BRIDGE]);
    if (this.gateway6) {
      await runCheckedIn(u, 'sysctl', ['-qw', `net.ipv6.conf.${UNDERLAY_BRIDGE}.accept_dad=0`]);
      await runChecked('ip', [
        '-n',
        u,
        'addr',
        'add',
        `${this.gateway6}/64`,
        'dev',
        UNDERLAY_BRIDGE,
        'nodad',
      ]);
    }
    await runChecked('ip', ['-n', u, 'link', 'set', UNDERLAY_BRIDGE, 'up']);

    for (let i = 1; i <= this.options.nodes; i++) {
      const machine = await this.addMachine(
        `n${i}`,
        `${UNDERLAY_PREFIX4}.${10 + i}`,
        `fd77::${10 + i}`,
        true,
        this.options.mountNamespaces === true,
      );
      const ipamDataDir = path.join(machine.dir, 'ipam');
      fs.mkdirSync(ipamDataDir, { recursive: true });
      this.nodes.push({ ...machine, index: i, ipamDataDir });
    }
    for (let i = 1; i <= (this.options.extraHosts ?? 0); i++) {
      const machine = await this.addMachine(
        `h${i}`,
        `${UNDERLAY_PREFIX4}.${100 + i}`,
        `fd77::${100 + i}`,
        false,
      );
      this.hosts.push({ ...machine, index: i });
    }
    if (this.options.withEtcdHost ?? true) {
      const etcdHost = await this.addMachine('e', ETCD_HOST_IP4, 'fd77::2', false);
      this.etcdServer = await startEtcd({
        netns: etcdHost.netns,
        host: ETCD_HOST_IP4,
        name: `${this.base}-etcd`,
        extraArgs: this.options.etcdArgs ?? [],
      });
    }
  }

  private async addMachine(
    suffix: string,
    ip4: string,
    ip6: string,
    forwarding: boolean,
    ownMountNs = false,
  ): Promise<ClusterMachine> {
    const name = `${this.base}${suffix}`;
    const u = this.underlayNetns;
    await this.addNamespace(name);
    const dir = path.join(this.tempDir, suffix);
    fs.mkdirSync(dir, { recursive: true });
    // Both veth ends are created directly inside their namespaces: nothing ever appears in the root one.
    const peer = `v${suffix}`;
    await runChecked('ip', [
      '-n',
      name,
      'link',
      'add',
      UNDERLAY_IFNAME,
      'type',
      'veth',
      'peer',
      'name',
      peer,
      'netns',
      u,
    ]);
    await runChecked('ip', ['-n', u, 'link', 'set', peer, 'master', UNDERLAY_BRIDGE]);
    await runChecked('ip', ['-n', u, 'link', 'set', peer, 'up']);
    await runChecked('ip', ['-n', name, 'addr', 'add', `${ip4}/24`, 'dev', UNDERLAY_IFNAME]);
    if (this.gateway6) {
      await runCheckedIn(name, 'sysctl', ['-qw', `net.ipv6.conf.${UNDERLAY_IFNAME}.accept_dad=0`]);
      await runChecked('ip', ['-n', name, 'addr', 'add', `${ip6}/64`, 'dev', UNDERLAY_IFNAME, 'nodad']);
    }
    await runChecked('ip', ['-n', name, 'link', 'set', UNDERLAY_IFNAME, 'up']);
    await runChecked('ip', ['-n', name, 'route', 'add', 'default', 'via', UNDERLAY_GATEWAY4]);
    if (this.gateway6) {
      await runChecked('ip', ['-n', name, '-6', 'route', 'add', 'default', 'via', this.gateway6]);
    }
    if (forwarding) {
      await runCheckedIn(name, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      if (this.gateway6) await runCheckedIn(name, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    }
    // Commands run in the node's network namespace and, with its own mount namespace, in that too.
    const mountNs = ownMountNs ? createNodeMountNs(name) : undefined;
    const prefix = mountNs ? nodeNsArgv(mountNs, name) : ['ip', 'netns', 'exec', name];
    return {
      name: suffix,
      netns: name,
      underlayIp: ip4,
      underlayIp6: this.gateway6 ? ip6 : undefined,
      ifname: UNDERLAY_IFNAME,
      dir,
      ...(mountNs ? { mountNs } : {}),
      exec: (cmd, args, opts) => run(prefix[0]!, [...prefix.slice(1), cmd, ...args], opts),
      spawn: (cmd, args, opts) => this.spawnWith(prefix, dir, cmd, args, opts),
    };
  }

  /** Starts a process in any namespace of this cluster; destroy() stops it. */
  spawnIn(
    netns: string,
    logDir: string,
    cmd: string,
    args: readonly string[],
    opts: SpawnOptions = {},
  ): Promise<ProcessHandle> {
    return this.spawnWith(['ip', 'netns', 'exec', netns], logDir, cmd, args, opts);
  }

  /** Starts a process under an argv prefix (a node's network, and maybe mount, namespace); destroy() stops it. */
  private async spawnWith(
    prefix: readonly string[],
    logDir: string,
    cmd: string,
    args: readonly string[],
    opts: SpawnOptions = {},
  ): Promise<ProcessHandle> {
    this.spawnCounter += 1;
    const logFile = opts.logFile ?? path.join(logDir, `${path.basename(cmd)}-${this.spawnCounter}.log`);
    const handle = await spawnIn(undefined, prefix[0]!, [...prefix.slice(1), cmd, ...args], {
      ...opts,
      logFile,
    });
    this.processes.push(handle);
    return handle;
  }

  /** Gives host-local plugins without a dataDir the node's own one (one allocation store per node). */
  private withNodeIpam(conflist: CniConflist, node: ClusterNode): CniConflist {
    return {
      ...conflist,
      plugins: conflist.plugins.map((plugin) => {
        const ipam = plugin.ipam;
        if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) return plugin;
        const ipamRecord = ipam as Record<string, unknown>;
        if (ipamRecord.type !== 'host-local' || ipamRecord.dataDir !== undefined) return plugin;
        return { ...plugin, ipam: { ...ipamRecord, dataDir: node.ipamDataDir } };
      }),
    };
  }

  /**
   * Creates pod namespace `<base>p<k>` and runs the conflist's real CNI plugins for it inside the node's
   * namespace (so the bridge is the node's), plus the `loopback` plugin for `lo`.
   */
  async addPod(
    node: ClusterNode | number,
    podName: string,
    conflistInput: CniConflist | string,
    opts: AddPodOptions = {},
  ): Promise<Pod> {
    const owner = typeof node === 'number' ? this.nodes[node] : node;
    if (!owner) throw new RangeError(`addPod: no node ${String(node)} (cluster has ${this.nodes.length})`);
    const conflist = this.withNodeIpam(parseConflist(conflistInput), owner);
    this.podCounter += 1;
    const netns = `${this.base}p${this.podCounter}`;
    registerNamespace(netns);
    await runChecked('ip', ['netns', 'add', netns]);
    const containerId = `${netns}-${podName}`.replace(/[^\w.-]/g, '_');
    const ifname = opts.ifname ?? 'eth0';
    const inv = {
      netns,
      containerId,
      ifname,
      hostNetns: owner.netns,
      ...(opts.capabilityArgs ? { capabilityArgs: opts.capabilityArgs } : {}),
    };
    try {
      if (!opts.skipLoopback && !conflist.plugins.some((p) => p.type === 'loopback')) {
        await cniLoopback({ netns, containerId, hostNetns: owner.netns });
      }
      const result = await cniAdd(conflist, inv);
      const v4 = result.ips.find((x) => !x.address.includes(':'));
      const v6 = result.ips.find((x) => x.address.includes(':'));
      const pod: Pod = {
        name: podName,
        netns,
        node: owner,
        containerId,
        ifname,
        ip: v4 ? ipOnly(v4.address) : '',
        ip6: v6 ? ipOnly(v6.address) : undefined,
        result,
        conflist,
      };
      this.pods.push(pod);
      return pod;
    } catch (err) {
      // Release whatever the chain did allocate before failing, then the namespace.
      await cniDel(conflist, inv).catch(() => undefined);
      await runChecked('ip', ['netns', 'del', netns]).catch(() => undefined);
      unregisterNamespace(netns);
      throw err;
    }
  }

  /** CNI DEL (reverse order, with the ADD result as prevResult), then deletes the pod namespace. */
  async removePod(pod: Pod): Promise<void> {
    const i = this.pods.indexOf(pod);
    if (i < 0) return;
    this.pods.splice(i, 1);
    try {
      await cniDel(
        pod.conflist,
        { netns: pod.netns, containerId: pod.containerId, ifname: pod.ifname, hostNetns: pod.node.netns },
        pod.result,
      );
    } finally {
      await runChecked('ip', ['netns', 'del', pod.netns]).catch(() => undefined);
      unregisterNamespace(pod.netns);
    }
  }

  /** Pings `toIp` from inside `from`'s namespace (`-i 0.2`, `-W 1`, overall deadline `-w`). */
  async ping(from: NetnsLike, toIp: string, opts: PingOptions = {}): Promise<PingResult> {
    const count = opts.count ?? 3;
    const timeoutSec = opts.timeoutSec ?? 5;
    const args = ['-n', '-c', String(count), '-i', '0.2', '-W', '1', '-w', String(timeoutSec)];
    if (opts.size !== undefined) args.push('-s', String(opts.size));
    if (opts.dontFragment) args.push('-M', 'do');
    args.push(toIp);
    const result = await runIn(netnsOf(from), 'ping', args, { timeoutMs: (timeoutSec + 5) * 1000 });
    return parsePingOutput(`${result.stdout}\n${result.stderr}`, result.code);
  }

  /** iperf3 for `seconds` from `from` to `to` (server `iperf3 -s -1` in `to`'s namespace). */
  async iperf(from: NetnsLike, to: Pod | ClusterMachine, seconds = 2): Promise<IperfResult> {
    const toIp = 'underlayIp' in to ? to.underlayIp : to.ip;
    const port = 5201;
    const server = await spawnIn(to.netns, 'iperf3', ['-s', '-1', '-p', String(port)], {
      logFile: path.join(this.tempDir, `iperf-server-${to.netns}.log`),
    });
    this.processes.push(server);
    try {
      await this.waitListening(to.netns, port);
      const client = await runIn(
        netnsOf(from),
        'iperf3',
        ['-c', toIp, '-p', String(port), '-t', String(seconds), '-J'],
        { timeoutMs: (seconds + 20) * 1000 },
      );
      let report: { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
      try {
        report = JSON.parse(client.stdout) as typeof report;
      } catch {
        throw new Error(`iperf3 client printed no JSON (exit ${client.code}): ${client.stderr.trim()}`);
      }
      const bps = report.end?.sum_received?.bits_per_second;
      if (client.code !== 0 || typeof bps !== 'number') {
        throw new Error(`iperf3 to ${toIp} failed: ${report.error ?? `exit ${client.code}`}`);
      }
      return { gbps: bps / 1e9, report };
    } finally {
      await server.stop('SIGTERM', 2_000);
    }
  }

  private async waitListening(netns: string, port: number): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const ss = await runIn(netns, 'ss', ['-Hltn', 'sport', '=', `:${port}`]);
      if (ss.stdout.trim() !== '') return;
      await sleep(50);
    }
    throw new Error(`nothing listens on port ${port} in ${netns} after 5 s`);
  }

  /**
   * Removes pods (CNI DEL), stops every process and etcd, deletes every namespace and temp dir.
   * Always completes (errors are collected, not thrown mid-way) and is idempotent.
   */
  destroy(): Promise<void> {
    if (this.destroying === undefined) this.destroying = this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const pod of [...this.pods].reverse()) {
      await this.removePod(pod).catch(() => undefined);
    }
    await Promise.all(this.processes.map((p) => p.stop('SIGTERM', 3_000).catch(() => undefined)));
    await this.etcdServer?.stop().catch(() => undefined);
    // Also kills what still runs inside (a detached wireguard-go) and removes a node's mount namespace.
    for (const ns of [...this.namespaces].reverse()) releaseNamespaceSync(ns);
    removeRunTempDir(this.tempDir);
    liveBases.delete(this.base);
  }
}

/** Builds a cluster of namespaces (see the file comment); on failure everything made so far is removed. */
export async function netnsCluster(options: NetnsClusterOptions): Promise<NetnsCluster> {
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 50) {
    throw new RangeError(`netnsCluster: nodes must be an integer 1..50, got ${options.nodes}`);
  }
  const hosts = options.extraHosts ?? 0;
  if (!Number.isInteger(hosts) || hosts < 0 || hosts > 50) {
    throw new RangeError(`netnsCluster: extraHosts must be an integer 0..50, got ${hosts}`);
  }
  const cluster = new NetnsCluster(allocateBase(), options);
  try {
    await cluster.build();
  } catch (err) {
    await cluster.destroy();
    throw new ClusterSetupError('build', err);
  }
  return cluster;
}
