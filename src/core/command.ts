// The one way weft runs another program: execFile with an argument array (never a shell), an optional
// network namespace (`ip netns exec NS …`), a time limit, stdin, and errors that say what to do.
import { execFile } from 'node:child_process';

export interface CommandOptions {
  /** Run inside this network namespace (`ip netns exec <netns> <file> …`). */
  netns?: string;
  /** Written to the child's stdin (closed either way). */
  input?: string;
  /** Killed with SIGKILL after this long (default 30 s). */
  timeoutMs?: number;
  /** Largest stdout/stderr kept (default 256 MiB). */
  maxBuffer?: number;
  env?: NodeJS.ProcessEnv;
  /** Debian package that ships the program, named in the "not found" error. */
  packageHint?: string;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal. */
  code: number | null;
}

/** What `ip netns add` accepts, minus characters that would need quoting. */
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** The program could not be started (missing binary, bad namespace name, spawn failure). */
export class CommandStartError extends Error {
  override name = 'CommandStartError';
}

/** The program did not finish in time and was killed. */
export class CommandTimeoutError extends Error {
  override name = 'CommandTimeoutError';
}

/** The program exited non-zero (from `runCommandChecked`). */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly command: string,
    readonly result: CommandResult,
  ) {
    super(
      `\`${command}\` failed (exit ${result.code ?? 'by signal'}): ${
        result.stderr.trim() || result.stdout.trim() || 'no output'
      }`,
    );
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** The argv actually run: `[file, ...args]`, or `ip netns exec <netns> file …`. */
export function commandArgv(file: string, args: readonly string[], netns?: string): string[] {
  if (netns === undefined) return [file, ...args];
  if (!NETNS_NAME.test(netns) || netns === '.' || netns === '..') {
    throw new CommandStartError(`network namespace name ${JSON.stringify(netns)} is not valid`);
  }
  return ['ip', 'netns', 'exec', netns, file, ...args];
}

export function describeArgv(argv: readonly string[]): string {
  return argv.join(' ');
}

/** Runs a program; resolves with its output whatever the exit code, rejects only when it cannot run or times out. */
export function runCommand(
  file: string,
  args: readonly string[],
  opts: CommandOptions = {},
): Promise<CommandResult> {
  let argv: string[];
  try {
    argv = commandArgv(file, args, opts.netns);
  } catch (err) {
    return Promise.reject(err);
  }
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const command = describeArgv(argv);
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0] as string,
      argv.slice(1),
      {
        timeout,
        killSignal: 'SIGKILL',
        maxBuffer: opts.maxBuffer ?? 256 * 1024 * 1024,
        encoding: 'utf8',
        ...(opts.env === undefined ? {} : { env: opts.env }),
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const err = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
        if (err.killed === true) {
          reject(new CommandTimeoutError(`\`${command}\` did not finish within ${timeout} ms`));
          return;
        }
        if (err.code === 'ENOENT') {
          const hint =
            opts.packageHint === undefined ? '' : ` (install the Debian package ${opts.packageHint})`;
          reject(new CommandStartError(`cannot run \`${command}\`: ${argv[0]} not found${hint}`));
          return;
        }
        if (typeof err.code === 'string') {
          reject(new CommandStartError(`cannot run \`${command}\`: ${err.message}`));
          return;
        }
        resolve({ stdout, stderr, code: typeof err.code === 'number' ? err.code : null });
      },
    );
    child.stdin?.on('error', () => {
      // The program may exit before reading all of stdin; its exit status and stderr say why.
    });
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs a program and returns its stdout; a non-zero exit is a CommandFailedError. */
export async function runCommandChecked(
  file: string,
  args: readonly string[],
  opts: CommandOptions = {},
): Promise<string> {
  const result = await runCommand(file, args, opts);
  if (result.code !== 0)
    throw new CommandFailedError(describeArgv(commandArgv(file, args, opts.netns)), result);
  return result.stdout;
}
