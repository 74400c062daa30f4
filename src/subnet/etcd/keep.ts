// Keeping the own lease: conditional renewal before expiry, a watch on the own key, a periodic ownership
// check (the keeper's heartbeat), and re-acquisition after a loss. A renewal whose reply is lost is read
// back by its grant, never undone blindly: revoking a grant that did attach would delete the own key.

import { Backoff, errorFields, errorMessage } from '../../core/index.js';
import { formatCidr } from '../../ip/index.js';
import {
  decodeLeaseAttrs,
  encodeLeaseAttrs,
  type Lease,
  type LeaseAttrs,
  leaseAttrsEqual,
} from '../../lease/index.js';
import type { Logger } from '../../log/index.js';
import type { AcquireRequest, KeepLeaseHooks, LeaseRenewalOutcome, OwnLeaseChange } from '../types.js';
import { LeaseLostError } from './errors.js';
import type { OwnGrants } from './grants.js';
import type { EtcdRpc, WatchEvent } from './grpc/index.js';
import { describeChange, samePublicAddress } from './records.js';
import type { EtcdLeaseStore, RawLeaseRecord } from './store.js';
import { watchRange } from './watch.js';

export interface LeaseKeeperOptions {
  client: EtcdRpc;
  store: EtcdLeaseStore;
  grants: OwnGrants;
  logger: Logger;
  ttlSeconds: number;
  /** Renew when less than this is left. */
  renewMarginMs: number;
  /** Wait before retrying a failed renewal. */
  renewRetryMs: number;
  /** How often the key is read to confirm it is still ours (each success is a heartbeat). */
  checkIntervalMs: number;
  /** Acquires again after a loss (the previous subnet is asked for). */
  reacquire: (previous: Lease, signal: AbortSignal) => Promise<Lease>;
}

type Guarded = { get: () => Lease; update: (lease: Lease) => void; hooks: KeepLeaseHooks };

export class LeaseKeeper {
  constructor(private readonly o: LeaseKeeperOptions) {}

  /**
   * Renews the lease if its key is still exactly what we wrote (mod revision unchanged): a new etcd lease is
   * attached in one conditional transaction. A reservation (expiration null) is only checked, never given a
   * TTL (flannel #1329). Throws `LeaseLostError` when the key is gone or changed; any other error leaves the
   * key as it was (or renewed by a write whose reply was lost, which the own-key watch then adopts).
   */
  async renew(lease: Lease): Promise<Lease> {
    const { store, grants } = this.o;
    const revision = lease.revision;
    if (revision === undefined) throw new LeaseLostError(lease.key, 'no revision known for this lease');
    if (lease.expiration === null) {
      const check = await store.stillAt(lease.key, revision);
      if (!check.unchanged) throw new LeaseLostError(lease.key, describeChange(check.current));
      return lease;
    }
    const at = Date.now();
    const grant = await store.grant(this.o.ttlSeconds);
    const renewed = (modRevision: string): Lease => {
      for (const stale of grants.attached(lease.key, grant.id)) void store.revokeQuietly(stale);
      const expiration = new Date(at + grant.ttlSeconds * 1000);
      store.rememberExpiration(grant.id, expiration);
      return { ...lease, expiration, revision: modRevision };
    };
    let put: Awaited<ReturnType<EtcdLeaseStore['replaceIfUnchanged']>>;
    try {
      put = await store.replaceIfUnchanged(lease.key, revision, encodeLeaseAttrs(lease.attrs), grant.id);
    } catch (err) {
      // No reply: the write may have committed. Never revoke this grant now; read the key back instead.
      grants.maybe(lease.key, grant.id);
      const read = await store.get(lease.key).catch(() => undefined);
      if (read === undefined) throw err;
      const record = read.record;
      if (record?.leaseId === grant.id) {
        this.o.logger.info({ leaseKey: lease.key }, 'a renewal whose reply was lost had committed');
        return renewed(record.modRevision);
      }
      if (record && (record.modRevision === revision || grants.isOurs(lease.key, record.leaseId))) throw err;
      throw new LeaseLostError(lease.key, describeChange(record));
    }
    if (!put.replaced) {
      const current = put.current;
      if (current && grants.isOurs(lease.key, current.leaseId)) {
        // An earlier renewal whose reply was lost committed after all: the key is ours, renewed by it.
        return this.adopted(lease, current);
      }
      await store.revokeQuietly(grant.id); // refused: this grant is attached to nothing
      throw new LeaseLostError(lease.key, describeChange(current));
    }
    return renewed(put.revision.toString());
  }

  /** The lease as `record` (a write of ours) holds it. */
  private async adopted(lease: Lease, record: RawLeaseRecord): Promise<Lease> {
    const expirations = await this.o.store.expirations([record.leaseId]).catch(() => undefined);
    for (const stale of this.o.grants.attached(lease.key, record.leaseId)) {
      void this.o.store.revokeQuietly(stale);
    }
    const expiration = record.leaseId === '0' ? null : (expirations?.get(record.leaseId) ?? lease.expiration);
    return { ...lease, revision: record.modRevision, expiration };
  }

  /**
   * Keeps the own lease until `stop` aborts: renews it when less than the renew margin is left (retrying on
   * failure), watches its key so a deletion or expiry is noticed at once, checks it every check interval,
   * and after a loss re-acquires (the same subnet when still free) and reports `reacquired`.
   */
  async keep(
    lease: Lease,
    onChange: (change: OwnLeaseChange) => void,
    stop: AbortSignal,
    hooks: KeepLeaseHooks = {},
  ): Promise<void> {
    let current = lease;
    const report = (outcome: LeaseRenewalOutcome): void => hooks.onOutcome?.(outcome);
    while (!stop.aborted) {
      const lost = await this.guard(
        {
          get: () => current,
          update: (updated) => {
            current = updated;
            onChange({ type: 'renewed', lease: updated });
          },
          hooks,
        },
        stop,
      );
      if (lost === undefined) return;
      this.o.logger.error(
        { leaseKey: current.key, reason: lost },
        'own lease lost; re-acquiring (the same subnet if it is still free)',
      );
      report({ type: 'lost', lease: current, reason: lost });
      this.o.grants.forget(current.key);
      const previous = current;
      let next: Lease;
      try {
        next = await this.o.reacquire(previous, stop);
      } catch (err) {
        if (stop.aborted) return;
        throw err;
      }
      current = next;
      this.o.logger.error(
        {
          leaseKey: next.key,
          previousKey: previous.key,
          sameSubnet: next.key === previous.key,
          reason: lost,
        },
        'own lease re-acquired after it was lost; the network must be re-plumbed',
      );
      report({ type: 'reacquired', lease: next, previous, reason: lost });
      hooks.beat?.();
      onChange({ type: 'reacquired', lease: next, previous, reason: lost });
    }
  }

  /**
   * Watches, checks and renews one lease. Returns why it was lost, or undefined when `stop` aborted.
   */
  private async guard(g: Guarded, stop: AbortSignal): Promise<string | undefined> {
    const { logger } = this.o;
    const report = (outcome: LeaseRenewalOutcome): void => g.hooks.onOutcome?.(outcome);
    let retryAt: number | undefined;
    let checkAt = Date.now() + this.o.checkIntervalMs;
    /** After a compaction: the revision at which the key was re-read (watch from just after it). */
    let resumeAfter: bigint | undefined;
    const rewatch = new Backoff({ initialMs: 500, maxMs: 10_000 });
    while (!stop.aborted) {
      const watchStop = new AbortController();
      const own = g.get();
      const ownRevision = BigInt(own.revision ?? '0');
      const it = watchRange(this.o.client, {
        key: this.o.store.subnetKey(own.key),
        startRevision:
          (resumeAfter !== undefined && resumeAfter > ownRevision ? resumeAfter : ownRevision) + 1n,
        signal: AbortSignal.any([stop, watchStop.signal]),
        logger,
        probe: () => this.o.store.ping(),
      });
      let pending = it.next();
      try {
        for (;;) {
          const lease = g.get();
          const renewAt =
            lease.expiration === null || lease.expiration === undefined
              ? undefined
              : (retryAt ?? lease.expiration.getTime() - this.o.renewMarginMs);
          const dueAt = renewAt === undefined ? checkAt : Math.min(renewAt, checkAt);
          const outcome = await raceWatchTimer(pending, dueAt, stop);
          if (outcome.kind === 'aborted') return undefined;
          if (outcome.kind === 'failed') {
            logger.error({ err: errorFields(outcome.error) }, 'own lease watch failed; watching again');
            await rewatch.wait(stop);
            break;
          }
          if (outcome.kind === 'timer') {
            const renewing = renewAt !== undefined && Date.now() >= renewAt;
            checkAt = Date.now() + this.o.checkIntervalMs;
            if (!renewing) {
              const reason = await this.check(g);
              if (reason) return reason;
              continue;
            }
            try {
              const renewed = await this.renew(lease);
              retryAt = undefined;
              if (renewed !== lease) {
                logger.info({ leaseKey: renewed.key, expiration: renewed.expiration }, 'lease renewed');
                g.update(renewed);
              }
              report({ type: 'ok', lease: renewed });
              g.hooks.beat?.();
            } catch (err) {
              if (err instanceof LeaseLostError) return err.reason;
              retryAt = Date.now() + this.o.renewRetryMs;
              const expired = lease.expiration instanceof Date && Date.now() >= lease.expiration.getTime();
              logger.error(
                { leaseKey: lease.key, err: errorFields(err), retryInMs: this.o.renewRetryMs, expired },
                'lease renewal failed; retrying',
              );
              report({
                type: 'failed',
                lease,
                error: errorFields(err),
                retryInMs: this.o.renewRetryMs,
                expired,
              });
            }
            continue;
          }
          const item = outcome.result;
          if (item.done) return undefined;
          pending = it.next();
          const value = item.value;
          if (value.type === 'connected') rewatch.reset();
          if (value.type === 'events') {
            for (const ev of value.events) {
              const reason = await this.onOwnKeyEvent(ev, g);
              if (reason) return reason;
            }
          } else if (value.type === 'compacted') {
            // History is gone: read the key as it is now, then watch from that read's revision.
            const read = await this.o.store.get(g.get().key).catch((err: unknown) => {
              logger.warn({ err: errorFields(err) }, 'cannot re-read the own lease; retrying');
              return undefined;
            });
            if (read === undefined) {
              await rewatch.wait(stop);
              break;
            }
            const reason = await this.compare(read.record, g, 'while the watch was behind');
            if (reason) return reason;
            resumeAfter = read.revision;
            break;
          }
        }
      } finally {
        watchStop.abort();
        await it.return(undefined);
      }
    }
    return undefined;
  }

  /** The periodic check: is the key still the one we hold? Beats when it is. */
  private async check(g: Guarded): Promise<string | undefined> {
    let read: Awaited<ReturnType<EtcdLeaseStore['get']>>;
    try {
      read = await this.o.store.get(g.get().key);
    } catch (err) {
      this.o.logger.warn(
        { err: errorFields(err) },
        'cannot check the own lease in etcd; checking again later',
      );
      return undefined;
    }
    const reason = await this.compare(read.record, g);
    if (reason) return reason;
    g.hooks.onOutcome?.({ type: 'ok', lease: g.get() });
    g.hooks.beat?.();
    return undefined;
  }

  /** The key as read now versus the lease held: unchanged, adopted, or lost (the reason). */
  private async compare(
    record: RawLeaseRecord | undefined,
    g: Guarded,
    when = 'since the last check',
  ): Promise<string | undefined> {
    if (record === undefined) return `the key no longer exists (deleted or expired ${when})`;
    if (record.modRevision === g.get().revision) return undefined;
    return this.adoptOrLose(record, g);
  }

  private async onOwnKeyEvent(ev: WatchEvent, g: Guarded): Promise<string | undefined> {
    const lease = g.get();
    if (ev.type === 'Delete') {
      const expired = lease.expiration != null && Date.now() >= lease.expiration.getTime() - 2_000;
      return expired ? 'the lease expired' : 'the key was deleted';
    }
    if (ev.kv.mod_revision === lease.revision) return undefined;
    if (lease.revision !== undefined && BigInt(ev.kv.mod_revision) < BigInt(lease.revision)) return undefined;
    const record = this.o.store.toRecord(ev.kv);
    if (!record) return undefined;
    return this.adoptOrLose(record, g);
  }

  /**
   * The own key holds something newer than the lease we know. Written by this node (one of its grants: a
   * write whose reply was lost) → adopt it. Written by someone else with the own public address (e.g. an
   * operator turned it into a reservation) → still ours: adopt it, restoring the own attributes if they
   * differ. Otherwise lost.
   */
  private async adoptOrLose(record: RawLeaseRecord, g: Guarded): Promise<string | undefined> {
    const lease = g.get();
    if (this.o.grants.isOurs(lease.key, record.leaseId)) {
      g.update(await this.adopted(lease, record));
      return undefined;
    }
    let attrs: LeaseAttrs;
    try {
      attrs = decodeLeaseAttrs(record.value);
    } catch (err) {
      return `the key was overwritten with an invalid value (${errorMessage(err)})`;
    }
    if (!samePublicAddress(attrs, lease.attrs)) {
      return `the key was taken over by another node (PublicIP ${attrs.publicIP || attrs.publicIPv6})`;
    }
    let current = record;
    if (!leaseAttrsEqual(attrs, lease.attrs)) {
      const put = await this.o.store
        .replaceIfUnchanged(lease.key, record.modRevision, encodeLeaseAttrs(lease.attrs), record.leaseId)
        .catch(() => undefined);
      if (put?.replaced) current = { ...record, modRevision: put.revision.toString() };
    }
    this.o.logger.info(
      { leaseKey: lease.key, reservation: record.leaseId === '0' },
      'own lease key was rewritten by someone else with this node’s public IP; keeping it',
    );
    g.update(await this.adopted(lease, current));
    return undefined;
  }
}

/** The request to re-acquire `previous`: the last request's config and attributes, the same subnet first. */
export function reacquireRequest(base: AcquireRequest, previous: Lease): AcquireRequest {
  const request: AcquireRequest = { config: base.config, attrs: previous.attrs };
  if (previous.subnet) request.previousSubnet = formatCidr(previous.subnet);
  if (previous.ipv6Subnet) request.previousIPv6Subnet = formatCidr(previous.ipv6Subnet);
  return request;
}

type RaceOutcome<T> =
  | { kind: 'watch'; result: IteratorResult<T> }
  | { kind: 'failed'; error: unknown }
  | { kind: 'timer' }
  | { kind: 'aborted' };

/** Waits for the next watch item, the time `dueAt` (epoch ms), or abort. */
function raceWatchTimer<T>(
  pending: Promise<IteratorResult<T>>,
  dueAt: number,
  stop: AbortSignal,
): Promise<RaceOutcome<T>> {
  return new Promise((resolve) => {
    if (stop.aborted) {
      resolve({ kind: 'aborted' });
      return;
    }
    const finish = (outcome: RaceOutcome<T>): void => {
      clearTimeout(timer);
      stop.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const onAbort = (): void => finish({ kind: 'aborted' });
    stop.addEventListener('abort', onAbort, { once: true });
    // setTimeout caps at ~24.8 days; a 24 h lease never needs longer.
    const timer = setTimeout(
      () => finish({ kind: 'timer' }),
      Math.min(0x7fffffff, Math.max(0, dueAt - Date.now())),
    );
    pending.then(
      (result) => finish({ kind: 'watch', result }),
      (error: unknown) => finish({ kind: 'failed', error }),
    );
  });
}
