// The Kubernetes-mode e2e fixture: a weft cluster whose nodes run the real `weftd --kube-subnet-mgr` against the
// test API server, which runs as its own process inside an extra host namespace and is driven by the test through
// its admin socket, the way an operator (kubectl) and kube-controller-manager would drive a real one.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterNode } from './index.js';
import { sleep } from './index.js';
import { type RemoteApiServer, startRemoteApiServer } from './kube-apiserver/remote.js';
import { type MakeNodeOptions, makeNode, type NodeObject } from './kube-apiserver/server.js';
import { startWeftCluster, type WeftCluster } from './weft-cluster.js';

const PREFIX = 'flannel.alpha.coreos.com';

/** The node annotations flannel (and weft) read and write. */
export const FLANNEL_ANNOTATIONS = {
  backendType: `${PREFIX}/backend-type`,
  backendData: `${PREFIX}/backend-data`,
  backendV6Data: `${PREFIX}/backend-v6-data`,
  publicIP: `${PREFIX}/public-ip`,
  publicIPv6: `${PREFIX}/public-ipv6`,
  publicIPOverwrite: `${PREFIX}/public-ip-overwrite`,
  nodePublicIP: `${PREFIX}/node-public-ip`,
  kubeSubnetManager: `${PREFIX}/kube-subnet-manager`,
} as const;

/** The Kubernetes node name of a namespace node (weftd gets it as NODE_NAME). */
export const kubeNodeName = (node: ClusterNode): string => `node-${node.index}`;

/** A probe for `waitForProbe`: true when done, else a string (or false) saying what it saw. */
export type Probe = () => Promise<boolean | string>;

/**
 * Polls `probe` until it returns true or `timeoutMs` passes (bounded in count and time); on timeout throws
 * naming `what`, with what the last probe saw. Never asserts on how long it took.
 */
export async function waitForProbe(what: string, probe: Probe, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let attempt = 0; attempt < 10_000; attempt++) {
    try {
      const r = await probe();
      if (r === true) return;
      last = typeof r === 'string' ? r : 'not yet';
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}; last seen: ${last}`);
}

export interface KubeWeftClusterOptions {
  /** Node count (default 3). */
  nodes?: number;
  /** The net-conf.json each node reads (the ConfigMap key, as the DaemonSet mounts it). */
  netConf: Record<string, unknown>;
  /** IPv6 on the underlay too. */
  ipv6?: boolean;
  /** What the kubelet registers and the controller manager assigns (pod CIDRs, internal IP) for a node. */
  nodeSpec: (node: ClusterNode) => MakeNodeOptions;
  /** The default bound of `wait` (default 60 s). */
  waitTimeoutMs?: number;
}

export interface KubeWeftCluster {
  cluster: WeftCluster;
  api: RemoteApiServer;
  /** Node `i`'s object in the API server's store (throws when it is not there). */
  node(i: number): Promise<NodeObject>;
  /** The tail of every weftd log and of the API server's. */
  logs(): string;
  /** `waitForProbe` that adds the weftd and API server logs to a timeout. */
  wait(what: string, probe: Probe, timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * Starts the netns cluster with one extra host for the API server, registers every node (no flannel annotations
 * yet) and writes each node's net-conf.json, then starts weftd in kube mode on every node and waits for its files.
 */
export async function startKubeWeftCluster(options: KubeWeftClusterOptions): Promise<KubeWeftCluster> {
  let api: RemoteApiServer | undefined;
  const cluster = await startWeftCluster({
    nodes: options.nodes ?? 3,
    ...(options.ipv6 ? { ipv6: true } : {}),
    withEtcdHost: false,
    extraHosts: 1,
    skipEtcdConfig: true,
    subnetManagerArgs: (n) => [
      '--kube-subnet-mgr',
      `--kubeconfig-file=${api!.kubeconfigPath}`,
      `--net-config-path=${join(n.dir, 'net-conf.json')}`,
    ],
    weftdEnv: (n) => ({ NODE_NAME: kubeNodeName(n) }),
    beforeWeftd: async (c) => {
      api = await startRemoteApiServer(c.net.hosts[0]!);
      for (const n of c.net.nodes) {
        writeFileSync(join(n.dir, 'net-conf.json'), JSON.stringify(options.netConf));
        await api.addNode(makeNode(kubeNodeName(n), options.nodeSpec(n)));
      }
    },
  });
  const server = api!;
  const logs = (): string =>
    cluster.weftNodes.map((w, i) => `--- ${kubeNodeName(w.node)}\n${cluster.logTail(i, 25)}`).join('\n') +
    `\n--- api server\n${server.process.logTail(15)}`;
  return {
    cluster,
    api: server,
    logs,
    async node(i) {
      const n = await server.node(kubeNodeName(cluster.net.nodes[i]!));
      if (!n) throw new Error(`node ${i + 1} is not in the API server's store`);
      return n;
    },
    wait: (what, probe, timeoutMs = options.waitTimeoutMs) =>
      waitForProbe(what, probe, timeoutMs).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${logs()}`);
      }),
    destroy: () => cluster.destroy(),
  };
}
