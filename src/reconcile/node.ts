/**
 * The node's reconciler: the lease set fed by the lease watch, the loop that schedules passes, and the pass
 * itself against the real kernel (or the one a test injects). The daemon starts `watch` and `loop` as tasks.
 */
import { type Backend, type BackendCounters, SkippedPeerLog } from '../backend/index.js';
import { errorFields, sleep, type Task } from '../core/index.js';
import type { LeaseWatchBatch } from '../lease/index.js';
import type { Lease } from '../lease/types.js';
import type { Logger } from '../log/index.js';
import type { WatchLeasesHooks } from '../subnet/index.js';
import { LeaseSet } from './lease-set.js';
import { LeaseWatch } from './lease-watch.js';
import { type PassRecord, ReconcileLoop } from './loop.js';
import { ObservedStateMemory } from './observed.js';
import { type PassKernel, type PassMetrics, runReconcilePass } from './pass.js';

export interface NodeReconcilerOptions {
  backend: Backend;
  /** The own lease as it is now (it changes after a re-acquire). */
  own: () => Lease;
  watch: (signal: AbortSignal, hooks: WatchLeasesHooks) => AsyncIterable<LeaseWatchBatch>;
  /** The watch beats on idle confirmations itself (etcd); its heartbeat period, when it does. */
  watchBeatMs?: number | undefined;
  kernel: PassKernel;
  /** `--resync-interval` in ms; also the lease watch's heartbeat period. */
  resyncMs: number;
  logger: Logger;
  metrics?: PassMetrics;
  health: { reconcileStarted(): void; reconcileFinished(record: PassRecord): void };
  /** After each pass, with the peers it programmed (the prober's targets). */
  afterPass?: (peers: readonly Lease[]) => void;
  /** Where an in-process data path's running totals go, after each pass and every 5 s (`udpCounters`). */
  counters?: (totals: BackendCounters) => void;
}

/** How often the data path's counters reach the metrics between reconcile passes. */
const COUNTERS_INTERVAL_MS = 5_000;

export class NodeReconciler {
  readonly leases = new LeaseSet();
  readonly loop: ReconcileLoop;
  readonly watch: LeaseWatch;
  private readonly memory = new ObservedStateMemory();
  private readonly skippedPeers = new SkippedPeerLog();

  constructor(private readonly o: NodeReconcilerOptions) {
    this.loop = new ReconcileLoop({
      intervalMs: o.resyncMs,
      pass: async (reasons) => {
        const own = o.own();
        const peers = this.leases.peers(own.key);
        o.health.reconcileStarted();
        const outcome = await runReconcilePass(
          { reasons, backend: o.backend, own, peers },
          {
            kernel: o.kernel,
            memory: this.memory,
            logger: o.logger,
            metrics: o.metrics,
            skipped: this.skippedPeers,
          },
        );
        o.afterPass?.(peers);
        this.feedCounters();
        return outcome;
      },
      onPass: (record) => {
        o.health.reconcileFinished(record);
        if (!record.ok)
          o.logger.error(
            { reasons: record.reasons, failed: record.failed, error: record.error },
            'reconcile incomplete',
          );
      },
    });
    this.watch = new LeaseWatch({
      watch: o.watch,
      leases: this.leases,
      selfBeating: o.watchBeatMs !== undefined,
      periodMs: Math.max(o.resyncMs, o.watchBeatMs ?? 0),
      logger: o.logger,
      onChanged: () => void this.loop.trigger('lease'),
    });
  }

  /** Every lease but the own one. */
  peers(): Lease[] {
    return this.leases.peers(this.o.own().key);
  }

  /** The udp data path counts on its own threads: its totals reach the metrics every 5 s (none: undefined). */
  countersTask(): Task | undefined {
    if (!this.o.backend.counters || !this.o.counters) return undefined;
    return {
      name: 'data-path-counters',
      periodMs: COUNTERS_INTERVAL_MS,
      run: async ({ signal, beat }) => {
        while (!signal.aborted) {
          this.feedCounters();
          beat();
          await sleep(COUNTERS_INTERVAL_MS, signal);
        }
      },
    };
  }

  private feedCounters(): void {
    try {
      const totals = this.o.backend.counters?.();
      if (totals) this.o.counters?.(totals);
    } catch (err) {
      this.o.logger.warn({ err: errorFields(err) }, 'could not read the data path counters');
    }
  }
}
