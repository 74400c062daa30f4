import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ClusterNode,
  etcdctl,
  type NetnsCluster,
  type NetnsClusterOptions,
  netnsCluster,
  type Pod,
  type ProcessHandle,
  sleep,
} from './index.js';

/** The repository root (works from testkit/ sources and from dist-dev/testkit/). */
export const REPO_ROOT = (() => {
  let dir = resolve(fileURLToPath(new URL('.', import.meta.url)));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the weft repository root');
})();

export const WEFTD = join(REPO_ROOT, 'dist/daemon/weftd.js');

/**
 * What weftd's `#!/usr/bin/env -S [VAR=value …] node [flag …]` line sets (environment assignments and node
 * flags): how every user's weftd runs, so the test clusters and benches start it the same way.
 */
export function weftdShebangFlags(): string[] {
  const first = readFileSync(WEFTD, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env\s+-S\s+(.*)$/.exec(first);
  return splitFlags(m?.[1] ?? '').filter((t) => t !== 'node');
}

/** The node flags of the shebang (its environment assignments left out). */
export function weftdNodeFlags(): string[] {
  return weftdShebangFlags().filter((t) => !isEnvAssignment(t));
}

export const splitFlags = (text: string): string[] => text.split(/\s+/).filter(Boolean);
export const isEnvAssignment = (token: string): boolean => /^[A-Z_][A-Z0-9_]*=/.test(token);
export const WEFTCTL = join(REPO_ROOT, 'dist/daemon/weftctl.js');
export const HEALTHZ_PORT = 10256;

export interface WeftNode {
  node: ClusterNode;
  weftd: ProcessHandle | undefined;
  subnetFile: string;
  cniConfFile: string;
  logFile: string;
  /** Extra weftd flags for this node. */
  args: string[];
}

export interface WeftClusterOptions extends Partial<NetnsClusterOptions> {
  nodes: number;
  /** The network config written to `<prefix>/config` (default: 10.244.0.0/16 vxlan). */
  netConf?: Record<string, unknown>;
  /** Extra flags for every weftd. */
  weftdArgs?: string[];
  /** Per-node extra flags, by 0-based index. */
  nodeArgs?: Record<number, string[]>;
  /** Skip writing the config (e.g. for Kubernetes mode). */
  skipEtcdConfig?: boolean;
  /** Replace the etcd flags (e.g. Kubernetes mode). */
  subnetManagerArgs?: (node: ClusterNode) => string[];
  /** Extra environment for each weftd (e.g. Kubernetes mode: NODE_NAME), on every start and restart. */
  weftdEnv?: (node: ClusterNode) => NodeJS.ProcessEnv;
  /**
   * Runs once the namespaces exist and before any weftd starts (e.g. start a test API server on a host and
   * write each node's files).
   */
  beforeWeftd?: (cluster: WeftCluster) => Promise<void>;
  /** Called as each step of `startWeftCluster` begins (progress display, e.g. `npm run demo`). */
  onStep?: (step: WeftClusterStep) => void;
}

/**
 * The steps of `startWeftCluster`, in order: `network` (namespaces, underlay and etcd host), `config` (the
 * network config written to etcd), `weftd` (one weftd started per node), `ready` (every weftd leased a subnet
 * and wrote its subnet file and conflist).
 */
export type WeftClusterStep = 'network' | 'config' | 'weftd' | 'ready';

/**
 * Subnets from 10.244.250.0/24 (and fd00:10:244:fa::/64) up are never leased to a test node: tests write their
 * hand-made peer leases there, which must not land on a node's own subnet.
 */
export const TEST_SUBNET_MAX = { SubnetMax: '10.244.249.0' };
export const TEST_IPV6_SUBNET_MAX = { IPv6SubnetMax: 'fd00:10:244:f9::' };

export const DEFAULT_NET_CONF = { Network: '10.244.0.0/16', ...TEST_SUBNET_MAX, Backend: { Type: 'vxlan' } };

/**
 * A netns cluster where every node runs a real weftd built from this repo (dist/), leasing from the etcd host.
 * Pods are made with the bridge conflist each weftd wrote.
 */
export class WeftCluster {
  readonly weftNodes: WeftNode[] = [];

  constructor(
    readonly net: NetnsCluster,
    readonly options: WeftClusterOptions,
  ) {}

  get etcdEndpoint(): string {
    return this.net.etcd.endpoint;
  }

  /** etcdctl run from the first node's namespace (the etcd host is only reachable on the underlay). */
  etcdctl(args: string[], allowFailure = false) {
    return etcdctl(this.etcdEndpoint, args, { netns: this.net.nodes[0]!.netns, allowFailure });
  }

  weftdArgs(w: WeftNode): string[] {
    const sm = this.options.subnetManagerArgs
      ? this.options.subnetManagerArgs(w.node)
      : [`--etcd-endpoints=${this.etcdEndpoint}`];
    const extra = [...(this.options.weftdArgs ?? []), ...w.args];
    // A flag given in weftdArgs or the node's args replaces the fixture's value for it.
    const flagName = (arg: string) => arg.split('=')[0]!;
    const overridden = new Set(extra.filter((a) => a.startsWith('--')).map(flagName));
    const base = [
      ...sm,
      `--iface=${w.node.ifname}`,
      `--subnet-file=${w.subnetFile}`,
      `--cni-conf-file=${w.cniConfFile}`,
      `--cni-ipam-data-dir=${w.node.ipamDataDir}`,
      '--ip-masq',
      `--healthz-ip=127.0.0.1`,
      `--healthz-port=${HEALTHZ_PORT}`,
      '--resync-interval=2',
      '--probe-interval=1',
      '--log-level=debug',
    ];
    return [...base.filter((a) => !overridden.has(flagName(a))), ...extra];
  }

  /**
   * Gives every node of `net` its weftd record (where its subnet file, conflist and log go; its extra args)
   * without starting weftd: the first step of `startWeftCluster`, and of tests that start weftd themselves.
   */
  addWeftNodes(): void {
    for (const node of this.net.nodes) {
      this.weftNodes.push({
        node,
        weftd: undefined,
        subnetFile: join(node.dir, 'run/flannel/subnet.env'),
        cniConfFile: join(node.dir, 'etc/cni/net.d/10-weft.conflist'),
        logFile: join(node.dir, 'weftd.log'),
        args: this.options.nodeArgs?.[node.index - 1] ?? [],
      });
    }
  }

  /** Starts (or restarts) weftd on node `i`. */
  async startWeftd(i: number, env: NodeJS.ProcessEnv = {}): Promise<ProcessHandle> {
    const w = this.weftNodes[i]!;
    w.weftd = await w.node.spawn(process.execPath, [...weftdNodeFlags(), WEFTD, ...this.weftdArgs(w)], {
      logFile: w.logFile,
      env: { ...this.options.weftdEnv?.(w.node), ...env, WEFT_TEST: '1' },
    });
    return w.weftd;
  }

  /** Waits until node `i`'s weftd wrote its subnet file and conflist. */
  async waitReady(i: number, timeoutMs = 30_000): Promise<void> {
    const w = this.weftNodes[i]!;
    const deadline = Date.now() + timeoutMs;
    while (!(existsSync(w.subnetFile) && existsSync(w.cniConfFile))) {
      if (w.weftd?.exited) throw new Error(`weftd on ${w.node.name} exited:\n${w.weftd.logTail(30)}`);
      if (Date.now() > deadline) {
        throw new Error(`weftd on ${w.node.name} did not write ${w.subnetFile} within ${timeoutMs} ms`);
      }
      await sleep(50);
    }
  }

  conflist(i: number): Record<string, unknown> {
    return JSON.parse(readFileSync(this.weftNodes[i]!.cniConfFile, 'utf8')) as Record<string, unknown>;
  }

  subnetEnv(i: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const line of readFileSync(this.weftNodes[i]!.subnetFile, 'utf8').split('\n')) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) out[m[1]!] = m[2]!;
    }
    return out;
  }

  /** Adds `perNode` pods on every node with that node's conflist. */
  async addPods(perNode: number): Promise<Pod[]> {
    const pods: Pod[] = [];
    for (let i = 0; i < this.weftNodes.length; i++) {
      for (let k = 0; k < perNode; k++) {
        pods.push(await this.net.addPod(this.net.nodes[i]!, `n${i + 1}p${k + 1}`, this.conflist(i) as never));
      }
    }
    return pods;
  }

  /**
   * Pings every pod from every other pod over IPv4 (`family: 6`: over IPv6, to each pod's `ip6`); returns the
   * failures as "a → b". A pod without an address of that family is a failure too.
   */
  async pingMatrix(
    pods: Pod[],
    opts: { count?: number; timeoutSec?: number; family?: 4 | 6 } = {},
  ): Promise<string[]> {
    const addressOf = (p: Pod): string => (opts.family === 6 ? (p.ip6 ?? '') : p.ip);
    const failures: string[] = [];
    for (const from of pods) {
      const results = await Promise.all(
        pods
          .filter((to) => to !== from)
          .map(async (to) => ({
            to,
            r:
              addressOf(to) === ''
                ? undefined
                : await this.net.ping(from, addressOf(to), {
                    count: opts.count ?? 1,
                    timeoutSec: opts.timeoutSec ?? 3,
                  }),
          })),
      );
      for (const { to, r } of results)
        if (!r?.ok)
          failures.push(`${from.name}(${addressOf(from)}) → ${to.name}(${addressOf(to) || 'no address'})`);
    }
    return failures;
  }

  /** Runs `ip -json <args>` inside node `i`. */
  async ipJson<T = unknown>(i: number, args: string[]): Promise<T> {
    const r = await this.net.nodes[i]!.exec('ip', ['-json', ...args]);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed on node ${i + 1}: ${r.stderr}`);
    return JSON.parse(r.stdout || '[]') as T;
  }

  logTail(i: number, lines = 40): string {
    return this.weftNodes[i]?.weftd?.logTail(lines) ?? '';
  }

  async destroy(): Promise<void> {
    for (const w of this.weftNodes) {
      if (w.weftd && !w.weftd.exited) await w.weftd.stop('SIGTERM', 5_000).catch(() => undefined);
    }
    await this.net.destroy();
  }
}

/** Builds the namespaces, writes the network config to etcd and starts weftd on every node. */
export async function startWeftCluster(options: WeftClusterOptions): Promise<WeftCluster> {
  if (!existsSync(WEFTD)) throw new Error(`${WEFTD} is missing: run \`npm run build\` first`);
  options.onStep?.('network');
  const net = await netnsCluster({
    nodes: options.nodes,
    ipv6: options.ipv6,
    withEtcdHost: options.withEtcdHost ?? true,
    extraHosts: options.extraHosts,
    etcdArgs: options.etcdArgs,
    mountNamespaces: options.mountNamespaces,
  });
  const cluster = new WeftCluster(net, options);
  try {
    cluster.addWeftNodes();
    if (!options.skipEtcdConfig) {
      options.onStep?.('config');
      await cluster.etcdctl([
        'put',
        '/coreos.com/network/config',
        JSON.stringify(options.netConf ?? DEFAULT_NET_CONF),
      ]);
    }
    await options.beforeWeftd?.(cluster);
    options.onStep?.('weftd');
    for (let i = 0; i < net.nodes.length; i++) await cluster.startWeftd(i);
    options.onStep?.('ready');
    for (let i = 0; i < net.nodes.length; i++) await cluster.waitReady(i);
    return cluster;
  } catch (err) {
    const logs = cluster.weftNodes.map((w, i) => `--- ${w.node.name}\n${cluster.logTail(i, 20)}`).join('\n');
    await cluster.destroy();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
}
