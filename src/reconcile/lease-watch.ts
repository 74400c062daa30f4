/**
 * The lease watch consumer as the Task `lease-watch`: feeds each batch of the subnet manager's watch into the
 * lease set and asks for a pass when something changed. It beats on each batch and, while the watch stream
 * is connected (the manager's `connected` health event, until a `reconnect` or `relist`), once per period:
 * a quiet cluster sends no events. A manager that confirms an idle stream itself (etcd's progress requests,
 * `selfBeating`) beats through the watch hooks instead, so a stream that stalls without closing is seen too.
 * A stream that is cut and cannot come back stops the beats, and `/healthz` names this task. A watch that ends before the stop is an error (the supervisor starts it again: a re-list).
 */
import { sleep, type Task, type TaskContext } from '../core/index.js';
import type { LeaseWatchBatch } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import type { WatchLeasesHooks } from '../subnet/index.js';
import type { LeaseSet } from './lease-set.js';

export interface LeaseWatchOptions {
  /** The subnet manager's watch: a snapshot first, then events. */
  watch: (signal: AbortSignal, hooks: WatchLeasesHooks) => AsyncIterable<LeaseWatchBatch>;
  /** The watch beats its hooks on each idle confirmation (etcd): no connection-based ticker. */
  selfBeating?: boolean;
  leases: LeaseSet;
  periodMs: number;
  logger: Logger;
  /** Something in the lease set changed (after the first snapshot): run a pass. */
  onChanged: () => void;
}

export class LeaseWatchEndedError extends Error {
  override name = 'LeaseWatchEndedError';
}

export class LeaseWatch implements Task {
  readonly name = 'lease-watch';
  readonly periodMs: number;
  /** Resolves once the first batch (the snapshot) is in the lease set. */
  readonly firstBatch: Promise<void>;
  private resolveFirst!: () => void;
  private gotFirst = false;
  private connected = false;
  private beat: (() => void) | undefined;

  constructor(private readonly options: LeaseWatchOptions) {
    this.periodMs = options.periodMs;
    this.firstBatch = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
  }

  /** The subnet manager's watch health events (the same hook feeds the metrics). */
  onWatchEvent(event: { type: string }): void {
    if (event.type === 'connected') {
      this.connected = true;
      this.beat?.();
    } else if (event.type === 'reconnect' || event.type === 'relist') {
      this.connected = false;
    }
  }

  async run({ signal, beat }: TaskContext): Promise<void> {
    this.beat = beat;
    const stop = new AbortController();
    const both = AbortSignal.any([signal, stop.signal]);
    const ticker = (async () => {
      while (!both.aborted && !this.options.selfBeating) {
        await sleep(this.periodMs, both);
        if (this.connected && !both.aborted) beat();
      }
    })();
    try {
      for await (const batch of this.options.watch(signal, { beat })) {
        beat();
        const changes = this.options.leases.apply(batch);
        if (!this.gotFirst) {
          this.gotFirst = true;
          this.resolveFirst();
          continue;
        }
        if (changes.added + changes.removed + changes.changed === 0 && !changes.snapshot) continue;
        this.options.logger.info({ ...changes, leases: this.options.leases.size }, 'leases changed');
        this.options.onChanged();
      }
      if (!signal.aborted) throw new LeaseWatchEndedError('the lease watch ended before weftd stopped');
    } finally {
      this.connected = false;
      stop.abort();
      await ticker;
    }
  }
}
