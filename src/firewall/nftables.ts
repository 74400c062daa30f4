import { commandArgv, describeArgv, runCommand } from '../core/index.js';
import { type Logger, silentLogger } from '../log/index.js';
import { checkNftTable, type NftListedTable, NftListParseError, parseNftListTable } from './nft-list.js';
import { type NftTableRef, type NftTableSpec, renderNftTransaction } from './nft-rules.js';

/** An nft command failed. Names the command line, exit code and stderr. */
export class NftCommandError extends Error {
  override name = 'NftCommandError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`\`${command}\` exited with code ${exitCode}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
  }
}

/** A transaction ran but the tables still differ afterwards (another writer, or a spelling nft rewrites). */
export class NftRepairError extends Error {
  override name = 'NftRepairError';
  constructor(readonly differences: readonly string[]) {
    super(`nftables tables still differ after nft -f: ${differences.join('; ')}`);
  }
}

export interface NftablesOptions {
  /** Run every command inside this network namespace. */
  netns?: string;
  /** The environment of every nft command (tests hide the binary with PATH). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  commandTimeoutMs?: number;
}

export interface NftEnsureResult {
  /** True when a transaction was applied. */
  repaired: boolean;
  differences: string[];
}

/** nft's answer when the listed table does not exist. */
const NO_SUCH_TABLE = /No such file or directory/;

/**
 * Keeps weft's nftables tables as desired: one `nft -j list table` per table to check, and, only when one
 * differs, one `nft -f` transaction that rewrites the differing tables whole (and removes unwanted ones).
 */
export class Nftables {
  private readonly logger: Logger;
  /** `nft -f` transactions applied (a check that finds everything in place applies none). */
  transactions = 0;

  constructor(private readonly options: NftablesOptions = {}) {
    this.logger = options.logger ?? silentLogger();
  }

  private async nft(
    args: readonly string[],
    input?: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runCommand('nft', args, {
      netns: this.options.netns,
      env: this.options.env,
      input,
      timeoutMs: this.options.commandTimeoutMs ?? 30_000,
      packageHint: 'nftables',
    });
  }

  private failure(args: readonly string[], r: { code: number | null; stderr: string }): NftCommandError {
    return new NftCommandError(describeArgv(commandArgv('nft', args, this.options.netns)), r.code, r.stderr);
  }

  /** `nft --version`: fails with a CommandStartError naming the package when nft is not installed. */
  async version(): Promise<string> {
    const r = await this.nft(['--version']);
    if (r.code !== 0) throw this.failure(['--version'], r);
    return r.stdout.trim();
  }

  /** One read of one table; undefined when it does not exist. */
  async list(ref: NftTableRef): Promise<NftListedTable | undefined> {
    const args = ['-j', 'list', 'table', ref.family, ref.name];
    const r = await this.nft(args);
    if (r.code !== 0) {
      if (NO_SUCH_TABLE.test(r.stderr)) return undefined;
      throw this.failure(args, r);
    }
    return parseNftListTable(r.stdout, ref);
  }

  /** The tables that exist among `refs`, with one `nft -j list tables`. */
  async existing(refs: readonly NftTableRef[]): Promise<NftTableRef[]> {
    const args = ['-j', 'list', 'tables'];
    const r = await this.nft(args);
    if (r.code !== 0) throw this.failure(args, r);
    let doc: unknown;
    try {
      doc = JSON.parse(r.stdout);
    } catch {
      throw new NftListParseError(`nft -j list tables: output is not JSON: ${r.stdout.slice(0, 120)}`);
    }
    const items = (doc as { nftables?: unknown }).nftables;
    if (!Array.isArray(items))
      throw new NftListParseError('nft -j list tables: expected {"nftables": [...]}');
    const present = new Set(
      items
        .map((i) => (i as { table?: { family?: unknown; name?: unknown } }).table)
        .filter((t) => t !== undefined)
        .map((t) => `${String(t.family)} ${String(t.name)}`),
    );
    return refs.filter((ref) => present.has(`${ref.family} ${ref.name}`));
  }

  /** Applies one `nft -f` transaction; '' applies nothing. */
  async apply(script: string): Promise<void> {
    if (script === '') return;
    const args = ['-f', '-'];
    const r = await this.nft(args, script);
    if (r.code !== 0) throw this.failure(args, r);
    this.transactions++;
  }

  /**
   * Makes `managed` tables match `desired` (a managed table not in `desired` must be absent): reads each once,
   * rewrites only the differing ones in one transaction, then reads those again to confirm.
   */
  async ensure(desired: readonly NftTableSpec[], managed: readonly NftTableRef[]): Promise<NftEnsureResult> {
    const write: NftTableSpec[] = [];
    const remove: NftTableRef[] = [];
    const differences: string[] = [];
    const wanted = (ref: NftTableRef) => desired.find((t) => t.family === ref.family && t.name === ref.name);
    for (const ref of managed) {
      const want = wanted(ref);
      const check = checkNftTable(want, await this.list(ref));
      if (check.inSync) continue;
      differences.push(...check.differences);
      if (want) write.push(want);
      else remove.push(ref);
    }
    if (write.length === 0 && remove.length === 0) return { repaired: false, differences };
    this.logger.info({ differences }, 'nftables tables differ; applying one transaction');
    await this.apply(renderNftTransaction({ write, remove }));
    const still: string[] = [];
    for (const ref of [...write, ...remove]) {
      still.push(...checkNftTable(wanted(ref), await this.list(ref)).differences);
    }
    if (still.length > 0) throw new NftRepairError(still);
    return { repaired: true, differences };
  }
}
