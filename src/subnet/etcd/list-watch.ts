// Every lease that fits the network config: a list, then a watch from the list's revision. Resumes after a
// disconnect from the last revision seen; after a compaction lists again and emits the difference.

import type { NetworkConfig } from '../../config/index.js';
import { Backoff, errorFields, errorMessage } from '../../core/index.js';
import {
  diffLeases,
  type Lease,
  type LeaseEvent,
  type LeaseWatchBatch,
  leaseAttrsEqual,
  leaseMisfit,
} from '../../lease/index.js';
import type { Logger } from '../../log/index.js';
import type { WatchHealthEvent, WatchLeasesHooks } from '../types.js';
import type { EtcdRpc, WatchEvent } from './grpc/index.js';
import { classifyRecords, parseRecord, toLease } from './records.js';
import type { EtcdLeaseStore, RawLeaseRecord } from './store.js';
import { watchRange } from './watch.js';

export interface LeaseWatchOptions {
  client: EtcdRpc;
  store: EtcdLeaseStore;
  logger: Logger;
  onWatchEvent: (event: WatchHealthEvent) => void;
  /** How often an idle watch asks etcd to confirm it is alive (each answer is a heartbeat). */
  progressRequestMs: number;
}

/**
 * All leases that fit `config`: a snapshot first, then events. After a compaction lists again and emits a
 * snapshot whose `events` are the diff (added, removed, changed attributes). Bad keys/values are skipped
 * with a warning, once per value. Ends when `stop` aborts.
 */
export async function* watchLeaseSet(
  o: LeaseWatchOptions,
  config: NetworkConfig,
  stop: AbortSignal,
  hooks: WatchLeasesHooks = {},
): AsyncGenerator<LeaseWatchBatch> {
  const set = new LeaseSetTracker(o, config);
  let revision: bigint | undefined;
  const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 });
  while (!stop.aborted) {
    if (revision === undefined) {
      let listing: { events: LeaseEvent[]; leases: Lease[]; revision: bigint };
      try {
        listing = await set.relist();
      } catch (err) {
        o.logger.warn({ err: errorFields(err) }, 'cannot list leases from etcd; retrying');
        o.onWatchEvent({ type: 'reconnect', reason: errorMessage(err) });
        await backoff.wait(stop);
        continue;
      }
      backoff.reset();
      revision = listing.revision;
      yield { type: 'snapshot', leases: listing.leases, events: listing.events };
    }
    const it = watchRange(o.client, {
      key: o.store.subnetsPrefix,
      rangeEnd: o.store.subnetsEnd,
      startRevision: revision + 1n,
      signal: stop,
      logger: o.logger,
      probe: () => o.store.ping(),
      onReconnect: (reason) => o.onWatchEvent({ type: 'reconnect', reason }),
      progressRequestMs: o.progressRequestMs,
    });
    for await (const item of it) {
      if (item.type === 'connected') {
        o.onWatchEvent({ type: 'connected', endpoint: item.endpoint });
        hooks.beat?.();
        continue;
      }
      if (item.type === 'alive' || item.type === 'progress') {
        if (item.type === 'progress') revision = item.revision;
        hooks.beat?.();
        continue;
      }
      if (item.type === 'compacted') {
        const reason = `etcd compacted history up to revision ${item.compactRevision} (watch was at ${revision})`;
        o.logger.warn(`${reason}; listing leases again`);
        o.onWatchEvent({ type: 'relist', reason });
        revision = undefined;
        break;
      }
      const events = set.apply(item.events);
      backoff.reset();
      revision = item.revision;
      if (events.length > 0) yield { type: 'events', events };
      else hooks.beat?.();
    }
  }
}

/** The current lease set of one watch, and which keys were skipped at which value (warned once each). */
class LeaseSetTracker {
  private known = new Map<string, Lease>();
  /** Skipped keys → the mod revision they were skipped at. */
  private readonly skipped = new Map<string, string>();

  constructor(
    private readonly o: LeaseWatchOptions,
    private readonly config: NetworkConfig,
  ) {}

  /** Lists again; `events` is the difference from what was known (attributes included). */
  async relist(): Promise<{ events: LeaseEvent[]; leases: Lease[]; revision: bigint }> {
    const list = await this.o.store.list();
    // The watch does not ask etcd for every peer's TTL: the data plane does not need it (see Lease.expiration).
    const { leases, skipped: bad } = await classifyRecords(this.o.store, list.records, this.config, false);
    const byKey = new Map(list.records.map((r) => [r.key, r.modRevision]));
    for (const key of [...this.skipped.keys()]) if (!byKey.has(key)) this.skipped.delete(key);
    for (const s of bad) this.reportSkipped(s.key, byKey.get(s.key) ?? '', s.reason);
    const events = diffLeases(this.known, leases);
    this.known = leases;
    return { events, leases: [...leases.values()], revision: list.revision };
  }

  /** Applies one watch response. Expiries come only from what is already known (no etcd calls). */
  apply(events: WatchEvent[]): LeaseEvent[] {
    const { store } = this.o;
    const puts = events.filter((e) => e.type === 'Put').map((e) => store.toRecord(e.kv));
    const expirations = store.knownExpirations(
      puts.filter((r): r is RawLeaseRecord => r !== undefined).map((r) => r.leaseId),
    );
    const out: LeaseEvent[] = [];
    for (const ev of events) {
      const record = store.toRecord(ev.kv);
      if (!record) continue;
      const old = this.known.get(record.key);
      if (ev.type === 'Delete') {
        this.skipped.delete(record.key);
        if (old) {
          this.known.delete(record.key);
          out.push({ type: 'removed', lease: old });
        }
        continue;
      }
      const parsed = parseRecord(record);
      let reason = parsed.reason;
      let lease: Lease | undefined;
      if (parsed.subnets && parsed.attrs) {
        lease = toLease(record, parsed.subnets, parsed.attrs, expirations.get(record.leaseId));
        const misfit = leaseMisfit(lease, this.config);
        if (misfit) {
          reason = `does not fit the network config: ${misfit}`;
          lease = undefined;
        }
      }
      if (!lease) {
        this.reportSkipped(record.key, record.modRevision, reason ?? 'unreadable');
        if (old) {
          this.known.delete(record.key);
          out.push({ type: 'removed', lease: old });
        }
        continue;
      }
      this.skipped.delete(record.key);
      this.known.set(record.key, lease);
      if (!old) out.push({ type: 'added', lease });
      else if (!leaseAttrsEqual(old.attrs, lease.attrs)) out.push({ type: 'changed', lease });
    }
    return out;
  }

  private reportSkipped(key: string, modRevision: string, reason: string): void {
    if (this.skipped.get(key) === modRevision) return;
    this.skipped.set(key, modRevision);
    this.o.logger.warn({ leaseKey: key, reason }, 'skipping a lease that cannot be used');
    this.o.onWatchEvent({ type: 'skipped', key, reason });
  }
}
