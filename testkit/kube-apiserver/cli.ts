// The test API server as its own process, so it can run inside a network namespace of a netns cluster
// (`ip netns exec <ns> node dist-dev/testkit/kube-apiserver/cli.js …`): nodes in other namespaces reach it over the
// underlay, nothing listens in the root namespace. The test drives its store through an admin HTTP API on a
// unix socket (a filesystem path works across network namespaces). See `remote.ts` for the test side.
//
//   node dist-dev/testkit/kube-apiserver/cli.js --host=192.168.77.101 --socket=/tmp/…/kubeapi.sock \
//     --kubeconfig-out=/tmp/…/kubeconfig [--port=6443] [--bookmark-interval-ms=1000] [--history-limit=100]
//
// Admin API (JSON bodies and answers; errors are `{error}` with a 4xx/5xx status):
//   GET    /info                     {url, port, resourceVersion, openWatches, listening}
//   GET    /nodes                    NodeObject[]
//   GET    /nodes/<name>             NodeObject (404 when absent)
//   POST   /nodes                    add a NodeObject (as a kubelet registering) → the stored node
//   PATCH  /nodes/<name>/annotations {key: value | null} (null removes) → the stored node
//   DELETE /nodes/<name>             delete (as `kubectl delete node`)
//   POST   /restart                  {downMs?, forgetHistory?}: stop and listen again on the same port, same store
//   POST   /pause, /resume           stop listening (connections dropped, store kept; the admin API stays up) / listen again
//   POST   /compact                  forget the watch history: watches from older versions get 410 Gone
//   POST   /close-watches            end every watch cleanly (as the server's watch timeout does)
//   GET    /requests?since=<n>       {total, requests: RecordedRequest[] from index n}
import * as fs from 'node:fs';
import * as http from 'node:http';
import { type FakeApiServer, type NodeObject, startFakeApiServer } from './server.js';
import { isObject, PatchError } from './strategic-merge.js';

class CliArgumentError extends Error {
  override name = 'CliArgumentError';
}

interface CliOptions {
  host: string;
  port: number;
  socket: string;
  kubeconfigOut: string;
  bookmarkIntervalMs: number;
  historyLimit: number;
}

function integerOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new CliArgumentError(
      `--${name}=${JSON.stringify(text)}: expected an integer from ${min} to ${max}`,
    );
  }
  return value;
}

/** Parses `--name=value` arguments; every problem names the argument. */
function parseCliArgs(argv: readonly string[]): CliOptions {
  const values = new Map<string, string>();
  const known = ['host', 'port', 'socket', 'kubeconfig-out', 'bookmark-interval-ms', 'history-limit'];
  for (const arg of argv) {
    const m = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (!m) throw new CliArgumentError(`argument ${JSON.stringify(arg)}: expected --name=value`);
    const [, name = '', value = ''] = m;
    if (!known.includes(name))
      throw new CliArgumentError(
        `unknown option --${name} (known: ${known.map((k) => `--${k}`).join(', ')})`,
      );
    values.set(name, value);
  }
  const required = (name: string): string => {
    const value = values.get(name);
    if (value === undefined || value === '') throw new CliArgumentError(`--${name} is required`);
    return value;
  };
  return {
    host: values.get('host') || '127.0.0.1',
    port: integerOption('port', values.get('port') ?? '0', 0, 65535),
    socket: required('socket'),
    kubeconfigOut: required('kubeconfig-out'),
    bookmarkIntervalMs: integerOption(
      'bookmark-interval-ms',
      values.get('bookmark-interval-ms') ?? '1000',
      0,
      600_000,
    ),
    historyLimit: integerOption('history-limit', values.get('history-limit') ?? '100', 0, 1_000_000),
  };
}

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 1024 * 1024) throw new AdminError(413, 'request body larger than 1 MiB');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AdminError(400, 'the request body is not JSON');
  }
}

function annotationPatch(body: unknown): Record<string, string | null> {
  if (!isObject(body)) throw new AdminError(400, 'expected a JSON object of annotations');
  const out: Record<string, string | null> = {};
  for (const [key, value] of Object.entries(body)) {
    if (value !== null && typeof value !== 'string')
      throw new AdminError(400, `annotation ${JSON.stringify(key)}: expected a string or null`);
    out[key] = value;
  }
  return out;
}

function restartOptions(body: unknown): { downMs?: number; forgetHistory?: boolean } {
  if (!isObject(body)) throw new AdminError(400, 'expected a JSON object {downMs?, forgetHistory?}');
  const out: { downMs?: number; forgetHistory?: boolean } = {};
  if (body.downMs !== undefined) {
    if (
      typeof body.downMs !== 'number' ||
      !Number.isInteger(body.downMs) ||
      body.downMs < 0 ||
      body.downMs > 60_000
    )
      throw new AdminError(400, 'downMs: expected an integer from 0 to 60000');
    out.downMs = body.downMs;
  }
  if (body.forgetHistory !== undefined) {
    if (typeof body.forgetHistory !== 'boolean')
      throw new AdminError(400, 'forgetHistory: expected a boolean');
    out.forgetHistory = body.forgetHistory;
  }
  return out;
}

/** The admin API's request handler over one server. */
function adminHandler(
  server: FakeApiServer,
  state: { listening: boolean },
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const send = (res: http.ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = (req.method ?? 'GET').toUpperCase();
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const [first, name, sub] = parts;
    if (method === 'GET' && first === 'info' && parts.length === 1) {
      send(res, 200, {
        url: server.url,
        port: server.port,
        resourceVersion: server.nodes.resourceVersion,
        openWatches: server.openWatches(),
        listening: state.listening,
      });
      return;
    }
    if (first === 'nodes') {
      if (parts.length === 1 && method === 'GET') return send(res, 200, server.nodes.list());
      if (parts.length === 1 && method === 'POST') {
        const body = await readJson(req);
        if (!isObject(body) || !isObject(body.metadata) || typeof body.metadata.name !== 'string')
          throw new AdminError(400, 'expected a Node object with metadata.name');
        const added = server.nodes.add(body as unknown as NodeObject);
        log('node-added', { node: added.metadata.name, resourceVersion: added.metadata.resourceVersion });
        return send(res, 201, added);
      }
      if (name !== undefined && parts.length === 2 && method === 'GET') {
        const node = server.nodes.get(name);
        if (!node) throw new AdminError(404, `no node ${JSON.stringify(name)}`);
        return send(res, 200, node);
      }
      if (name !== undefined && parts.length === 2 && method === 'DELETE') {
        if (!server.nodes.delete(name)) throw new AdminError(404, `no node ${JSON.stringify(name)}`);
        log('node-deleted', { node: name, resourceVersion: server.nodes.resourceVersion });
        return send(res, 200, { deleted: name });
      }
      if (name !== undefined && sub === 'annotations' && parts.length === 3 && method === 'PATCH') {
        const patch = annotationPatch(await readJson(req));
        const node = server.nodes.annotate(name, patch);
        log('node-annotated', {
          node: name,
          keys: Object.keys(patch),
          resourceVersion: node.metadata.resourceVersion,
        });
        return send(res, 200, node);
      }
    }
    if (method === 'POST' && first === 'restart' && parts.length === 1) {
      const options = restartOptions(await readJson(req));
      log('restarting', options);
      state.listening = false;
      await server.restart(options);
      state.listening = true;
      log('restarted', { url: server.url });
      return send(res, 200, { url: server.url, port: server.port });
    }
    if (method === 'POST' && first === 'pause' && parts.length === 1) {
      state.listening = false;
      await server.pause();
      log('paused');
      return send(res, 200, { listening: false });
    }
    if (method === 'POST' && first === 'resume' && parts.length === 1) {
      if (!state.listening) await server.resume();
      state.listening = true;
      log('resumed', { url: server.url });
      return send(res, 200, { listening: true });
    }
    if (method === 'POST' && first === 'compact' && parts.length === 1) {
      server.nodes.compact();
      log('compacted', { oldestWatchableVersion: server.nodes.oldestWatchableVersion });
      return send(res, 200, { oldestWatchableVersion: server.nodes.oldestWatchableVersion });
    }
    if (method === 'POST' && first === 'close-watches' && parts.length === 1) {
      const closed = server.openWatches();
      server.closeWatches();
      return send(res, 200, { closed });
    }
    if (method === 'GET' && first === 'requests' && parts.length === 1) {
      const sinceText = url.searchParams.get('since') ?? '0';
      const since = Number(sinceText);
      if (!Number.isInteger(since) || since < 0)
        throw new AdminError(400, `since=${JSON.stringify(sinceText)}: expected a non-negative integer`);
      return send(res, 200, { total: server.requests.length, requests: server.requests.slice(since) });
    }
    throw new AdminError(404, `no admin route ${method} ${url.pathname}`);
  };
  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof AdminError || err instanceof PatchError ? err.status : 500;
      if (!res.headersSent) send(res, status, { error: err instanceof Error ? err.message : String(err) });
      else res.destroy();
    });
  };
}

async function main(): Promise<void> {
  let options: CliOptions;
  try {
    options = parseCliArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`kube-apiserver cli: ${(err as Error).message}\n`);
    process.exit(2);
  }
  // Our own signal handlers first: the harness's run registry then leaves SIGTERM to us and cleans on exit.
  let stopping: (() => Promise<void>) | undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      log('stopping', { signal });
      void (stopping ? stopping() : Promise.resolve()).finally(() => process.exit(0));
    });
  }
  const server = await startFakeApiServer({
    host: options.host,
    port: options.port,
    bookmarkIntervalMs: options.bookmarkIntervalMs,
    historyLimit: options.historyLimit,
  });
  fs.copyFileSync(server.kubeconfigPath, options.kubeconfigOut);
  fs.chmodSync(options.kubeconfigOut, 0o600);
  const state = { listening: true };
  fs.rmSync(options.socket, { force: true });
  const admin = http.createServer(adminHandler(server, state));
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(options.socket, () => {
      admin.off('error', reject);
      resolve();
    });
  });
  stopping = async () => {
    admin.close();
    fs.rmSync(options.socket, { force: true });
    await server.stop();
  };
  log('ready', {
    url: server.url,
    port: server.port,
    socket: options.socket,
    kubeconfig: options.kubeconfigOut,
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`kube-apiserver cli failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
