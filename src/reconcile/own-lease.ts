/**
 * The own lease as the daemon holds it: what the keeper reports (its changes — renewed, re-acquired after a
 * loss — and its outcomes — ok, a failed renewal, lost) and what the clock says (past its expiry without a renewal = lost), turned into health, metrics and —
 * after a re-acquire — re-plumbing (firewall, an own-lease pass, the files). The keeper runs as the Task
 * `lease-keeper` (`subnet/tasks.ts`): it beats on every successful renewal or ownership check, and this
 * checks the expiry once a second beside it.
 */
import { errorFields, sleep, type Task } from '../core/index.js';
import { type Cidr, formatCidr } from '../ip/index.js';
import type { Lease } from '../lease/index.js';
import type { Logger } from '../log/index.js';
// Not `../subnet/index.js`: that re-exports the etcd manager, and loading etcd3 costs ~25 MiB a kube-mode
// weftd never uses (docs/memory.md).
import { leaseKeeperTask } from '../subnet/tasks.js';
import type { LeaseRenewalOutcome, OwnLeaseChange, SubnetManager } from '../subnet/types.js';

export interface OwnLeaseSinks {
  health: { setLeaseHeld(held: boolean, expiration?: Date | null): void };
  metrics: {
    leaseHeld(subnet: string, expiration: Date | null | undefined): void;
    leaseLost(): void;
    leaseAcquired(): void;
    leaseRenewed(): void;
    leaseRenewalFailed(): void;
  };
  logger: Logger;
  /** After a re-acquire: install the firewall, program the kernel and write the files for the new lease. */
  replumb(lease: Lease): Promise<void>;
  now?: () => number;
}

/** `10.5.52.0/24,fd00::/64`: the lease's subnets, for logs and the metric label. */
export function leaseSubnets(lease: Lease): string {
  return [lease.subnet, lease.ipv6Subnet]
    .filter((c): c is Cidr => c !== undefined)
    .map(formatCidr)
    .join(',');
}

/** How often the expiry is looked at. */
const EXPIRY_CHECK_MS = 1_000;

export class OwnLease {
  private lease: Lease;
  /** The loss of the current lease was counted (expired), so a re-acquire does not count it twice. */
  private lossCounted = false;
  private readonly now: () => number;

  constructor(
    initial: Lease,
    private readonly sinks: OwnLeaseSinks,
  ) {
    this.now = sinks.now ?? Date.now;
    this.lease = initial;
    this.sinks.metrics.leaseAcquired();
    this.hold(initial);
  }

  get current(): Lease {
    return this.lease;
  }

  /**
   * One keeper outcome: a failed renewal is counted (the keeper logs it); a loss is counted once and makes the
   * node not ready until the lease is held again.
   */
  onOutcome(outcome: LeaseRenewalOutcome): void {
    if (outcome.type === 'failed') {
      this.sinks.metrics.leaseRenewalFailed();
      if (outcome.expired) this.checkExpiry();
    } else if (outcome.type === 'lost') {
      if (!this.lossCounted) this.sinks.metrics.leaseLost();
      this.lossCounted = true;
      this.sinks.health.setLeaseHeld(false);
    }
  }

  /** One keeper change. Re-plumbing after a re-acquire is awaited; its failure is logged (the resync retries). */
  async onChange(change: OwnLeaseChange): Promise<void> {
    const { metrics, logger } = this.sinks;
    if (change.type === 'renewed') {
      metrics.leaseRenewed();
      this.hold(change.lease);
      logger.info({ expires: change.lease.expiration }, 'lease renewed');
      return;
    }
    if (!this.lossCounted) metrics.leaseLost();
    metrics.leaseAcquired();
    logger.error(
      { previous: leaseSubnets(change.previous), subnet: leaseSubnets(change.lease), reason: change.reason },
      'own lease was lost and has been re-acquired; re-plumbing',
    );
    this.hold(change.lease);
    try {
      await this.sinks.replumb(change.lease);
    } catch (err) {
      logger.error(
        { err: errorFields(err) },
        're-plumbing after lease change failed; the next resync retries',
      );
    }
  }

  /** Called on a timer: a lease past its expiry without renewal is lost (counted once). */
  checkExpiry(): void {
    const expiration = this.lease.expiration;
    if (this.lossCounted || !expiration || this.now() < expiration.getTime()) return;
    this.lossCounted = true;
    // Health judges the expiry from the clock itself (and names it); the metrics need telling.
    this.sinks.metrics.leaseLost();
    this.sinks.logger.error(
      { subnet: leaseSubnets(this.lease), expired: expiration },
      'own lease expired without renewal: node not ready until it is renewed or re-acquired',
    );
  }

  /** The keeper as a Task: `sm.keepLease` with this lease, the expiry check beside it. */
  keeperTask(sm: Pick<SubnetManager, 'keepLease' | 'heartbeatPeriods'>): Task {
    const keeper = leaseKeeperTask(sm, this.lease, {
      onChange: (change) => void this.onChange(change),
      onOutcome: (outcome) => this.onOutcome(outcome),
    });
    return {
      name: keeper.name,
      periodMs: keeper.periodMs,
      run: async (ctx) => {
        const { signal } = ctx;
        const stop = new AbortController();
        const both = AbortSignal.any([signal, stop.signal]);
        const expiry = (async () => {
          while (!both.aborted) {
            this.checkExpiry();
            await sleep(EXPIRY_CHECK_MS, both);
          }
        })();
        try {
          await keeper.run(ctx);
        } finally {
          stop.abort();
          await expiry;
        }
      },
    };
  }

  private hold(lease: Lease): void {
    this.lease = lease;
    this.lossCounted = false;
    this.sinks.health.setLeaseHeld(true, lease.expiration ?? null);
    this.sinks.metrics.leaseHeld(leaseSubnets(lease), lease.expiration);
  }
}
