// `weftctl status`: reads the local weftd's /status (at --healthz-ip:--healthz-port, the same flags and
// FLANNELD_*/WEFT_* env vars as weftd) and prints it as a table or JSON. The document is built in
// src/observe/status.ts, parsed and rendered in ./render/; this file parses flags, fetches, and turns failures
// into one clear line.
import * as http from 'node:http';
import { flagsFromEnv, HEALTH_FLAGS } from '../../src/config/options.js';
import { isIp } from '../../src/ip/index.js';
import type { StatusDoc } from '../../src/observe/status.js';
import {
  type CommandIo,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  OUTPUT_OPTION,
  processIo,
  type WeftctlCommand,
} from './io.js';
import { parseStatusDoc, renderStatusTable, StatusDocumentError } from './render/index.js';

export interface StatusArgs {
  'healthz-ip'?: string;
  'healthz-port'?: number;
  output: 'table' | 'json';
  'timeout-ms': number;
  /** Peers to show (weftd's default page when absent) and where to start. */
  limit?: number;
  offset?: number;
}

export type StatusIo = CommandIo;
export { EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE };

/** Why /status could not be read; the message is what the user sees. */
export class StatusFetchError extends Error {
  override name = 'StatusFetchError';
}

/** The daemon listens on a wildcard by default; talk to it over loopback. */
export function connectAddress(listenIp: string): string {
  if (listenIp === '0.0.0.0') return '127.0.0.1';
  if (listenIp === '::' || listenIp === '::0') return '::1';
  return listenIp;
}

/** GET `http://host:port/status` (one page of peers when `page` says), parsed and validated. */
export function fetchStatus(
  host: string,
  port: number,
  timeoutMs: number,
  page: { limit?: number; offset?: number } = {},
): Promise<StatusDoc> {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const query = new URLSearchParams();
  if (page.limit !== undefined) query.set('limit', String(page.limit));
  if (page.offset !== undefined) query.set('offset', String(page.offset));
  const path = query.size > 0 ? `/status?${query}` : '/status';
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host, port, path, timeout: timeoutMs, headers: { Accept: 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 16 * 1024 * 1024) {
            req.destroy(
              new StatusFetchError(`the answer from ${where}/status is larger than 16 MiB; is that weftd?`),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            reject(
              new StatusFetchError(
                `weftd at ${where} answered /status with HTTP ${res.statusCode ?? '?'}: ${body.trim().slice(0, 300)}`,
              ),
            );
            return;
          }
          let json: unknown;
          try {
            json = JSON.parse(body);
          } catch {
            reject(new StatusFetchError(`the answer from ${where}/status is not JSON; is that weftd?`));
            return;
          }
          try {
            resolve(parseStatusDoc(json));
          } catch (err) {
            const detail = err instanceof StatusDocumentError ? err.message : String(err);
            reject(
              new StatusFetchError(
                `the answer from ${where}/status is not a weft status document: ${detail}`,
              ),
            );
          }
        });
        res.on('error', (err) =>
          reject(new StatusFetchError(`reading ${where}/status failed: ${err.message}`)),
        );
      },
    );
    req.on('timeout', () => {
      req.destroy(new StatusFetchError(`weftd at ${where} did not answer within ${timeoutMs} ms`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof StatusFetchError) reject(err);
      else if (err.code === 'ECONNREFUSED') {
        reject(
          new StatusFetchError(
            `weftd is not running: nothing listens on ${where} (check --healthz-ip/--healthz-port match weftd's)`,
          ),
        );
      } else reject(new StatusFetchError(`cannot reach weftd at ${where}: ${err.code ?? err.message}`));
    });
  });
}

/** Runs the command; resolves with the exit code. Never throws. */
export async function runStatus(args: StatusArgs, io: StatusIo): Promise<number> {
  let fromEnv: Record<string, unknown>;
  try {
    fromEnv = flagsFromEnv(HEALTH_FLAGS, io.env);
  } catch (err) {
    io.stderr(`weftctl status: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_USAGE;
  }
  const port = args['healthz-port'] ?? fromEnv['healthz-port'] ?? 0;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    io.stderr(`weftctl status: --healthz-port must be an integer 0..65535, found ${JSON.stringify(port)}\n`);
    return EXIT_USAGE;
  }
  const ip = String(args['healthz-ip'] ?? fromEnv['healthz-ip'] ?? '127.0.0.1');
  if (!isIp(ip)) {
    io.stderr(`weftctl status: --healthz-ip must be an IP address, found ${JSON.stringify(ip)}\n`);
    return EXIT_USAGE;
  }
  const timeoutMs = args['timeout-ms'];
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    io.stderr(
      `weftctl status: --timeout-ms must be a positive integer, found ${JSON.stringify(timeoutMs)}\n`,
    );
    return EXIT_USAGE;
  }
  for (const flag of ['limit', 'offset'] as const) {
    const v = args[flag];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
      io.stderr(`weftctl status: --${flag} must be a non-negative integer, found ${JSON.stringify(v)}\n`);
      return EXIT_USAGE;
    }
  }
  if (port === 0) {
    io.stderr(
      "weftctl status: weftd's health server is off (--healthz-port=0). Start weftd with --healthz-port=<port> " +
        '(or FLANNELD_HEALTHZ_PORT) and give weftctl the same port.\n',
    );
    return EXIT_UNAVAILABLE;
  }
  let doc: StatusDoc;
  try {
    doc = await fetchStatus(connectAddress(ip), port, timeoutMs, { limit: args.limit, offset: args.offset });
  } catch (err) {
    io.stderr(`weftctl status: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_UNAVAILABLE;
  }
  if (args.output === 'json') io.stdout(`${JSON.stringify(doc, null, 2)}\n`);
  else io.stdout(renderStatusTable(doc, io.now?.() ?? new Date()));
  return EXIT_OK;
}

export function statusCommand(io: StatusIo = processIo): WeftctlCommand {
  return {
    path: ['status'],
    describe: "show this node's lease, backend and peers (with probe health) from the local weftd",
    options: [
      {
        name: 'healthz-ip',
        type: 'string',
        describe: "weftd's --healthz-ip (0.0.0.0 means ask 127.0.0.1) [env FLANNELD_HEALTHZ_IP]",
      },
      {
        name: 'healthz-port',
        type: 'number',
        describe: "weftd's --healthz-port (0: the server is off) [env FLANNELD_HEALTHZ_PORT]",
      },
      OUTPUT_OPTION,
      {
        name: 'limit',
        type: 'number',
        describe: 'show at most this many peers (weftd sends 500 unless asked; the summary counts all)',
      },
      { name: 'offset', type: 'number', describe: 'show peers from this index on (sorted by subnet)' },
      { name: 'timeout-ms', type: 'number', default: 5000, describe: 'how long to wait for weftd' },
    ],
    run: (values) => runStatus(values as unknown as StatusArgs, io),
  };
}
