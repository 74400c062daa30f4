// The Kubernetes API calls weft makes — node get/list/patch, pod get and a node watch stream — as plain HTTP(S)
// with the credentials of kubeconfig.ts. Every call has a timeout and every
// failure becomes a `KubeApiError` naming the operation, so callers can retry without guessing.
import * as http from 'node:http';
import * as https from 'node:https';
import { KubeConfigError, type KubeConnectionConfig } from './kubeconfig.js';
import type { KubeNode } from './node-lease.js';

/** The parts of a Pod weft reads (its node, to learn the node name). */
export interface KubePod {
  metadata?: { name?: string; namespace?: string };
  spec?: { nodeName?: string };
}

/** A failed API call: which call, the HTTP status (undefined when no response came) and the server's reason. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly reason: string | undefined,
    detail: string,
  ) {
    super(
      `${operation}: ${status === undefined ? '' : `${status} `}${reason ? `${reason}: ` : ''}${detail}${hint(status)}`,
    );
  }
}

function hint(status: number | undefined): string {
  if (status === 401)
    return ' (the credentials were refused: check the kubeconfig or the ServiceAccount token)';
  if (status === 403) {
    return ' (permission denied: weft needs pods get, nodes get/list/watch and nodes/status patch; see contrib/kubernetes/weft.yaml)';
  }
  return '';
}

/** True for a `410 Gone`: the resourceVersion a watch asked for is no longer in the server's history. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 410;
}

/** One line of a watch stream. */
export interface WatchEvent {
  type: string;
  object: unknown;
}

export interface ListNodesQuery {
  fieldSelector?: string;
  /** Page size (`limit`); the list follows `continue` tokens until the last page. 0 = one unpaged list. */
  pageSize?: number;
  /** Keeps only what the caller reads of each node, page by page, so a large list is never held whole. */
  project?: (node: KubeNode) => KubeNode;
}

export interface NodeListResult {
  items: KubeNode[];
  resourceVersion: string;
  /** Pages fetched (1 for an unpaged list). */
  pages: number;
}

/** The calls the list+watch loop needs (KubeClient implements it). */
export interface NodeSource {
  listNodes(query: ListNodesQuery, signal?: AbortSignal): Promise<NodeListResult>;
  watchNodes(query: WatchNodesQuery, signal?: AbortSignal): AsyncGenerator<WatchEvent>;
}

export interface WatchNodesQuery {
  resourceVersion: string;
  fieldSelector?: string;
  /** Ask the server to end the watch after this long (it is then resumed). */
  timeoutSeconds?: number;
  /** Give up on a watch that sent nothing (not even a bookmark) for this long. */
  idleTimeoutMs: number;
}

export interface KubeClientOptions {
  /** Timeout of each get/list/patch call (default 30 s). */
  requestTimeoutMs?: number;
}

/** client-go's reflector page size: large clusters are listed in pages of this many nodes. */
export const DEFAULT_LIST_PAGE_SIZE = 500;

/** Watch lines longer than this are not a Node; the stream is dropped rather than buffering without bound. */
const MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;
/** A list page or object larger than this is refused rather than buffered without bound. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

class WatchIdleError extends Error {
  override name = 'WatchIdleError';
}

interface RequestSpec {
  method: 'GET' | 'PATCH';
  path: string;
  query?: Record<string, string | undefined>;
  body?: object;
  contentType?: string;
}

/**
 * The API calls weft makes, each one plain HTTP(S) with the kubeconfig's TLS and credentials
 * (`applyToHTTPSOptions`) and JSON bodies parsed as they are: no generated model classes, so a list of 5000
 * nodes costs one JSON.parse per page.
 */
export class KubeClient implements NodeSource {
  private readonly requestTimeoutMs: number;

  constructor(
    readonly kubeConfig: KubeConnectionConfig,
    options: KubeClientOptions = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /** The API server URL in use. */
  get server(): string {
    return this.kubeConfig.getCurrentCluster()?.server ?? '(none)';
  }

  private url(path: string, query: Record<string, string | undefined> = {}): URL {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new KubeConfigError('the kubeconfig has no current cluster');
    const url = new URL(`${cluster.server.replace(/\/+$/, '')}${path}`);
    for (const [key, value] of Object.entries(query))
      if (value !== undefined) url.searchParams.set(key, value);
    return url;
  }

  /** One request with the kubeconfig's credentials; `signal` aborts it (the caller handles cleanup). */
  private async open(url: URL, method: string, headers: Record<string, string>, signal: AbortSignal) {
    const options: https.RequestOptions = { method, headers };
    await this.kubeConfig.applyToHTTPSOptions(options);
    return (url.protocol === 'https:' ? https : http).request(url, { ...options, signal });
  }

  /** A JSON request/answer; every failure is a `KubeApiError` naming `operation`. */
  private async call<T>(operation: string, spec: RequestSpec, signal: AbortSignal | undefined): Promise<T> {
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
      const headers: Record<string, string> = { Accept: 'application/json' };
      if (body !== undefined) {
        headers['Content-Type'] = spec.contentType ?? 'application/json';
        headers['Content-Length'] = String(Buffer.byteLength(body));
      }
      const request = await this.open(this.url(spec.path, spec.query), spec.method, headers, combined);
      const response = await sendRequest(request, body);
      const text = await readBounded(response, MAX_RESPONSE_BYTES);
      if (response.statusCode !== 200 && response.statusCode !== 201) {
        throw answerError(operation, response, text);
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new KubeApiError(
          operation,
          response.statusCode,
          'BadResponse',
          `not JSON: ${text.slice(0, 80)}`,
        );
      }
    } catch (err) {
      throw toKubeApiError(operation, err, this.requestTimeoutMs);
    }
  }

  readNode(name: string, signal?: AbortSignal): Promise<KubeNode> {
    return this.call(
      `GET nodes/${name}`,
      { method: 'GET', path: `/api/v1/nodes/${encodeURIComponent(name)}` },
      signal,
    );
  }

  /**
   * Lists nodes in pages of `pageSize` (default 500, as client-go's reflector), following `continue` tokens.
   * When a token expires mid-list (410), lists again in one unpaged request, as client-go's pager does.
   */
  async listNodes(query: ListNodesQuery, signal?: AbortSignal): Promise<NodeListResult> {
    const pageSize = query.pageSize ?? DEFAULT_LIST_PAGE_SIZE;
    const items: KubeNode[] = [];
    let token: string | undefined;
    let pages = 0;
    for (;;) {
      interface NodeList {
        items?: KubeNode[] | null;
        metadata?: { resourceVersion?: string; continue?: string };
      }
      let page: NodeList;
      try {
        page = await this.call<NodeList>(
          pages === 0 ? 'LIST nodes' : `LIST nodes (page ${pages + 1})`,
          {
            method: 'GET',
            path: '/api/v1/nodes',
            query: {
              fieldSelector: query.fieldSelector,
              limit: pageSize > 0 ? String(pageSize) : undefined,
              continue: token,
            },
          },
          signal,
        );
      } catch (err) {
        if (token !== undefined && isGone(err)) return this.listNodes({ ...query, pageSize: 0 }, signal);
        throw err;
      }
      pages++;
      const project = query.project;
      for (const node of page.items ?? []) items.push(project ? project(node) : node);
      token = page.metadata?.continue || undefined;
      if (!token) return { items, resourceVersion: page.metadata?.resourceVersion ?? '', pages };
      if (pages >= 100_000)
        throw new KubeApiError('LIST nodes', undefined, 'TooManyPages', 'the list never ends');
    }
  }

  /** PATCH nodes/<name>/status with a strategic merge patch (annotations: a null value deletes the key). */
  patchNodeStatus(name: string, patch: object, signal?: AbortSignal): Promise<KubeNode> {
    return this.call(
      `PATCH nodes/${name}/status`,
      {
        method: 'PATCH',
        path: `/api/v1/nodes/${encodeURIComponent(name)}/status`,
        body: patch,
        contentType: 'application/strategic-merge-patch+json',
      },
      signal,
    );
  }

  readPod(namespace: string, name: string, signal?: AbortSignal): Promise<KubePod> {
    return this.call(
      `GET pods ${namespace}/${name}`,
      {
        method: 'GET',
        path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
      },
      signal,
    );
  }

  /**
   * Streams `GET /api/v1/nodes?watch=true&allowWatchBookmarks=true` as parsed lines, with an idle timeout:
   * a half-open connection would otherwise stall it forever. Throws `KubeApiError` for a non-200 answer
   * (410 included) and for a dropped or idle connection.
   */
  async *watchNodes(query: WatchNodesQuery, signal?: AbortSignal): AsyncGenerator<WatchEvent> {
    const operation = `WATCH nodes from resourceVersion ${query.resourceVersion || '(now)'}`;
    const url = this.url('/api/v1/nodes', {
      watch: 'true',
      allowWatchBookmarks: 'true',
      resourceVersion: query.resourceVersion || undefined,
      fieldSelector: query.fieldSelector,
      timeoutSeconds: query.timeoutSeconds ? String(query.timeoutSeconds) : undefined,
    });
    const abort = new AbortController();
    const onAbort = (): void => abort.abort(signal?.reason);
    if (signal?.aborted) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    let request: http.ClientRequest | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        request?.destroy(new WatchIdleError(`no data for ${query.idleTimeoutMs} ms`));
      }, query.idleTimeoutMs);
    };
    try {
      request = await this.open(url, 'GET', { Accept: 'application/json' }, abort.signal);
      touch();
      const response = await sendRequest(request);
      touch();
      if (response.statusCode !== 200) {
        throw answerError(operation, response, await readBounded(response, 64 * 1024));
      }
      let buffered = '';
      response.setEncoding('utf8');
      for await (const chunk of response as AsyncIterable<string>) {
        touch();
        buffered += chunk;
        if (buffered.length > MAX_WATCH_LINE_BYTES) {
          throw new KubeApiError(
            operation,
            undefined,
            'TooLarge',
            `a watch line exceeds ${MAX_WATCH_LINE_BYTES} bytes`,
          );
        }
        // Lines are cut by index and the rest kept once per chunk: a chunk of many events is scanned once.
        let start = 0;
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(start, newline).trim();
          start = newline + 1;
          newline = buffered.indexOf('\n', start);
          if (newline < 0) buffered = buffered.slice(start);
          if (line === '') continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            throw new KubeApiError(operation, undefined, 'BadWatchLine', `not JSON: ${line.slice(0, 80)}`);
          }
          if (
            typeof parsed !== 'object' ||
            parsed === null ||
            typeof (parsed as WatchEvent).type !== 'string'
          ) {
            throw new KubeApiError(
              operation,
              undefined,
              'BadWatchLine',
              `not a watch event: ${line.slice(0, 80)}`,
            );
          }
          yield parsed as WatchEvent;
        }
      }
      // A clean end (the server's timeoutSeconds) completes the chunked body; a dropped connection does not.
      if (!response.complete) {
        throw new KubeApiError(
          operation,
          undefined,
          'Unreachable',
          'the connection closed in the middle of the watch',
        );
      }
    } catch (err) {
      if (err instanceof KubeApiError) throw err;
      if (signal?.aborted) return;
      throw toKubeApiError(operation, err, query.idleTimeoutMs);
    } finally {
      clearTimeout(idleTimer);
      signal?.removeEventListener('abort', onAbort);
      request?.destroy();
    }
  }
}

function sendRequest(request: http.ClientRequest, body?: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
    request.end(body);
  });
}

/** A non-success answer as an error: the server's Status reason and message when it sent one. */
function answerError(operation: string, response: http.IncomingMessage, text: string): KubeApiError {
  const status = parseStatus(text);
  return new KubeApiError(
    operation,
    response.statusCode,
    status.reason ?? response.statusMessage,
    status.message ?? text.slice(0, 200),
  );
}

async function readBounded(stream: http.IncomingMessage, limit: number): Promise<string> {
  let text = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream as AsyncIterable<string>) {
    if (text.length < limit) text += chunk;
  }
  return text.slice(0, limit);
}

interface StatusFields {
  reason?: string;
  message?: string;
  code?: number;
}

function parseStatus(body: unknown): StatusFields {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return {};
    }
  }
  if (typeof value !== 'object' || value === null) return {};
  const v = value as Record<string, unknown>;
  const out: StatusFields = {};
  if (typeof v.reason === 'string' && v.reason) out.reason = v.reason;
  if (typeof v.message === 'string' && v.message) out.message = v.message;
  if (typeof v.code === 'number') out.code = v.code;
  return out;
}

/** Parses a watch ERROR event's object (a `Status`). */
export function watchErrorStatus(object: unknown): StatusFields {
  return parseStatus(object);
}

function toKubeApiError(operation: string, err: unknown, timeoutMs: number): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError' || e?.name === 'WatchIdleError') {
    return new KubeApiError(operation, undefined, 'Timeout', `no answer within ${timeoutMs} ms`);
  }
  const code = typeof e?.code === 'string' ? `${e.code}: ` : '';
  return new KubeApiError(operation, undefined, 'Unreachable', `${code}${e?.message ?? String(err)}`);
}

export { KubeConfigError, type KubeConnectionOptions, loadKubeConfig } from './kubeconfig.js';
