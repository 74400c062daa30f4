// weftd's and weftctl's command-line parser: node:util's parseArgs for the tokens, weft's own rules for the
// rest (it replaced yargs, which cost weftd ~10 MiB of RSS: docs/memory.md). The forms accepted are flannel's
// (Go's flag package) and what weft's yargs CLI accepted before:
//   --flag value, --flag=value, -flag value, -flag=value (Go's single dash, for long names only);
//   booleans: --flag, --flag=true|false (also 1/0, t/f, TRUE/FALSE as Go's strconv.ParseBool), --flag true|false,
//   --no-flag; repeatable lists: --iface a --iface b, --iface a b, --iface=a,b (split later by the options);
//   other flags given twice: the last wins (as Go's flag package). camelCase names (--etcdEndpoints) as yargs did.
// An unknown flag, a missing value, a value that is not a number or not one of the choices is a FlagError.
import { parseArgs } from 'node:util';

export interface CliOption {
  name: string;
  type: 'string' | 'number' | 'boolean' | 'array';
  describe: string;
  /** A one-letter short form (`-o`). */
  alias?: string;
  default?: string | number | boolean | string[];
  /** Allowed values of a string option. */
  choices?: readonly string[];
  /** The help's group title (options without one are listed under "Options:"). */
  group?: string;
  /** Not shown in the help's default column. */
  hideDefault?: boolean;
}

export interface ParsedFlags {
  /** Values given on the command line (and defaults, when `withDefaults`), keyed by option name. */
  values: Record<string, unknown>;
  positionals: string[];
  help: boolean;
  version: boolean;
}

export class FlagError extends Error {
  override name = 'FlagError';
}

/** Go's strconv.ParseBool, which flannel's boolean flags use. */
const TRUE_WORDS = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

export function parseBoolWord(text: string): boolean | undefined {
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  return undefined;
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

interface Lookup {
  option: CliOption;
  negated: boolean;
}

function lookup(byName: Map<string, CliOption>, name: string): Lookup | undefined {
  for (const candidate of [name, kebab(name)]) {
    const option = byName.get(candidate);
    if (option) return { option, negated: false };
    if (candidate.startsWith('no-')) {
      const positive = byName.get(candidate.slice(3));
      if (positive?.type === 'boolean') return { option: positive, negated: true };
    }
  }
  return undefined;
}

/**
 * `-iface=x` (Go's single dash) → `--iface=x` when `iface` is a long option, `-o=json` → `-o json` for a short
 * alias; everything after `--` is kept as given.
 */
function doubleDashed(
  argv: readonly string[],
  byName: Map<string, CliOption>,
  byAlias: Map<string, CliOption>,
): string[] {
  const out: string[] = [];
  let rest = false;
  for (const arg of argv) {
    if (rest || arg === '--') {
      rest = true;
      out.push(arg);
      continue;
    }
    const short = /^-([A-Za-z])=(.*)$/s.exec(arg);
    if (short?.[1] !== undefined && byAlias.has(short[1])) {
      out.push(`-${short[1]}`, short[2] ?? '');
      continue;
    }
    const m = /^-([A-Za-z][A-Za-z0-9-]+)(=.*)?$/s.exec(arg);
    out.push(m?.[1] !== undefined && lookup(byName, m[1]) ? `-${arg}` : arg);
  }
  return out;
}

function toNumber(option: CliOption, text: string): number {
  const n = text.trim() === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(n)) throw new FlagError(`--${option.name}: ${JSON.stringify(text)} is not a number`);
  return n;
}

/**
 * Parses `argv` (without node and the script) against `options`. `maxPositionals` bounds the bare arguments
 * (a command's `<file>`); more is an "Unknown argument" error, as yargs' strict mode said.
 */
export function parseFlags(
  argv: readonly string[],
  options: readonly CliOption[],
  settings: { maxPositionals?: number; withDefaults?: boolean } = {},
): ParsedFlags {
  const byName = new Map<string, CliOption>();
  const byAlias = new Map<string, CliOption>();
  for (const o of options) {
    byName.set(o.name, o);
    if (o.alias) byAlias.set(o.alias, o);
  }
  const config: NonNullable<Parameters<typeof parseArgs>[0]>['options'] = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
  };
  for (const o of options) {
    const type = o.type === 'boolean' ? 'boolean' : 'string';
    config[o.name] = o.alias ? { type, short: o.alias } : { type };
  }
  const { tokens } = parseArgs({
    args: doubleDashed(argv, byName, byAlias),
    options: config,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });

  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  let help = false;
  let version = false;
  /** The option a following bare word may still belong to: a boolean's true/false, a list's next item. */
  let open: { option: CliOption; kind: 'boolean' | 'array' } | undefined;
  let afterTerminator = false;

  const set = (option: CliOption, raw: string | boolean): void => {
    if (option.type === 'boolean') {
      values[option.name] = raw;
    } else if (option.type === 'array') {
      const list = (values[option.name] as string[] | undefined) ?? [];
      list.push(String(raw));
      values[option.name] = list;
    } else if (option.type === 'number') {
      values[option.name] = toNumber(option, String(raw));
    } else {
      const text = String(raw);
      if (option.choices && !option.choices.includes(text)) {
        throw new FlagError(
          `--${option.name}: ${JSON.stringify(text)} is not one of ${option.choices.map((c) => JSON.stringify(c)).join(', ')}`,
        );
      }
      values[option.name] = text;
    }
  };

  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      afterTerminator = true;
      open = undefined;
      continue;
    }
    if (token.kind === 'positional') {
      if (!afterTerminator && open?.kind === 'boolean') {
        // `--ip-masq false`: yargs took a bare true/false after a boolean flag as its value.
        const owner = open.option;
        open = undefined;
        if (token.value === 'true' || token.value === 'false') {
          values[owner.name] = token.value === 'true';
          continue;
        }
      } else if (!afterTerminator && open?.kind === 'array') {
        set(open.option, token.value);
        continue;
      }
      positionals.push(token.value);
      continue;
    }
    open = undefined;
    const name = token.name;
    if (name === 'help') {
      help = true;
      continue;
    }
    if (name === 'version') {
      version = true;
      continue;
    }
    // parseArgs names a known short alias by its long name; an unknown `-x` stays `x`.
    const known = token.rawName.startsWith('--') || byAlias.has(token.rawName.slice(1));
    const found = known ? lookup(byName, name) : undefined;
    if (!found) throw new FlagError(`Unknown argument: ${token.rawName.replace(/^-+/, '')}`);
    const { option, negated } = found;
    if (option.type === 'boolean') {
      if (token.value === undefined) {
        values[option.name] = !negated;
        if (!negated) open = { option, kind: 'boolean' };
        continue;
      }
      const word = parseBoolWord(token.value);
      if (word === undefined || negated) {
        throw new FlagError(
          `${token.rawName}: ${JSON.stringify(token.value)} is not a boolean (true or false)`,
        );
      }
      values[option.name] = word;
      continue;
    }
    if (token.value === undefined) throw new FlagError(`--${option.name}: needs a value`);
    set(option, token.value);
    if (option.type === 'array' && !token.inlineValue) open = { option, kind: 'array' };
  }

  const max = settings.maxPositionals ?? 0;
  if (positionals.length > max) {
    throw new FlagError(
      `Unknown argument${positionals.length - max > 1 ? 's' : ''}: ${positionals.slice(max).join(', ')}`,
    );
  }
  if (settings.withDefaults) {
    for (const o of options) {
      if (values[o.name] === undefined && o.default !== undefined) values[o.name] = o.default;
    }
  }
  return { values, positionals, help, version };
}

/** What one help screen shows. */
export interface HelpScreen {
  usage: string;
  description?: string;
  commands?: Array<{ usage: string; describe: string }>;
  positionals?: Array<{ name: string; describe: string; note: string }>;
  options: readonly CliOption[];
  /** Group titles in the order shown; options of groups not named come after them. */
  groupOrder?: readonly string[];
  /** Whether `--version` is listed (weftd and weftctl list it as yargs did). */
  version?: boolean;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines;
}

function typeNote(o: CliOption): string {
  const notes: string[] = [];
  if (o.choices) notes.push(`[choices: ${o.choices.map((c) => JSON.stringify(c)).join(', ')}]`);
  else notes.push(`[${o.type}]`);
  if (o.default !== undefined && !o.hideDefault) notes.push(`[default: ${JSON.stringify(o.default)}]`);
  return notes.join(' ');
}

/** Two columns (flag, description) and the type/default note right-aligned, wrapped to `width`. */
function table(rows: Array<{ left: string; text: string; note: string }>, width: number): string[] {
  const leftWidth = Math.max(...rows.map((r) => r.left.length)) + 2;
  const textWidth = Math.max(20, width - leftWidth);
  const out: string[] = [];
  for (const r of rows) {
    const lines = wrap(r.text, textWidth);
    const last = lines.length - 1;
    const tail = lines[last] ?? '';
    if (r.note !== '') {
      if (tail.length + 1 + r.note.length <= textWidth)
        lines[last] = `${tail}${' '.repeat(textWidth - tail.length - r.note.length)}${r.note}`;
      else lines.push(`${' '.repeat(Math.max(0, textWidth - r.note.length))}${r.note}`);
    }
    lines.forEach((line, i) => {
      out.push(`${(i === 0 ? r.left : '').padEnd(leftWidth)}${line}`.trimEnd());
    });
  }
  return out;
}

/** The help text: usage, description, commands, positionals, then the options by group. */
export function renderHelp(screen: HelpScreen, width = 100): string {
  const out: string[] = [screen.usage, ''];
  if (screen.description) out.push(...wrap(screen.description, width), '');
  if (screen.commands?.length) {
    out.push('Commands:');
    out.push(
      ...table(
        screen.commands.map((c) => ({ left: `  ${c.usage}`, text: c.describe, note: '' })),
        width,
      ),
    );
    out.push('');
  }
  if (screen.positionals?.length) {
    out.push('Positionals:');
    out.push(
      ...table(
        screen.positionals.map((p) => ({ left: `  ${p.name}`, text: p.describe, note: p.note })),
        width,
      ),
    );
    out.push('');
  }
  const groups = new Map<string, CliOption[]>();
  for (const title of screen.groupOrder ?? []) groups.set(title, []);
  const builtIn: CliOption[] = [];
  if (screen.version !== false)
    builtIn.push({ name: 'version', type: 'boolean', describe: 'Show version number' });
  builtIn.push({ name: 'help', type: 'boolean', alias: 'h', describe: 'Show help' });
  for (const o of [...screen.options, ...builtIn]) {
    const title = o.group ?? 'Options:';
    groups.set(title, [...(groups.get(title) ?? []), o]);
  }
  for (const [title, list] of groups) {
    if (list.length === 0) continue;
    out.push(title);
    out.push(
      ...table(
        list.map((o) => ({
          left: `  ${o.alias ? `-${o.alias}, ` : '    '}--${o.name}`,
          text: o.describe,
          note: typeNote(o),
        })),
        width,
      ),
    );
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}
