// Helpers for the etcd subnet manager's integration tests and benchmark (test-only: production code never
// imports this): a log capture, a recorder that applies watch batches, and a fixture that runs one etcd and cleans up after every test.
import { Writable } from 'node:stream';
import pino from 'pino';
import { type NetworkConfig, parseNetworkConfigText } from '../src/config/index.js';
import type { Lease, LeaseWatchBatch } from '../src/lease/index.js';
import { type Logger, silentLogger } from '../src/log/index.js';
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from '../src/subnet/etcd/manager.js';
import { type EtcdServer, etcdctl, startEtcd } from './etcd.js';
import { FaultProxy } from './fault-proxy.js';

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

export interface StoredKey {
  /** Key suffix after `<prefix>/subnets/`. */
  key: string;
  value: string;
  /** Attached etcd lease ID (decimal text); undefined for a reservation. */
  lease: string | undefined;
}

/** What etcdctl sees under `<prefix>/subnets/` (keys, values, attached lease IDs). */
export async function storedLeases(endpoint: string, prefix: string): Promise<StoredKey[]> {
  const res = await etcdctl(endpoint, ['get', '--prefix', `${prefix}/subnets/`, '-w', 'json']);
  // lease IDs are 64-bit: keep them as text.
  const safe = res.stdout.replace(/"lease":(\d+)/g, '"lease":"$1"');
  const parsed = JSON.parse(safe) as { kvs?: { key: string; value: string; lease?: string }[] };
  return (parsed.kvs ?? []).map((kv) => ({
    key: Buffer.from(kv.key, 'base64').toString('utf8').slice(`${prefix}/subnets/`.length),
    value: Buffer.from(kv.value, 'base64').toString('utf8'),
    lease: kv.lease,
  }));
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

  /** Waits until the initial list (the first snapshot) has arrived, so later writes are incremental events. */
  async ready(timeoutMs = 15_000): Promise<void> {
    if (!(await this.until(() => this.batches.some((b) => b.type === 'snapshot'), timeoutMs)))
      throw new Error(`no initial snapshot from the lease watch within ${timeoutMs} ms`);
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

/**
 * One real etcd for a test file. Each test takes a fresh key prefix; the managers, proxies and watches it makes
 * are closed by `cleanup()` (run it after each test), newest first.
 */
export class EtcdManagerFixture {
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  private prefixCounter = 0;

  private constructor(
    readonly etcd: EtcdServer,
    /** Names the prefixes: `/weft-<name>-<n>/network`. */
    private readonly name: string,
  ) {}

  static async start(name: string): Promise<EtcdManagerFixture> {
    return new EtcdManagerFixture(await startEtcd(), name);
  }

  /** A key prefix no other test of this file uses. */
  newPrefix(): string {
    this.prefixCounter += 1;
    return `/weft-${this.name}-${this.prefixCounter}/network`;
  }

  /** Runs `cleanup` in the next `cleanup()`. */
  defer(cleanup: () => Promise<void> | void): void {
    this.cleanups.push(cleanup);
  }

  /** A silent manager on `prefix` against etcd (or `extra.endpoints`), closed after the test. */
  manager(prefix: string, extra: Partial<EtcdSubnetManagerOptions> = {}): EtcdSubnetManager {
    const m = new EtcdSubnetManager({
      endpoints: [this.etcd.endpoint],
      prefix,
      renewMargin: 60,
      logger: silentLogger(),
      ...extra,
    });
    this.defer(() => m.close());
    return m;
  }

  /** A fault-injecting TCP proxy in front of etcd (testkit/fault-proxy.ts), closed after the test. */
  async proxy(): Promise<FaultProxy> {
    const proxy = await FaultProxy.start(this.etcd.endpoint);
    this.defer(() => proxy.close());
    return proxy;
  }

  /** Writes `<prefix>/config` and returns it parsed. */
  async putConfig(prefix: string, config: Record<string, unknown>): Promise<NetworkConfig> {
    const text = JSON.stringify(config);
    await etcdctl(this.etcd.endpoint, ['put', `${prefix}/config`, text]);
    return parseNetworkConfigText(text);
  }

  /** Runs what the test deferred, newest first. */
  async cleanup(): Promise<void> {
    for (const c of this.cleanups.splice(0).reverse()) await c();
  }

  async stop(): Promise<void> {
    await this.cleanup();
    await this.etcd.stop();
  }
}
