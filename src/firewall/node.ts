import { CommandStartError, errorFields, errorMessage, sleep, type Task } from '../core/index.js';
import type { Cidr, Family } from '../ip/index.js';
import { type Logger, silentLogger } from '../log/index.js';
import { detectIptables, Firewall } from './firewall.js';
import { NFT_TABLE_NAMES, type NftTableRef, nftFamilyOf, nftTables } from './nft-rules.js';
import { Nftables } from './nftables.js';
import { type FirewallPolicy, planFirewallPolicy } from './policy.js';
import {
  type IptablesRuleSet,
  iptablesRuleSets,
  staleIptablesRuleSets,
  WEFT_IPTABLES_CHAINS,
} from './rules.js';

/** Which tool holds the node's rules: flannel's `EnableNFTables` chooses nftables. */
export type FirewallMode = 'iptables' | 'nftables';

export function firewallModeOf(config: { readonly enableNFTables: boolean }): FirewallMode {
  return config.enableNFTables ? 'nftables' : 'iptables';
}

/** The tool the chosen mode needs is not installed. Names the package and the net-conf key of the other mode. */
export class FirewallToolMissingError extends Error {
  override name = 'FirewallToolMissingError';
}

export interface NodeFirewallOptions {
  mode: FirewallMode;
  /** The network config's Networks (a family without one has no rules and no table). */
  networks: { ipv4?: Cidr; ipv6?: Cidr };
  ipMasq: boolean;
  forwardRules: boolean;
  /** Set when --tunnel-notrack is on and the backend has a UDP tunnel. */
  tunnelNotrack?: { port: number; families: readonly Family[] };
  /** Run every command in this network namespace (tests). */
  netns?: string;
  /** The environment of every command (tests hide a binary with PATH). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Called each time a check repaired the rules (metrics). */
  onRepair?: () => void;
  /** After every install and check: whether the rules are in place, and why not (readiness). */
  onStatus?: (installed: boolean, problem?: string) => void;
}

export interface NodeFirewallStats {
  /** Completed checks. */
  checks: number;
  /** Checks that found something changed or missing and repaired it. */
  repairs: number;
  /** Transactions applied: `nft -f` runs, or iptables ensure calls that restored. */
  transactions: number;
  /** Checks or installs that failed. */
  failures: number;
}

/** The node's firewall as the network config and the flags ask for it (weftd's one instance). */
export function nodeFirewallFor(
  config: {
    readonly enableNFTables: boolean;
    readonly ipv4?: { network: Cidr } | undefined;
    readonly ipv6?: { network: Cidr } | undefined;
  },
  flags: { ipMasq: boolean; iptablesForwardRules: boolean; tunnelNotrack: boolean },
  tunnel: NodeFirewallOptions['tunnelNotrack'],
  sinks: Pick<NodeFirewallOptions, 'logger' | 'onRepair' | 'onStatus'>,
): NodeFirewall {
  return new NodeFirewall({
    mode: firewallModeOf(config),
    networks: { ipv4: config.ipv4?.network, ipv6: config.ipv6?.network },
    ipMasq: flags.ipMasq,
    forwardRules: flags.iptablesForwardRules,
    tunnelNotrack: flags.tunnelNotrack ? tunnel : undefined,
    ...sinks,
  });
}

const ALL_NFT_TABLES: readonly NftTableRef[] = ([4, 6] as const).map((f) => ({
  family: nftFamilyOf(f),
  name: NFT_TABLE_NAMES[f],
}));

/**
 * The node's firewall in the mode the config chose. `install(lease)` puts the rules in place (and, the
 * first time, removes the other mode's state); `check()` reads once, repairs when something changed and says
 * whether it did. One call at a time: a check waits for a running install.
 */
export class NodeFirewall {
  readonly mode: FirewallMode;
  private readonly logger: Logger;
  private readonly iptables: Firewall;
  private readonly nft: Nftables;
  private policy: FirewallPolicy | undefined;
  /** The lease of the last install, and whether that install completed (a check retries a failed one). */
  private lease: { subnet?: Cidr; ipv6Subnet?: Cidr } | undefined;
  private installed = false;
  private installedSets: IptablesRuleSet[] = [];
  private preflightDone = false;
  private randomFully = true;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly counters: NodeFirewallStats = { checks: 0, repairs: 0, transactions: 0, failures: 0 };

  constructor(private readonly options: NodeFirewallOptions) {
    this.mode = options.mode;
    this.logger = options.logger ?? silentLogger();
    this.iptables = new Firewall({ netns: options.netns, logger: this.logger });
    this.nft = new Nftables({ netns: options.netns, env: options.env, logger: this.logger });
  }

  get stats(): Readonly<NodeFirewallStats> {
    return { ...this.counters, transactions: this.counters.transactions + this.nft.transactions };
  }

  /** Whether the config asks for any rule (with none, no tool is needed and readiness does not wait). */
  get hasRules(): boolean {
    const o = this.options;
    const network = o.networks.ipv4 !== undefined || o.networks.ipv6 !== undefined;
    return ((o.ipMasq || o.forwardRules) && network) || (o.tunnelNotrack?.families.length ?? 0) > 0;
  }

  private planFor(lease: { subnet?: Cidr; ipv6Subnet?: Cidr }): FirewallPolicy {
    const o = this.options;
    return planFirewallPolicy({
      networks: o.networks,
      lease,
      ipMasq: o.ipMasq,
      forwardRules: o.forwardRules,
      tunnelNotrack: o.tunnelNotrack,
      randomFully: this.randomFully,
    });
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async counted<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      this.options.onStatus?.(true);
      return result;
    } catch (err) {
      this.counters.failures++;
      this.options.onStatus?.(false, errorMessage(err));
      throw err;
    }
  }

  /** Puts the lease's rules in place; again after a lease change (the old subnet's rules go). */
  install(lease: { subnet?: Cidr; ipv6Subnet?: Cidr }): Promise<void> {
    this.lease = lease;
    this.installed = false;
    return this.serialized(() => this.counted(() => this.installNow(lease)));
  }

  private async installNow(lease: { subnet?: Cidr; ipv6Subnet?: Cidr }): Promise<void> {
    if (!this.preflightDone) {
      await this.preflight();
      await this.removeOtherMode();
      this.preflightDone = true;
    }
    const policy = this.planFor(lease);
    if (this.mode === 'nftables') {
      // Every weft table is managed here: a family the config dropped loses its table.
      const r = await this.nft.ensure(nftTables(policy), ALL_NFT_TABLES).catch((err: unknown) => {
        // No rules wanted and no nft: there is nothing to write and no table of weft's to find.
        if (!this.hasRules && err instanceof CommandStartError) return undefined;
        throw err;
      });
      if (r?.repaired) this.logger.info({ changes: r.differences }, 'nftables rules installed');
    } else {
      await this.installIptables(policy);
    }
    this.policy = policy;
    if (lease === this.lease) this.installed = true;
  }

  private async installIptables(policy: FirewallPolicy): Promise<void> {
    const sets = iptablesRuleSets(policy);
    // NOTRACK off (or a backend without a tunnel): drop the jumps an earlier run with it on installed.
    const stale = staleIptablesRuleSets(policy);
    if (stale.length > 0) {
      await this.iptables.cleanup(stale, sets).catch((err: unknown) => {
        // No rules wanted and no iptables: nothing of weft's can be there to remove.
        if (this.hasRules || !(err instanceof CommandStartError)) {
          this.logger.warn({ err: errorFields(err) }, 'could not remove stale tunnel NOTRACK rules');
        }
      });
    }
    if (this.installedSets.length > 0) await this.iptables.cleanup(this.installedSets, sets);
    if (sets.length > 0 && (await this.iptables.ensure(sets)).repaired) this.counters.transactions++;
    this.installedSets = sets;
  }

  /** The chosen mode's tool must exist when there are rules to write; iptables also says if --random-fully works. */
  private async preflight(): Promise<void> {
    if (!this.hasRules) return;
    try {
      if (this.mode === 'nftables') await this.nft.version();
      else
        this.randomFully = (
          await detectIptables({ netns: this.options.netns, env: this.options.env })
        ).randomFully;
    } catch (err) {
      if (!(err instanceof CommandStartError)) throw err;
      throw new FirewallToolMissingError(
        this.mode === 'nftables'
          ? `nftables mode ("EnableNFTables": true in the network config) needs the nft binary, which was not found: install the Debian package "nftables", or set "EnableNFTables": false to use iptables (${err.message})`
          : `iptables mode ("EnableNFTables" false or absent in the network config) needs the iptables binary, which was not found: install the Debian package "iptables", or set "EnableNFTables": true to use nftables (${err.message})`,
        { cause: err },
      );
    }
  }

  /** Switching modes: the other mode's tables or chains go. Without its tool there is nothing of it to remove. */
  private async removeOtherMode(): Promise<void> {
    try {
      if (this.mode === 'nftables') {
        // Both families: one the config no longer has may still hold an earlier run's chains.
        const removed = await this.iptables.removeChains([4, 6], WEFT_IPTABLES_CHAINS);
        if (removed.length > 0) this.logger.info({ removed }, 'nftables mode: removed the iptables chains');
      } else {
        const present = await this.nft.existing(ALL_NFT_TABLES);
        if (present.length > 0) {
          await this.nft.ensure([], present);
          this.logger.info(
            { removed: present.map((t) => `${t.family} ${t.name}`) },
            'iptables mode: removed the nftables tables',
          );
        }
      }
    } catch (err) {
      if (err instanceof CommandStartError) return;
      throw err;
    }
  }

  /**
   * One check: reads the rules once and repairs them when changed or missing. Returns whether it repaired;
   * throws when reading or repairing fails (the caller marks the firewall not installed).
   */
  check(): Promise<boolean> {
    return this.serialized(() =>
      this.counted(async () => {
        // The last install failed (a tool missing, a rule refused): this check installs again.
        if (!this.installed && this.lease !== undefined) {
          await this.installNow(this.lease);
          this.counters.checks++;
          return true;
        }
        const policy = this.policy;
        if (!policy) throw new Error('firewall check before install: call install(lease) first');
        let repaired = false;
        if (this.mode === 'nftables') {
          const desired = nftTables(policy);
          repaired = (await this.nft.ensure(desired, desired)).repaired;
        } else if (this.installedSets.length > 0) {
          repaired = (await this.iptables.ensure(this.installedSets)).repaired;
          if (repaired) this.counters.transactions++;
        }
        this.counters.checks++;
        if (repaired) {
          this.counters.repairs++;
          this.options.onRepair?.();
          this.logger.warn({ mode: this.mode }, 'firewall rules had changed and were repaired');
        }
        return repaired;
      }),
    );
  }

  /**
   * The periodic check as a Task (flannel's --iptables-resync): beats after every check (a failing check is
   * readiness's business, not liveness's) and reports each outcome (true: installed, false: the check or
   * repair failed) for readiness.
   */
  checkTask(periodMs: number, onOutcome?: (ok: boolean, err?: unknown) => void): Task {
    return {
      name: 'firewall-check',
      periodMs,
      run: async ({ signal, beat }) => {
        while (!signal.aborted) {
          await sleep(periodMs, signal);
          if (signal.aborted) return;
          try {
            await this.check();
            onOutcome?.(true);
            beat();
          } catch (err) {
            this.logger.error(
              { err: errorFields(err) },
              'firewall check failed; node not ready until it passes',
            );
            onOutcome?.(false, err);
            beat();
          }
        }
      },
    };
  }
}
