// A test Kubernetes API server: plain node:http, only the resources weft uses, behaving like the real one
// for them. Nodes live in a store with a global resourceVersion counter and a bounded event history;
// list, get, watch (JSON lines, bookmarks, 410 Gone as an ERROR event when the requested version is older
// than the history), PATCH nodes/<n>/status (strategic merge: annotations with null deletes, conditions
// merged by type), GET pods for spec.nodeName. Faults (409/500 answers, hanging requests) on demand.
// Tests drive the real @kubernetes/client-node against it.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { makeRunTempDir, removeRunTempDir } from '../run.js';
import {
  API_GROUP_LIST,
  apiVersions,
  CORE_V1_RESOURCES,
  nodeTable,
  VERSION_INFO,
  wantsTable,
} from './discovery.js';
import {
  CONTINUE_EXPIRED_MESSAGE,
  encodeContinue,
  firstIndexAfter,
  ListError,
  parseListRequest,
  tooLargeResourceVersion,
  tooOldResourceVersion,
} from './list.js';
import { isObject, type Json, jsonMergePatch, PatchError, strategicMerge } from './strategic-merge.js';
import { makeServingCert } from './tls.js';

/** A Node as JSON. `metadata.name` is required; the server fills uid, resourceVersion, creationTimestamp. */
export interface NodeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    resourceVersion?: string;
    [key: string]: unknown;
  };
  spec?: { podCIDR?: string; podCIDRs?: string[]; [key: string]: unknown };
  status?: { conditions?: Array<Record<string, unknown>>; [key: string]: unknown };
}

export interface PodObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; [key: string]: unknown };
  spec?: { nodeName?: string; [key: string]: unknown };
}

export interface MakeNodeOptions {
  podCIDR?: string;
  /** Defaults to `[podCIDR]` when podCIDR is given. */
  podCIDRs?: string[];
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  /** InternalIP reported in status.addresses. */
  internalIP?: string;
}

/** A Node object as a kubelet registers it. */
export function makeNode(name: string, options: MakeNodeOptions = {}): NodeObject {
  const spec: NodeObject['spec'] = {};
  if (options.podCIDR) spec.podCIDR = options.podCIDR;
  const podCIDRs = options.podCIDRs ?? (options.podCIDR ? [options.podCIDR] : undefined);
  if (podCIDRs) {
    spec.podCIDRs = podCIDRs;
    if (!spec.podCIDR && podCIDRs[0]) spec.podCIDR = podCIDRs[0];
  }
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, ...options.labels },
      annotations: { ...options.annotations },
    },
    spec,
    status: {
      conditions: [
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
      ],
      addresses: [
        ...(options.internalIP ? [{ type: 'InternalIP', address: options.internalIP }] : []),
        { type: 'Hostname', address: name },
      ],
    },
  };
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  rv: number;
  type: WatchEventType;
  object: NodeObject;
  /** The object before this event (MODIFIED, DELETED): what a read at an older version sees. */
  prev?: NodeObject;
}

/** The nodes as they were at one resourceVersion, names in key order (for paged lists). */
export interface NodeSnapshot {
  rv: number;
  names: string[];
  objects: ReadonlyMap<string, NodeObject>;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Key order, as etcd sorts keys (byte order; node names are ASCII). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

class StoreError extends PatchError {}

/** The node store: a resourceVersion counter, the objects, and the retained event history. */
export class NodeStore {
  private readonly nodes = new Map<string, NodeObject>();
  private readonly history: HistoryEntry[] = [];
  private readonly listeners = new Set<(entry: HistoryEntry) => void>();
  private rv = 1000;
  /** Events with rv <= floor are no longer retained: a watch from before it gets 410 Gone. */
  private floor = 1000;

  constructor(private historyLimit: number) {}

  /** The current (global) resourceVersion. */
  get resourceVersion(): number {
    return this.rv;
  }

  /** The oldest resourceVersion a watch may still start from. */
  get oldestWatchableVersion(): number {
    return this.floor;
  }

  setHistoryLimit(limit: number): void {
    this.historyLimit = Math.max(0, limit);
    this.trim();
  }

  /** Forgets all history: every watch from a version older than now gets 410 Gone. */
  compact(): void {
    this.history.length = 0;
    this.floor = this.rv;
    this.snapshots = [];
  }

  private trim(): void {
    if (this.history.length <= this.historyLimit) return;
    const dropped = this.history.splice(0, this.history.length - this.historyLimit);
    this.floor = (dropped[dropped.length - 1] as HistoryEntry).rv;
    this.snapshots = this.snapshots.filter((x) => x.rv >= this.floor);
  }

  private record(type: WatchEventType, object: NodeObject, prev?: NodeObject): void {
    // Stored objects are never mutated (every change stores a new one), so history and snapshots share them.
    const entry: HistoryEntry = { rv: this.rv, type, object };
    if (prev) entry.prev = prev;
    this.history.push(entry);
    this.trim();
    for (const listener of this.listeners) listener(entry);
  }

  subscribe(listener: (entry: HistoryEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** History entries after `rv`, or undefined when that part of the history is gone. */
  since(rv: number): HistoryEntry[] | undefined {
    if (rv < this.floor) return undefined;
    return this.history.filter((e) => e.rv > rv).map((e) => ({ ...e, object: clone(e.object) }));
  }

  get(name: string): NodeObject | undefined {
    const node = this.nodes.get(name);
    return node ? clone(node) : undefined;
  }

  list(): NodeObject[] {
    return [...this.nodes.values()].map(clone).sort((a, b) => byName(a.metadata.name, b.metadata.name));
  }

  private snapshots: NodeSnapshot[] = [];

  /**
   * The nodes exactly as they were at `rv` (undefined when `rv` is older than the retained history or newer
   * than now): the current objects with every later event undone. The last few are cached, since a paged
   * list reads the same version once per page.
   */
  snapshotAt(rv: number): NodeSnapshot | undefined {
    if (rv < this.floor || rv > this.rv) return undefined;
    const cached = this.snapshots.find((x) => x.rv === rv);
    if (cached) return cached;
    const objects = new Map(this.nodes);
    for (let i = this.history.length - 1; i >= 0; i--) {
      const entry = this.history[i] as HistoryEntry;
      if (entry.rv <= rv) break;
      const name = entry.object.metadata.name;
      if (entry.type === 'ADDED') objects.delete(name);
      else if (entry.prev) objects.set(name, entry.prev);
    }
    const snapshot: NodeSnapshot = { rv, names: [...objects.keys()].sort(byName), objects };
    this.snapshots = [snapshot, ...this.snapshots.slice(0, 3)];
    return snapshot;
  }

  names(): string[] {
    return [...this.nodes.keys()].sort();
  }

  add(node: NodeObject): NodeObject {
    const name = node.metadata?.name;
    if (!name) throw new StoreError(422, 'Invalid', 'metadata.name is required');
    if (this.nodes.has(name)) throw new StoreError(409, 'AlreadyExists', `nodes "${name}" already exists`);
    const stored = clone(node);
    stored.apiVersion = 'v1';
    stored.kind = 'Node';
    this.rv++;
    stored.metadata.uid = randomUUID();
    stored.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    stored.metadata.resourceVersion = String(this.rv);
    this.nodes.set(name, stored);
    this.record('ADDED', stored);
    return clone(stored);
  }

  delete(name: string): boolean {
    const node = this.nodes.get(name);
    if (!node) return false;
    this.nodes.delete(name);
    this.rv++;
    const deleted = clone(node);
    deleted.metadata.resourceVersion = String(this.rv);
    this.record('DELETED', deleted, node);
    return true;
  }

  /** Replaces the node with `mutate(copy)`'s result (or the mutated copy). One MODIFIED event. */
  update(name: string, mutate: (node: NodeObject) => NodeObject | undefined): NodeObject {
    const node = this.nodes.get(name);
    if (!node) throw new StoreError(404, 'NotFound', `nodes "${name}" not found`);
    const copy = clone(node);
    const next = mutate(copy) ?? copy;
    next.metadata.name = name;
    next.metadata.uid = node.metadata.uid;
    next.metadata.creationTimestamp = node.metadata.creationTimestamp;
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    this.nodes.set(name, next);
    this.record('MODIFIED', next, node);
    return clone(next);
  }

  /** Sets (or with `null`, removes) annotations, as `kubectl annotate` would. */
  annotate(name: string, annotations: Record<string, string | null>): NodeObject {
    return this.update(name, (node) => {
      const current = { ...node.metadata.annotations };
      for (const [key, value] of Object.entries(annotations)) {
        if (value === null) delete current[key];
        else current[key] = value;
      }
      node.metadata.annotations = current;
      return node;
    });
  }

  /**
   * Applies a patch as the API server does. `subresource: 'status'` keeps the spec (nodeStatusStrategy);
   * the main resource keeps the status. A `metadata.resourceVersion` in the patch is a precondition (409).
   */
  patch(
    name: string,
    patch: unknown,
    options: { subresource?: 'status'; contentType?: string } = {},
  ): NodeObject {
    const node = this.nodes.get(name);
    if (!node) throw new StoreError(404, 'NotFound', `nodes "${name}" not found`);
    if (!isObject(patch)) throw new StoreError(400, 'BadRequest', 'the patch must be a JSON object');
    const contentType = options.contentType ?? 'application/strategic-merge-patch+json';
    const precondition = isObject(patch.metadata) ? patch.metadata.resourceVersion : undefined;
    if (typeof precondition === 'string' && precondition !== node.metadata.resourceVersion) {
      throw new StoreError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on nodes "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    let merged: Json | undefined;
    if (contentType === 'application/strategic-merge-patch+json') {
      merged = strategicMerge(node as unknown as Json, patch);
    } else if (contentType === 'application/merge-patch+json') {
      merged = jsonMergePatch(node as unknown as Json, patch);
    } else {
      throw new StoreError(
        415,
        'UnsupportedMediaType',
        `the patch content type ${contentType} is not supported here`,
      );
    }
    if (!isObject(merged)) throw new StoreError(422, 'Invalid', 'the patch would delete the object');
    const next = merged as unknown as NodeObject;
    if (!isObject(next.metadata)) throw new StoreError(422, 'Invalid', 'metadata must be an object');
    if (options.subresource === 'status') next.spec = clone(node.spec ?? {});
    else next.status = clone(node.status ?? {});
    return this.update(name, () => next);
  }
}

/** A pod store keyed by namespace/name, for the node-name lookup (POD_NAMESPACE/POD_NAME). */
export class PodStore {
  private readonly pods = new Map<string, PodObject>();

  add(namespace: string, name: string, nodeName: string | undefined): PodObject {
    const pod: PodObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, uid: randomUUID(), resourceVersion: '1' },
      spec: nodeName ? { nodeName, containers: [{ name: 'weft', image: 'weft:test' }] } : { containers: [] },
    };
    this.pods.set(`${namespace}/${name}`, pod);
    return clone(pod);
  }

  get(namespace: string, name: string): PodObject | undefined {
    const pod = this.pods.get(`${namespace}/${name}`);
    return pod ? clone(pod) : undefined;
  }

  delete(namespace: string, name: string): boolean {
    return this.pods.delete(`${namespace}/${name}`);
  }
}

/** Which requests a fault applies to (all when empty). */
export interface RequestMatch {
  method?: string;
  /** A substring of, or a pattern for, the path (without the query). */
  path?: string | RegExp;
  /** Only watch requests (true) or only non-watch requests (false). */
  watch?: boolean;
  /** Only requests carrying this query parameter (e.g. `continue`: the second and later pages of a list). */
  withQuery?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
  /** What the server did: the status sent, 'hang', or 'watch'. */
  outcome: number | 'hang' | 'watch';
  contentType?: string;
  body?: unknown;
}

interface Fault {
  kind: 'fail' | 'hang';
  status: number;
  remaining: number;
  match: RequestMatch;
}

export interface FakeApiFaults {
  /** The next `n` matching requests are answered with `status` (a Status object, like the real server). */
  failNext(n: number, status: 409 | 500 | 503 | 410 | 403, match?: RequestMatch): void;
  /** The next `n` matching requests never get an answer (until the client gives up or the server stops). */
  hangNext(n: number, match?: RequestMatch): void;
  /** Drops every pending fault. */
  clear(): void;
  /** Faults not yet used up. */
  pending(): number;
}

export interface StartFakeApiServerOptions {
  /** Address to listen on (default 127.0.0.1); give an address inside a namespace to serve it there. */
  host?: string;
  /** Port (default: a free one). */
  port?: number;
  /** How many node events the watch history keeps (default 100). */
  historyLimit?: number;
  /** Bookmark period for watches that allow them (default 1000 ms; 0 = only on `sendBookmarks()`). */
  bookmarkIntervalMs?: number;
  /** Require `Authorization: Bearer <token>` (default: a random token, written into the kubeconfig). */
  token?: string | null;
  /**
   * Serve HTTPS with a self-signed certificate the kubeconfig trusts (default true, as a real API server;
   * kubectl sends no token over plain http). false: plain http, e.g. for `--kube-api-url` without credentials.
   */
  tls?: boolean;
}

export interface FakeApiServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** A kubeconfig for this server: token auth; with TLS the server's certificate as its CA. */
  readonly kubeconfigPath: string;
  readonly token: string | null;
  /** The PEM certificate clients must trust (undefined on plain http). */
  readonly ca: string | undefined;
  readonly nodes: NodeStore;
  readonly pods: PodStore;
  readonly faults: FakeApiFaults;
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[];
  /** Number of watch streams open now. */
  openWatches(): number;
  /** Sends a BOOKMARK with the current resourceVersion on every open watch that allows bookmarks. */
  sendBookmarks(): void;
  /** Ends every open watch cleanly (as the server's watch timeout does). */
  closeWatches(): void;
  /** Stops and starts again on the same port with the same store. `forgetHistory` makes old versions 410. */
  restart(options?: { forgetHistory?: boolean; downMs?: number }): Promise<void>;
  /** Stops listening and drops every connection; the store stays for `start()`. */
  pause(): Promise<void>;
  /** Listens again after `pause()`. */
  resume(): Promise<void>;
  /** Stops for good and removes the kubeconfig. Idempotent. */
  stop(): Promise<void>;
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Json {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details: details as { [key: string]: Json } } : {}),
    code,
  };
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

interface FieldSelector {
  name?: string;
  notName?: string;
}

function parseFieldSelector(text: string | undefined): FieldSelector {
  if (!text) return {};
  const out: FieldSelector = {};
  for (const part of text.split(',')) {
    const m = /^metadata\.name\s*(==|=|!=)\s*(.*)$/.exec(part.trim());
    if (!m)
      throw new PatchError(
        400,
        'BadRequest',
        `field selector ${JSON.stringify(part)} is not supported (only metadata.name)`,
      );
    if (m[1] === '!=') out.notName = m[2];
    else out.name = m[2];
  }
  return out;
}

function selects(selector: FieldSelector, node: NodeObject): boolean {
  if (selector.name !== undefined && node.metadata.name !== selector.name) return false;
  if (selector.notName !== undefined && node.metadata.name === selector.notName) return false;
  return true;
}

function matches(
  match: RequestMatch,
  method: string,
  pathname: string,
  watch: boolean,
  query: URLSearchParams,
): boolean {
  if (match.method && match.method.toUpperCase() !== method) return false;
  if (match.withQuery !== undefined && !query.has(match.withQuery)) return false;
  if (match.watch !== undefined && match.watch !== watch) return false;
  if (match.path !== undefined) {
    if (typeof match.path === 'string' ? !pathname.includes(match.path) : !match.path.test(pathname))
      return false;
  }
  return true;
}

function kubeconfigText(url: string, token: string | null, caPem: string | undefined): string {
  const user = token ? `    token: ${token}\n` : '    {}\n';
  const trust = caPem
    ? `    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}`
    : '    insecure-skip-tls-verify: true';
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: weft-test',
    '  cluster:',
    `    server: ${url}`,
    trust,
    'users:',
    '- name: weft-test',
    '  user:',
    user.trimEnd(),
    'contexts:',
    '- name: weft-test',
    '  context:',
    '    cluster: weft-test',
    '    user: weft-test',
    'current-context: weft-test',
    '',
  ].join('\n');
}

const MAX_BODY_BYTES = 1024 * 1024;

/** Starts the test API server. Stop it with `stop()` (tests: in `afterAll`/`finally`). */
export async function startFakeApiServer(options: StartFakeApiServerOptions = {}): Promise<FakeApiServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token === undefined ? randomUUID() : options.token;
  const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
  const nodes = new NodeStore(options.historyLimit ?? 100);
  const pods = new PodStore();
  const requests: RecordedRequest[] = [];
  const faultList: Fault[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const watches = new Set<{
    res: http.ServerResponse;
    bookmarks: boolean;
    end: (abrupt?: boolean) => void;
  }>();
  const hanging = new Set<http.ServerResponse>();

  const faults: FakeApiFaults = {
    failNext(n, code, match = {}) {
      faultList.push({ kind: 'fail', status: code, remaining: n, match });
    },
    hangNext(n, match = {}) {
      faultList.push({ kind: 'hang', status: 0, remaining: n, match });
    },
    clear() {
      faultList.length = 0;
    },
    pending() {
      return faultList.reduce((sum, f) => sum + f.remaining, 0);
    },
  };

  const sendJson = (res: http.ServerResponse, code: number, body: Json): void => {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  const sendStatus = (
    res: http.ServerResponse,
    code: number,
    message: string,
    details?: Record<string, unknown>,
    reason?: string,
  ): void => {
    sendJson(res, code, status(code, reason ?? REASONS[code] ?? 'Unknown', message, details));
  };

  /** GET /api/v1/nodes without watch: the documented list semantics (list.ts), as NodeList or Table. */
  const serveList = (res: http.ServerResponse, query: URLSearchParams, table: boolean): void => {
    const request = parseListRequest(query);
    const selector = parseFieldSelector(query.get('fieldSelector') ?? undefined);
    const current = nodes.resourceVersion;
    let snapshot: NodeSnapshot | undefined;
    const at = request.at;
    if (at.kind === 'latest' || at.kind === 'any') snapshot = nodes.snapshotAt(current);
    else if (at.rv > current) throw tooLargeResourceVersion(at.rv, current);
    else if (at.kind === 'notOlderThan') snapshot = nodes.snapshotAt(current);
    else {
      snapshot = nodes.snapshotAt(at.rv);
      if (!snapshot) {
        if (request.startAfter !== undefined) throw new ListError(410, 'Expired', CONTINUE_EXPIRED_MESSAGE);
        throw tooOldResourceVersion(at.rv, nodes.oldestWatchableVersion);
      }
    }
    if (!snapshot) throw new ListError(500, 'InternalError', 'no snapshot of the current version');
    const items: NodeObject[] = [];
    let i = firstIndexAfter(snapshot.names, request.startAfter);
    for (; i < snapshot.names.length; i++) {
      if (request.limit > 0 && items.length >= request.limit) break;
      const node = snapshot.objects.get(snapshot.names[i] as string) as NodeObject;
      if (selects(selector, node)) items.push(node);
    }
    let remaining = 0;
    for (let k = i; k < snapshot.names.length; k++) {
      if (selects(selector, snapshot.objects.get(snapshot.names[k] as string) as NodeObject)) remaining++;
    }
    const metadata: { [key: string]: Json } = { resourceVersion: String(snapshot.rv) };
    const last = items[items.length - 1];
    if (remaining > 0 && last) {
      metadata.continue = encodeContinue(snapshot.rv, last.metadata.name);
      // The real server counts the rest only when it need not filter.
      if (!query.get('fieldSelector')) metadata.remainingItemCount = remaining;
    }
    if (table) {
      sendJson(res, 200, nodeTable(items, metadata, !request.startAfter));
      return;
    }
    sendJson(res, 200, {
      kind: 'NodeList',
      apiVersion: 'v1',
      metadata,
      items: items as unknown as Json[],
    });
  };

  const readBody = (req: http.IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          reject(new PatchError(413, 'RequestEntityTooLarge', 'request body too large'));
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  const serveWatch = (req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): void => {
    const selector = parseFieldSelector(query.get('fieldSelector') ?? undefined);
    const rvText = query.get('resourceVersion') ?? '';
    const bookmarks = query.get('allowWatchBookmarks') === 'true' || query.get('allowWatchBookmarks') === '1';
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '0');
    const match = query.get('resourceVersionMatch') ?? '';
    const initialEvents = query.get('sendInitialEvents') === 'true';
    // The real server's validation of watch parameters (WatchList: sendInitialEvents needs both of these).
    if (initialEvents && (!bookmarks || match !== 'NotOlderThan')) {
      throw new ListError(
        422,
        'Invalid',
        'sendInitialEvents requires allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan',
      );
    }
    if (match !== '' && !initialEvents) {
      throw new ListError(
        400,
        'BadRequest',
        'resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided',
      );
    }
    const table = wantsTable(req.headers.accept);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    let columnsSent = false;
    const send = (type: string, object: unknown): void => {
      if (res.writableEnded) return;
      let body = object;
      if (table && (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED')) {
        body = nodeTable([object as NodeObject], {}, !columnsSent);
        columnsSent = true;
      }
      res.write(`${JSON.stringify({ type, object: body })}\n`);
    };
    const bookmark = (annotations?: Record<string, string>): void => {
      send('BOOKMARK', {
        kind: 'Node',
        apiVersion: 'v1',
        metadata: {
          resourceVersion: String(nodes.resourceVersion),
          ...(annotations ? { annotations } : {}),
        },
      });
    };
    let backlog: HistoryEntry[] | undefined;
    if (rvText === '' || rvText === '0' || initialEvents) {
      // "Any"/"most recent": synthetic ADDED events for the current state, then changes.
      backlog = nodes.list().map((object) => ({ rv: nodes.resourceVersion, type: 'ADDED' as const, object }));
    } else {
      const rv = Number(rvText);
      if (!Number.isInteger(rv) || rv < 0) {
        send('ERROR', status(400, 'BadRequest', `invalid resourceVersion ${JSON.stringify(rvText)}`));
        res.end();
        return;
      }
      backlog = nodes.since(rv);
      if (backlog === undefined) {
        // Like the real server: the watch is accepted, then an ERROR event with a 410 Status, then the end.
        send(
          'ERROR',
          status(410, 'Expired', `too old resource version: ${rv} (${nodes.oldestWatchableVersion})`),
        );
        res.end();
        return;
      }
    }
    let bookmarkTimer: NodeJS.Timeout | undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    const entry = {
      res,
      bookmarks,
      /** Clean end (the chunked body completes), or abrupt (the connection drops, as in a crash). */
      end: (abrupt = false): void => {
        unsubscribe();
        clearInterval(bookmarkTimer);
        clearTimeout(timeoutTimer);
        watches.delete(entry);
        if (abrupt) res.destroy();
        else if (!res.writableEnded) res.end();
      },
    };
    const unsubscribe = nodes.subscribe((e) => {
      if (selects(selector, e.object)) send(e.type, e.object);
    });
    for (const e of backlog) if (selects(selector, e.object)) send(e.type, e.object);
    // WatchList: the end of the initial state is a bookmark with this annotation.
    if (initialEvents) bookmark({ 'k8s.io/initial-events-end': 'true' });
    watches.add(entry);
    if (bookmarks && bookmarkIntervalMs > 0)
      bookmarkTimer = setInterval(() => bookmark(), bookmarkIntervalMs);
    // The real server sends a last bookmark when it ends a watch at its timeout, so the client resumes from there.
    if (timeoutSeconds > 0) {
      timeoutTimer = setTimeout(() => {
        if (bookmarks) bookmark();
        entry.end();
      }, timeoutSeconds * 1000);
    }
    req.on('close', () => entry.end());
    res.on('close', () => entry.end());
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = (req.method ?? 'GET').toUpperCase();
    const pathname = url.pathname.replace(/\/+$/, '') || '/';
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const record: RecordedRequest = {
      method,
      path: pathname,
      query: Object.fromEntries(url.searchParams),
      watch,
      outcome: 200,
    };
    const contentType = req.headers['content-type'];
    if (contentType) record.contentType = contentType;
    requests.push(record);

    if (token !== null && req.headers.authorization !== `Bearer ${token}`) {
      record.outcome = 401;
      sendStatus(res, 401, 'Unauthorized');
      return;
    }
    const fault = faultList.find(
      (f) => f.remaining > 0 && matches(f.match, method, pathname, watch, url.searchParams),
    );
    if (fault) {
      fault.remaining--;
      if (fault.remaining === 0) faultList.splice(faultList.indexOf(fault), 1);
      if (fault.kind === 'hang') {
        record.outcome = 'hang';
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      record.outcome = fault.status;
      const messages: Record<number, string> = {
        409: 'Operation cannot be fulfilled: the object has been modified (injected fault)',
        500: 'Internal error (injected fault)',
      };
      sendStatus(res, fault.status, messages[fault.status] ?? `injected fault ${fault.status}`);
      return;
    }

    const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    try {
      if (method === 'GET' && pathname === '/version') {
        sendJson(res, 200, VERSION_INFO);
        return;
      }
      if (method === 'GET' && pathname === '/api') {
        sendJson(res, 200, apiVersions(`${host}:${port}`));
        return;
      }
      if (method === 'GET' && pathname === '/apis') {
        sendJson(res, 200, API_GROUP_LIST);
        return;
      }
      if (method === 'GET' && pathname === '/api/v1') {
        sendJson(res, 200, CORE_V1_RESOURCES);
        return;
      }
      if (parts[0] === 'api' && parts[1] === 'v1' && parts[2] === 'nodes') {
        const name = parts[3];
        if (name === undefined && method === 'GET') {
          if (watch) {
            record.outcome = 'watch';
            serveWatch(req, res, url.searchParams);
            return;
          }
          serveList(res, url.searchParams, wantsTable(req.headers.accept));
          return;
        }
        if (name !== undefined && parts.length <= 5) {
          const sub = parts[4];
          if (sub !== undefined && sub !== 'status') {
            sendStatus(res, 404, `the server could not find the requested resource (nodes/${sub})`);
            record.outcome = 404;
            return;
          }
          if (method === 'GET') {
            const node = nodes.get(name);
            if (!node) {
              record.outcome = 404;
              sendStatus(res, 404, `nodes "${name}" not found`, { name, kind: 'nodes' });
              return;
            }
            if (wantsTable(req.headers.accept)) {
              sendJson(res, 200, nodeTable([node], { resourceVersion: node.metadata.resourceVersion ?? '' }));
              return;
            }
            sendJson(res, 200, node as unknown as Json);
            return;
          }
          if (method === 'PATCH') {
            const text = await readBody(req);
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch {
              throw new PatchError(400, 'BadRequest', 'the patch body is not JSON');
            }
            record.body = body;
            const options: { subresource?: 'status'; contentType?: string } = {
              contentType: (contentType ?? '').split(';')[0]?.trim() ?? '',
            };
            if (sub === 'status') options.subresource = 'status';
            sendJson(res, 200, nodes.patch(name, body, options) as unknown as Json);
            return;
          }
          if (method === 'DELETE' && sub === undefined) {
            const node = nodes.get(name);
            if (!node || !nodes.delete(name))
              throw new PatchError(404, 'NotFound', `nodes "${name}" not found`);
            // As the real server: the object as it was deleted (nodes have no finalizers to wait for).
            sendJson(res, 200, node as unknown as Json);
            return;
          }
          record.outcome = 405;
          sendStatus(res, 405, `method ${method} is not supported on nodes here`);
          return;
        }
      }
      if (
        method === 'GET' &&
        parts.length === 6 &&
        parts[0] === 'api' &&
        parts[1] === 'v1' &&
        parts[2] === 'namespaces' &&
        parts[4] === 'pods'
      ) {
        const pod = pods.get(parts[3] ?? '', parts[5] ?? '');
        if (!pod) {
          record.outcome = 404;
          sendStatus(res, 404, `pods "${parts[5]}" not found`, { name: parts[5], kind: 'pods' });
          return;
        }
        sendJson(res, 200, pod as unknown as Json);
        return;
      }
      record.outcome = 404;
      sendStatus(res, 404, `the server could not find the requested resource (${method} ${pathname})`);
    } catch (err) {
      const e = err instanceof PatchError ? err : new PatchError(500, 'InternalError', String(err));
      record.outcome = e.status;
      const details = err instanceof ListError ? err.details : undefined;
      if (!res.headersSent) sendStatus(res, e.status, e.message, details, e.reason);
      else res.destroy();
    }
  };

  const tls = options.tls ?? true;
  const dir = makeRunTempDir('kubeapi');
  const cert = tls ? await makeServingCert(host, dir) : undefined;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendStatus(res, 500, String(err));
    });
  };
  const server = cert
    ? https.createServer({ cert: cert.cert, key: cert.key }, onRequest)
    : http.createServer(onRequest);
  server.on('connection', (socket: import('node:net').Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  let port = options.port ?? 0;
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  const shutdown = (): Promise<void> =>
    new Promise((resolve) => {
      for (const w of [...watches]) w.end(true);
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
      // Watches and hanging requests would keep close() waiting: drop every connection, as a crash does.
      for (const socket of sockets) socket.destroy();
      hanging.clear();
    });

  await listen();
  const url = `${cert ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfigPath, kubeconfigText(url, token, cert?.cert), { mode: 0o600 });
  let stopped = false;

  return {
    url,
    host,
    port,
    kubeconfigPath,
    token,
    ca: cert?.cert,
    nodes,
    pods,
    faults,
    requests,
    openWatches: () => watches.size,
    sendBookmarks() {
      for (const w of watches) {
        if (w.bookmarks && !w.res.writableEnded) {
          w.res.write(
            `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(nodes.resourceVersion) } } })}\n`,
          );
        }
      }
    },
    closeWatches() {
      for (const w of [...watches]) w.end();
    },
    async restart(restartOptions = {}) {
      await shutdown();
      if (restartOptions.forgetHistory) nodes.compact();
      if (restartOptions.downMs) await new Promise((r) => setTimeout(r, restartOptions.downMs));
      await listen();
    },
    pause: shutdown,
    resume: listen,
    async stop() {
      if (stopped) return;
      stopped = true;
      await shutdown();
      removeRunTempDir(dir);
    },
  };
}
