// weftctl's command line: the leading words name the command (`leases`, `config get`, `config set FILE`,
// `status`), the rest are its flags (daemon/flags.ts). `--help` anywhere prints the help of the command (or of
// the command group) named so far; `--version` prints the version. A usage error is one line and exit 2.
import { describeError, packageVersion } from '../cli.js';
import { type CliOption, parseFlags, renderHelp } from '../flags.js';
import { type CommandIo, EXIT_OK, EXIT_USAGE, type WeftctlCommand } from './io.js';

const NAME = 'weftctl';

function usageOf(command: WeftctlCommand): string {
  const positionals = (command.positionals ?? []).map((p) => ` <${p.name}>`).join('');
  return `${NAME} ${command.path.join(' ')}${positionals}`;
}

/** The commands under `prefix` one word deeper: `[]` → leases, config, status; `['config']` → get, set. */
function childrenOf(
  commands: readonly WeftctlCommand[],
  prefix: readonly string[],
): Array<{ word: string; commands: WeftctlCommand[] }> {
  const out: Array<{ word: string; commands: WeftctlCommand[] }> = [];
  for (const c of commands) {
    if (c.path.length <= prefix.length || prefix.some((w, i) => c.path[i] !== w)) continue;
    const word = c.path[prefix.length] ?? '';
    const entry = out.find((e) => e.word === word);
    if (entry) entry.commands.push(c);
    else out.push({ word, commands: [c] });
  }
  return out;
}

/** What a group lists: a leaf by its usage, a deeper group by its name and the group's description. */
function listing(
  children: Array<{ word: string; commands: WeftctlCommand[] }>,
  prefix: readonly string[],
  groupDescriptions: Readonly<Record<string, string>>,
): Array<{ usage: string; describe: string }> {
  return children.flatMap(({ word, commands }) => {
    const leaf = commands.find((c) => c.path.length === prefix.length + 1);
    if (leaf && commands.length === 1) return [{ usage: usageOf(leaf), describe: leaf.describe }];
    const path = [...prefix, word].join(' ');
    return [{ usage: `${NAME} ${path}`, describe: groupDescriptions[path] ?? '' }];
  });
}

/**
 * Runs weftctl with `argv` (without node and the script); resolves with the exit code. `groupDescriptions`
 * describe command groups (`config`) in the help. Never throws for bad input.
 */
export async function runWeftctl(
  argv: readonly string[],
  io: CommandIo,
  commands: readonly WeftctlCommand[],
  groupDescriptions: Readonly<Record<string, string>> = {},
  helpWidth = 100,
): Promise<number> {
  const words: string[] = [];
  let command: WeftctlCommand | undefined;
  let rest = argv;
  for (const [i, arg] of argv.entries()) {
    const next = childrenOf(commands, words).find((c) => c.word === arg);
    if (!next) break;
    words.push(arg);
    rest = argv.slice(i + 1);
    command = next.commands.find((c) => c.path.length === words.length);
    if (command) break;
  }
  const usageError = (message: string): number => {
    io.stderr(`${NAME}: ${message.split('\n')[0]}\n`);
    return EXIT_USAGE;
  };

  if (!command) {
    // A group (or nothing) named: only --help / --version are flags here.
    const children = childrenOf(commands, words);
    let parsed: ReturnType<typeof parseFlags>;
    try {
      parsed = parseFlags(rest, [], { maxPositionals: 0 });
    } catch (err) {
      return usageError(describeError(err));
    }
    if (parsed.version) {
      io.stdout(`${packageVersion()}\n`);
      return EXIT_OK;
    }
    const path = words.join(' ');
    if (parsed.help) {
      io.stdout(
        renderHelp(
          {
            usage: words.length === 0 ? `${NAME} <command> [flags]` : `${NAME} ${path}`,
            description: groupDescriptions[path],
            commands: listing(children, words, groupDescriptions),
            options: [],
          },
          helpWidth,
        ),
      );
      return EXIT_OK;
    }
    const names = children.map((c) => c.word).join(', ');
    return usageError(`${words.length === 0 ? '' : `${path}: `}name a command (${names})`);
  }

  const wanted = command.positionals ?? [];
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(rest, command.options, { maxPositionals: wanted.length, withDefaults: true });
  } catch (err) {
    return usageError(describeError(err));
  }
  if (parsed.version) {
    io.stdout(`${packageVersion()}\n`);
    return EXIT_OK;
  }
  if (parsed.help) {
    io.stdout(
      renderHelp(
        {
          usage: usageOf(command),
          description: command.describe,
          positionals: wanted.map((p) => ({
            name: p.name,
            describe: p.describe,
            note: '[string] [required]',
          })),
          options: command.options as CliOption[],
        },
        helpWidth,
      ),
    );
    return EXIT_OK;
  }
  if (parsed.positionals.length < wanted.length) {
    const missing = wanted.slice(parsed.positionals.length).map((p) => p.name);
    return usageError(`Not enough non-option arguments: ${usageOf(command)} (missing ${missing.join(', ')})`);
  }
  return command.run(parsed.values, parsed.positionals);
}
