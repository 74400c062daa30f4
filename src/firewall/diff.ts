import {
  type ChainRef,
  describeRule,
  FirewallPlanError,
  type IptablesRule,
  type IptablesRuleSet,
  type IptablesTable,
  quoteArg,
  ruleText,
} from './rules.js';
import type { IptablesSave, SavedRule } from './save.js';

/** What differs between the kernel's rules and a desired rule set. Rules are shown as `-t <table> -A …`. */
export interface RuleCheck {
  /** Desired rules that are absent. */
  missing: string[];
  /** Rules in weft's chains, or jumps into them, that are not desired (stale subnet, duplicate jump). */
  extra: string[];
  /** Owned chains (`table/chain`) that hold exactly the desired rules but in another order. */
  misordered: string[];
  /** Owned chains (`table/chain`) that do not exist. */
  missingChains: string[];
  /** True when nothing needs doing. */
  inSync: boolean;
}

/** The repair in terms of operations; rendered into one iptables-restore transaction. */
interface Repair {
  /** Owned chains to (re)declare (flushes them under --noflush) and refill with every desired rule. */
  rewrite: ChainRef[];
  /** Rules to delete by spec (extra jumps into owned chains). */
  remove: SavedRule[];
  /** Rules outside owned chains to append (the jumps). */
  append: IptablesRule[];
  check: RuleCheck;
}

const key = (table: string, chain: string): string => `${table}/${chain}`;

function savedRulesIn(saved: IptablesSave, table: string, chain: string): SavedRule[] {
  return saved.tables.get(table)?.rules.filter((r) => r.chain === chain) ?? [];
}

function chainExists(saved: IptablesSave, table: string, chain: string): boolean {
  return saved.tables.get(table)?.chains.has(chain) ?? false;
}

/** Counts of each text in a list. */
function tally(texts: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

/** Items of `a` not matched by an equal item of `b` (multiset difference), in `a`'s order. */
function multisetMinus<T>(a: readonly T[], b: readonly string[], text: (x: T) => string): T[] {
  const left = tally(b);
  const out: T[] = [];
  for (const item of a) {
    const t = text(item);
    const n = left.get(t) ?? 0;
    if (n > 0) left.set(t, n - 1);
    else out.push(item);
  }
  return out;
}

/** The value of the last `-j` in a rule spec. */
function jumpTarget(args: readonly string[]): string | undefined {
  const i = args.lastIndexOf('-j');
  return i >= 0 ? args[i + 1] : undefined;
}

function checkSet(desired: IptablesRuleSet): void {
  for (const rule of desired.rules) {
    for (const part of [rule.chain, ...rule.args]) {
      if (/[\n\r\0]/.test(part)) {
        throw new FirewallPlanError(`rule ${JSON.stringify(describeRule(rule))} holds a line break or NUL`);
      }
    }
  }
}

function planRepair(saved: IptablesSave, desired: IptablesRuleSet): Repair {
  checkSet(desired);
  const owned = new Set(desired.ownedChains.map((c) => key(c.table, c.chain)));
  const ownedNames = new Set(desired.ownedChains.map((c) => c.chain));
  const check: RuleCheck = { missing: [], extra: [], misordered: [], missingChains: [], inSync: true };
  const repair: Repair = { rewrite: [], remove: [], append: [], check };

  for (const chain of desired.ownedChains) {
    const want = desired.rules.filter((r) => r.table === chain.table && r.chain === chain.chain);
    const wantTexts = want.map(ruleText);
    if (!chainExists(saved, chain.table, chain.chain)) {
      check.missingChains.push(key(chain.table, chain.chain));
      check.missing.push(...want.map(describeRule));
      repair.rewrite.push(chain);
      continue;
    }
    const have = savedRulesIn(saved, chain.table, chain.chain);
    const haveTexts = have.map(ruleText);
    if (haveTexts.length === wantTexts.length && haveTexts.every((t, i) => t === wantTexts[i])) continue;
    const missing = multisetMinus(want, haveTexts, ruleText);
    const extra = multisetMinus(have, wantTexts, ruleText);
    check.missing.push(...missing.map(describeRule));
    check.extra.push(...extra.map((r) => `-t ${r.table} ${ruleText(r)}`));
    if (missing.length === 0 && extra.length === 0) check.misordered.push(key(chain.table, chain.chain));
    repair.rewrite.push(chain);
  }

  // Rules in chains weft does not own: present once each; other jumps into owned chains are extra.
  const outside = desired.rules.filter((r) => !owned.has(key(r.table, r.chain)));
  const outsideChains = new Map<string, ChainRef>();
  for (const r of outside) outsideChains.set(key(r.table, r.chain), { table: r.table, chain: r.chain });
  for (const { table, chain } of outsideChains.values()) {
    const want = outside.filter((r) => r.table === table && r.chain === chain);
    const wantTexts = want.map(ruleText);
    const have = savedRulesIn(saved, table, chain);
    const missing = multisetMinus(want, have.map(ruleText), ruleText);
    // Only rules that jump into an owned chain are ours to remove; the rest of POSTROUTING/FORWARD is not.
    const ours = have.filter((r) => ownedNames.has(jumpTarget(r.args) ?? ''));
    const extra = multisetMinus(ours, wantTexts, ruleText);
    check.missing.push(...missing.map(describeRule));
    check.extra.push(...extra.map((r) => `-t ${r.table} ${ruleText(r)}`));
    repair.append.push(...missing);
    repair.remove.push(...extra);
  }

  check.inSync =
    check.missing.length === 0 &&
    check.extra.length === 0 &&
    check.misordered.length === 0 &&
    check.missingChains.length === 0;
  return repair;
}

/** Compares the parsed iptables-save output with a desired rule set. Pure. */
export function checkRules(saved: IptablesSave, desired: IptablesRuleSet): RuleCheck {
  return planRepair(saved, desired).check;
}

function tablesInOrder(rules: readonly { table: IptablesTable | string }[]): string[] {
  const order: string[] = [];
  for (const r of rules) if (!order.includes(r.table)) order.push(r.table);
  return order;
}

function deleteLine(rule: Pick<SavedRule, 'chain' | 'args'>): string {
  return ['-D', rule.chain, ...rule.args].map(quoteArg).join(' ');
}

/**
 * The `iptables-restore --noflush` input that brings the kernel from `saved` to `desired` in one
 * transaction, or '' when nothing differs. An owned chain that differs in any way is re-declared (which
 * flushes it under --noflush) and refilled in order; missing jumps are appended; stray jumps into owned
 * chains are deleted. Tables and chains weft does not own are otherwise untouched. Pure.
 */
export function renderRestore(desired: IptablesRuleSet, saved: IptablesSave): string {
  const repair = planRepair(saved, desired);
  if (repair.check.inSync) return '';
  const touched = [
    ...repair.rewrite,
    ...repair.remove.map((r) => ({ table: r.table, chain: r.chain })),
    ...repair.append.map((r) => ({ table: r.table, chain: r.chain })),
  ];
  const out: string[] = [];
  for (const table of tablesInOrder(touched)) {
    out.push(`*${table}`);
    const rewrite = repair.rewrite.filter((c) => c.table === table);
    for (const c of rewrite) out.push(`:${c.chain} - [0:0]`);
    for (const r of repair.remove.filter((x) => x.table === table)) out.push(deleteLine(r));
    for (const c of rewrite) {
      for (const r of desired.rules.filter((x) => x.table === table && x.chain === c.chain))
        out.push(ruleText(r));
    }
    for (const r of repair.append.filter((x) => x.table === table)) out.push(ruleText(r));
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

/**
 * The rules of `previous` that are present in `saved` and not also in `keep` (every copy of each), in
 * `previous`'s order. Pure.
 */
export function planCleanup(
  previous: IptablesRuleSet,
  saved: IptablesSave,
  keep: readonly IptablesRuleSet[] = [],
): SavedRule[] {
  checkSet(previous);
  const kept = new Set<string>();
  for (const set of keep) {
    if (set.family !== previous.family) continue;
    for (const r of set.rules) kept.add(`${r.table} ${ruleText(r)}`);
  }
  const seen = new Set<string>();
  const remove: SavedRule[] = [];
  for (const rule of previous.rules) {
    const text = ruleText(rule);
    const id = `${rule.table} ${text}`;
    if (kept.has(id) || seen.has(id)) continue;
    seen.add(id);
    remove.push(...savedRulesIn(saved, rule.table, rule.chain).filter((r) => ruleText(r) === text));
  }
  return remove;
}

/**
 * The `iptables-restore --noflush` input that deletes the rules `planCleanup` finds, or '' when there
 * are none. Used when the Network or the node's subnet changed: the old rules go, the chains stay. Pure.
 */
export function renderCleanup(remove: readonly SavedRule[]): string {
  if (remove.length === 0) return '';
  const out: string[] = [];
  for (const table of tablesInOrder(remove)) {
    out.push(`*${table}`);
    for (const r of remove.filter((x) => x.table === table)) out.push(deleteLine(r));
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

/**
 * The `iptables-restore --noflush` input that removes `chains` entirely: every rule anywhere that jumps into
 * one of them, then the chains' rules, then the chains. '' when none of them exists. Leaving iptables mode
 * (EnableNFTables) uses it so nothing of weft's stays behind. Pure.
 */
export function renderChainRemoval(saved: IptablesSave, chains: readonly ChainRef[]): string {
  const out: string[] = [];
  for (const [table, t] of saved.tables) {
    const gone = chains.filter((c) => c.table === table && t.chains.has(c.chain)).map((c) => c.chain);
    if (gone.length === 0) continue;
    out.push(`*${table}`);
    const jumps = t.rules.filter((r) => !gone.includes(r.chain) && gone.includes(jumpTarget(r.args) ?? ''));
    for (const r of jumps) out.push(deleteLine(r));
    for (const c of gone) out.push(`-F ${c}`);
    for (const c of gone) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
