/**
 * The node's firewall as the daemon uses it: `install(lease)` once (and again after the lease changed), then
 * `check()` from a task every `--iptables-resync` seconds. The methods `firewallRuleSets`, `notrackFamilies`
 * and `installFirewall` are daemon.ts's firewall section moved here unchanged; the "nft" helper's
 * `NodeFirewall` (policy.ts + iptables/nftables renderers) replaces this class at merge time.
 */
import type { PreparedBackend } from '../backend/index.js';
import type { NetworkConfig } from '../config/index.js';
import type { DaemonOptions } from '../config/options.js';
import { errorFields, errorMessage, sleep, type Task } from '../core/index.js';
import type { Cidr } from '../ip/index.js';
import type { Lease } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import { detectIptables, Firewall } from './firewall.js';
import {
  type IptablesRuleSet,
  mergeRuleSets,
  planForwardRules,
  planMasqRules,
  planTunnelNotrackRules,
  tunnelNotrackJumps,
} from './rules.js';

/** Where the node's firewall reports: readiness and the repair counter. */
export interface NodeRulesSinks {
  health: { setFirewallInstalled(installed: boolean, problem?: string): void };
  metrics: { firewallRepair(): void };
}

export interface NodeRulesOptions extends NodeRulesSinks {
  config: NetworkConfig;
  options: Pick<DaemonOptions, 'ipMasq' | 'iptablesForwardRules' | 'tunnelNotrack'>;
  prepared: PreparedBackend;
  logger: Logger;
}

export class NodeRules {
  private readonly config: NetworkConfig;
  private readonly options: NodeRulesOptions['options'];
  private readonly prepared: PreparedBackend;
  private readonly logger: Logger;
  private readonly health: NodeRulesSinks['health'];
  private readonly metrics: NodeRulesSinks['metrics'];
  private firewall: Firewall | undefined;
  private firewallSets: IptablesRuleSet[] = [];
  /** Whether this iptables supports MASQUERADE --random-fully (checked once). */
  private randomFully = true;
  /** The lease of the last install, so a check after a failed install installs again. */
  private lease: Lease | undefined;
  private installed = false;

  constructor(o: NodeRulesOptions) {
    this.config = o.config;
    this.options = o.options;
    this.prepared = o.prepared;
    this.logger = o.logger;
    this.health = o.health;
    this.metrics = o.metrics;
  }

  /** Whether this node needs rules at all (readiness waits for them only then). */
  get required(): boolean {
    return this.options.ipMasq || this.options.iptablesForwardRules || this.options.tunnelNotrack;
  }

  /** Installs the rules for `lease` (cleaning up an earlier lease's); readiness false with the reason on failure. */
  async install(lease: Lease): Promise<void> {
    this.lease = lease;
    this.installed = false;
    try {
      await this.installFirewall(lease);
      this.installed = true;
    } catch (err) {
      this.health.setFirewallInstalled(false, errorMessage(err));
      throw err;
    }
  }

  /**
   * One check: reads the rules, repairs what differs. Returns whether it repaired; throws when the repair
   * fails (readiness is false until a check succeeds again).
   */
  async check(): Promise<boolean> {
    try {
      if (!this.installed) {
        if (this.lease === undefined) return false;
        await this.install(this.lease);
        return true;
      }
      if (this.firewall === undefined) return false;
      const result = await this.firewall.ensure(this.firewallSets);
      if (result.repaired)
        this.logger.warn({ missing: result.missing, extra: result.extra }, 'firewall rules were repaired');
      this.health.setFirewallInstalled(true);
      return result.repaired;
    } catch (err) {
      this.health.setFirewallInstalled(false, errorMessage(err));
      throw err;
    }
  }

  /** The check loop as a Task: one check per period; a failing check is logged and still a beat. */
  checkTask(periodMs: number): Task {
    return {
      name: 'firewall-check',
      periodMs,
      run: async ({ signal, beat }) => {
        while (!signal.aborted) {
          await sleep(periodMs, signal);
          if (signal.aborted) return;
          await this.check().catch((err: unknown) =>
            this.logger.error(
              { err: errorFields(err) },
              'firewall check failed; node not ready until it passes',
            ),
          );
          beat();
        }
      },
    };
  }

  // ---- moved unchanged from daemon.ts

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
}
