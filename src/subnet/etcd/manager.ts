// flannel's etcd subnet manager as a facade over one concept per file: config-poll (the network config),
// acquire (a subnet), keep (renewal and re-acquisition), list-watch (every lease). Options arrive validated
// by `config/` (flags) — only settings that exist for tests (TTL, margins in seconds) are checked here.

import type { NetworkConfig } from '../../config/index.js';
import { Backoff, errorFields } from '../../core/index.js';
import type { Lease, LeaseWatchBatch } from '../../lease/index.js';
import { type Logger, silentLogger } from '../../log/index.js';
import type {
  AcquireRequest,
  KeepLeaseHooks,
  OwnLeaseChange,
  SubnetManager,
  WatchHealthEvent,
  WatchLeasesHooks,
} from '../types.js';
import { LeaseAcquirer } from './acquire.js';
import { createEtcdClient, type EtcdClientOptions } from './client.js';
import { abortError, pollNetworkConfig } from './config-poll.js';
import { EtcdSubnetManagerConfigError, SubnetManagerClosedError } from './errors.js';
import { OwnGrants } from './grants.js';
import type { EtcdRpc } from './grpc/index.js';
import { LeaseKeeper, reacquireRequest } from './keep.js';
import { watchLeaseSet } from './list-watch.js';
import { classifyRecords, type LeaseListing } from './records.js';
import { EtcdLeaseStore } from './store.js';

export interface EtcdSubnetManagerOptions extends EtcdClientOptions {
  /** `--etcd-prefix`, e.g. `/coreos.com/network` (validated by `config/`). */
  prefix: string;
  /** `--subnet-lease-renew-margin`: renew when less than this many minutes are left (validated by `config/`). */
  renewMargin: number;
  /** TTL of the etcd lease attached to a new key (default 86400 = 24 h, like flannel). */
  leaseTtlSeconds?: number | undefined;
  logger?: Logger | undefined;
  onWatchEvent?: ((event: WatchHealthEvent) => void) | undefined;
  /** Overrides `renewMargin` with seconds (tests run with short TTLs). */
  renewMarginSeconds?: number | undefined;
  /** Wait before retrying a failed renewal (default 60 s, as flannel). */
  renewRetryMs?: number | undefined;
  /** How often the keeper reads the own key to confirm it (its heartbeat; default 60 s). */
  leaseCheckIntervalMs?: number | undefined;
  /** How often an idle lease watch asks etcd to confirm it is alive (its heartbeat; default 30 s). */
  watchProgressIntervalMs?: number | undefined;
  /** How often a missing config is polled (default 1 s); logged every 30 s. */
  configPollMs?: number | undefined;
  /** A client built elsewhere (bench/leases.ts passes the etcd3 package's to compare); default: weft's own. */
  client?: EtcdRpc | undefined;
  /** Random source for the subnet pick (tests). */
  random?: (() => number) | undefined;
}

export const DEFAULT_LEASE_TTL_SECONDS = 24 * 60 * 60;
const DEFAULT_LEASE_CHECK_INTERVAL_MS = 60_000;
const DEFAULT_WATCH_PROGRESS_INTERVAL_MS = 30_000;

/**
 * flannel's etcd subnet manager, with its known defects fixed: a lost creation race retries with another
 * subnet, renewals are conditional and keep reservations, a write whose reply is lost is read back rather
 * than retried or undone, a lost own lease is re-acquired and reported, and the lease watch resumes from the
 * last revision seen and diffs attributes after a compaction.
 */
export class EtcdSubnetManager implements SubnetManager {
  readonly kind = 'etcd' as const;
  readonly store: EtcdLeaseStore;
  readonly heartbeatPeriods: { leaseKeeperMs: number; leaseWatchMs: number };
  private readonly client: EtcdRpc;
  private readonly logger: Logger;
  private readonly configPollMs: number;
  private readonly onWatchEvent: (event: WatchHealthEvent) => void;
  private readonly lifetime = new AbortController();
  private readonly acquirer: LeaseAcquirer;
  private readonly keeper: LeaseKeeper;
  private config: NetworkConfig | undefined;
  private lastRequest: AcquireRequest | undefined;

  constructor(options: EtcdSubnetManagerOptions) {
    const ttlSeconds = options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 5) {
      throw new EtcdSubnetManagerConfigError(`lease TTL: expected whole seconds >= 5, found ${ttlSeconds}`);
    }
    const renewMarginMs =
      options.renewMarginSeconds !== undefined
        ? options.renewMarginSeconds * 1000
        : options.renewMargin * 60_000;
    if (renewMarginMs >= ttlSeconds * 1000) {
      throw new EtcdSubnetManagerConfigError(
        `renew margin (${renewMarginMs / 1000} s) must be shorter than the lease TTL (${ttlSeconds} s)`,
      );
    }
    this.configPollMs = options.configPollMs ?? 1_000;
    this.logger = options.logger ?? silentLogger();
    this.onWatchEvent = options.onWatchEvent ?? (() => undefined);
    this.client = options.client ?? createEtcdClient(options);
    this.store = new EtcdLeaseStore(this.client, options.prefix);
    this.heartbeatPeriods = {
      leaseKeeperMs: options.leaseCheckIntervalMs ?? DEFAULT_LEASE_CHECK_INTERVAL_MS,
      leaseWatchMs: options.watchProgressIntervalMs ?? DEFAULT_WATCH_PROGRESS_INTERVAL_MS,
    };
    const grants = new OwnGrants();
    this.acquirer = new LeaseAcquirer({
      store: this.store,
      grants,
      logger: this.logger,
      ttlSeconds,
      random: options.random ?? Math.random,
    });
    this.keeper = new LeaseKeeper({
      client: this.client,
      store: this.store,
      grants,
      logger: this.logger,
      ttlSeconds,
      renewMarginMs,
      renewRetryMs: options.renewRetryMs ?? 60_000,
      checkIntervalMs: this.heartbeatPeriods.leaseKeeperMs,
      reacquire: (previous, signal) => this.reacquire(previous, signal),
    });
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

  /** Reads `<prefix>/config`, waiting until it exists and parses; logs why it waits every 30 s. */
  async getNetworkConfig(signal?: AbortSignal): Promise<NetworkConfig> {
    const config = await pollNetworkConfig(this.store, this.logger, this.configPollMs, this.link(signal));
    this.config = config;
    return config;
  }

  /**
   * Every lease under `subnets/`, with expiries. With a config, leases that do not fit it are skipped;
   * without one, only the key and value codecs decide. Never throws for bad data; throws when etcd fails.
   */
  async listLeases(config?: NetworkConfig): Promise<LeaseListing> {
    const list = await this.store.list();
    const { leases, skipped } = await classifyRecords(this.store, list.records, config);
    return { leases: [...leases.values()], skipped, revision: list.revision };
  }

  /** See `LeaseAcquirer.acquire`. */
  async acquireLease(request: AcquireRequest, signal?: AbortSignal): Promise<Lease> {
    this.lastRequest = request;
    this.config = request.config;
    return this.acquirer.acquire(request, this.link(signal));
  }

  /** See `LeaseKeeper.renew`. */
  renewLease(lease: Lease): Promise<Lease> {
    return this.keeper.renew(lease);
  }

  /** See `LeaseKeeper.keep`; `hooks` carries the Task heartbeat and the renewal outcomes. */
  keepLease(
    lease: Lease,
    onChange: (change: OwnLeaseChange) => void,
    signal: AbortSignal,
    hooks?: KeepLeaseHooks,
  ): Promise<void> {
    return this.keeper.keep(lease, onChange, this.link(signal), hooks);
  }

  private async reacquire(previous: Lease, stop: AbortSignal): Promise<Lease> {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 30_000 });
    for (;;) {
      if (stop.aborted) throw abortError(stop);
      try {
        const base = this.lastRequest ?? {
          config: this.config ?? (await this.getNetworkConfig(stop)),
          attrs: previous.attrs,
        };
        const lease = await this.acquireLease(reacquireRequest(base, previous), stop);
        this.lastRequest = base;
        return lease;
      } catch (err) {
        if (stop.aborted) throw abortError(stop);
        this.logger.error({ err: errorFields(err) }, 'cannot re-acquire the own lease; retrying');
        await backoff.wait(stop);
      }
    }
  }

  /**
   * All leases that fit the network config: a snapshot first, then events (see list-watch.ts). `hooks.beat`
   * is called after each batch and each idle confirmation from etcd.
   */
  async *watchLeases(signal: AbortSignal, hooks?: WatchLeasesHooks): AsyncGenerator<LeaseWatchBatch> {
    const stop = this.link(signal);
    let config: NetworkConfig;
    try {
      config = this.config ?? (await this.getNetworkConfig(stop));
    } catch (err) {
      if (stop.aborted) return; // stopped while waiting for the config: end quietly
      throw err;
    }
    yield* watchLeaseSet(
      {
        client: this.client,
        store: this.store,
        logger: this.logger,
        onWatchEvent: this.onWatchEvent,
        progressRequestMs: this.heartbeatPeriods.leaseWatchMs,
      },
      config,
      stop,
      hooks,
    );
  }
}
