// The Kubernetes subnet manager (`--kube-subnet-mgr`): the node's subnet is its spec.podCIDR(s), its lease
// attributes are node annotations (patched through nodes/<name>/status), and every node annotated
// `kube-subnet-manager: "true"` is a peer lease. Same behaviour as flannel's kube manager, plus: changed
// annotations are events, removed own annotations are put back, and every API error is retried.
import { readFile } from 'node:fs/promises';
import { type NetworkConfig, parseNetworkConfigText } from '../../config/index.js';
import { Backoff, type BackoffOptions, errorFields, errorMessage, sleep } from '../../core/index.js';
import { formatCidr } from '../../ip/index.js';
import type { Lease, LeaseAttrs, LeaseWatchBatch } from '../../lease/types.js';
import { type Logger, silentLogger } from '../../log/index.js';
import type { AcquireRequest, OwnLeaseChange, SubnetManager } from '../types.js';
import { DEFAULT_ANNOTATION_PREFIX, type KubeAnnotationNames, kubeAnnotationNames } from './annotations.js';
import { KubeApiError, KubeClient, loadKubeConfig } from './client.js';
import { NodeLeaseTracker } from './lease-watch.js';
import { type KubeWatchEvent, type ListWatchOptions, listWatchNodes } from './list-watch.js';
import {
  type KubeNode,
  type NodePublicIPOverride,
  type NodeSubnets,
  nodeNameOf,
  nodePublicIPOverride,
  ownLease,
  ownNodeSubnets,
  PodCidrNotAssignedError,
  planOwnAnnotations,
  sameSubnets,
} from './node-lease.js';
import { NodeReadyTask } from './node-ready.js';

/** flannel's default `--net-config-path`. */
export const DEFAULT_NET_CONFIG_PATH = '/etc/kube-flannel/net-conf.json';

export interface KubeSubnetManagerOptions {
  /** `--kubeconfig-file`. */
  kubeconfigFile?: string;
  /** `--kube-api-url`. */
  apiUrl?: string;
  /** `--kube-annotation-prefix` (default `flannel.alpha.coreos.com`). */
  annotationPrefix?: string;
  /** `--net-config-path` (default `/etc/kube-flannel/net-conf.json`). */
  netConfigPath?: string;
  /** This node's name; default env `NODE_NAME`, else the pod `POD_NAMESPACE/POD_NAME`'s spec.nodeName. */
  nodeName?: string;
  /** Environment for NODE_NAME, POD_NAME, POD_NAMESPACE, KUBERNETES_SERVICE_* (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Timeout of each get/list/patch (default 30 s). */
  requestTimeoutMs?: number;
  /** Retry delays for failed API calls (default 200 ms doubling to 10 s, jittered). */
  backoff?: BackoffOptions;
  /** Nodes per list page (default 500, as client-go; 0 = unpaged). */
  listPageSize?: number;
  /** The server ends each watch after this long; it is then resumed (default 300 s). */
  watchTimeoutSeconds?: number;
  /** A watch silent for this long (not even a bookmark) is dropped and resumed (default timeout + 60 s). */
  watchIdleTimeoutMs?: number;
  /** Keep `NetworkUnavailable=False` on the node through `networkReadyTask` (default true, as flannel). */
  setNodeNetworkUnavailable?: boolean;
  /** The readiness task's retry delay after a 4xx answer such as 403 (default 60 s). */
  readyRetryAfterClientErrorMs?: number;
  /** Told about the lease watch's (re)connections, failures, re-lists and skipped nodes (metrics). */
  onWatchEvent?: ((event: KubeWatchEvent) => void) | undefined;
}

export class NodeNameUnknownError extends Error {
  override name = 'NodeNameUnknownError';
}

export class NetConfigReadError extends Error {
  override name = 'NetConfigReadError';
  constructor(
    readonly path: string,
    cause: string,
  ) {
    super(
      `cannot read the network config ${path}: ${cause} (in Kubernetes it is the ConfigMap key net-conf.json; ` +
        'point --net-config-path at the mounted file)',
    );
  }
}

/** Errors retrying cannot fix: configuration that disagrees. Everything else is retried. */
function isPermanent(err: unknown): boolean {
  return (
    err instanceof Error &&
    !(err instanceof KubeApiError) &&
    !(err instanceof PodCidrNotAssignedError) &&
    err.name !== 'AbortError'
  );
}

interface OwnState {
  attrs: LeaseAttrs;
  subnets: NodeSubnets;
  lease: Lease;
}

export class KubeSubnetManager implements SubnetManager {
  readonly kind = 'kube' as const;
  readonly names: KubeAnnotationNames;
  readonly netConfigPath: string;
  readonly client: KubeClient;
  private readonly log: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private readonly closed = new AbortController();
  private nodeNamePromise: Promise<string> | undefined;
  private config: NetworkConfig | undefined;
  private own: OwnState | undefined;
  private readonly readyTask: NodeReadyTask;

  /** Loads the client config synchronously: a bad kubeconfig, URL or prefix fails here, with a clear error. */
  constructor(private readonly options: KubeSubnetManagerOptions = {}) {
    this.names = kubeAnnotationNames(options.annotationPrefix ?? DEFAULT_ANNOTATION_PREFIX);
    this.netConfigPath = options.netConfigPath ?? DEFAULT_NET_CONFIG_PATH;
    this.env = options.env ?? process.env;
    this.log = (options.logger ?? silentLogger()).child({ component: 'kube-subnet-manager' });
    const connection: Parameters<typeof loadKubeConfig>[0] = { env: this.env };
    if (options.kubeconfigFile) connection.kubeconfigFile = options.kubeconfigFile;
    if (options.apiUrl) connection.apiUrl = options.apiUrl;
    this.client = new KubeClient(
      loadKubeConfig(connection),
      options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {},
    );
    this.readyTask = new NodeReadyTask({
      patchNodeStatus: (name, patch, signal) => this.client.patchNodeStatus(name, patch, signal),
      nodeName: (signal) => this.nodeName(signal),
      logger: this.log,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.readyRetryAfterClientErrorMs
        ? { clientErrorRetryMs: options.readyRetryAfterClientErrorMs }
        : {}),
    });
  }

  private signalFor(signal?: AbortSignal): AbortSignal {
    return signal ? AbortSignal.any([signal, this.closed.signal]) : this.closed.signal;
  }

  /** Runs `fn` until it succeeds, with backoff; permanent (configuration) errors are thrown at once. */
  private async retry<T>(
    what: string,
    signal: AbortSignal,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const backoff = new Backoff(this.options.backoff);
    for (;;) {
      signal.throwIfAborted();
      try {
        return await fn(signal);
      } catch (err) {
        signal.throwIfAborted();
        if (isPermanent(err)) throw err;
        const delay = backoff.nextDelayMs();
        const level =
          err instanceof KubeApiError && (err.status === 401 || err.status === 403)
            ? 'error'
            : err instanceof PodCidrNotAssignedError && backoff.attempts > 1
              ? 'info'
              : 'warn';
        this.log[level](
          { err: errorFields(err), retryInMs: delay, attempt: backoff.attempts },
          `${what}; retrying`,
        );
        await sleep(delay, signal);
      }
    }
  }

  /** This node's name: `nodeName` option, env NODE_NAME, else the spec.nodeName of POD_NAMESPACE/POD_NAME. */
  nodeName(signal?: AbortSignal): Promise<string> {
    if (!this.nodeNamePromise) {
      this.nodeNamePromise = this.resolveNodeName(this.signalFor(signal));
      this.nodeNamePromise.catch(() => {
        this.nodeNamePromise = undefined;
      });
    }
    return this.nodeNamePromise;
  }

  private async resolveNodeName(signal: AbortSignal): Promise<string> {
    const fromOptions = this.options.nodeName ?? this.env.NODE_NAME;
    if (fromOptions) return fromOptions;
    const podName = this.env.POD_NAME;
    const podNamespace = this.env.POD_NAMESPACE;
    if (!podName || !podNamespace) {
      throw new NodeNameUnknownError(
        'cannot tell which node this is: set NODE_NAME (the DaemonSet passes spec.nodeName through the downward API), ' +
          'or POD_NAME and POD_NAMESPACE',
      );
    }
    const pod = await this.retry(
      `reading pod ${podNamespace}/${podName} to learn the node name failed`,
      signal,
      (s) => this.client.readPod(podNamespace, podName, s),
    );
    const nodeName = pod.spec?.nodeName;
    if (!nodeName) {
      throw new NodeNameUnknownError(
        `pod ${podNamespace}/${podName} has no spec.nodeName (is it scheduled?)`,
      );
    }
    return nodeName;
  }

  /** Reads and validates `--net-config-path` (flannel reads the file once; so does weft). */
  async getNetworkConfig(_signal?: AbortSignal): Promise<NetworkConfig> {
    let text: string;
    try {
      text = await readFile(this.netConfigPath, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new NetConfigReadError(
        this.netConfigPath,
        e.code ? `${e.code} (${e.message})` : errorMessage(err),
      );
    }
    this.config = parseNetworkConfigText(text, this.netConfigPath);
    return this.config;
  }

  private async networkConfig(signal?: AbortSignal): Promise<NetworkConfig> {
    return this.config ?? this.getNetworkConfig(signal);
  }

  /**
   * The operator's `node-public-ip[v6]` annotations on this node: the daemon uses them as `--public-ip[v6]`
   * when choosing the external interface (as flannel does). Invalid values are logged and ignored.
   */
  async readNodePublicIPOverride(signal?: AbortSignal): Promise<NodePublicIPOverride> {
    const s = this.signalFor(signal);
    const name = await this.nodeName(s);
    const node = await this.retry(`reading node ${name} failed`, s, (x) => this.client.readNode(name, x));
    const override = nodePublicIPOverride(node, this.names);
    for (const warning of override.warnings) this.log.warn({ node: name }, warning);
    return override;
  }

  /**
   * Takes this node's pod CIDR(s) as its lease (they must lie inside the net-conf Networks, else
   * `PodCidrOutsideNetworkError`), waiting while the controller manager has not assigned them, and
   * patches the lease annotations onto the node. Kube leases never expire (`expiration: null`).
   */
  async acquireLease(request: AcquireRequest, signal?: AbortSignal): Promise<Lease> {
    const s = this.signalFor(signal);
    const name = await this.nodeName(s);
    const state = await this.retry(`acquiring the lease of node ${name} failed`, s, async (x) => {
      const node = await this.client.readNode(name, x);
      const subnets = ownNodeSubnets(node, request.config, this.netConfigPath);
      const rv = await this.ensureAnnotations(node, request.attrs, subnets, x);
      return { attrs: request.attrs, subnets, lease: ownLease(subnets, request.attrs, rv) };
    });
    this.own = state;
    this.log.info(
      {
        node: name,
        subnet: state.subnets.subnet ? formatCidr(state.subnets.subnet) : undefined,
        ipv6Subnet: state.subnets.ipv6Subnet ? formatCidr(state.subnets.ipv6Subnet) : undefined,
      },
      'lease acquired from the node pod CIDR',
    );
    return state.lease;
  }

  /** Patches the annotations that differ; returns the node's resourceVersion afterwards. */
  private async ensureAnnotations(
    node: KubeNode,
    attrs: LeaseAttrs,
    subnets: NodeSubnets,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const name = nodeNameOf(node);
    const plan = planOwnAnnotations(node, this.names, attrs, subnets);
    for (const warning of plan.warnings) this.log.warn({ node: name }, warning);
    for (const note of plan.notes) this.log.info({ node: name }, note);
    if (!plan.patch) return node.metadata?.resourceVersion;
    const updated = await this.client.patchNodeStatus(
      name,
      { metadata: { annotations: plan.patch } },
      signal,
    );
    this.log.debug({ node: name, keys: Object.keys(plan.patch) }, 'node annotations patched');
    return updated.metadata?.resourceVersion;
  }

  /**
   * Kube leases do not expire; keeping one means watching the own node: annotations someone removed or
   * changed are patched back, a newly set `public-ip-overwrite` is published, and a changed pod CIDR (node
   * re-registered) is reported as `reacquired`. Resolves when `signal` aborts.
   */
  async keepLease(
    lease: Lease,
    onChange: (change: OwnLeaseChange) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const s = this.signalFor(signal);
    let name: string;
    try {
      name = await this.nodeName(s);
    } catch (err) {
      if (s.aborted) return;
      throw err;
    }
    let own: OwnState = this.own ?? {
      attrs: lease.attrs,
      subnets: {
        ...(lease.subnet ? { subnet: lease.subnet } : {}),
        ...(lease.ipv6Subnet ? { ipv6Subnet: lease.ipv6Subnet } : {}),
      },
      lease,
    };
    const config = await this.networkConfig(s).catch(() => undefined);
    const stream = listWatchNodes(
      this.client,
      { ...this.watchOptions(), fieldSelector: `metadata.name=${name}` },
      s,
    );
    for await (const item of stream) {
      const node =
        item.type === 'list'
          ? item.nodes.find((n) => n.metadata?.name === name)
          : item.event === 'DELETED'
            ? undefined
            : item.node;
      if (!node) {
        this.log.warn({ node: name }, 'this node is not in the API (deleted?); waiting for it to come back');
        continue;
      }
      this.readyTask.observe(node);
      try {
        own = await this.reconcileOwnNode(node, own, config, onChange, s);
        this.own = own;
      } catch (err) {
        if (s.aborted) return;
        this.log.error(
          { node: name, err: errorFields(err) },
          'cannot keep the lease annotations of this node',
        );
      }
    }
  }

  private async reconcileOwnNode(
    node: KubeNode,
    own: OwnState,
    config: NetworkConfig | undefined,
    onChange: (change: OwnLeaseChange) => void,
    signal: AbortSignal,
  ): Promise<OwnState> {
    const name = nodeNameOf(node);
    let next = own;
    if (config) {
      const subnets = ownNodeSubnets(node, config, this.netConfigPath);
      if (!sameSubnets(subnets, own.subnets)) {
        const lease = ownLease(subnets, own.attrs, node.metadata?.resourceVersion);
        next = { attrs: own.attrs, subnets, lease };
        onChange({
          type: 'reacquired',
          lease,
          previous: own.lease,
          reason: `the pod CIDR of node ${name} changed from ${own.lease.key} to ${lease.key}`,
        });
      }
    }
    const plan = planOwnAnnotations(node, this.names, next.attrs, next.subnets);
    if (plan.patch) {
      // A new public-ip-overwrite is the operator's doing (notes); anything else was removed or changed by someone.
      if (plan.notes.length > 0) {
        this.log.info(
          { node: name, keys: Object.keys(plan.patch), notes: plan.notes },
          'publishing the public address the node annotations ask for',
        );
      } else {
        this.log.warn(
          { node: name, keys: Object.keys(plan.patch) },
          'lease annotations of this node are missing or changed; patching them back',
        );
      }
      await this.retry(`patching the annotations of node ${name} failed`, signal, async (x) => {
        const fresh = await this.client.readNode(name, x);
        await this.ensureAnnotations(fresh, next.attrs, next.subnets, x);
      });
    }
    return next;
  }

  private watchOptions(): ListWatchOptions {
    const o: ListWatchOptions = { logger: this.log };
    if (this.options.listPageSize !== undefined) o.pageSize = this.options.listPageSize;
    if (this.options.backoff) o.backoff = this.options.backoff;
    if (this.options.watchTimeoutSeconds) o.watchTimeoutSeconds = this.options.watchTimeoutSeconds;
    if (this.options.watchIdleTimeoutMs) o.idleTimeoutMs = this.options.watchIdleTimeoutMs;
    return o;
  }

  /**
   * Lists and watches all nodes; nodes annotated `kube-subnet-manager: "true"` are leases (this node's own
   * included, as in flannel: skip it by key). The first batch is a snapshot; a re-list after 410 Gone is a
   * snapshot whose events are the diff against what was known. A node whose backend data, public IP or
   * backend type changed is a `changed` event; an update that touches none of weft's fields (a kubelet
   * heartbeat) is no batch at all. Two nodes claiming one pod CIDR: the first keeps it (see lease-index.ts).
   * Unusable nodes are skipped with a warning naming them.
   */
  async *watchLeases(signal: AbortSignal): AsyncIterable<LeaseWatchBatch> {
    const s = this.signalFor(signal);
    let config: NetworkConfig;
    try {
      config = await this.networkConfig(s);
    } catch (err) {
      if (s.aborted) return;
      throw err;
    }
    const tracker = new NodeLeaseTracker({
      names: this.names,
      networks: config,
      logger: this.log,
      onWatchEvent: this.options.onWatchEvent,
    });
    const streamOptions = {
      ...this.watchOptions(),
      onEvent: this.options.onWatchEvent,
      endpoint: this.client.server,
    };
    for await (const item of listWatchNodes(this.client, streamOptions, s)) {
      const batch = tracker.apply(item);
      if (batch) yield batch;
    }
  }

  /**
   * The Task that sets the node condition `NetworkUnavailable=False` (reason `FlannelIsUp`) and keeps it set;
   * run it beside the other tasks once the network is plumbed. See node-ready.ts for its retry policy.
   * Undefined when `setNodeNetworkUnavailable` is false.
   */
  networkReadyTask(): NodeReadyTask | undefined {
    return this.options.setNodeNetworkUnavailable === false ? undefined : this.readyTask;
  }

  /** Ends every watch and retry loop of this manager. */
  async close(): Promise<void> {
    this.closed.abort(new Error('kube subnet manager closed'));
  }
}
