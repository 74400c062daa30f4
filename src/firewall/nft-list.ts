import type { NftChainSpec, NftTableRef, NftTableSpec } from './nft-rules.js';

/** A base chain as `nft -j list table` shows it; `rules` in nft's listing spelling (see `nftRuleText`). */
export interface NftListedChain {
  readonly name: string;
  readonly type?: string;
  readonly hook?: string;
  readonly prio?: number;
  readonly policy?: string;
  readonly rules: readonly string[];
}

export interface NftListedTable extends NftTableRef {
  readonly chains: ReadonlyMap<string, NftListedChain>;
}

/** `nft -j list …` output that does not have the expected shape. Says what was wrong where. */
export class NftListParseError extends Error {
  override name = 'NftListParseError';
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An expression in nft's listing spelling; anything weft does not write prints as JSON and so never matches. */
function exprText(e: unknown, hex = false): string {
  if (typeof e === 'number') return hex ? `0x${e.toString(16)}` : String(e);
  if (typeof e === 'string') return e;
  if (isObject(e)) {
    const payload = e.payload;
    if (isObject(payload) && typeof payload.protocol === 'string' && typeof payload.field === 'string') {
      return `${payload.protocol} ${payload.field}`;
    }
    const meta = e.meta;
    if (isObject(meta) && typeof meta.key === 'string') return `meta ${meta.key}`;
    const fib = e.fib;
    if (isObject(fib) && typeof fib.result === 'string' && Array.isArray(fib.flags)) {
      return `fib ${fib.flags.map(String).join(' . ')} ${fib.result}`;
    }
    const prefix = e.prefix;
    if (isObject(prefix) && typeof prefix.addr === 'string' && typeof prefix.len === 'number') {
      return `${prefix.addr}/${prefix.len}`;
    }
    const and = e['&'];
    if (Array.isArray(and) && and.length === 2) return `${exprText(and[0])} & ${exprText(and[1], true)}`;
  }
  return `?${JSON.stringify(e)}`;
}

/** One statement of a rule's `expr` list in listing spelling; counters are ignored (their values change). */
function statementText(s: unknown): string | undefined {
  if (!isObject(s)) return `?${JSON.stringify(s)}`;
  const keys = Object.keys(s);
  if (keys.length !== 1) return `?${JSON.stringify(s)}`;
  const key = keys[0] as string;
  const value = s[key];
  switch (key) {
    case 'counter':
      return undefined;
    case 'accept':
    case 'drop':
    case 'return':
    case 'notrack':
      return value === null ? key : `?${JSON.stringify(s)}`;
    case 'masquerade': {
      if (value === null) return 'masquerade';
      const flags = isObject(value) ? value.flags : undefined;
      const list = typeof flags === 'string' ? [flags] : Array.isArray(flags) ? flags.map(String) : undefined;
      return list ? ['masquerade', ...list].join(' ') : `?${JSON.stringify(s)}`;
    }
    case 'match': {
      if (!isObject(value) || typeof value.op !== 'string') return `?${JSON.stringify(s)}`;
      const isBinop = isObject(value.left) && '&' in value.left;
      const hex = isBinop;
      const op = value.op === '==' ? (isBinop ? '== ' : '') : `${value.op} `;
      return `${exprText(value.left)} ${op}${exprText(value.right, hex)}`;
    }
    default:
      return `?${JSON.stringify(s)}`;
  }
}

/** A listed rule in nft's listing spelling: its statements, then `comment "…"`. */
export function nftRuleText(rule: { expr: readonly unknown[]; comment?: string }): string {
  const parts = rule.expr.map(statementText).filter((t): t is string => t !== undefined);
  if (rule.comment !== undefined) parts.push(`comment "${rule.comment}"`);
  return parts.join(' ');
}

/**
 * Parses the output of `nft -j list table <family> <name>`. Strict about the shape weft relies on (an
 * `nftables` array, one matching table, chains and rules that name it); unknown object kinds (sets, maps)
 * are kept out of the chains, so a table holding them still differs from weft's by its rules only if they
 * are referenced.
 */
export function parseNftListTable(text: string, want: NftTableRef): NftListedTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new NftListParseError(
      `nft -j list table ${want.family} ${want.name}: output is not JSON (${(err as Error).message})`,
    );
  }
  const items = isObject(doc) ? doc.nftables : undefined;
  if (!Array.isArray(items)) {
    throw new NftListParseError(
      `nft -j list table ${want.family} ${want.name}: expected {"nftables": [...]}, found ${JSON.stringify(doc).slice(0, 120)}`,
    );
  }
  const fail = (what: string, item: unknown): NftListParseError =>
    new NftListParseError(
      `nft -j list table ${want.family} ${want.name}: ${what}: ${JSON.stringify(item).slice(0, 200)}`,
    );
  const chains = new Map<string, { spec: Omit<NftListedChain, 'rules'>; rules: string[] }>();
  let sawTable = false;
  for (const item of items) {
    if (!isObject(item)) throw fail('expected an object', item);
    if (isObject(item.table)) {
      if (item.table.family !== want.family || item.table.name !== want.name)
        throw fail('another table', item);
      sawTable = true;
    } else if (isObject(item.chain)) {
      const c = item.chain;
      if (typeof c.name !== 'string' || c.table !== want.name) throw fail('chain of another table', item);
      chains.set(c.name, {
        spec: {
          name: c.name,
          ...(typeof c.type === 'string' ? { type: c.type } : {}),
          ...(typeof c.hook === 'string' ? { hook: c.hook } : {}),
          ...(typeof c.prio === 'number' ? { prio: c.prio } : {}),
          ...(typeof c.policy === 'string' ? { policy: c.policy } : {}),
        },
        rules: [],
      });
    } else if (isObject(item.rule)) {
      const r = item.rule;
      if (r.table !== want.name || typeof r.chain !== 'string' || !Array.isArray(r.expr)) {
        throw fail('expected a rule of this table with a chain and an expr list', item);
      }
      const chain = chains.get(r.chain);
      if (!chain) throw fail(`rule in chain ${r.chain}, listed before its chain`, item);
      chain.rules.push(
        nftRuleText({ expr: r.expr, ...(typeof r.comment === 'string' ? { comment: r.comment } : {}) }),
      );
    }
  }
  if (!sawTable)
    throw new NftListParseError(`nft -j list table ${want.family} ${want.name}: no table listed`);
  const out = new Map<string, NftListedChain>();
  for (const [name, c] of chains) out.set(name, { ...c.spec, rules: c.rules });
  return { family: want.family, name: want.name, chains: out };
}

/** What differs between a listed table and the desired one. */
export interface NftCheck {
  readonly inSync: boolean;
  /** `table missing`, `chain forward missing`, `chain postrtg: hook …` and `+rule` / `-rule` lines. */
  readonly differences: readonly string[];
}

function chainHeaderDiff(want: NftChainSpec, have: NftListedChain): string | undefined {
  const wanted = `type ${want.type} hook ${want.hook} prio ${want.priority.value} policy accept`;
  const found = `type ${have.type} hook ${have.hook} prio ${have.prio} policy ${have.policy}`;
  return wanted === found ? undefined : `chain ${want.name}: expected ${wanted}, found ${found}`;
}

/**
 * Compares a listed table (undefined: absent) with the desired one (undefined: must be absent). Pure.
 * Any difference means the table is rewritten whole, so the result only needs to say what differs.
 */
export function checkNftTable(
  desired: NftTableSpec | undefined,
  listed: NftListedTable | undefined,
): NftCheck {
  const differences: string[] = [];
  if (!desired) {
    if (listed) differences.push(`table ${listed.family} ${listed.name} is not wanted`);
    return { inSync: differences.length === 0, differences };
  }
  if (!listed) {
    differences.push(`table ${desired.family} ${desired.name} missing`);
    return { inSync: false, differences };
  }
  for (const want of desired.chains) {
    const have = listed.chains.get(want.name);
    if (!have) {
      differences.push(`chain ${want.name} missing`);
      continue;
    }
    const header = chainHeaderDiff(want, have);
    if (header) differences.push(header);
    const same = have.rules.length === want.rules.length && have.rules.every((r, i) => r === want.rules[i]);
    if (same) continue;
    const before = differences.length;
    for (const r of want.rules) if (!have.rules.includes(r)) differences.push(`chain ${want.name}: +${r}`);
    for (const r of have.rules) if (!want.rules.includes(r)) differences.push(`chain ${want.name}: -${r}`);
    if (differences.length === before) differences.push(`chain ${want.name}: rules out of order or repeated`);
  }
  for (const name of listed.chains.keys()) {
    if (!desired.chains.some((c) => c.name === name)) differences.push(`chain ${name} is not wanted`);
  }
  return { inSync: differences.length === 0, differences };
}
