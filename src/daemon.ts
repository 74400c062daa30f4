/**
 * weftd's wiring: options → subnet manager → interface → backend → lease → firewall → files → reconcile loop.
 * Everything with logic lives in the rooms below; this file only connects them and owns the process lifecycle.
 * On SIGTERM/SIGINT it stops and leaves every kernel entry, rule and file in place (a restart does not cut
 * traffic); a second signal or a 10 s stall exits anyway.
 */
import { type Backend, createBackend, type PreparedBackend } from './backend/index.js';
import { readSubnetEnv, renderBridgeConflist, writeBridgeConflist, writeSubnetEnv } from './cni/index.js';
import type { BackendConfig, NetworkConfig } from './config/index.js';
import { type DaemonOptions, redactOptions } from './config/options.js';
import { weftVersion } from './config/version.js';
import {
  detectIptables,
  Firewall,
  type IptablesRuleSet,
  mergeRuleSets,
  planForwardRules,
  planMasqRules,
  planTunnelNotrackRules,
  tunnelNotrackJumps,
} from './firewall/index.js';
import { type Cidr, formatCidr } from './ip/index.js';
import {
  applyKernelOps,
  describeKernelOp,
  dumpKernelState,
  ensureSysctl,
  type KernelOpResult,
  listInterfaces,
  planKernel,
  type SelectedInterface,
  selectInterface,
} from './kernel/index.js';
import type { Lease } from './lease/index.js';
import { createLogger, type Logger } from './log/index.js';
import {
  buildStatusDoc,
  HealthState,
  PeerProber,
  probeTargetsForLeases,
  startEventLoopMonitor,
  startObserveServer,
  WeftMetrics,
} from './observe/index.js';
import { notifySystemd } from './observe/sd-notify.js';
import { ObservedStateMemory, PeerStore, ReconcileLoop } from './reconcile/index.js';
import type { OwnLeaseChange, SubnetManager } from './subnet/index.js';
import { createSubnetManager } from './subnet/select.js';

export const VERSION = weftVersion();

/** Runs weftd until a signal; resolves with the process exit code. */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  const logger = createLogger({ level: options.logLevel });
  logger.info({ version: VERSION, options: redactOptions(options) }, 'weftd starting');
  const daemon = new Daemon(options, logger);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(0);
    }
    logger.info({ signal }, 'stopping; kernel state, rules and files stay in place');
    stop.abort();
    // A stuck shutdown must not keep the node's daemon half alive.
    setTimeout(() => {
      logger.error('shutdown took longer than 10 s: exiting anyway');
      process.exit(0);
    }, 10_000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await daemon.run(stop.signal);
    return 0;
  } catch (err) {
    if (stop.signal.aborted) return 0;
    logger.fatal({ err: errorFields(err) }, 'weftd failed');
    return 1;
  } finally {
    await daemon.close();
    logger.flush?.();
  }
}

function errorFields(err: unknown): Record<string, unknown> {
  return err instanceof Error ? { type: err.name, message: err.message } : { message: String(err) };
}

/** How often the data path's counters reach the metrics between reconcile passes. */
const BACKEND_COUNTERS_INTERVAL_MS = 5_000;

/** Backend types the config can name, reduced to the one that runs (auto → vxlan or udp). */
function backendCandidates(cfg: BackendConfig): BackendConfig[] {
  return cfg.type === 'auto' ? [cfg.vxlan, cfg.udp] : [cfg];
}

class Daemon {
  private sm: SubnetManager | undefined;
  private readonly health: HealthState;
  private readonly metrics = new WeftMetrics({ version: VERSION });
  private readonly peers = new PeerStore();
  /** The kernel state the last clean pass left, for lease-event passes (see reconcile/observed.ts). */
  private readonly observedMemory = new ObservedStateMemory();
  private config: NetworkConfig | undefined;
  private iface: SelectedInterface | undefined;
  private backend: Backend | undefined;
  private prepared: PreparedBackend | undefined;
  private lease: Lease | undefined;
  private firewall: Firewall | undefined;
  private firewallSets: IptablesRuleSet[] = [];
  /** Whether this iptables supports MASQUERADE --random-fully (checked once). */
  private randomFully = true;
  private loop: ReconcileLoop | undefined;
  private prober: PeerProber | undefined;
  private readonly closers: Array<() => Promise<void> | void> = [];

  constructor(
    private readonly options: DaemonOptions,
    private readonly logger: Logger,
  ) {
    this.health = new HealthState({
      firewallRequired: options.ipMasq || options.iptablesForwardRules || options.tunnelNotrack,
      // A loop that has not finished a pass in three resync periods is stuck.
      maxReconcileAgeMs: Math.max(3 * options.resyncInterval * 1000, 60_000),
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const { options, logger } = this;
    const monitor = startEventLoopMonitor(this.health);
    this.closers.push(() => monitor.stop());
    const server = await startObserveServer({
      host: options.healthzIp,
      port: options.healthzPort,
      health: this.health,
      metrics: this.metrics,
      status: () => this.status(),
      logger,
    });
    if (server) {
      logger.info({ url: server.url }, 'health, metrics and status server listening');
      this.closers.push(() => server.close());
    }

    this.sm = await createSubnetManager(options, logger, {
      onWatchEvent: (e) => {
        if (e.type === 'reconnect') this.metrics.watchReconnect(this.sm?.kind ?? 'etcd');
        if (e.type === 'relist') this.metrics.watchRelist(this.sm?.kind ?? 'etcd');
      },
    });
    const config = await this.sm.getNetworkConfig(signal);
    this.config = config;
    if (config.unknownKeys.length > 0) {
      logger.warn(
        { keys: config.unknownKeys },
        'network config has keys weft does not know; they are ignored',
      );
    }
    logger.info(
      {
        network: config.ipv4 && formatCidr(config.ipv4.network),
        ipv6Network: config.ipv6 && formatCidr(config.ipv6.network),
        backend: config.backend.type,
      },
      'network config',
    );

    // Kubernetes mode: the node's `node-public-ip[v6]` annotations act like --public-ip[v6] (per node, so they win).
    const nodeOverride = await this.sm.readNodePublicIPOverride?.(signal);
    if (nodeOverride?.publicIP !== undefined || nodeOverride?.publicIPv6 !== undefined) {
      logger.info(
        { publicIp: nodeOverride.publicIP, publicIpv6: nodeOverride.publicIPv6 },
        'using the node-public-ip annotation as --public-ip',
      );
    }
    const facts = await listInterfaces({ canReach: options.ifaceCanReach });
    this.iface = selectInterface(facts, {
      publicIp: nodeOverride?.publicIP ?? options.publicIp,
      publicIpv6: nodeOverride?.publicIPv6 ?? options.publicIpv6,
      iface: options.iface,
      ifaceRegex: options.ifaceRegex,
      ifaceCanReach: options.ifaceCanReach,
      ipv4: config.enableIPv4,
      ipv6: config.enableIPv6,
    });
    logger.info(
      {
        iface: this.iface.name,
        publicIp: this.iface.publicIp,
        publicIpv6: this.iface.publicIpv6,
        reason: this.iface.reason,
      },
      'using interface',
    );

    await this.prepareBackend(config, this.iface);
    const previous = await readSubnetEnv(options.subnetFile).catch((err: unknown) => {
      logger.warn(
        { file: options.subnetFile, err: errorFields(err) },
        'ignoring unreadable previous subnet file',
      );
      return undefined;
    });
    const lease = await this.sm.acquireLease(
      {
        config,
        attrs: this.prepared!.attrs,
        previousSubnet: previous?.subnet && formatCidr(previous.subnet),
        previousIPv6Subnet: previous?.ipv6Subnet && formatCidr(previous.ipv6Subnet),
      },
      signal,
    );
    this.setLease(lease);
    this.metrics.leaseAcquired();
    logger.info({ subnet: leaseSubnets(lease), key: lease.key, expires: lease.expiration }, 'lease acquired');

    await ensureSysctl('net.ipv4.ip_forward', '1').catch((err: unknown) =>
      logger.warn({ err: errorFields(err) }, 'could not enable net.ipv4.ip_forward'),
    );
    if (config.enableIPv6) {
      await ensureSysctl('net.ipv6.conf.all.forwarding', '1').catch((err: unknown) =>
        logger.warn({ err: errorFields(err) }, 'could not enable IPv6 forwarding'),
      );
    }
    await this.installFirewall(lease);

    this.loop = new ReconcileLoop({
      intervalMs: options.resyncInterval * 1000,
      pass: (reason) => this.reconcilePass(reason),
      onPass: (record) => {
        this.health.reconcileFinished({
          ok: record.ok,
          ops: record.applied,
          failed: record.failed,
          durationMs: record.durationMs,
          error: record.error,
        });
        // A pass that threw (e.g. the kernel dump failed) never reached reconcileObserved: count it here.
        if (record.error !== undefined) this.metrics.reconcileObserved(record.durationMs / 1000, [], true);
        if (!record.ok)
          logger.error(
            { reason: record.reason, failed: record.failed, error: record.error },
            'reconcile incomplete',
          );
      },
    });

    // The first snapshot is programmed before the files say "ready": pods started then can reach every peer.
    const watch = this.sm.watchLeases(signal)[Symbol.asyncIterator]();
    const first = await watch.next();
    if (!first.done) this.peers.apply(first.value);
    await this.loop.trigger('start');
    await this.writeFiles();
    this.health.setSubnetFileWritten(true);
    this.loop.start();
    await this.sm
      .markNetworkReady?.(signal)
      .catch((err: unknown) => logger.warn({ err: errorFields(err) }, 'could not mark the network ready'));
    void notifySystemd('READY=1')
      .then((r) => {
        if (r.sent) logger.info('told systemd weftd is ready');
      })
      .catch((err: unknown) => logger.warn({ err: errorFields(err) }, 'sd_notify failed'));
    logger.info({ peers: this.peers.size - 1 }, 'weftd ready');

    this.startProber(signal);
    // The udp data path counts on its own threads; the metrics read its totals each pass and every 5 s.
    if (this.backend?.counters) {
      const timer = setInterval(() => this.feedBackendCounters(), BACKEND_COUNTERS_INTERVAL_MS);
      timer.unref();
      this.closers.push(() => clearInterval(timer));
    }
    const tasks = [
      this.sm.keepLease(lease, (change) => void this.onOwnLease(change), signal),
      this.firewall ? this.firewall.run(options.iptablesResync, signal) : Promise.resolve(),
      this.consumeWatch(watch, signal),
      // The backend's own long-running work (wireguard's device supervision).
      ...(this.prepared?.tasks ?? []).map((task) =>
        task.run({ signal, beat: () => undefined }).catch((err: unknown) => {
          logger.error({ task: task.name, err: errorFields(err) }, 'backend task stopped');
        }),
      ),
    ];
    await Promise.race([Promise.all(tasks), abortPromise(signal)]);
  }

  private async prepareBackend(config: NetworkConfig, iface: SelectedInterface): Promise<void> {
    const candidates = backendCandidates(config.backend);
    let lastError: unknown;
    for (const candidate of candidates) {
      const backend = createBackend(candidate);
      try {
        this.prepared = await backend.prepare({
          config,
          iface,
          logger: this.logger.child({ backend: candidate.type }),
          commandTimeoutMs: this.options.extensionCommandTimeout * 1000,
        });
        this.backend = backend;
        if (candidates.length > 1 && candidate !== candidates[0]) {
          this.logger.warn(
            { backend: candidate.type, err: errorFields(lastError) },
            'vxlan is not available here: falling back to the udp backend',
          );
        }
        this.logger.info(
          { backend: backend.name, mtu: this.prepared.mtu, attrs: this.prepared.attrs },
          'backend ready',
        );
        return;
      } catch (err) {
        lastError = err;
        if (candidates.length === 1) throw err;
      }
    }
    throw lastError;
  }

  private setLease(lease: Lease): void {
    this.lease = lease;
    this.health.setLeaseHeld(true);
    this.metrics.leaseHeld(leaseSubnets(lease), lease.expiration);
  }

  private firewallRuleSets(lease: Lease): IptablesRuleSet[] {
    const config = this.config!;
    const sets: IptablesRuleSet[] = [];
    const pairs: Array<[Cidr | undefined, Cidr | undefined, 4 | 6]> = [
      [config.ipv4?.network, lease.subnet, 4],
      [config.ipv6?.network, lease.ipv6Subnet, 6],
    ];
    for (const [network, subnet, family] of pairs) {
      if (!network || !subnet) continue;
      if (this.options.ipMasq)
        sets.push(planMasqRules({ network, subnet, family, randomFully: this.randomFully }));
      if (this.options.iptablesForwardRules) sets.push(planForwardRules({ network, family }));
    }
    for (const family of this.notrackFamilies()) {
      sets.push(planTunnelNotrackRules({ family, port: this.prepared!.tunnel!.port }));
    }
    return mergeRuleSets(sets);
  }

  /** The families whose tunnel packets get NOTRACK rules: none for host-gw or with --tunnel-notrack=false. */
  private notrackFamilies(): readonly (4 | 6)[] {
    return this.options.tunnelNotrack ? (this.prepared?.tunnel?.families ?? []) : [];
  }

  private async installFirewall(lease: Lease): Promise<void> {
    if (!this.options.ipMasq && !this.options.iptablesForwardRules && this.notrackFamilies().length === 0) {
      this.health.setFirewallInstalled(true);
      return;
    }
    this.randomFully = (await detectIptables().catch(() => ({ randomFully: true }))).randomFully;
    this.firewall ??= new Firewall({
      logger: this.logger,
      onEnsure: (r) => {
        if (r.repaired) this.metrics.firewallRepair();
      },
    });
    const sets = this.firewallRuleSets(lease);
    if (this.firewallSets.length === 0 && this.notrackFamilies().length === 0) {
      // NOTRACK off (or a backend without a tunnel): drop the jumps an earlier run with it on installed.
      const stale: IptablesRuleSet[] = [];
      if (this.config?.ipv4) stale.push(tunnelNotrackJumps(4));
      if (this.config?.ipv6) stale.push(tunnelNotrackJumps(6));
      await this.firewall
        .cleanup(stale, sets)
        .catch((err: unknown) =>
          this.logger.warn({ err: errorFields(err) }, 'could not remove stale tunnel NOTRACK rules'),
        );
    }
    if (this.firewallSets.length > 0) await this.firewall.cleanup(this.firewallSets, sets);
    await this.firewall.ensure(sets);
    this.firewallSets = sets;
    this.health.setFirewallInstalled(true);
  }

  private async writeFiles(): Promise<void> {
    const config = this.config!;
    const lease = this.lease!;
    const mtu = this.prepared!.mtu;
    const wroteEnv = await writeSubnetEnv(this.options.subnetFile, {
      network: config.ipv4?.network,
      subnet: lease.subnet,
      ipv6Network: config.ipv6?.network,
      ipv6Subnet: lease.ipv6Subnet,
      mtu,
      ipMasq: this.options.ipMasq,
    });
    if (wroteEnv) this.logger.info({ file: this.options.subnetFile }, 'subnet file written');
    if (this.options.cniConfFile) {
      const conflist = renderBridgeConflist({
        subnet: lease.subnet,
        ipv6Subnet: lease.ipv6Subnet,
        network: lease.subnet ? config.ipv4?.network : undefined,
        ipv6Network: lease.ipv6Subnet ? config.ipv6?.network : undefined,
        mtu,
        ipamDataDir: this.options.cniIpamDataDir,
      });
      if (await writeBridgeConflist(this.options.cniConfFile, conflist)) {
        this.logger.info({ file: this.options.cniConfFile }, 'CNI conflist written');
      }
    }
  }

  private async reconcilePass(reason: string): Promise<{ applied: number; failed: number; removed: number }> {
    const backend = this.backend!;
    const own = this.lease!;
    this.health.reconcileStarted();
    const started = process.hrtime.bigint();
    const peers = this.peers.peers(own.key);
    const { state, skipped } = backend.desired(own, peers);
    for (const s of skipped)
      this.logger.debug({ peer: s.key, family: s.family, reason: s.reason }, 'peer not programmed');
    const scope = backend.scope(own);
    const planned = process.hrtime.bigint();
    // Lease events plan against the state the last clean pass left; everything else reads the kernel.
    const remembered = this.observedMemory.recall(reason, scope);
    this.observedMemory.forget();
    const observed = remembered ?? (await dumpKernelState(scope));
    const dumped = process.hrtime.bigint();
    const ops = planKernel(state, observed, scope);
    const diffed = process.hrtime.bigint();
    let results: KernelOpResult[] = [];
    if (ops.length > 0) {
      results = await applyKernelOps(ops);
      for (const r of results) {
        if (!r.ok)
          this.logger.error({ op: describeKernelOp(r.op), error: r.error }, 'kernel operation failed');
      }
    }
    const failed = results.filter((r) => !r.ok).length;
    this.observedMemory.passFinished(state, scope, failed === 0);
    const removed = results.filter((r) => r.ok && r.op.kind.endsWith('-delete')).length;
    // Metric labels name the kind of entry (`route`, `neighbor`, `fdb`, `link`, `address`), not the operation.
    for (const r of results)
      if (r.ok && r.op.kind.endsWith('-delete')) this.metrics.staleRemoved(kernelEntryKind(r.op.kind));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.reconcileObserved(
      seconds,
      results.map((r) => ({ kind: kernelEntryKind(r.op.kind), ok: r.ok })),
    );
    this.metrics.setPeers(peers.length);
    if (ops.length > 0 || reason !== 'resync') {
      const ms = (from: bigint, to: bigint) => Math.round(Number(to - from) / 1e6);
      const applied = process.hrtime.bigint();
      this.logger.info(
        {
          reason,
          ops: ops.length,
          failed,
          removed,
          peers: peers.length,
          dumped: remembered === undefined,
          ms: Math.round(seconds * 1000),
          // Where the time went: backend plan, kernel dump, diff, apply (+ metrics).
          stepsMs: [ms(started, planned), ms(planned, dumped), ms(dumped, diffed), ms(diffed, applied)],
        },
        'reconciled',
      );
    }
    this.prober?.setPeers(probeTargetsForLeases(peers, backend.name));
    await backend.afterReconcile?.(own, peers);
    this.feedBackendCounters();
    return { applied: results.length - failed, failed, removed };
  }

  private feedBackendCounters(): void {
    try {
      const counters = this.backend?.counters?.();
      if (counters) this.metrics.udpCounters(counters);
    } catch (err) {
      this.logger.warn({ err: errorFields(err) }, 'could not read the data path counters');
    }
  }

  private async consumeWatch(
    watch: AsyncIterator<import('./lease/index.js').LeaseWatchBatch>,
    signal: AbortSignal,
  ) {
    while (!signal.aborted) {
      const next = await watch.next();
      if (next.done) return;
      const changes = this.peers.apply(next.value);
      if (changes.added + changes.removed + changes.changed === 0 && !changes.snapshot) continue;
      this.logger.info({ ...changes, leases: this.peers.size }, 'leases changed');
      void this.loop!.trigger('lease');
    }
  }

  private async onOwnLease(change: OwnLeaseChange): Promise<void> {
    if (change.type === 'renewed') {
      this.setLease(change.lease);
      this.metrics.leaseRenewed();
      this.logger.info({ expires: change.lease.expiration }, 'lease renewed');
      return;
    }
    this.metrics.leaseLost();
    this.metrics.leaseAcquired();
    this.logger.error(
      { previous: leaseSubnets(change.previous), subnet: leaseSubnets(change.lease), reason: change.reason },
      'own lease was lost and has been re-acquired; re-plumbing',
    );
    this.setLease(change.lease);
    try {
      await this.installFirewall(change.lease);
      await this.loop?.trigger('own-lease');
      await this.writeFiles();
    } catch (err) {
      this.logger.error(
        { err: errorFields(err) },
        're-plumbing after lease change failed; the next resync retries',
      );
    }
  }

  private startProber(signal: AbortSignal): void {
    const intervalMs = this.options.probeInterval * 1000;
    if (intervalMs <= 0 || !this.config) return;
    const networks = [this.config.ipv4?.network, this.config.ipv6?.network].filter(
      (c): c is Cidr => c !== undefined,
    );
    this.prober = new PeerProber({
      logger: this.logger,
      overlayNetworks: networks,
      onResult: (target, rttMs, state) =>
        this.metrics.probeResult(target.key, rttMs, state.lossRatio ?? undefined),
      onTransition: (t) => this.metrics.peerHealth(t.key, t.to),
      onPeerRemoved: (key) => this.metrics.forgetPeer(key),
    });
    this.prober.setPeers(probeTargetsForLeases(this.peers.peers(this.lease?.key), this.backend!.name));
    this.prober.start(intervalMs, signal);
  }

  private status() {
    return buildStatusDoc({
      version: VERSION,
      ownLease: this.lease ?? null,
      backend: this.backend
        ? {
            type: this.backend.name,
            interface: this.iface?.name ?? '',
            device: this.backend.device ?? null,
            mtu: this.prepared?.mtu ?? 0,
          }
        : null,
      peers: this.peers.peers(this.lease?.key),
      probes: this.prober?.states(),
      probeIntervalMs: this.options.probeInterval * 1000,
      lastReconcile: this.health.lastReconcile,
    });
  }

  async close(): Promise<void> {
    this.health.setShuttingDown();
    await this.loop?.stop();
    this.prober?.close();
    await this.backend?.close?.();
    for (const c of this.closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await this.sm?.close().catch(() => undefined);
  }
}

/** `route-replace` → `route`: the kind of kernel entry an operation touches. */
function kernelEntryKind(opKind: string): string {
  return opKind.split('-')[0] ?? opKind;
}

function leaseSubnets(lease: Lease): string {
  return [lease.subnet, lease.ipv6Subnet]
    .filter((c): c is Cidr => c !== undefined)
    .map(formatCidr)
    .join(',');
}

function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
