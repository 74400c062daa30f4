import {
  type DaemonOptions,
  type FlagSpec,
  flagsFromEnv,
  OptionError,
  toDaemonOptions,
  WEFTD_FLAGS,
} from '../src/config/options.js';
import { weftVersion } from '../src/config/version.js';
import { type CliOption, FlagError, parseFlags, renderHelp } from './flags.js';

const GROUP_TITLES: Record<FlagSpec['group'], string> = {
  etcd: 'etcd:',
  kubernetes: 'Kubernetes:',
  interface: 'Interface selection:',
  files: 'Files:',
  firewall: 'Firewall:',
  health: 'Health and metrics:',
  general: 'General:',
};

/** weftd's flag specs as the parser's options, grouped for --help. Secrets show no default. */
export function cliOptionsOf(flags: readonly FlagSpec[]): CliOption[] {
  return flags.map((f) => {
    const option: CliOption = {
      name: f.name,
      type: f.type,
      describe: f.weft ? `${f.describe} [weft]` : f.describe,
      group: GROUP_TITLES[f.group],
    };
    if (f.default !== undefined && !f.secret) option.default = f.default;
    return option;
  });
}

/** The help's width: the terminal's, within 120 columns, else 100. */
export function helpWidth(): number {
  return Math.min(120, process.stdout.columns || 100);
}

const WEFTD_USAGE = 'weftd [flags]';
const WEFTD_DESCRIPTION =
  'A flanneld-compatible overlay network daemon. Every flag can also be set as FLANNELD_<FLAG> or WEFT_<FLAG> (e.g. FLANNELD_ETCD_ENDPOINTS).';

export type WeftdCommandLine =
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'run'; options: DaemonOptions };

/**
 * weftd's command line and environment → what to do. The command line wins over FLANNELD_* / WEFT_*, which win
 * over the flags' defaults. Throws FlagError (a flag the parser refuses) or OptionError (a value that is wrong).
 */
export function weftdCommandLine(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  width = 100,
): WeftdCommandLine {
  const fromEnv = flagsFromEnv(WEFTD_FLAGS, env);
  const cliOptions = cliOptionsOf(WEFTD_FLAGS);
  const parsed = parseFlags(argv, cliOptions);
  if (parsed.help) {
    const text = renderHelp(
      { usage: WEFTD_USAGE, description: WEFTD_DESCRIPTION, options: cliOptions },
      width,
    );
    return { kind: 'help', text };
  }
  if (parsed.version) return { kind: 'version' };
  const defaults = Object.fromEntries(WEFTD_FLAGS.map((f) => [f.name, f.default]));
  return { kind: 'run', options: toDaemonOptions({ ...defaults, ...fromEnv, ...parsed.values }) };
}

/** The package version (one reader for weftd, weftctl and the daemon). */
export const packageVersion = weftVersion;

/** Exit 2 with a one-line reason: the contract for bad flag values. */
export function usageExit(message: string): never {
  process.stderr.write(`${message.split('\n')[0]}\n`);
  process.exit(2);
}

export function describeError(err: unknown): string {
  if (err instanceof OptionError || err instanceof FlagError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
