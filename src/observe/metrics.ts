// weft's Prometheus metrics: one `WeftMetrics` per daemon, with its own registry (never prom-client's global
// one, so tests and embedded uses do not collide). The daemon calls the typed methods; nothing else touches
// the prom-client objects. Names and meanings are listed in docs/metrics.md.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BackendCounters } from '../backend/index.js';

/** Where a lease watch reconnected or re-listed from. */
export type WatchSource = 'etcd' | 'kube';

/** The outcome of one kernel operation of a reconcile plan (kind: `route`, `neighbor`, `fdb`, `link`, `address`). */
export interface KernelOpOutcome {
  kind: string;
  ok: boolean;
}

/** The udp data path's counters as the backend reports them (one shape: `BackendCounters`). */
export type UdpCountersSnapshot = BackendCounters;

export interface WeftMetricsOptions {
  /** Collect prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`). Default true. */
  defaultMetrics?: boolean;
  /** weft version, exported as `weft_build_info{version}`. */
  version?: string;
  /**
   * Peers that get their own per-peer probe series (default `DEFAULT_MAX_PEER_SERIES`). Above it only the
   * aggregates grow: a 5000-node cluster must not put 25 000 series into every node's scrape.
   */
  maxPeerSeries?: number;
}

/** Per-peer probe detail for this many peers at most; aggregates cover every peer. */
export const DEFAULT_MAX_PEER_SERIES = 100;

/** Probe round-trip times through the overlay: tens of microseconds on a LAN to a second (the timeout). */
const PROBE_RTT_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export interface RenderOptions {
  /**
   * Include the per-peer series (`{peer="…"}`, the peer inventory). Default true; the server leaves them out
   * for clients on other hosts unless `--expose-status`.
   */
  peerDetail?: boolean;
}

/** Reconcile durations: a reconcile of a few peers takes milliseconds; thousands of peers, about a second. */
const RECONCILE_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export class WeftMetrics {
  readonly registry: Registry;
  /** The per-peer probe series, apart so they can be left out of a scrape (see `RenderOptions`). */
  readonly peerRegistry: Registry;
  readonly maxPeerSeries: number;

  private readonly leaseHeldGauge: Gauge;
  private readonly leaseReservationGauge: Gauge;
  private readonly leaseExpiryGauge: Gauge<'subnet'>;
  private readonly leaseRenewals: Counter;
  private readonly leaseRenewalFailures: Counter;
  private readonly leaseAcquisitions: Counter;
  private readonly leaseLosses: Counter;
  private readonly peersGauge: Gauge;
  private readonly reconcileDuration: Histogram;
  private readonly reconciles: Counter<'result'>;
  private readonly lastReconcileGauge: Gauge;
  private readonly kernelOpsApplied: Counter<'kind'>;
  private readonly kernelOpsFailed: Counter<'kind'>;
  private readonly staleEntriesRemoved: Counter<'kind'>;
  private readonly watchReconnects: Counter<'source'>;
  private readonly watchRelists: Counter<'source'>;
  private readonly firewallRepairs: Counter;
  private readonly udpPackets: Counter<'direction'>;
  private readonly udpBytes: Counter<'direction'>;
  private readonly udpDrops: Counter<'reason'>;
  private readonly probesSent: Counter<'peer'>;
  private readonly probesLost: Counter<'peer'>;
  private readonly probeRtt: Gauge<'peer'>;
  private readonly probeLossRatio: Gauge<'peer'>;
  private readonly peerHealthy: Gauge<'peer'>;
  private readonly probesSentAll: Counter;
  private readonly probesLostAll: Counter;
  private readonly probeRttAll: Histogram;
  private readonly peersUnhealthyGauge: Gauge;
  private readonly detailPeersGauge: Gauge;
  /** Peers that have per-peer series (at most `maxPeerSeries`). */
  private readonly detailed = new Set<string>();
  private readonly unhealthy = new Set<string>();

  /** The own lease's subnet and expiry (ms since epoch); null: no lease or a reservation. */
  private leaseExpiry: { subnet: string; atMs: number } | null = null;
  /** The last udp snapshot, to turn the data path's running totals into counter increments. */
  private lastUdp: UdpCountersSnapshot | null = null;

  constructor(options: WeftMetricsOptions = {}) {
    const registry = new Registry();
    this.registry = registry;
    this.peerRegistry = new Registry();
    this.maxPeerSeries = Math.max(0, Math.floor(options.maxPeerSeries ?? DEFAULT_MAX_PEER_SERIES));
    const registers = [registry];
    const peerRegisters = [this.peerRegistry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

    const buildInfo = new Gauge({
      name: 'weft_build_info',
      help: 'Always 1; the label carries the running weft version.',
      labelNames: ['version'],
      registers,
    });
    buildInfo.set({ version: options.version ?? 'unknown' }, 1);

    this.leaseHeldGauge = new Gauge({
      name: 'weft_lease_held',
      help: '1 while this node holds its subnet lease, else 0.',
      registers,
    });
    this.leaseHeldGauge.set(0);
    this.leaseReservationGauge = new Gauge({
      name: 'weft_lease_reservation',
      help: '1 when the own lease is a reservation (an etcd key without TTL, never expires), else 0.',
      registers,
    });
    this.leaseReservationGauge.set(0);
    this.leaseExpiryGauge = new Gauge({
      name: 'weft_lease_expiry_timestamp_seconds',
      help: 'Unix time at which the own lease expires unless renewed; absent without a lease or for a reservation.',
      labelNames: ['subnet'],
      registers,
    });
    const self = this;
    // Registered for its scrape-time collect(); no method sets it directly.
    new Gauge({
      name: 'weft_lease_remaining_seconds',
      help: 'Seconds until the own lease expires unless renewed (negative: expired); absent without an expiry.',
      labelNames: ['subnet'],
      registers,
      collect() {
        // Computed at scrape time so the value is current without a timer.
        this.reset();
        const expiry = self.leaseExpiry;
        if (expiry !== null) this.set({ subnet: expiry.subnet }, (expiry.atMs - Date.now()) / 1000);
      },
    });
    this.leaseAcquisitions = new Counter({
      name: 'weft_lease_acquisitions_total',
      help: 'Subnet leases acquired (at start and after the own lease was lost).',
      registers,
    });
    this.leaseLosses = new Counter({
      name: 'weft_lease_lost_total',
      help: 'Times the own lease was lost: it expired without renewal, or its key was deleted or taken.',
      registers,
    });
    this.leaseRenewals = new Counter({
      name: 'weft_lease_renewals_total',
      help: 'Successful renewals of the own lease.',
      registers,
    });
    this.leaseRenewalFailures = new Counter({
      name: 'weft_lease_renewal_failures_total',
      help: 'Failed attempts to renew the own lease.',
      registers,
    });
    this.peersGauge = new Gauge({
      name: 'weft_peers',
      help: 'Peer leases (other nodes) currently known.',
      registers,
    });
    this.peersGauge.set(0);

    this.reconcileDuration = new Histogram({
      name: 'weft_reconcile_duration_seconds',
      help: 'Time one reconcile took: kernel dump, plan and apply.',
      buckets: RECONCILE_BUCKETS_SECONDS,
      registers,
    });
    this.reconciles = new Counter({
      name: 'weft_reconciles_total',
      help: 'Reconciles run, by result (ok: every operation applied; failed: an operation or the run failed).',
      labelNames: ['result'],
      registers,
    });
    this.reconciles.inc({ result: 'ok' }, 0);
    this.reconciles.inc({ result: 'failed' }, 0);
    this.lastReconcileGauge = new Gauge({
      name: 'weft_last_reconcile_timestamp_seconds',
      help: 'Unix time at which the last reconcile finished (whatever its result).',
      registers,
    });
    this.kernelOpsApplied = new Counter({
      name: 'weft_kernel_ops_applied_total',
      help: 'Kernel operations applied by reconciles, by kind of entry.',
      labelNames: ['kind'],
      registers,
    });
    this.kernelOpsFailed = new Counter({
      name: 'weft_kernel_ops_failed_total',
      help: 'Kernel operations that failed, by kind of entry.',
      labelNames: ['kind'],
      registers,
    });
    this.staleEntriesRemoved = new Counter({
      name: 'weft_stale_entries_removed_total',
      help: 'Kernel entries removed because no lease wants them any more (peers gone, changed MACs), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.watchReconnects = new Counter({
      name: 'weft_watch_reconnects_total',
      help: 'Lease watch reconnects after an error or a closed stream, by source.',
      labelNames: ['source'],
      registers,
    });
    this.watchRelists = new Counter({
      name: 'weft_watch_relists_total',
      help: 'Full re-lists of the leases (start, compacted revision, kube 410 Gone), by source.',
      labelNames: ['source'],
      registers,
    });
    this.firewallRepairs = new Counter({
      name: 'weft_firewall_repairs_total',
      help: 'Times the firewall check found missing or changed rules and re-applied them.',
      registers,
    });
    this.udpPackets = new Counter({
      name: 'weft_udp_packets_total',
      help: 'udp backend packets, by direction (tx: TUN to peers, rx: peers to TUN).',
      labelNames: ['direction'],
      registers,
    });
    this.udpBytes = new Counter({
      name: 'weft_udp_bytes_total',
      help: 'udp backend inner-packet bytes, by direction (tx: TUN to peers, rx: peers to TUN).',
      labelNames: ['direction'],
      registers,
    });
    this.udpDrops = new Counter({
      name: 'weft_udp_drops_total',
      help: 'udp backend packets dropped, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.probesSent = new Counter({
      name: 'weft_peer_probes_total',
      help: 'ICMP echo probes sent through the overlay to a peer, by peer lease key.',
      labelNames: ['peer'],
      registers: peerRegisters,
    });
    this.probesLost = new Counter({
      name: 'weft_peer_probe_losses_total',
      help: 'Probes that got no reply within the timeout (or could not be sent), by peer lease key.',
      labelNames: ['peer'],
      registers: peerRegisters,
    });
    this.probeRtt = new Gauge({
      name: 'weft_peer_probe_rtt_seconds',
      help: 'Round-trip time of the last answered probe to a peer, by peer lease key.',
      labelNames: ['peer'],
      registers: peerRegisters,
    });
    this.probeLossRatio = new Gauge({
      name: 'weft_peer_probe_loss_ratio',
      help: 'Fraction of the recent probes to a peer that were lost (0..1), by peer lease key.',
      labelNames: ['peer'],
      registers: peerRegisters,
    });
    this.peerHealthy = new Gauge({
      name: 'weft_peer_healthy',
      help: '1 when the peer answers probes, 0 after consecutive losses; absent until known, by peer lease key.',
      labelNames: ['peer'],
      registers: peerRegisters,
    });
    this.probesSentAll = new Counter({
      name: 'weft_probes_sent_total',
      help: 'ICMP echo probes sent through the overlay, all peers together.',
      registers,
    });
    this.probesLostAll = new Counter({
      name: 'weft_probes_lost_total',
      help: 'Probes that got no reply within the timeout (or could not be sent), all peers together.',
      registers,
    });
    this.probeRttAll = new Histogram({
      name: 'weft_probe_rtt_seconds',
      help: 'Round-trip times of answered probes, all peers together.',
      buckets: PROBE_RTT_BUCKETS_SECONDS,
      registers,
    });
    this.peersUnhealthyGauge = new Gauge({
      name: 'weft_peers_unhealthy',
      help: 'Peers whose last probes were lost (unhealthy), all peers together.',
      registers,
    });
    this.peersUnhealthyGauge.set(0);
    this.detailPeersGauge = new Gauge({
      name: 'weft_probe_detail_peers',
      help: 'Peers that have their own weft_peer_* series (at most the per-peer series limit).',
      registers,
    });
    this.detailPeersGauge.set(0);
  }

  /** The Content-Type of `render()`'s output (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in Prometheus text format; the per-peer series unless `peerDetail` is false. */
  async render(options: RenderOptions = {}): Promise<string> {
    const text = await this.registry.metrics();
    if (options.peerDetail === false) return text;
    const peers = await this.peerRegistry.metrics();
    return peers.trim() === '' ? text : `${text}${text.endsWith('\n') ? '' : '\n'}${peers}`;
  }

  /** Whether `peer` gets per-peer series: it has them, or there is room under the limit. */
  private detail(peer: string): boolean {
    if (this.detailed.has(peer)) return true;
    if (this.detailed.size >= this.maxPeerSeries) return false;
    this.detailed.add(peer);
    this.detailPeersGauge.set(this.detailed.size);
    return true;
  }

  /**
   * The own lease for `subnet` (e.g. `10.5.52.0/24`, the `subnet` label) is held until `expiration`;
   * null means a reservation (never expires). Call again after each renewal.
   */
  leaseHeld(subnet: string, expiration: Date | null | undefined): void {
    this.leaseHeldGauge.set(1);
    this.leaseExpiryGauge.reset();
    if (expiration === undefined) {
      // Not known (never the case for the own etcd lease, which is always read with its TTL).
      this.leaseExpiry = null;
      this.leaseReservationGauge.set(0);
      return;
    }
    if (expiration === null) {
      this.leaseExpiry = null;
      this.leaseReservationGauge.set(1);
      return;
    }
    this.leaseExpiry = { subnet, atMs: expiration.getTime() };
    this.leaseReservationGauge.set(0);
    this.leaseExpiryGauge.set({ subnet }, expiration.getTime() / 1000);
  }

  /** The own lease is gone (deleted, taken or expired): held 0, and one more loss counted. */
  leaseLost(): void {
    this.leaseLosses.inc();
    this.leaseExpiry = null;
    this.leaseHeldGauge.set(0);
    this.leaseReservationGauge.set(0);
    this.leaseExpiryGauge.reset();
  }

  leaseAcquired(): void {
    this.leaseAcquisitions.inc();
  }

  leaseRenewed(): void {
    this.leaseRenewals.inc();
  }

  leaseRenewalFailed(): void {
    this.leaseRenewalFailures.inc();
  }

  setPeers(count: number): void {
    this.peersGauge.set(count);
  }

  /**
   * One reconcile finished. `results` are the per-operation outcomes of its apply step (empty when nothing
   * needed changing). `failed` marks a run that failed as a whole (e.g. the kernel dump); by default a run
   * failed when any operation did.
   */
  reconcileObserved(
    durationSeconds: number,
    results: readonly KernelOpOutcome[],
    failed = results.some((r) => !r.ok),
  ): void {
    if (Number.isFinite(durationSeconds) && durationSeconds >= 0)
      this.reconcileDuration.observe(durationSeconds);
    this.reconciles.inc({ result: failed ? 'failed' : 'ok' });
    this.lastReconcileGauge.set(Date.now() / 1000);
    const applied = new Map<string, number>();
    const failedByKind = new Map<string, number>();
    for (const r of results) {
      const counts = r.ok ? applied : failedByKind;
      counts.set(r.kind, (counts.get(r.kind) ?? 0) + 1);
    }
    for (const [kind, n] of applied) this.kernelOpsApplied.inc({ kind }, n);
    for (const [kind, n] of failedByKind) this.kernelOpsFailed.inc({ kind }, n);
  }

  /** `count` stale entries of `kind` were removed (successfully) by a reconcile. */
  staleRemoved(kind: string, count = 1): void {
    if (count > 0) this.staleEntriesRemoved.inc({ kind }, count);
  }

  watchReconnect(source: WatchSource): void {
    this.watchReconnects.inc({ source });
  }

  watchRelist(source: WatchSource): void {
    this.watchRelists.inc({ source });
  }

  firewallRepair(): void {
    this.firewallRepairs.inc();
  }

  /**
   * Feeds the udp data path's running totals. Counters are fed with the increase since the last snapshot
   * (a Prometheus counter must only go up; a gauge named *_total would lie about its type). A total that went
   * down means the data path restarted from zero: its whole new value is the increase.
   */
  udpCounters(snapshot: UdpCountersSnapshot): void {
    const last = this.lastUdp;
    const delta = (now: number, before: number | undefined): number => {
      if (!Number.isFinite(now) || now < 0) return 0;
      if (before === undefined || now < before) return now;
      return now - before;
    };
    this.udpPackets.inc({ direction: 'tx' }, delta(snapshot.txPackets, last?.txPackets));
    this.udpPackets.inc({ direction: 'rx' }, delta(snapshot.rxPackets, last?.rxPackets));
    this.udpBytes.inc({ direction: 'tx' }, delta(snapshot.txBytes, last?.txBytes));
    this.udpBytes.inc({ direction: 'rx' }, delta(snapshot.rxBytes, last?.rxBytes));
    for (const [reason, n] of Object.entries(snapshot.drops)) {
      this.udpDrops.inc({ reason }, delta(n, last?.drops[reason]));
    }
    this.lastUdp = { ...snapshot, drops: { ...snapshot.drops } };
  }

  /**
   * One probe to `peer` (its lease key, e.g. `10.5.52.0-24`) finished: `rttMs` null means lost.
   * `lossRatio` is the prober's loss over its recent window (0..1), when known.
   */
  probeResult(peer: string, rttMs: number | null, lossRatio?: number): void {
    this.probesSentAll.inc();
    if (rttMs === null) this.probesLostAll.inc();
    else this.probeRttAll.observe(rttMs / 1000);
    if (!this.detail(peer)) return;
    this.probesSent.inc({ peer });
    // inc by 0 creates the series: `rate(losses) / rate(probes)` needs it before the first loss.
    this.probesLost.inc({ peer }, rttMs === null ? 1 : 0);
    if (rttMs !== null) this.probeRtt.set({ peer }, rttMs / 1000);
    if (lossRatio !== undefined && Number.isFinite(lossRatio)) this.probeLossRatio.set({ peer }, lossRatio);
  }

  /** The prober's verdict on a peer changed (or became known). */
  peerHealth(peer: string, health: 'healthy' | 'unhealthy' | 'unknown'): void {
    if (health === 'unhealthy') this.unhealthy.add(peer);
    else this.unhealthy.delete(peer);
    this.peersUnhealthyGauge.set(this.unhealthy.size);
    if (!this.detail(peer)) return;
    if (health === 'unknown') this.peerHealthy.remove({ peer });
    else this.peerHealthy.set({ peer }, health === 'healthy' ? 1 : 0);
  }

  /** A peer went away: drop its series so dead peers do not linger in every scrape. */
  forgetPeer(peer: string): void {
    if (this.unhealthy.delete(peer)) this.peersUnhealthyGauge.set(this.unhealthy.size);
    if (!this.detailed.delete(peer)) return;
    this.detailPeersGauge.set(this.detailed.size);
    for (const metric of [this.probesSent, this.probesLost]) metric.remove({ peer });
    for (const metric of [this.probeRtt, this.probeLossRatio, this.peerHealthy]) metric.remove({ peer });
  }
}
