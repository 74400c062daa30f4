import type { Argv, Options } from 'yargs';
import { type FlagSpec, flagsFromEnv, OptionError } from '../src/config/options.js';
import { weftVersion } from '../src/config/version.js';

const GROUP_TITLES: Record<FlagSpec['group'], string> = {
  etcd: 'etcd:',
  kubernetes: 'Kubernetes:',
  interface: 'Interface selection:',
  files: 'Files:',
  firewall: 'Firewall:',
  health: 'Health and metrics:',
  general: 'General:',
};

/** Registers flag specs on a yargs instance, grouped for --help. Secrets show no default. */
export function registerFlags<T>(y: Argv<T>, flags: FlagSpec[]): Argv<T> {
  let out = y;
  for (const f of flags) {
    const opt: Options = {
      type: f.type,
      describe: f.weft ? `${f.describe} [weft]` : f.describe,
      group: GROUP_TITLES[f.group],
    };
    if (f.default !== undefined && !f.secret) opt.default = f.default;
    if (f.type === 'array') opt.string = true;
    out = out.option(f.name, opt);
  }
  return out;
}

/** Fills flags not given on the command line from FLANNELD_* / WEFT_* env vars (as flannel does). */
export function envConfig(flags: FlagSpec[], env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  return flagsFromEnv(flags, env);
}

/** The package version (one reader for weftd, weftctl and the daemon). */
export const packageVersion = weftVersion;

/** Exit 2 with a one-line reason: the contract for bad flag values. */
export function usageExit(message: string): never {
  process.stderr.write(`${message.split('\n')[0]}\n`);
  process.exit(2);
}

export function describeError(err: unknown): string {
  if (err instanceof OptionError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
