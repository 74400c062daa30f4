// Helpers for the etcd subnet manager's integration tests and benchmark: a log capture, a TCP proxy that
// can cut a client off from etcd while etcd keeps running, and a recorder that applies watch batches.
import * as net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Lease, LeaseWatchBatch } from '../../lease/index.js';
import type { Logger } from '../../log/index.js';

export interface CapturedLogs {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Lines whose `msg` matches. */
  matching(msg: RegExp): Record<string, unknown>[];
  /** The raw text written (to check that no secret was ever logged). */
  text(): string;
}

/** A pino logger that keeps every line in memory (JSON-parsed). */
export function captureLogs(level = 'debug'): CapturedLogs {
  const lines: Record<string, unknown>[] = [];
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString('utf8');
      chunks.push(text);
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          lines.push({ msg: line });
        }
      }
      done();
    },
  });
  const logger = pino({ level }, sink);
  return {
    logger,
    lines,
    matching: (msg) => lines.filter((l) => typeof l.msg === 'string' && msg.test(l.msg)),
    text: () => chunks.join(''),
  };
}

/**
 * A loopback TCP proxy in front of one etcd endpoint. `cut()` closes every connection and refuses new
 * ones (the client sees etcd as down while it keeps serving others); `restore()` accepts again.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    private port: number,
  ) {}

  static async start(target: string): Promise<TcpProxy> {
    const url = new URL(target);
    const proxy = new TcpProxy(url.hostname, Number(url.port), 0);
    await proxy.listen();
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private listen(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop);
      upstream.on('error', drop);
      client.on('close', drop);
      upstream.on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        const addr = server.address();
        if (addr && typeof addr !== 'string') this.port = addr.port;
        resolve();
      });
    });
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restore(): Promise<void> {
    if (!this.server) await this.listen();
  }

  async close(): Promise<void> {
    await this.cut();
  }
}

/** Consumes a lease watch in the background, applying every batch to a map of current leases. */
export class LeaseWatchRecorder {
  readonly batches: LeaseWatchBatch[] = [];
  readonly current = new Map<string, Lease>();
  error: unknown;
  private readonly done: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(iterable: AsyncIterable<LeaseWatchBatch>) {
    this.done = (async () => {
      try {
        for await (const batch of iterable) {
          this.batches.push(batch);
          if (batch.type === 'snapshot') {
            this.current.clear();
            for (const l of batch.leases) this.current.set(l.key, l);
          } else {
            for (const e of batch.events) {
              if (e.type === 'removed') this.current.delete(e.lease.key);
              else this.current.set(e.lease.key, e.lease);
            }
          }
          for (const w of this.waiters.splice(0)) w();
        }
      } catch (err) {
        this.error = err;
      }
    })();
  }

  /** Waits (bounded) until `predicate` holds after some batch; returns whether it did. */
  async until(predicate: () => boolean, timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** Every event (from incremental batches and snapshot diffs) in order. */
  events(): { type: string; key: string; lease: Lease; snapshot: boolean }[] {
    return this.batches.flatMap((b) =>
      b.events.map((e) => ({
        type: e.type,
        key: e.lease.key,
        lease: e.lease,
        snapshot: b.type === 'snapshot',
      })),
    );
  }

  finished(): Promise<void> {
    return this.done;
  }
}
