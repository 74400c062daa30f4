import { type Etcd3, EtcdAuthenticationFailedError, EtcdPermissionDeniedError, type IEvent } from 'etcd3';
import {
  type FamilyNetwork,
  type NetworkConfig,
  NetworkConfigError,
  parseNetworkConfigText,
} from '../../config/index.js';
import { type Cidr, formatCidr, overlaps, parseCidr } from '../../ip/index.js';
import {
  decodeLeaseAttrs,
  diffLeases,
  encodeLeaseAttrs,
  formatLeaseKey,
  type Lease,
  type LeaseAttrs,
  type LeaseEvent,
  type LeaseKeySubnets,
  type LeaseWatchBatch,
  leaseAttrsEqual,
  leaseFitsOwnAllocation,
  leaseMisfit,
  parseLeaseKey,
} from '../../lease/index.js';
import { type Logger, silentLogger } from '../../log/index.js';
import type { AcquireRequest, OwnLeaseChange, SubnetManager } from '../types.js';
import { FREE_SUBNET_CANDIDATES, freeSubnets, pickRandom } from './allocate.js';
import { createEtcdClient, EtcdClientConfigError, type EtcdClientOptions } from './client.js';
import {
  EtcdSubnetManagerConfigError,
  LeaseLostError,
  OutOfSubnetsError,
  SubnetManagerClosedError,
} from './errors.js';
import { EtcdLeaseStore, type RawLeaseRecord } from './store.js';
import { sleepUnlessAborted, watchRange } from './watch.js';

/** Watch health, for logs and metrics: reconnects, re-lists, skipped values, which endpoint serves. */
export type EtcdWatchEvent =
  | { type: 'connected'; endpoint: string | undefined }
  | { type: 'reconnect'; reason: string }
  | { type: 'relist'; reason: string }
  | { type: 'skipped'; key: string; reason: string };

export interface EtcdSubnetManagerOptions extends EtcdClientOptions {
  /** `--etcd-prefix`, e.g. `/coreos.com/network`. */
  prefix: string;
  /** `--subnet-lease-renew-margin`: renew when less than this many minutes are left (1..1439). */
  renewMargin: number;
  /** TTL of the etcd lease attached to a new key (default 86400 = 24 h, like flannel). */
  leaseTtlSeconds?: number | undefined;
  logger?: Logger | undefined;
  onWatchEvent?: ((event: EtcdWatchEvent) => void) | undefined;
  /** Overrides `renewMargin` with seconds (tests run with short TTLs). */
  renewMarginSeconds?: number | undefined;
  /** Wait before retrying a failed renewal (default 60 s, as flannel). */
  renewRetryMs?: number | undefined;
  /** How often a missing config is polled (default 1 s); logged every 30 s. */
  configPollMs?: number | undefined;
  /** Random source for the subnet pick (tests). */
  random?: (() => number) | undefined;
}

/** A stored key that was not used, and why. */
export interface SkippedLease {
  key: string;
  reason: string;
}

export interface LeaseListing {
  leases: Lease[];
  skipped: SkippedLease[];
  /** Store revision of the listing. */
  revision: bigint;
}

export const DEFAULT_LEASE_TTL_SECONDS = 24 * 60 * 60;
const CONFIG_LOG_EVERY_MS = 30_000;
const MAX_BACKOFF_MS = 5_000;

interface Grant {
  id: string;
  ttlSeconds: number;
  /** When it was granted (epoch ms): the key's expiry counts from here. */
  at: number;
}

/** What one acquireLease call carries across its attempts. */
interface AcquireState {
  grant: Grant | undefined;
  lostRaces: number;
  /** Read values (to find the own public IP's lease) on the next attempt. */
  needValues: boolean;
  /** Keys seen by earlier attempts and the revision they were read at (retries only fetch newer keys). */
  seen: { keys: Map<string, LeaseKeySubnets | undefined>; revision: bigint } | undefined;
}

interface ParsedRecord {
  record: RawLeaseRecord;
  subnets: LeaseKeySubnets | undefined;
  attrs: LeaseAttrs | undefined;
  reason: string | undefined;
}

/** Parses a record's key and (unless `keyOnly`, e.g. from a keys-only list) its value. */
function parseRecord(record: RawLeaseRecord, keyOnly = false): ParsedRecord {
  let subnets: LeaseKeySubnets | undefined;
  try {
    subnets = parseLeaseKey(record.key);
  } catch (err) {
    return { record, subnets: undefined, attrs: undefined, reason: (err as Error).message };
  }
  if (keyOnly) return { record, subnets, attrs: undefined, reason: undefined };
  try {
    return { record, subnets, attrs: decodeLeaseAttrs(record.value), reason: undefined };
  } catch (err) {
    return { record, subnets, attrs: undefined, reason: (err as Error).message };
  }
}

function toLease(
  record: RawLeaseRecord,
  subnets: LeaseKeySubnets,
  attrs: LeaseAttrs,
  expiration: Date | null | undefined,
): Lease {
  const lease: Lease = { key: record.key, attrs, expiration, revision: record.modRevision };
  if (subnets.subnet) lease.subnet = subnets.subnet;
  if (subnets.ipv6Subnet) lease.ipv6Subnet = subnets.ipv6Subnet;
  return lease;
}

/**
 * A key only blocks allocation when it is smaller than the whole network: a garbage key such as
 * `0.0.0.0-0` must not make every subnet look taken.
 */
function blocking(subnet: Cidr | undefined, net: FamilyNetwork | undefined): subnet is Cidr {
  return (
    subnet !== undefined &&
    net !== undefined &&
    subnet.family === net.network.family &&
    subnet.prefix > net.network.prefix
  );
}

function subnetsOverlap(a: LeaseKeySubnets, b: LeaseKeySubnets): boolean {
  return (
    (a.subnet !== undefined && b.subnet !== undefined && overlaps(a.subnet, b.subnet)) ||
    (a.ipv6Subnet !== undefined && b.ipv6Subnet !== undefined && overlaps(a.ipv6Subnet, b.ipv6Subnet))
  );
}

function samePublicAddress(a: LeaseAttrs, b: LeaseAttrs): boolean {
  if (b.publicIP !== '') return a.publicIP === b.publicIP;
  return b.publicIPv6 !== undefined && a.publicIPv6 === b.publicIPv6;
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Errors no retry can fix: they go back to the caller. */
function isPermanent(err: unknown): boolean {
  return (
    err instanceof OutOfSubnetsError ||
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdClientConfigError
  );
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new SubnetManagerClosedError();
}

function parseCidrQuietly(text: string | undefined, family: 4 | 6): Cidr | undefined {
  if (!text) return undefined;
  try {
    const c = parseCidr(text);
    return c.family === family ? c : undefined;
  } catch {
    return undefined;
  }
}

/**
 * flannel's etcd subnet manager, with its known defects fixed: a lost creation race retries with another
 * subnet, renewals are conditional and keep reservations, a lost own lease is re-acquired and reported,
 * and the lease watch resumes from the last revision seen and diffs attributes after a compaction.
 */
export class EtcdSubnetManager implements SubnetManager {
  readonly kind = 'etcd' as const;
  readonly store: EtcdLeaseStore;
  private readonly client: Etcd3;
  private readonly logger: Logger;
  private readonly ttlSeconds: number;
  private readonly renewMarginMs: number;
  private readonly renewRetryMs: number;
  private readonly configPollMs: number;
  private readonly random: () => number;
  private readonly onWatchEvent: (event: EtcdWatchEvent) => void;
  private readonly lifetime = new AbortController();
  private config: NetworkConfig | undefined;
  private lastRequest: AcquireRequest | undefined;
  /** etcd leases this manager granted, by key: revoked once a renewal replaces them. */
  private readonly granted = new Map<string, string>();

  constructor(options: EtcdSubnetManagerOptions) {
    if (!Number.isInteger(options.renewMargin) || options.renewMargin < 1 || options.renewMargin > 1439) {
      throw new EtcdSubnetManagerConfigError(
        `subnet-lease-renew-margin: expected whole minutes 1..1439, found ${JSON.stringify(options.renewMargin)}`,
      );
    }
    this.ttlSeconds = options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 5) {
      throw new EtcdSubnetManagerConfigError(
        `lease TTL: expected whole seconds >= 5, found ${this.ttlSeconds}`,
      );
    }
    this.renewMarginMs =
      options.renewMarginSeconds !== undefined
        ? options.renewMarginSeconds * 1000
        : options.renewMargin * 60_000;
    if (this.renewMarginMs >= this.ttlSeconds * 1000) {
      throw new EtcdSubnetManagerConfigError(
        `renew margin (${this.renewMarginMs / 1000} s) must be shorter than the lease TTL (${this.ttlSeconds} s)`,
      );
    }
    if (!options.prefix.startsWith('/')) {
      throw new EtcdSubnetManagerConfigError(
        `etcd-prefix: must start with "/", found ${JSON.stringify(options.prefix)}`,
      );
    }
    this.renewRetryMs = options.renewRetryMs ?? 60_000;
    this.configPollMs = options.configPollMs ?? 1_000;
    this.random = options.random ?? Math.random;
    this.logger = options.logger ?? silentLogger();
    this.onWatchEvent = options.onWatchEvent ?? (() => undefined);
    this.client = createEtcdClient(options);
    this.store = new EtcdLeaseStore(this.client, options.prefix);
  }

  /** The caller's signal, also aborted by close(). */
  private link(signal?: AbortSignal): AbortSignal {
    return signal ? AbortSignal.any([signal, this.lifetime.signal]) : this.lifetime.signal;
  }

  async close(): Promise<void> {
    if (this.lifetime.signal.aborted) return;
    this.lifetime.abort(new SubnetManagerClosedError());
    this.client.close();
  }

  // ---------------------------------------------------------------- config

  /** Reads `<prefix>/config`, waiting until it exists and parses; logs why it waits every 30 s. */
  async getNetworkConfig(signal?: AbortSignal): Promise<NetworkConfig> {
    const stop = this.link(signal);
    let lastLog = -Infinity;
    let lastReason = '';
    for (;;) {
      if (stop.aborted) throw abortError(stop);
      let reason: string;
      try {
        const text = await this.store.getConfigText();
        if (text !== undefined) {
          const config = parseNetworkConfigText(text, `${this.store.configKey.toString()}`);
          if (config.unknownKeys.length > 0) {
            this.logger.warn(
              { keys: config.unknownKeys },
              'network config has keys weft does not know; ignored',
            );
          }
          this.config = config;
          return config;
        }
        reason = `network config ${this.store.configKey.toString()} not found in etcd; waiting for it (write it with: etcdctl put ${this.store.configKey.toString()} '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}')`;
      } catch (err) {
        reason =
          err instanceof NetworkConfigError
            ? `network config ${this.store.configKey.toString()} is invalid; waiting for a fix: ${err.message}`
            : `cannot read the network config from etcd; retrying: ${describeError(err)}`;
      }
      if (Date.now() - lastLog >= CONFIG_LOG_EVERY_MS || reason !== lastReason) {
        this.logger.warn(reason);
        lastLog = Date.now();
        lastReason = reason;
      }
      await sleepUnlessAborted(this.configPollMs, stop);
    }
  }

  // ---------------------------------------------------------------- listing

  /**
   * Every lease under `subnets/`, with expiries. With a config, leases that do not fit it are skipped;
   * without one, only the key and value codecs decide. Never throws for bad data; throws when etcd fails.
   */
  async listLeases(config?: NetworkConfig): Promise<LeaseListing> {
    const list = await this.store.list();
    const { leases, skipped } = await this.classify(list.records, config);
    return { leases: [...leases.values()], skipped, revision: list.revision };
  }

  private async classify(
    records: RawLeaseRecord[],
    config: NetworkConfig | undefined,
    lookupExpirations = true,
  ): Promise<{ leases: Map<string, Lease>; skipped: SkippedLease[] }> {
    const usable: { record: RawLeaseRecord; subnets: LeaseKeySubnets; attrs: LeaseAttrs }[] = [];
    const skipped: SkippedLease[] = [];
    for (const record of records) {
      const parsed = parseRecord(record);
      if (!parsed.subnets || !parsed.attrs) {
        skipped.push({ key: record.key, reason: parsed.reason ?? 'unreadable' });
        continue;
      }
      if (config) {
        const misfit = leaseMisfit(
          { key: record.key, ...parsed.subnets, attrs: parsed.attrs, expiration: null },
          config,
        );
        if (misfit) {
          skipped.push({ key: record.key, reason: `does not fit the network config: ${misfit}` });
          continue;
        }
      }
      usable.push({ record, subnets: parsed.subnets, attrs: parsed.attrs });
    }
    const ids = usable.map((u) => u.record.leaseId);
    const expirations = lookupExpirations
      ? await this.store.expirations(ids)
      : this.store.knownExpirations(ids);
    const leases = new Map<string, Lease>();
    for (const u of usable) {
      leases.set(u.record.key, toLease(u.record, u.subnets, u.attrs, expirations.get(u.record.leaseId)));
    }
    return { leases, skipped };
  }

  // ---------------------------------------------------------------- acquire

  /**
   * Acquires this node's lease: the one holding its public IP (if it still fits), else the previous
   * subnet (if free), else a random one of the first 100 free. Creation is create-only; a lost race
   * retries with another subnet; etcd being unreachable is retried with backoff (logged). Throws
   * `OutOfSubnetsError` when the network is full, and on bad credentials.
   */
  async acquireLease(request: AcquireRequest, signal?: AbortSignal): Promise<Lease> {
    const stop = this.link(signal);
    this.lastRequest = request;
    this.config = request.config;
    const state: AcquireState = { grant: undefined, lostRaces: 0, needValues: true, seen: undefined };
    let failures = 0;
    let backoff = 100;
    try {
      for (;;) {
        if (stop.aborted) throw abortError(stop);
        try {
          const lease = await this.tryAcquire(request, state);
          if (lease) return lease;
          state.lostRaces += 1;
          if (state.lostRaces % 20 === 0) {
            this.logger.info(
              { lostRaces: state.lostRaces },
              'lease acquisition keeps losing creation races; still trying',
            );
          }
          // Spread competing nodes out a little before they list again.
          await sleepUnlessAborted(Math.floor(this.random() * Math.min(100, 5 * state.lostRaces)), stop);
        } catch (err) {
          // The etcd lease may be gone (e.g. expired during an outage): grant a fresh one next time.
          await this.dropGrant(state);
          state.needValues = true;
          state.seen = undefined;
          if (isPermanent(err)) throw err;
          failures += 1;
          if (failures === 1 || failures % 10 === 0) {
            this.logger.warn(
              { err: describeError(err), attempt: failures },
              'cannot acquire a lease from etcd; retrying',
            );
          }
          await sleepUnlessAborted(backoff, stop);
          backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
        }
      }
    } finally {
      await this.dropGrant(state);
    }
  }

  private async dropGrant(state: AcquireState): Promise<void> {
    const grant = state.grant;
    state.grant = undefined;
    if (grant) await this.store.revokeQuietly(grant.id);
  }

  /** The etcd lease for a new key: one per acquisition, reused across lost races while it is fresh. */
  private async grantFor(state: AcquireState): Promise<Grant> {
    if (state.grant && Date.now() - state.grant.at < (this.ttlSeconds * 1000) / 4) return state.grant;
    await this.dropGrant(state);
    const at = Date.now();
    const granted = await this.store.grant(this.ttlSeconds);
    state.grant = { ...granted, at };
    return state.grant;
  }

  /** Takes the grant out of the state: it now belongs to a key. */
  private useGrant(state: AcquireState, key: string, grant: Grant): Date {
    state.grant = undefined;
    const expiration = new Date(grant.at + grant.ttlSeconds * 1000);
    this.granted.set(key, grant.id);
    this.store.rememberExpiration(grant.id, expiration);
    return expiration;
  }

  /** One attempt. Undefined = lost a race (someone else changed what we read): try again. */
  private async tryAcquire(request: AcquireRequest, state: AcquireState): Promise<Lease | undefined> {
    const { config, attrs } = request;
    const value = encodeLeaseAttrs(attrs);
    // Values are needed to find the lease of this public IP. After a lost creation race only the keys
    // matter (no lease of ours can have appeared meanwhile), and only the keys created since the last
    // read: listing everything on every retry is what makes hundreds of nodes starting together slow.
    const withValues = state.needValues;
    let parsed: ParsedRecord[];
    let partial = false;
    if (withValues || !state.seen) {
      const list = await this.store.list({ keysOnly: !withValues });
      parsed = list.records.map((r) => parseRecord(r, !withValues));
      state.seen = { keys: new Map(parsed.map((p) => [p.record.key, p.subnets])), revision: list.revision };
    } else {
      // Keys are parsed once per acquisition, not once per retry.
      const added = await this.store.listKeysCreatedAfter(state.seen.revision);
      for (const r of added.records) state.seen.keys.set(r.key, parseRecord(r, true).subnets);
      state.seen.revision = added.revision;
      parsed = [...state.seen.keys].map(([key, subnets]) => ({
        record: { key, value: '', leaseId: '0', modRevision: '0', createRevision: '0' },
        subnets,
        attrs: undefined,
        reason: undefined,
      }));
      partial = true;
    }
    const deleted = new Set<string>();

    // 1. A lease that already carries this node's public address.
    for (const p of withValues ? parsed : []) {
      if (!p.subnets || !p.attrs || !samePublicAddress(p.attrs, attrs)) continue;
      if (leaseFitsOwnAllocation(p.subnets, config)) {
        const reservation = p.record.leaseId === '0';
        const grant = reservation ? undefined : await this.grantFor(state);
        const put = await this.store.replaceIfUnchanged(
          p.record.key,
          p.record.modRevision,
          value,
          grant?.id ?? '0',
        );
        if (!put.replaced) return undefined;
        const expiration = grant ? this.useGrant(state, p.record.key, grant) : null;
        this.logger.info(
          { leaseKey: p.record.key, publicIP: attrs.publicIP || attrs.publicIPv6, reservation },
          reservation ? 'reusing the reservation for this public IP' : 'reusing the lease for this public IP',
        );
        return toLease({ ...p.record, modRevision: put.revision.toString() }, p.subnets, attrs, expiration);
      }
      this.logger.info(
        { leaseKey: p.record.key },
        'found a lease for this public IP that no longer fits the network config; deleting it',
      );
      if (!(await this.store.deleteIfUnchanged(p.record.key, p.record.modRevision))) return undefined;
      deleted.add(p.record.key);
    }
    state.needValues = false;

    const live = parsed.filter((p) => p.subnets !== undefined && !deleted.has(p.record.key));
    const taken4 = live.map((p) => p.subnets?.subnet).filter((s): s is Cidr => blocking(s, config.ipv4));
    const taken6 = live.map((p) => p.subnets?.ipv6Subnet).filter((s): s is Cidr => blocking(s, config.ipv6));

    // 2. The subnet from the previous subnet file, if nobody holds it.
    let chosen: LeaseKeySubnets | undefined;
    const previous: LeaseKeySubnets = {};
    const prev4 = parseCidrQuietly(request.previousSubnet, 4);
    const prev6 = parseCidrQuietly(request.previousIPv6Subnet, 6);
    if (prev4) previous.subnet = prev4;
    if (prev6) previous.ipv6Subnet = prev6;
    if ((prev4 || prev6) && leaseFitsOwnAllocation(previous, config)) {
      const busy =
        (prev4 && taken4.some((t) => overlaps(t, prev4))) ||
        (prev6 && taken6.some((t) => overlaps(t, prev6)));
      if (!busy) chosen = previous;
    }

    // 3. Random among the first 100 free subnets (flannel). After lost races the window doubles (up to
    //    1600) so hundreds of nodes starting together stop colliding on the same hundred subnets.
    if (!chosen) {
      const window = FREE_SUBNET_CANDIDATES * 2 ** Math.min(state.lostRaces, 4);
      chosen = {};
      const full = (net: FamilyNetwork, count: number): undefined => {
        // The incremental view never forgets deleted keys: confirm "full" with a fresh list first.
        if (partial) {
          state.seen = undefined;
          return undefined;
        }
        throw new OutOfSubnetsError(net, count);
      };
      if (config.ipv4) {
        const pick = pickRandom(freeSubnets(config.ipv4, taken4, window), this.random);
        if (!pick) return full(config.ipv4, taken4.length);
        chosen.subnet = pick;
      }
      if (config.ipv6) {
        const pick = pickRandom(freeSubnets(config.ipv6, taken6, window), this.random);
        if (!pick) return full(config.ipv6, taken6.length);
        chosen.ipv6Subnet = pick;
      }
    }

    const key = formatLeaseKey(chosen);
    const grant = await this.grantFor(state);
    // The IPv4 part as a key prefix guards the IPv4-only and every dual-stack key of that subnet at once.
    const guard = chosen.subnet ? formatLeaseKey({ subnet: chosen.subnet }) : undefined;
    const created = await this.store.create(key, value, grant.id, guard);
    if (!created.created) return undefined;
    if (chosen.ipv6Subnet) {
      // An IPv6 subnet is the key's suffix, so no prefix guards it: of two keys created concurrently with
      // the same IPv6 subnet, the older wins and the newer steps back.
      const check = await this.store.list({ keysOnly: true });
      for (const r of check.records) {
        if (r.key === key) continue;
        let other: LeaseKeySubnets;
        try {
          other = parseLeaseKey(r.key);
        } catch {
          continue;
        }
        const relevant: LeaseKeySubnets = {};
        if (blocking(other.subnet, config.ipv4)) relevant.subnet = other.subnet;
        if (blocking(other.ipv6Subnet, config.ipv6)) relevant.ipv6Subnet = other.ipv6Subnet;
        if (subnetsOverlap(relevant, chosen) && BigInt(r.createRevision) < created.revision) {
          this.logger.debug(
            { leaseKey: key, overlapping: r.key },
            'created lease overlaps an older one; stepping back',
          );
          await this.store.deleteIfUnchanged(key, created.revision.toString());
          return undefined;
        }
      }
    }
    const expiration = this.useGrant(state, key, grant);
    this.logger.info(
      {
        leaseKey: key,
        subnet: chosen.subnet && formatCidr(chosen.subnet),
        ipv6Subnet: chosen.ipv6Subnet && formatCidr(chosen.ipv6Subnet),
        publicIP: attrs.publicIP || attrs.publicIPv6,
        previous: chosen === previous,
      },
      'allocated a new lease',
    );
    const lease: Lease = { key, attrs, expiration, revision: created.revision.toString() };
    if (chosen.subnet) lease.subnet = chosen.subnet;
    if (chosen.ipv6Subnet) lease.ipv6Subnet = chosen.ipv6Subnet;
    return lease;
  }

  // ---------------------------------------------------------------- renew

  /**
   * Renews the lease if its key is still exactly what we wrote (mod revision unchanged): a new 24 h etcd
   * lease is attached in one conditional transaction. A reservation (expiration null) is only checked,
   * never given a TTL (flannel #1329). Throws `LeaseLostError` when the key is gone or changed.
   */
  async renewLease(lease: Lease): Promise<Lease> {
    const revision = lease.revision;
    if (revision === undefined) throw new LeaseLostError(lease.key, 'no revision known for this lease');
    if (lease.expiration === null) {
      const check = await this.store.stillAt(lease.key, revision);
      if (!check.unchanged) throw new LeaseLostError(lease.key, this.describeChange(check.current));
      return lease;
    }
    const grant = await this.store.grant(this.ttlSeconds);
    let put: Awaited<ReturnType<EtcdLeaseStore['replaceIfUnchanged']>>;
    try {
      put = await this.store.replaceIfUnchanged(lease.key, revision, encodeLeaseAttrs(lease.attrs), grant.id);
    } catch (err) {
      await this.store.revokeQuietly(grant.id);
      throw err;
    }
    if (!put.replaced) {
      await this.store.revokeQuietly(grant.id);
      throw new LeaseLostError(lease.key, this.describeChange(put.current));
    }
    const old = this.granted.get(lease.key);
    this.granted.set(lease.key, grant.id);
    if (old && old !== grant.id) await this.store.revokeQuietly(old);
    const expiration = new Date(Date.now() + grant.ttlSeconds * 1000);
    this.store.rememberExpiration(grant.id, expiration);
    return { ...lease, expiration, revision: put.revision.toString() };
  }

  private describeChange(current: RawLeaseRecord | undefined): string {
    if (!current) return 'the key no longer exists (deleted or expired)';
    try {
      const attrs = decodeLeaseAttrs(current.value);
      return `the key was rewritten by someone else (PublicIP ${attrs.publicIP || attrs.publicIPv6})`;
    } catch (err) {
      return `the key was overwritten with an invalid value (${describeError(err)})`;
    }
  }

  // ---------------------------------------------------------------- keep

  /**
   * Keeps the own lease until `signal` aborts: renews it when less than the renew margin is left
   * (retrying every minute on failure), watches its key so a deletion or expiry is noticed at once, and
   * then re-acquires (the same subnet when still free) and reports `reacquired` through `onChange`.
   */
  async keepLease(
    lease: Lease,
    onChange: (change: OwnLeaseChange) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const stop = this.link(signal);
    let current = lease;
    while (!stop.aborted) {
      const lost = await this.guardLease(
        () => current,
        (updated) => {
          current = updated;
          onChange({ type: 'renewed', lease: updated });
        },
        stop,
        (failed, err) => onChange({ type: 'renewal-failed', lease: failed, error: describeError(err) }),
      );
      if (lost === undefined) return;
      this.logger.error(
        { leaseKey: current.key, reason: lost },
        'own lease lost; re-acquiring (the same subnet if it is still free)',
      );
      const previous = current;
      const next = await this.reacquire(previous, stop);
      if (!next) return;
      current = next;
      this.logger.error(
        {
          leaseKey: next.key,
          previousKey: previous.key,
          sameSubnet: next.key === previous.key,
          reason: lost,
        },
        'own lease re-acquired after it was lost; the network must be re-plumbed',
      );
      onChange({ type: 'reacquired', lease: next, previous, reason: lost });
    }
  }

  private async reacquire(previous: Lease, stop: AbortSignal): Promise<Lease | undefined> {
    let backoff = 1_000;
    while (!stop.aborted) {
      try {
        const base = this.lastRequest ?? {
          config: this.config ?? (await this.getNetworkConfig(stop)),
          attrs: previous.attrs,
        };
        const request: AcquireRequest = { config: base.config, attrs: previous.attrs };
        if (previous.subnet) request.previousSubnet = formatCidr(previous.subnet);
        if (previous.ipv6Subnet) request.previousIPv6Subnet = formatCidr(previous.ipv6Subnet);
        const lease = await this.acquireLease(request, stop);
        this.lastRequest = base;
        return lease;
      } catch (err) {
        if (stop.aborted) return undefined;
        this.logger.error({ err: describeError(err) }, 'cannot re-acquire the own lease; retrying');
        await sleepUnlessAborted(backoff, stop);
        backoff = Math.min(30_000, backoff * 2);
      }
    }
    return undefined;
  }

  /**
   * Watches and renews one lease. Returns why it was lost, or undefined when `stop` aborted. `update` is
   * called with each renewed (or adopted) version of the lease.
   */
  private async guardLease(
    get: () => Lease,
    update: (lease: Lease) => void,
    stop: AbortSignal,
    renewalFailed?: (lease: Lease, err: unknown) => void,
  ): Promise<string | undefined> {
    let retryAt: number | undefined;
    /** After a compaction: the revision at which the key was re-read (watch from just after it). */
    let resumeAfter: bigint | undefined;
    while (!stop.aborted) {
      const watchStop = new AbortController();
      const watchSignal = AbortSignal.any([stop, watchStop.signal]);
      const own = get();
      const ownRevision = BigInt(own.revision ?? '0');
      const it = watchRange(this.client, {
        key: this.store.subnetKey(own.key),
        startRevision:
          (resumeAfter !== undefined && resumeAfter > ownRevision ? resumeAfter : ownRevision) + 1n,
        signal: watchSignal,
        logger: this.logger,
        probe: () => this.store.ping(),
      });
      let pending = it.next();
      try {
        for (;;) {
          const lease = get();
          const dueAt =
            lease.expiration === null || lease.expiration === undefined
              ? undefined
              : (retryAt ?? lease.expiration.getTime() - this.renewMarginMs);
          const outcome = await raceWatchTimer(pending, dueAt, stop);
          if (outcome.kind === 'aborted') return undefined;
          if (outcome.kind === 'failed') {
            this.logger.error(
              { err: describeError(outcome.error) },
              'own lease watch failed; watching again',
            );
            await sleepUnlessAborted(1_000, stop);
            break;
          }
          if (outcome.kind === 'timer') {
            try {
              const renewed = await this.renewLease(lease);
              retryAt = undefined;
              if (renewed !== lease) {
                this.logger.info({ leaseKey: renewed.key, expiration: renewed.expiration }, 'lease renewed');
                update(renewed);
              }
            } catch (err) {
              if (err instanceof LeaseLostError) return err.reason;
              retryAt = Date.now() + this.renewRetryMs;
              renewalFailed?.(lease, err);
              this.logger.error(
                { leaseKey: lease.key, err: describeError(err), retryInMs: this.renewRetryMs },
                'lease renewal failed; retrying',
              );
            }
            continue;
          }
          const item = outcome.result;
          if (item.done) return undefined;
          pending = it.next();
          const value = item.value;
          if (value.type === 'events') {
            for (const ev of value.events) {
              const reason = await this.onOwnKeyEvent(ev, get, update);
              if (reason) return reason;
            }
          } else if (value.type === 'compacted') {
            // History is gone: read the key as it is now, then watch from that read's revision.
            let read: Awaited<ReturnType<EtcdLeaseStore['get']>>;
            try {
              read = await this.store.get(get().key);
            } catch (err) {
              this.logger.warn({ err: describeError(err) }, 'cannot re-read the own lease; retrying');
              await sleepUnlessAborted(1_000, stop);
              break;
            }
            if (read.record === undefined) {
              return 'the key no longer exists (deleted or expired while the watch was behind)';
            }
            if (read.record.modRevision !== get().revision) {
              const reason = await this.adoptOrLose(read.record, get, update);
              if (reason) return reason;
            }
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

  private async onOwnKeyEvent(
    ev: IEvent,
    get: () => Lease,
    update: (lease: Lease) => void,
  ): Promise<string | undefined> {
    const lease = get();
    if (ev.type === 'Delete') {
      const expired = lease.expiration != null && Date.now() >= lease.expiration.getTime() - 2_000;
      return expired ? 'the lease expired' : 'the key was deleted';
    }
    if (ev.kv.mod_revision === lease.revision) return undefined;
    if (lease.revision !== undefined && BigInt(ev.kv.mod_revision) < BigInt(lease.revision)) return undefined;
    const record = this.store.toRecord(ev.kv);
    if (!record) return undefined;
    return this.adoptOrLose(record, get, update);
  }

  /**
   * Someone else wrote the own key. With the own public address it is still ours (e.g. an operator
   * turned it into a reservation): adopt it, restoring the own attributes if they differ. Otherwise lost.
   */
  private async adoptOrLose(
    record: RawLeaseRecord,
    get: () => Lease,
    update: (lease: Lease) => void,
  ): Promise<string | undefined> {
    const lease = get();
    let attrs: LeaseAttrs;
    try {
      attrs = decodeLeaseAttrs(record.value);
    } catch (err) {
      return `the key was overwritten with an invalid value (${describeError(err)})`;
    }
    if (!samePublicAddress(attrs, lease.attrs)) {
      return `the key was taken over by another node (PublicIP ${attrs.publicIP || attrs.publicIPv6})`;
    }
    let revision = record.modRevision;
    if (!leaseAttrsEqual(attrs, lease.attrs)) {
      const put = await this.store
        .replaceIfUnchanged(lease.key, record.modRevision, encodeLeaseAttrs(lease.attrs), record.leaseId)
        .catch(() => undefined);
      if (put?.replaced) revision = put.revision.toString();
    }
    const expirations = await this.store.expirations([record.leaseId]).catch(() => undefined);
    const expiration = record.leaseId === '0' ? null : (expirations?.get(record.leaseId) ?? lease.expiration);
    if (record.leaseId === '0') this.granted.delete(lease.key);
    else this.granted.set(lease.key, record.leaseId);
    this.logger.info(
      { leaseKey: lease.key, reservation: expiration === null },
      'own lease key was rewritten by someone else with this node’s public IP; keeping it',
    );
    update({ ...lease, revision, expiration });
    return undefined;
  }

  // ---------------------------------------------------------------- watch

  /**
   * All leases that fit the network config: a snapshot first, then events. Resumes after a disconnect
   * from the last revision seen; after a compaction lists again and emits a snapshot whose `events` are
   * the diff (added, removed, changed attributes). Bad keys/values are skipped with a warning.
   */
  async *watchLeases(signal: AbortSignal): AsyncGenerator<LeaseWatchBatch> {
    const stop = this.link(signal);
    let config: NetworkConfig;
    try {
      config = this.config ?? (await this.getNetworkConfig(stop));
    } catch (err) {
      if (stop.aborted) return; // stopped while waiting for the config: end quietly
      throw err;
    }
    let known = new Map<string, Lease>();
    /** Skipped keys → the mod revision they were skipped at (warn once per value). */
    const skipped = new Map<string, string>();
    let revision: bigint | undefined;
    let backoff = 100;
    while (!stop.aborted) {
      if (revision === undefined) {
        let listing: { leases: Map<string, Lease>; revision: bigint };
        try {
          listing = await this.snapshot(config, skipped);
        } catch (err) {
          this.logger.warn({ err: describeError(err) }, 'cannot list leases from etcd; retrying');
          this.onWatchEvent({ type: 'reconnect', reason: describeError(err) });
          await sleepUnlessAborted(backoff, stop);
          backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
          continue;
        }
        backoff = 100;
        const events = diffLeases(known, listing.leases);
        known = listing.leases;
        revision = listing.revision;
        yield { type: 'snapshot', leases: [...known.values()], events };
      }
      const from: bigint = revision;
      const it = watchRange(this.client, {
        key: this.store.subnetsPrefix,
        rangeEnd: this.store.subnetsEnd,
        startRevision: from + 1n,
        signal: stop,
        logger: this.logger,
        probe: () => this.store.ping(),
        onReconnect: (reason) => this.onWatchEvent({ type: 'reconnect', reason }),
      });
      for await (const item of it) {
        if (item.type === 'connected') {
          this.onWatchEvent({ type: 'connected', endpoint: item.endpoint });
          continue;
        }
        if (item.type === 'progress') {
          revision = item.revision;
          continue;
        }
        if (item.type === 'compacted') {
          const reason = `etcd compacted history up to revision ${item.compactRevision} (watch was at ${revision})`;
          this.logger.warn(reason + '; listing leases again');
          this.onWatchEvent({ type: 'relist', reason });
          revision = undefined;
          break;
        }
        let events: LeaseEvent[];
        try {
          events = await this.applyEvents(item.events, config, known, skipped);
        } catch (err) {
          // Expiry lookups failed mid-batch: nothing was applied; watch again from the same revision.
          this.logger.warn({ err: describeError(err) }, 'cannot read lease expiries; re-watching');
          this.onWatchEvent({ type: 'reconnect', reason: describeError(err) });
          await sleepUnlessAborted(backoff, stop);
          backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
          break;
        }
        backoff = 100;
        revision = item.revision;
        if (events.length > 0) yield { type: 'events', events };
      }
    }
  }

  private reportSkipped(
    key: string,
    modRevision: string,
    reason: string,
    skipped: Map<string, string>,
  ): void {
    if (skipped.get(key) === modRevision) return;
    skipped.set(key, modRevision);
    this.logger.warn({ leaseKey: key, reason }, 'skipping a lease that cannot be used');
    this.onWatchEvent({ type: 'skipped', key, reason });
  }

  private async snapshot(
    config: NetworkConfig,
    skipped: Map<string, string>,
  ): Promise<{ leases: Map<string, Lease>; revision: bigint }> {
    const list = await this.store.list();
    // The watch does not ask etcd for every peer's TTL: the data plane does not need it (see Lease.expiration).
    const { leases, skipped: bad } = await this.classify(list.records, config, false);
    const byKey = new Map(list.records.map((r) => [r.key, r.modRevision]));
    for (const key of [...skipped.keys()]) if (!byKey.has(key)) skipped.delete(key);
    for (const s of bad) this.reportSkipped(s.key, byKey.get(s.key) ?? '', s.reason, skipped);
    return { leases, revision: list.revision };
  }

  /** Applies one watch response to `known`. Expiries come only from what is already known (no etcd calls). */
  private async applyEvents(
    events: IEvent[],
    config: NetworkConfig,
    known: Map<string, Lease>,
    skipped: Map<string, string>,
  ): Promise<LeaseEvent[]> {
    const puts = events.filter((e) => e.type === 'Put').map((e) => this.store.toRecord(e.kv));
    const expirations = this.store.knownExpirations(
      puts.filter((r): r is RawLeaseRecord => r !== undefined).map((r) => r.leaseId),
    );
    const out: LeaseEvent[] = [];
    for (const ev of events) {
      const record = this.store.toRecord(ev.kv);
      if (!record) continue;
      const old = known.get(record.key);
      if (ev.type === 'Delete') {
        skipped.delete(record.key);
        if (old) {
          known.delete(record.key);
          out.push({ type: 'removed', lease: old });
        }
        continue;
      }
      const parsed = parseRecord(record);
      let reason = parsed.reason;
      let lease: Lease | undefined;
      if (parsed.subnets && parsed.attrs) {
        lease = toLease(record, parsed.subnets, parsed.attrs, expirations.get(record.leaseId));
        const misfit = leaseMisfit(lease, config);
        if (misfit) {
          reason = `does not fit the network config: ${misfit}`;
          lease = undefined;
        }
      }
      if (!lease) {
        this.reportSkipped(record.key, record.modRevision, reason ?? 'unreadable', skipped);
        if (old) {
          known.delete(record.key);
          out.push({ type: 'removed', lease: old });
        }
        continue;
      }
      skipped.delete(record.key);
      known.set(record.key, lease);
      if (!old) out.push({ type: 'added', lease });
      else if (!leaseAttrsEqual(old.attrs, lease.attrs)) out.push({ type: 'changed', lease });
    }
    return out;
  }
}

type RaceOutcome<T> =
  | { kind: 'watch'; result: IteratorResult<T> }
  | { kind: 'failed'; error: unknown }
  | { kind: 'timer' }
  | { kind: 'aborted' };

/** Waits for the next watch item, the renewal time (`dueAt`, epoch ms; none = never), or abort. */
function raceWatchTimer<T>(
  pending: Promise<IteratorResult<T>>,
  dueAt: number | undefined,
  stop: AbortSignal,
): Promise<RaceOutcome<T>> {
  return new Promise((resolve) => {
    if (stop.aborted) {
      resolve({ kind: 'aborted' });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const finish = (outcome: RaceOutcome<T>): void => {
      clearTimeout(timer);
      stop.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const onAbort = (): void => finish({ kind: 'aborted' });
    stop.addEventListener('abort', onAbort, { once: true });
    if (dueAt !== undefined) {
      // setTimeout caps at ~24.8 days; a 24 h lease never needs longer.
      timer = setTimeout(
        () => finish({ kind: 'timer' }),
        Math.min(0x7fffffff, Math.max(0, dueAt - Date.now())),
      );
    }
    pending.then(
      (result) => finish({ kind: 'watch', result }),
      (error: unknown) => finish({ kind: 'failed', error }),
    );
  });
}
