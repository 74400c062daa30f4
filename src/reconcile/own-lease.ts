/**
 * The own lease as the daemon holds it: what the keeper reports (renewed, a failed renewal, re-acquired after a
 * loss) and what the clock says (past its expiry without a renewal = lost), turned into health, metrics and —
 * after a re-acquire — re-plumbing (firewall, an own-lease pass, the files). The keeper runs as the Task
 * `lease-keeper`: it beats on every keeper report, and checks the expiry once a second beside it.
 */
import { errorFields, sleep, type Task } from '../core/index.js';
import { type Cidr, formatCidr } from '../ip/index.js';
import type { Lease } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import type { OwnLeaseChange } from '../subnet/index.js';

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

/** How the keeper keeps a lease (SubnetManager.keepLease). */
export type KeepLease = (
  lease: Lease,
  onChange: (change: OwnLeaseChange) => void,
  signal: AbortSignal,
) => Promise<void>;

/** `10.5.52.0/24,fd00::/64`: the lease's subnets, for logs and the metric label. */
export function leaseSubnets(lease: Lease): string {
  return [lease.subnet, lease.ipv6Subnet]
    .filter((c): c is Cidr => c !== undefined)
    .map(formatCidr)
    .join(',');
}

/** How often the expiry is looked at. */
const EXPIRY_CHECK_MS = 1_000;
/** The keeper's period when the lease has no expiry (kube, a reservation): it reports only changes. */
const NO_EXPIRY_PERIOD_MS = 24 * 3_600_000;

export class OwnLease {
  private lease: Lease;
  /** The loss of the current lease was counted (expired), so a re-acquire does not count it twice. */
  private lossCounted = false;
  private readonly now: () => number;
  private beat: (() => void) | undefined;

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

  /** One keeper report. Re-plumbing after a re-acquire is awaited; its failure is logged (the resync retries). */
  async onChange(change: OwnLeaseChange): Promise<void> {
    const { metrics, logger } = this.sinks;
    this.beat?.();
    if (change.type === 'renewal-failed') {
      metrics.leaseRenewalFailed();
      logger.warn({ error: change.error, expires: change.lease.expiration }, 'lease renewal failed');
      return;
    }
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

  /** The keeper as a Task: `keep` with this lease, the expiry check beside it. */
  keeperTask(keep: KeepLease): Task {
    return {
      name: 'lease-keeper',
      // A keeper reports at least once per lease lifetime (a renewal is due before the expiry).
      periodMs: this.periodMs(),
      run: async ({ signal, beat }) => {
        this.beat = beat;
        const stop = new AbortController();
        const both = AbortSignal.any([signal, stop.signal]);
        const expiry = (async () => {
          while (!both.aborted) {
            this.checkExpiry();
            await sleep(EXPIRY_CHECK_MS, both);
          }
        })();
        try {
          await keep(this.lease, (change) => void this.onChange(change), signal);
        } finally {
          stop.abort();
          await expiry;
        }
      },
    };
  }

  private periodMs(): number {
    const exp = this.lease.expiration;
    return exp ? Math.max(EXPIRY_CHECK_MS, exp.getTime() - this.now()) : NO_EXPIRY_PERIOD_MS;
  }

  private hold(lease: Lease): void {
    this.lease = lease;
    this.lossCounted = false;
    this.sinks.health.setLeaseHeld(true, lease.expiration ?? null);
    this.sinks.metrics.leaseHeld(leaseSubnets(lease), lease.expiration);
  }
}
