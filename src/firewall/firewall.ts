import { type CommandResult, commandArgv, describeArgv, errorMessage, runCommand } from '../core/index.js';
import type { Family } from '../ip/index.js';
import { type Logger, silentLogger } from '../log/index.js';
import { checkRules, planCleanup, renderChainRemoval, renderCleanup, renderRestore } from './diff.js';
import { type ChainRef, type IptablesRuleSet, mergeRuleSets, ruleText } from './rules.js';
import { type IptablesSave, mergeSaves, parseIptablesSave } from './save.js';

/** An iptables command failed or could not run. Names the command line, exit code and stderr. */
export class IptablesCommandError extends Error {
  override name = 'IptablesCommandError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    detail?: string,
  ) {
    super(
      `${command} ${detail ?? `exited with code ${exitCode}`}` + (stderr.trim() ? `: ${stderr.trim()}` : ''),
    );
  }
}

/** A restore ran but the rules still differ afterwards (another writer, or a spelling iptables rewrites). */
export class FirewallRepairError extends Error {
  override name = 'FirewallRepairError';
  constructor(
    readonly family: Family,
    readonly remaining: string[],
  ) {
    super(`IPv${family} rules still differ after iptables-restore: ${remaining.join('; ')}`);
  }
}

export interface FirewallOptions {
  /** Run every command inside this network namespace (`ip netns exec <netns> …`). */
  netns?: string;
  logger?: Logger;
  /** Seconds iptables-restore waits for the xtables lock (`-w`). Default 5. */
  lockWaitSeconds?: number;
  /** Per-command timeout. Default 30 s. */
  commandTimeoutMs?: number;
  /** Called after every ensure that completed. */
  onEnsure?: (result: EnsureResult) => void;
}

export interface EnsureResult {
  /** True when a restore was run to put rules back. */
  repaired: boolean;
  /** Desired rules that were absent before the repair (`-t <table> -A …`). */
  missing: string[];
  /** Rules that were removed or replaced because they were not desired (stale subnet, duplicates). */
  extra: string[];
}

export interface CleanupResult {
  /** The rules that were deleted (`-t <table> -A …`). */
  removed: string[];
}

export interface FirewallStats {
  /** Completed ensure calls. */
  checks: number;
  /** Ensure calls that had to run a restore. */
  repairs: number;
  /** Ensure calls that failed (command error, unreadable output, repair that did not hold). */
  failures: number;
  lastError?: string;
}

function tools(family: Family): { save: string; restore: string } {
  return family === 4
    ? { save: 'iptables-save', restore: 'iptables-restore' }
    : { save: 'ip6tables-save', restore: 'ip6tables-restore' };
}

/**
 * Keeps weft's iptables rules in place: reads the tables with iptables-save, compares with the desired
 * rule sets, and repairs with one `iptables-restore --noflush` transaction only when something differs.
 * Rules are never removed on shutdown (a restart must not cut pod traffic).
 */
export class Firewall {
  private readonly netns: string | undefined;
  private readonly logger: Logger;
  private readonly lockWaitSeconds: number;
  private readonly commandTimeoutMs: number;
  private readonly onEnsure: ((result: EnsureResult) => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly counters: FirewallStats = { checks: 0, repairs: 0, failures: 0 };

  constructor(options: FirewallOptions = {}) {
    this.netns = options.netns;
    this.logger = options.logger ?? silentLogger();
    this.lockWaitSeconds = options.lockWaitSeconds ?? 5;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 30_000;
    this.onEnsure = options.onEnsure;
  }

  /** Counters for metrics: checks, repairs, failures. */
  get stats(): Readonly<FirewallStats> {
    return { ...this.counters };
  }

  /**
   * Makes the kernel hold `desired`. Reads each table the sets touch once,
   * restores only when something is missing, extra or out of order, then reads again to confirm.
   */
  async ensure(desired: IptablesRuleSet | readonly IptablesRuleSet[]): Promise<EnsureResult> {
    const sets = mergeRuleSets(Array.isArray(desired) ? desired : [desired as IptablesRuleSet]);
    return this.serialized(() => this.ensureNow(sets));
  }

  /**
   * Deletes the rules of `previous` (e.g. the masquerade rules of an old subnet) that are not also in
   * `keep`. Chains are left in place.
   */
  async cleanup(
    previous: IptablesRuleSet | readonly IptablesRuleSet[],
    keep: readonly IptablesRuleSet[] = [],
  ): Promise<CleanupResult> {
    const sets = mergeRuleSets(Array.isArray(previous) ? previous : [previous as IptablesRuleSet]);
    return this.serialized(async () => {
      const removed: string[] = [];
      for (const set of sets) {
        const saved = await this.read(set.family, tablesOf(set));
        const remove = planCleanup(set, saved, keep);
        if (remove.length === 0) continue;
        await this.restore(set.family, renderCleanup(remove));
        const texts = remove.map((r) => `-t ${r.table} ${ruleText(r)}`);
        removed.push(...texts);
        this.logger.info({ family: set.family, removed: texts }, 'removed stale firewall rules');
      }
      return { removed };
    });
  }

  /**
   * Removes `chains` and every rule that jumps into them, in each of `families`, one restore per family
   * (leaving iptables mode: nothing of weft's stays). Returns `table/chain` per family removed.
   */
  async removeChains(families: readonly Family[], chains: readonly ChainRef[]): Promise<string[]> {
    return this.serialized(async () => {
      const removed: string[] = [];
      const tables = [...new Set(chains.map((c) => c.table))];
      for (const family of families) {
        const saved = await this.read(family, tables);
        const input = renderChainRemoval(saved, chains);
        if (input === '') continue;
        await this.restore(family, input);
        for (const c of chains) {
          if (saved.tables.get(c.table)?.chains.has(c.chain))
            removed.push(`IPv${family} ${c.table}/${c.chain}`);
        }
      }
      return removed;
    });
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async ensureNow(sets: readonly IptablesRuleSet[]): Promise<EnsureResult> {
    try {
      return await this.ensureSets(sets);
    } catch (err) {
      this.counters.failures++;
      this.counters.lastError = errorMessage(err);
      throw err;
    }
  }

  private async ensureSets(sets: readonly IptablesRuleSet[]): Promise<EnsureResult> {
    const result: EnsureResult = { repaired: false, missing: [], extra: [] };
    for (const set of sets) {
      const tables = tablesOf(set);
      const saved = await this.read(set.family, tables);
      const check = checkRules(saved, set);
      if (check.inSync) continue;
      result.repaired = true;
      result.missing.push(...check.missing);
      result.extra.push(...check.extra);
      this.logger.info(
        { family: set.family, missing: check.missing, extra: check.extra, misordered: check.misordered },
        'firewall rules differ; restoring',
      );
      await this.restore(set.family, renderRestore(set, saved));
      const after = checkRules(await this.read(set.family, tables), set);
      if (!after.inSync) {
        throw new FirewallRepairError(set.family, [...after.missing, ...after.extra, ...after.misordered]);
      }
    }
    this.counters.checks++;
    if (result.repaired) this.counters.repairs++;
    this.onEnsure?.(result);
    return result;
  }

  private async read(family: Family, tables: readonly string[]): Promise<IptablesSave> {
    const outputs: IptablesSave[] = [];
    for (const table of tables) {
      const { stdout } = await this.exec(tools(family).save, ['-t', table]);
      outputs.push(parseIptablesSave(stdout));
    }
    return mergeSaves(outputs);
  }

  private async restore(family: Family, input: string): Promise<void> {
    if (input === '') return;
    await this.exec(tools(family).restore, ['-w', String(this.lockWaitSeconds), '--noflush'], input);
  }

  private async exec(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
    const result = await runCommand(cmd, args, {
      netns: this.netns,
      input,
      timeoutMs: this.commandTimeoutMs,
      packageHint: 'iptables',
    });
    if (result.code !== 0) {
      const command = describeArgv(commandArgv(cmd, args, this.netns));
      throw new IptablesCommandError(command, result.code, result.stderr);
    }
    return result;
  }
}

function tablesOf(set: IptablesRuleSet): string[] {
  const tables: string[] = [];
  for (const r of [...set.ownedChains, ...set.rules]) if (!tables.includes(r.table)) tables.push(r.table);
  return tables;
}

/** What `iptables -V` says. */
export interface IptablesVersion {
  version: string;
  /** `nf_tables` (iptables-nft) or `legacy`. */
  backend: 'nf_tables' | 'legacy';
  /** MASQUERADE --random-fully needs iptables ≥ 1.6.2 (flannel's HasRandomFully check). */
  randomFully: boolean;
}

export class IptablesVersionParseError extends Error {
  override name = 'IptablesVersionParseError';
}

/** Parses `iptables v1.8.9 (nf_tables)` / `iptables v1.6.1` (legacy prints no backend, or `(legacy)`). */
export function parseIptablesVersion(text: string): IptablesVersion {
  const m = /ip6?tables(?:-\w+)? v(\d+)\.(\d+)\.(\d+)(?:\s+\((nf_tables|legacy)\))?/.exec(text);
  if (!m)
    throw new IptablesVersionParseError(
      `cannot read an iptables version from ${JSON.stringify(text.trim())}`,
    );
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const randomFully = major > 1 || (major === 1 && (minor > 6 || (minor === 6 && patch >= 2)));
  return {
    version: `${major}.${minor}.${patch}`,
    backend: m[4] === 'nf_tables' ? 'nf_tables' : 'legacy',
    randomFully,
  };
}

/** Runs `iptables -V` (in `netns` when given) and parses it. A missing binary is a CommandStartError naming the package. */
export async function detectIptables(
  options: { netns?: string; family?: Family; env?: NodeJS.ProcessEnv } = {},
): Promise<IptablesVersion> {
  const cmd = options.family === 6 ? 'ip6tables' : 'iptables';
  const result = await runCommand(cmd, ['-V'], {
    netns: options.netns,
    env: options.env,
    timeoutMs: 10_000,
    packageHint: 'iptables',
  });
  if (result.code !== 0) {
    throw new IptablesCommandError(
      describeArgv(commandArgv(cmd, ['-V'], options.netns)),
      result.code,
      result.stderr,
    );
  }
  return parseIptablesVersion(result.stdout);
}
