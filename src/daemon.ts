/**
 * weftd's wiring: options → subnet manager → interface → backend → lease → firewall → first pass → files →
 * tasks. Everything with logic lives in the rooms; this file connects them and owns the process lifecycle.
 * Every long-running loop runs as a Task under one supervisor, so `/healthz` names a loop that stopped
 * beating. On SIGTERM/SIGINT it stops and leaves every kernel entry, rule and file in place (a restart does
 * not cut traffic); a second signal or a 10 s stall exits anyway.
 */
import path from 'node:path';
import { type NodeBackend, prepareNodeBackend } from './backend/prepare.js';
import { releaseResumedUdpDataPath, resumeUdpDataPath } from './backend/udp/index.js';
import { readPreviousSubnets, writeNodeFiles } from './cni/index.js';
import { type NetworkConfig, networkConfigWarnings } from './config/index.js';
import type { DaemonOptions } from './config/options.js';
import { redactOptions } from './config/redact.js';
import { weftVersion } from './config/version.js';
import { errorFields, type Task, TaskSupervisor, untilAborted } from './core/index.js';
import { type NodeFirewall, nodeFirewallFor } from './firewall/index.js';
import { type Cidr, formatCidr } from './ip/index.js';
import { applyKernelOps, dumpKernelState, ensureForwarding, entryWriter } from './kernel/index.js';
import type { Lease } from './lease/index.js';
import { createLogger, type Logger } from './log/index.js';
import {
  buildStatusDoc,
  HealthState,
  nodePeerProber,
  type PeerProber,
  probeTargetsForLeases,
  startEventLoopMonitor,
  startObserveServer,
  WeftMetrics,
} from './observe/index.js';
import { readinessNotifierTask } from './observe/sd-notify.js';
import { leaseSubnets, NodeReconciler, OwnLease } from './reconcile/index.js';
import type { SubnetManager } from './subnet/index.js';
import { createSubnetManager, type SubnetManagerHooks } from './subnet/select.js';

export const VERSION = weftVersion();

/** Settings only tests use (never flags): see daemon/weftd.ts. */
export interface DaemonTesting {
  etcdLeaseTiming?: SubnetManagerHooks['etcdLeaseTiming'];
}

/** Runs weftd until a signal; resolves with the process exit code. */
export async function runDaemon(options: DaemonOptions, testing: DaemonTesting = {}): Promise<number> {
  const logger = createLogger({ level: options.logLevel });
  // The node flags show whether weftd runs with its memory settings (docs/memory.md).
  const node = { flags: process.execArgv, options: process.env.NODE_OPTIONS };
  logger.info({ version: VERSION, options: redactOptions(options), node }, 'weftd starting');
  const daemon = new Daemon(options, logger, testing);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
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

class Daemon {
  private sm: SubnetManager | undefined;
  private readonly metrics = new WeftMetrics({ version: VERSION });
  private readonly tasks: TaskSupervisor;
  private readonly health: HealthState;
  private backend: NodeBackend | undefined;
  private own: OwnLease | undefined;
  private node: NodeReconciler | undefined;
  private prober: PeerProber | undefined;
  private readonly closers: Array<() => Promise<void> | void> = [];

  constructor(
    private readonly options: DaemonOptions,
    private readonly logger: Logger,
    private readonly testing: DaemonTesting,
  ) {
    this.tasks = new TaskSupervisor({
      onError: (task, err, restartInMs) =>
        logger.error({ task, err: errorFields(err), restartInMs }, 'task failed; restarting it'),
    });
    this.health = new HealthState({
      firewallRequired: options.ipMasq || options.iptablesForwardRules || options.tunnelNotrack,
      reconcileRequired: true,
      tasks: () => this.tasks.statuses(),
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const { options, logger, health, metrics } = this;
    // First, before etcd and everything slow: a restarted udp node forwards again at once.
    await resumeUdpDataPath(logger, path.dirname(options.subnetFile));
    const monitor = startEventLoopMonitor(health);
    this.closers.push(() => monitor.stop());
    const status = () => this.status();
    const server = await startObserveServer({
      host: options.healthzIp,
      port: options.healthzPort,
      health,
      metrics,
      status,
      exposeStatus: options.exposeStatus,
      logger,
    });
    if (server) {
      logger.info({ url: server.url }, 'health, metrics and status server listening');
      this.closers.push(() => server.close());
    }
    const sm = await createSubnetManager(options, logger, {
      onWatchEvent: (e) => {
        if (e.type === 'reconnect') metrics.watchReconnect(sm.kind);
        if (e.type === 'relist') metrics.watchRelist(sm.kind);
        this.node?.watch.onWatchEvent(e);
      },
      ...(this.testing.etcdLeaseTiming ? { etcdLeaseTiming: this.testing.etcdLeaseTiming } : {}),
    });
    this.sm = sm;
    const config = await sm.getNetworkConfig(signal);
    // Once per start, here (the subnet managers only parse).
    for (const w of networkConfigWarnings(config)) logger.warn(w.fields, w.msg);
    const networks = [config.ipv4?.network, config.ipv6?.network].filter((c): c is Cidr => c !== undefined);
    logger.info({ networks: networks.map(formatCidr), backend: config.backend.type }, 'network config');

    // Kubernetes mode: the node's `node-public-ip[v6]` annotations act like --public-ip[v6] (per node, so they win).
    const override = await sm.readNodePublicIPOverride?.(signal);
    this.backend = await prepareNodeBackend(config, { ...options, ...override }, logger);
    releaseResumedUdpDataPath(); // the udp backend adopted it in prepare, or another backend was chosen
    const { backend, prepared } = this.backend;
    const previous = await readPreviousSubnets(options.subnetFile, logger);
    const lease = await sm.acquireLease({ config, attrs: prepared.attrs, ...previous }, signal);
    logger.info({ subnet: leaseSubnets(lease), key: lease.key, expires: lease.expiration }, 'lease acquired');
    const firewall = nodeFirewallFor(config, options, prepared.tunnel, {
      logger,
      onRepair: () => metrics.firewallRepair(),
      onStatus: (installed, problem) => health.setFirewallInstalled(installed, problem),
    });
    const replumb = (l: Lease) => this.replumb(config, firewall, l);
    const own = new OwnLease(lease, { health, metrics, logger, replumb });
    this.own = own;
    for (const f of await ensureForwarding(config.enableIPv6)) logger.warn(f, 'cannot turn on forwarding');
    // A failed install leaves the node not ready; the check task installs again.
    await firewall
      .install(lease)
      .catch((err: unknown) =>
        logger.error({ err: errorFields(err) }, 'could not install the firewall rules; retrying'),
      );

    const writer = entryWriter();
    logger.info(writer, `kernel routes, neighbours and FDB entries are written by ${writer.writer}`);
    const node = new NodeReconciler({
      backend,
      own: () => own.current,
      watch: (s, hooks) => sm.watchLeases(s, hooks),
      watchBeatMs: sm.heartbeatPeriods?.leaseWatchMs,
      kernel: { dump: dumpKernelState, apply: applyKernelOps },
      resyncMs: options.resyncInterval * 1000,
      logger,
      metrics,
      health,
      afterPass: (peers) => this.prober?.setTargets(probeTargetsForLeases(peers, backend)),
      counters: (totals) => metrics.udpCounters(totals),
    });
    this.node = node;
    this.tasks.start(node.watch);
    this.tasks.start(own.keeperTask(sm));
    // The first snapshot is programmed before the files say "ready": pods started then can reach every peer.
    await Promise.race([node.watch.firstBatch, untilAborted(signal)]);
    if (signal.aborted) return;
    await node.loop.trigger('start');
    await this.writeFiles(config, own.current);
    for (const task of this.laterTasks(firewall, networks)) this.tasks.start(task);
    logger.info({ peers: node.peers().length }, 'weftd running');
    await untilAborted(signal);
  }

  /** The tasks that start once the first pass ran and the files exist. */
  private laterTasks(firewall: NodeFirewall, networks: Cidr[]): Task[] {
    const { options, logger, sm, metrics } = this;
    const { backend, prepared } = this.backend!;
    const tasks: Task[] = [this.node!.loop, readinessNotifierTask(this.health, logger)];
    if (firewall.hasRules) tasks.push(firewall.checkTask(options.iptablesResync * 1000));
    // Kube: NetworkUnavailable=False, beside the others (its retries never hold up peers being programmed).
    const ready = sm?.networkReadyTask?.();
    if (ready) tasks.push(ready);
    const intervalMs = options.probeInterval * 1000;
    if (intervalMs > 0) {
      this.prober = nodePeerProber({ logger, intervalMs, overlayNetworks: networks, metrics });
      this.prober.setTargets(probeTargetsForLeases(this.node!.peers(), backend));
      tasks.push(this.prober);
    }
    const counters = this.node!.countersTask();
    if (counters) tasks.push(counters);
    return [...tasks, ...(prepared.tasks ?? [])];
  }

  private async writeFiles(config: NetworkConfig, lease: Lease): Promise<void> {
    const { options, logger } = this;
    await writeNodeFiles({ ...options, config, lease, mtu: this.backend!.prepared.mtu, logger });
    this.health.setSubnetFileWritten(true);
  }

  /** After the own lease was re-acquired (maybe another subnet): firewall, an own-lease pass, files. */
  private async replumb(config: NetworkConfig, firewall: NodeFirewall, lease: Lease): Promise<void> {
    await firewall.install(lease);
    await this.node?.loop.trigger('own-lease');
    await this.writeFiles(config, lease);
  }

  private status() {
    const lease = this.own?.current ?? null;
    const b = this.backend;
    return buildStatusDoc({
      version: VERSION,
      ownLease: lease,
      backend: b
        ? { type: b.backend.name, interface: b.iface, device: b.backend.device ?? null, mtu: b.prepared.mtu }
        : null,
      peers: this.node?.peers() ?? [],
      probes: this.prober?.states(),
      probeIntervalMs: this.options.probeInterval * 1000,
      lastReconcile: this.health.lastReconcile,
    });
  }

  async close(): Promise<void> {
    this.health.setShuttingDown();
    await this.tasks.stop();
    await this.node?.loop.stop();
    this.prober?.close();
    await this.backend?.backend.close?.();
    for (const c of this.closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await this.sm?.close().catch(() => undefined);
  }
}
