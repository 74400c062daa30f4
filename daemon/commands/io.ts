// What every weftctl command shares: where its output goes (tests pass their own), its exit codes and its shape
// (the flags it takes and what runs them; daemon/commands/dispatch.ts parses and picks one).
import type { CliOption } from '../flags.js';

export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

export const EXIT_OK = 0;
/** The service behind the command (etcd, weftd) is unreachable, refused, or answered nonsense. */
export const EXIT_UNAVAILABLE = 1;
export const EXIT_USAGE = 2;

export const processIo: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
};

/** One weftctl command (`leases`, `config get`, …): its flags and what runs them. */
export interface WeftctlCommand {
  /** The words that name it: `['config', 'set']`. */
  path: readonly string[];
  describe: string;
  options: readonly CliOption[];
  /** Bare arguments it requires, in order (`file` of `config set <file>`). */
  positionals?: ReadonlyArray<{ name: string; describe: string }>;
  /** Runs with the parsed flags (defaults filled) and positionals; resolves with the exit code. */
  run: (values: Record<string, unknown>, positionals: readonly string[]) => Promise<number>;
}

/** `-o table|json`, shared by `leases` and `status`. */
export const OUTPUT_OPTION = {
  name: 'output',
  alias: 'o',
  type: 'string',
  choices: ['table', 'json'],
  default: 'table',
  describe: 'output format',
} as const satisfies CliOption;
