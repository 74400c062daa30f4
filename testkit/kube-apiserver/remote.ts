// The test side of `cli.ts`: starts the test API server as a process inside a machine of a netns cluster and
// drives its store through the admin API on a unix socket. Nothing listens in the root namespace.
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import type { ClusterMachine, ProcessHandle } from '../index.js';
import { sleep } from '../index.js';
import { REPO_ROOT } from '../weft-cluster.js';
import type { NodeObject, RecordedRequest } from './server.js';

export const KUBE_APISERVER_CLI = join(REPO_ROOT, 'dist-dev/testkit/kube-apiserver/cli.js');

export class AdminRequestError extends Error {
  override name = 'AdminRequestError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`test API server admin ${method} ${path}: ${status === undefined ? '' : `${status} `}${detail}`);
  }
}

export interface RemoteApiServerInfo {
  url: string;
  port: number;
  resourceVersion: number;
  openWatches: number;
  listening: boolean;
}

export interface StartRemoteApiServerOptions {
  /** Port inside the machine's namespace (default 6443). */
  port?: number;
  bookmarkIntervalMs?: number;
  historyLimit?: number;
  /** How long to wait for the server to come up (default 20 s). */
  startTimeoutMs?: number;
}

/** A test API server running in a machine's namespace; stopped by the cluster's destroy() or `stop()`. */
export class RemoteApiServer {
  constructor(
    readonly process: ProcessHandle,
    readonly socketPath: string,
    readonly kubeconfigPath: string,
    readonly url: string,
    private readonly machine: ClusterMachine,
  ) {}

  /**
   * Runs Debian's kubectl as an operator would, inside the server's namespace, with the kubeconfig the server
   * wrote (HTTPS, its certificate as CA, a bearer token). Its discovery cache goes under the machine's dir.
   * Returns stdout; a non-zero exit throws with kubectl's stderr.
   */
  async kubectl(args: readonly string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.machine.exec('kubectl', args, {
      env: { ...process.env, KUBECONFIG: this.kubeconfigPath, HOME: this.machine.dir },
      timeoutMs,
    });
    if (r.code !== 0) {
      throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout;
  }

  /** One admin call; resolves with the parsed answer, rejects with `AdminRequestError`. */
  request<T>(method: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          path,
          method,
          timeout: timeoutMs,
          headers:
            text === undefined
              ? {}
              : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = raw === '' ? undefined : JSON.parse(raw);
            } catch {
              reject(
                new AdminRequestError(
                  method,
                  path,
                  res.statusCode,
                  `answer is not JSON: ${raw.slice(0, 200)}`,
                ),
              );
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 400) {
              const error = (parsed as { error?: unknown } | undefined)?.error;
              reject(new AdminRequestError(method, path, status, typeof error === 'string' ? error : raw));
              return;
            }
            resolve(parsed as T);
          });
          res.on('error', (err) => reject(new AdminRequestError(method, path, res.statusCode, err.message)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new AdminRequestError(method, path, undefined, err.message)));
      req.end(text);
    });
  }

  info(): Promise<RemoteApiServerInfo> {
    return this.request('GET', '/info');
  }

  nodes(): Promise<NodeObject[]> {
    return this.request('GET', '/nodes');
  }

  /** The node, or undefined when the store has none of that name. */
  async node(name: string): Promise<NodeObject | undefined> {
    try {
      return await this.request<NodeObject>('GET', `/nodes/${encodeURIComponent(name)}`);
    } catch (err) {
      if (err instanceof AdminRequestError && err.status === 404) return undefined;
      throw err;
    }
  }

  addNode(node: NodeObject): Promise<NodeObject> {
    return this.request('POST', '/nodes', node);
  }

  /** Sets annotations (`null` removes one), as `kubectl annotate node` does. */
  annotate(name: string, annotations: Record<string, string | null>): Promise<NodeObject> {
    return this.request('PATCH', `/nodes/${encodeURIComponent(name)}/annotations`, annotations);
  }

  deleteNode(name: string): Promise<{ deleted: string }> {
    return this.request('DELETE', `/nodes/${encodeURIComponent(name)}`);
  }

  /** Stops and listens again on the same port with the same store (watches drop, as in a crash). */
  restart(
    options: { downMs?: number; forgetHistory?: boolean } = {},
  ): Promise<{ url: string; port: number }> {
    return this.request('POST', '/restart', options, 90_000);
  }

  /** Stops listening (every connection dropped, the store kept); the admin API stays up. */
  pause(): Promise<{ listening: boolean }> {
    return this.request('POST', '/pause', {});
  }

  /** Listens again on the same port after `pause()`. */
  resume(): Promise<{ listening: boolean }> {
    return this.request('POST', '/resume', {});
  }

  /** Forgets the watch history: a watch from any version before now gets 410 Gone. */
  compact(): Promise<{ oldestWatchableVersion: number }> {
    return this.request('POST', '/compact', {});
  }

  closeWatches(): Promise<{ closed: number }> {
    return this.request('POST', '/close-watches', {});
  }

  requests(since = 0): Promise<{ total: number; requests: RecordedRequest[] }> {
    return this.request('GET', `/requests?since=${since}`);
  }

  async stop(): Promise<void> {
    await this.process.stop('SIGTERM', 5_000);
  }
}

/**
 * Starts the test API server inside `machine`'s namespace, listening on its underlay address. The kubeconfig
 * (token auth, http://<underlay ip>:<port>) and the admin socket live in the machine's dir.
 */
export async function startRemoteApiServer(
  machine: ClusterMachine,
  options: StartRemoteApiServerOptions = {},
): Promise<RemoteApiServer> {
  if (!existsSync(KUBE_APISERVER_CLI)) {
    throw new Error(`${KUBE_APISERVER_CLI} is missing: run \`npm run build\` first`);
  }
  const socketPath = join(machine.dir, 'kubeapi.sock');
  const kubeconfigPath = join(machine.dir, 'kubeconfig');
  const logFile = join(machine.dir, 'kubeapi.log');
  const handle = await machine.spawn(
    process.execPath,
    [
      KUBE_APISERVER_CLI,
      `--host=${machine.underlayIp}`,
      `--port=${options.port ?? 6443}`,
      `--socket=${socketPath}`,
      `--kubeconfig-out=${kubeconfigPath}`,
      `--bookmark-interval-ms=${options.bookmarkIntervalMs ?? 1000}`,
      `--history-limit=${options.historyLimit ?? 1000}`,
    ],
    // The server's own temp dir (its kubeconfig copy) goes inside the machine's dir: removed with the cluster
    // even when the process is killed.
    { logFile, env: { TMPDIR: machine.dir } },
  );
  const server = new RemoteApiServer(handle, socketPath, kubeconfigPath, '', machine);
  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  for (let attempt = 0; attempt < 10_000; attempt++) {
    if (handle.exited) throw new Error(`the test API server exited at start:\n${handle.logTail(20)}`);
    if (existsSync(socketPath) && existsSync(kubeconfigPath)) {
      const info = await server.info().catch(() => undefined);
      if (info) return new RemoteApiServer(handle, socketPath, kubeconfigPath, info.url, machine);
    }
    if (Date.now() > deadline) {
      await handle.stop('SIGTERM', 2_000).catch(() => undefined);
      throw new Error(
        `the test API server did not come up within ${options.startTimeoutMs ?? 20_000} ms:\n${handle.logTail(20)}`,
      );
    }
    await sleep(50);
  }
  throw new Error('the test API server did not come up');
}
