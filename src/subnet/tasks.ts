// The lease keeper and the lease watch as core Tasks (design.md "Tasks and health"), for either lease source.
import type { Task, TaskContext } from '../core/index.js';
import type { Lease, LeaseWatchBatch } from '../lease/index.js';
import type { LeaseRenewalOutcome, OwnLeaseChange, SubnetManager } from './types.js';

/** Period of a task whose manager does not beat on its own (kube today): health never calls it stale. */
const UNBEATEN_PERIOD_MS = 2 ** 31 - 1;

export interface LeaseKeeperTaskOptions {
  /** Each renewal, adoption or re-acquisition (the daemon re-plumbs on `reacquired`). */
  onChange: (change: OwnLeaseChange) => void;
  /** Every renewal outcome (ok, failed, lost, reacquired): health and metrics. */
  onOutcome?: ((outcome: LeaseRenewalOutcome) => void) | undefined;
}

/**
 * `lease-keeper`: renews the own lease and re-acquires it when lost. Beats after each successful renewal or
 * periodic ownership check. A supervisor that restarts it after a throw resumes with the newest lease.
 */
export function leaseKeeperTask(
  sm: Pick<SubnetManager, 'keepLease' | 'heartbeatPeriods'>,
  lease: Lease,
  options: LeaseKeeperTaskOptions,
): Task {
  let current = lease;
  return {
    name: 'lease-keeper',
    periodMs: sm.heartbeatPeriods?.leaseKeeperMs ?? UNBEATEN_PERIOD_MS,
    run: async ({ signal, beat }: TaskContext) => {
      beat();
      await sm.keepLease(
        current,
        (change) => {
          current = change.lease;
          options.onChange(change);
        },
        signal,
        { beat, onOutcome: options.onOutcome },
      );
    },
  };
}

/**
 * `lease-watch`: lists then watches every lease and hands each batch to `onBatch` (the first batch of each
 * run is a snapshot). Beats after each batch and each idle confirmation from the store.
 */
export function leaseWatchTask(
  sm: SubnetManager,
  onBatch: (batch: LeaseWatchBatch) => void | Promise<void>,
): Task {
  return {
    name: 'lease-watch',
    periodMs: sm.heartbeatPeriods?.leaseWatchMs ?? UNBEATEN_PERIOD_MS,
    run: async ({ signal, beat }: TaskContext) => {
      for await (const batch of sm.watchLeases(signal, { beat })) {
        await onBatch(batch);
        beat();
      }
    },
  };
}
