/** A chain as declared in iptables-save output (`:NAME POLICY [packets:bytes]`). */
export interface SavedChain {
  readonly name: string;
  /** ACCEPT/DROP for built-in chains, `-` for user chains. */
  readonly policy: string;
  readonly line: number;
}

/** A rule as printed by iptables-save: `-A <chain> <args…>` with quoting undone. */
export interface SavedRule {
  readonly table: string;
  readonly chain: string;
  readonly args: readonly string[];
  /** 1-based line in the parsed text. */
  readonly line: number;
}

export interface SavedTable {
  readonly name: string;
  readonly chains: ReadonlyMap<string, SavedChain>;
  /** In the order printed, which is the evaluation order within each chain. */
  readonly rules: readonly SavedRule[];
}

/** Parsed iptables-save output: the tables it printed. A table it did not print is simply absent. */
export interface IptablesSave {
  readonly tables: ReadonlyMap<string, SavedTable>;
}

/** iptables-save output that does not have the expected shape. Names the line and what was wrong. */
export class IptablesSaveParseError extends Error {
  override name = 'IptablesSaveParseError';
  constructor(
    readonly line: number,
    readonly text: string,
    readonly reason: string,
  ) {
    super(`iptables-save output line ${line}: ${reason}: ${JSON.stringify(text.slice(0, 200))}`);
  }
}

/**
 * Splits one line into arguments the way iptables-restore does: whitespace separates, double quotes
 * group, and inside quotes a backslash escapes the next character (iptables-save escapes `"`, `\` and `'`).
 * Returns undefined for an unterminated quote.
 */
export function splitArgs(line: string): string[] | undefined {
  const args: string[] = [];
  let current = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) {
        current += line[++i];
      } else if (ch === '"') {
        quoted = false;
      } else {
        current += ch;
      }
      continue;
    }
    if (ch === '"') {
      quoted = true;
      inToken = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inToken) args.push(current);
      current = '';
      inToken = false;
    } else {
      current += ch;
      inToken = true;
    }
  }
  if (quoted) return undefined;
  if (inToken) args.push(current);
  return args;
}

const TABLE_NAME = /^[a-z_]+$/;
const CHAIN_LINE = /^:(\S+) (\S+)(?: \[\d+:\d+\])?$/;
const COUNTERS_PREFIX = /^\[\d+:\d+\] /;

/**
 * Parses iptables-save (or ip6tables-save) output, one or several tables, e.g. the outputs of
 * `iptables-save -t nat` and `iptables-save -t filter` joined. Strict: anything but comments, table
 * headers, chain declarations, `-A` rules and COMMIT is an error naming the line.
 */
export function parseIptablesSave(text: string): IptablesSave {
  const tables = new Map<string, { name: string; chains: Map<string, SavedChain>; rules: SavedRule[] }>();
  let current: { name: string; chains: Map<string, SavedChain>; rules: SavedRule[] } | undefined;
  const lines = text.split('\n');
  let lastLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    lastLine = lineNo;
    const fail = (reason: string): IptablesSaveParseError => new IptablesSaveParseError(lineNo, raw, reason);

    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (current) throw fail(`table ${name} starts before the COMMIT of table ${current.name}`);
      if (!TABLE_NAME.test(name)) throw fail('expected a table name after "*"');
      if (tables.has(name)) throw fail(`table ${name} appears twice`);
      current = { name, chains: new Map(), rules: [] };
      tables.set(name, current);
      continue;
    }
    if (line === 'COMMIT') {
      if (!current) throw fail('COMMIT outside a table');
      current = undefined;
      continue;
    }
    if (line.startsWith(':')) {
      if (!current) throw fail('chain declared outside a table');
      const m = CHAIN_LINE.exec(line);
      if (!m) throw fail('expected ":CHAIN POLICY [packets:bytes]"');
      const name = m[1] as string;
      if (current.chains.has(name)) throw fail(`chain ${name} declared twice in table ${current.name}`);
      current.chains.set(name, { name, policy: m[2] as string, line: lineNo });
      continue;
    }
    const ruleLine = line.replace(COUNTERS_PREFIX, '');
    if (ruleLine.startsWith('-A ')) {
      if (!current) throw fail('rule outside a table');
      const args = splitArgs(ruleLine);
      if (!args) throw fail('unterminated quote');
      const chain = args[1];
      if (chain === undefined) throw fail('rule without a chain');
      if (!current.chains.has(chain))
        throw fail(`rule in chain ${chain}, which table ${current.name} does not declare`);
      current.rules.push({ table: current.name, chain, args: args.slice(2), line: lineNo });
      continue;
    }
    throw fail('expected a comment, "*table", ":CHAIN", "-A CHAIN …" or "COMMIT"');
  }
  if (current) {
    throw new IptablesSaveParseError(lastLine, '', `table ${current.name} has no COMMIT (output cut short?)`);
  }
  return { tables };
}

/** Joins several parsed outputs (e.g. one per `-t` call); a table in two of them is an error. */
export function mergeSaves(saves: readonly IptablesSave[]): IptablesSave {
  const tables = new Map<string, SavedTable>();
  for (const save of saves) {
    for (const [name, table] of save.tables) {
      if (tables.has(name)) throw new IptablesSaveParseError(0, '', `table ${name} appears in two outputs`);
      tables.set(name, table);
    }
  }
  return { tables };
}
