// The observability HTTP server (`--healthz-ip:--healthz-port`): /healthz, /readyz, /metrics, /status.
// Plain node:http, GET/HEAD only, small timeouts: it must answer even when the rest of the daemon struggles.
//
// Who sees what: flannel's `--healthz-ip` defaults to 0.0.0.0, so the server answers the whole network. The
// health verdicts and the aggregate metrics are fine there (kubelet and Prometheus need them). The peer
// inventory is not: `/status` (every node's subnet, public IP, VTEP MAC and health) and the per-peer metric
// series map the cluster for anyone on the underlay. They are served only to clients on this host (a loopback
// source, or a connection from one of the host's own addresses to itself) unless the operator passes
// `--expose-status`; other clients get 403 for `/status` and `/metrics` without the `{peer=…}` series.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { errorFields, errorMessage } from '../core/index.js';
import type { HealthState, HealthVerdict } from './health.js';
import type { WeftMetrics } from './metrics.js';
import { pageStatusDoc, parseStatusPage, type StatusDoc, StatusQueryError } from './status.js';

export interface ObserveServerOptions {
  /** Address to listen on (flannel's default `0.0.0.0`). */
  host: string;
  /** Port; 0 means off (flannel's `--healthz-port=0`): nothing listens. `'ephemeral'`: any free port (tests). */
  port: number | 'ephemeral';
  health: HealthState;
  metrics: WeftMetrics;
  /** Builds the `/status` document on each request (the server cuts the page the query asks for). */
  status: () => StatusDoc | Promise<StatusDoc>;
  /** Serve `/status` and the per-peer metrics to clients on other hosts too (`--expose-status`; default false). */
  exposeStatus?: boolean;
  logger: Logger;
}

export interface ObserveServer {
  /** Base URL, e.g. `http://127.0.0.1:10244`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The server could not listen (port in use, address not on this host …). */
export class ObserveServerListenError extends Error {
  override name = 'ObserveServerListenError';
}

function verdictBody(name: string, verdict: HealthVerdict): string {
  if (verdict.ok) return 'ok\n';
  return `${name} failed:\n${verdict.reasons.map((r) => `- ${r}\n`).join('')}`;
}

/** True for a client on this host: a loopback source, or the host talking to one of its own addresses. */
export function isLocalClient(remote: string | undefined, local: string | undefined): boolean {
  if (remote === undefined) return false;
  const address = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  if (address === '::1' || /^127\.\d+\.\d+\.\d+$/.test(address)) return true;
  // The kernel picks the destination itself as the source of a connection to a local address; a remote
  // host cannot complete a TCP handshake with our own address as its source.
  return local !== undefined && remote === local;
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Validates the port option: an integer 0..65535 or 'ephemeral'. */
function listenPort(port: number | 'ephemeral'): number {
  if (port === 'ephemeral') return 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ObserveServerListenError(`--healthz-port must be an integer 0..65535, found ${String(port)}`);
  }
  return port;
}

/**
 * Starts the server; resolves once it listens. Resolves `null` when `port` is 0 (the server is off).
 * Rejects with `ObserveServerListenError` when it cannot listen.
 */
export async function startObserveServer(options: ObserveServerOptions): Promise<ObserveServer | null> {
  if (options.port === 0) return null;
  const port = listenPort(options.port);
  const { health, metrics, logger } = options;

  const send = (
    res: http.ServerResponse,
    req: http.IncomingMessage,
    status: number,
    contentType: string,
    body: string,
  ): void => {
    res.writeHead(status, {
      'Content-Type': contentType,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://weftd');
    const path = url.pathname;
    const inventory =
      options.exposeStatus === true || isLocalClient(req.socket.remoteAddress, req.socket.localAddress);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, req, 405, 'text/plain; charset=utf-8', `method ${req.method ?? '?'} not allowed; use GET\n`);
      return;
    }
    switch (path) {
      case '/healthz': {
        const verdict = health.healthz();
        send(res, req, verdict.ok ? 200 : 503, 'text/plain; charset=utf-8', verdictBody('healthz', verdict));
        return;
      }
      case '/readyz': {
        const verdict = health.readyz();
        send(res, req, verdict.ok ? 200 : 503, 'text/plain; charset=utf-8', verdictBody('readyz', verdict));
        return;
      }
      case '/metrics': {
        const text = await metrics.render({ peerDetail: inventory });
        send(res, req, 200, metrics.contentType, text);
        return;
      }
      case '/status': {
        if (!inventory) {
          send(
            res,
            req,
            403,
            'text/plain; charset=utf-8',
            '/status lists every peer of the cluster and is served only to clients on this host; ' +
              'run `weftctl status` on the node, or start weftd with --expose-status to serve it to the network\n',
          );
          return;
        }
        let page: ReturnType<typeof parseStatusPage>;
        try {
          page = parseStatusPage(url.searchParams);
        } catch (err) {
          if (!(err instanceof StatusQueryError)) throw err;
          send(res, req, 400, 'text/plain; charset=utf-8', `${err.message}\n`);
          return;
        }
        const doc = pageStatusDoc(await options.status(), page);
        // Compact above a few hundred peers: indentation would double a 5000-peer answer.
        const body = doc.peers.length > 200 ? JSON.stringify(doc) : JSON.stringify(doc, null, 2);
        send(res, req, 200, 'application/json; charset=utf-8', `${body}\n`);
        return;
      }
      default:
        send(
          res,
          req,
          404,
          'text/plain; charset=utf-8',
          `no such endpoint ${JSON.stringify(path)}; try /healthz, /readyz, /metrics or /status\n`,
        );
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const message = errorMessage(err);
      logger.error({ err: errorFields(err), path: req.url }, 'observe endpoint failed');
      if (!res.headersSent) send(res, req, 500, 'text/plain; charset=utf-8', `internal error: ${message}\n`);
      else res.destroy();
    });
  });
  // Scrapers and probes send tiny requests: slow clients must not hold sockets.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 50;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new ObserveServerListenError(
          `cannot serve health endpoints on ${hostForUrl(options.host)}:${port}: ${err.code ?? err.message}` +
            (err.code === 'EADDRINUSE' ? ' (port in use; pick another --healthz-port)' : '') +
            (err.code === 'EADDRNOTAVAIL' ? ' (address not on this host; check --healthz-ip)' : ''),
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, options.host, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err: errorFields(err) }, 'observe server error'));
  const actualPort = (server.address() as AddressInfo).port;
  const url = `http://${hostForUrl(options.host)}:${actualPort}`;
  logger.info({ url }, 'serving /healthz, /readyz, /metrics and /status');

  let closed: Promise<void> | null = null;
  return {
    url,
    port: actualPort,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
