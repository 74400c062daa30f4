// Helpers for the kube subnet manager's integration tests (test-only: production code never imports this):
// a fixture that runs the test API server with a net-conf.json beside it and builds managers against it,
// a background collector of watch batches, and a bounded wait.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { Lease, LeaseAttrs } from '../src/lease/types.js';
import { createLogger, type Logger } from '../src/log/index.js';
import { KubeSubnetManager, type KubeSubnetManagerOptions } from '../src/subnet/kube/manager.js';
import {
  type FakeApiServer,
  type StartFakeApiServerOptions,
  startFakeApiServer,
} from './kube-apiserver/server.js';
import { makeRunTempDir, removeRunTempDir } from './run.js';

export interface KubeManagerFixtureOptions {
  /** The run temp dir's name (under the run's prefix). */
  tempDirName: string;
  /** The net-conf.json text. */
  netConf: string;
  /** What `acquire` leases with when given no attributes. */
  attrs: LeaseAttrs;
  /** Defaults for every manager (`manager(options)` overrides them). */
  managerDefaults?: Partial<KubeSubnetManagerOptions>;
}

/** The test API server with a net-conf.json beside it, and the managers and signals a test made against it. */
export class KubeManagerFixture {
  private readonly managers: KubeSubnetManager[] = [];
  private readonly aborts: AbortController[] = [];

  private constructor(
    /** The running test API server (`replaceServer` swaps it). */
    public server: FakeApiServer,
    readonly dir: string,
    readonly netConfPath: string,
    private readonly options: KubeManagerFixtureOptions,
  ) {}

  /** Starts the test API server (bookmarks every 200 ms) and writes the net-conf.json its managers read. */
  static async start(options: KubeManagerFixtureOptions): Promise<KubeManagerFixture> {
    const server = await startFakeApiServer({ bookmarkIntervalMs: 200 });
    const dir = makeRunTempDir(options.tempDirName);
    const netConfPath = path.join(dir, 'net-conf.json');
    fs.writeFileSync(netConfPath, options.netConf);
    return new KubeManagerFixture(server, dir, netConfPath, options);
  }

  /** Stops the server and starts another with `options`; `close()` stops the new one. */
  async replaceServer(options: StartFakeApiServerOptions): Promise<FakeApiServer> {
    await this.server.stop();
    this.server = await startFakeApiServer(options);
    return this.server;
  }

  /** A manager for node `n1` against `server`, with short backoffs; closed by `close()`. */
  manager(overrides: Partial<KubeSubnetManagerOptions> = {}): KubeSubnetManager {
    const m = new KubeSubnetManager({
      kubeconfigFile: this.server.kubeconfigPath,
      netConfigPath: this.netConfPath,
      nodeName: 'n1',
      env: {},
      backoff: { initialMs: 20, maxMs: 300 },
      requestTimeoutMs: 3_000,
      ...this.options.managerDefaults,
      ...overrides,
    });
    this.managers.push(m);
    return m;
  }

  /** An abort signal that `close()` aborts. */
  signal(): AbortSignal {
    const a = new AbortController();
    this.aborts.push(a);
    return a.signal;
  }

  /** Reads the network config and acquires node `n1`'s lease. */
  async acquire(m: KubeSubnetManager, attrs: LeaseAttrs = this.options.attrs): Promise<Lease> {
    const config = await m.getNetworkConfig();
    return m.acquireLease({ config, attrs }, this.signal());
  }

  /** Aborts every signal, closes every manager, stops the server and removes the temp dir. */
  async close(): Promise<void> {
    for (const a of this.aborts.splice(0)) a.abort();
    for (const m of this.managers.splice(0)) await m.close();
    await this.server.stop();
    removeRunTempDir(this.dir);
  }
}

function bigintAsText(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** Consumes an async iterable in the background and lets a test wait for a matching item. */
export class Collector<T> {
  readonly items: T[] = [];
  private cursor = 0;
  error: unknown;
  /** Settles when the iterable ends (or fails: then `error` holds why). */
  readonly done: Promise<void>;
  constructor(iterable: AsyncIterable<T>) {
    this.done = (async () => {
      for await (const item of iterable) this.items.push(item);
    })().catch((err: unknown) => {
      this.error = err;
    });
  }
  /** The next item (after the previous match) satisfying `predicate`. */
  async next(predicate: (item: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      for (; this.cursor < this.items.length; this.cursor++) {
        const item = this.items[this.cursor] as T;
        if (predicate(item)) {
          this.cursor++;
          return item;
        }
      }
      if (this.error) throw this.error;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.items, bigintAsText)}`);
  }
}

/**
 * Polls `probe` until it returns something other than undefined or false, bounded in count and time; throws
 * naming `what` when it never does. Never asserts on how long it took.
 */
export async function eventually<T>(
  probe: () => T | undefined | false,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Log lines as parsed JSON objects, for asserting on retries without timing. */
export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly logger: Logger;
  constructor() {
    const lines = this.lines;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    this.logger = createLogger({ level: 'debug', destination: sink, pretty: false });
  }
  matching(text: string): Array<Record<string, unknown>> {
    return this.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes(text));
  }
}
