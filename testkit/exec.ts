// Running commands for tests: one-shot commands with a timeout (`run`, `runIn`) and long-lived processes
// (`spawnIn`) whose output goes to a log file and whose PID is registered for cleanup. No shell anywhere.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { registerProcess, unregisterProcess } from './run.js';

export interface RunOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Written to the command's stdin, then stdin is closed. */
  input?: string;
  /** Replaces the environment (default: inherit `process.env`). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when the command was killed by a signal. */
  code: number | null;
}

export class CommandTimeoutError extends Error {
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
    readonly stderr: string,
  ) {
    super(`${command} did not finish within ${timeoutMs} ms${stderr ? `; stderr: ${stderr.trim()}` : ''}`);
    this.name = 'CommandTimeoutError';
  }
}

export class CommandFailedError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(
      `${command} exited with code ${result.code}` +
        (result.stderr.trim() ? `; stderr: ${result.stderr.trim()}` : '') +
        (result.stdout.trim() && !result.stderr.trim() ? `; stdout: ${result.stdout.trim()}` : ''),
    );
    this.name = 'CommandFailedError';
  }
}

function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/**
 * Runs a command and resolves with its output and exit code, whatever the code. Rejects only when it
 * cannot be started or exceeds its timeout (`CommandTimeoutError`).
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env ?? process.env,
        cwd: opts.cwd,
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const err = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown; signal?: unknown };
        if (err.killed === true && err.signal === 'SIGKILL') {
          reject(new CommandTimeoutError(describe(cmd, args), timeoutMs, stderr));
          return;
        }
        if (typeof err.code === 'number' || err.code === null || err.code === undefined) {
          resolve({ stdout, stderr, code: typeof err.code === 'number' ? err.code : null });
          return;
        }
        // A string code (ENOENT, EACCES …) means the command could not be started.
        reject(new Error(`cannot run ${describe(cmd, args)}: ${err.message}`));
      },
    );
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => {
        // The command may exit without reading stdin; its exit status tells what happened.
      });
      child.stdin?.end(opts.input);
    }
  });
}

/** Like `run`, but rejects with `CommandFailedError` when the exit code is not 0. */
export async function runChecked(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new CommandFailedError(describe(cmd, args), result);
  return result;
}

/** `ip netns exec <netns> cmd args…`, resolving like `run`. */
export function runIn(
  netns: string,
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return run('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

/** `ip netns exec <netns> cmd args…`, rejecting like `runChecked` on a non-zero exit. */
export function runCheckedIn(
  netns: string,
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return runChecked('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

export interface SpawnOptions {
  /** Extra environment variables, merged over `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here; without it they are discarded. */
  logFile?: string;
  cwd?: string;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessHandle {
  readonly pid: number;
  readonly command: string;
  readonly logFile: string | undefined;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** Sends `signal` (default SIGTERM); SIGKILL after `graceMs` (default 5 s). Resolves on exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ProcessExit>;
  /** SIGKILL, resolving on exit. */
  kill(): Promise<ProcessExit>;
  /** Resolves when the process exits (immediately if it has). */
  waitExit(): Promise<ProcessExit>;
  /** The last `lines` lines of the log file ('' without one). */
  logTail(lines?: number): string;
}

export class SpawnFailedError extends Error {
  constructor(command: string, cause: string) {
    super(`could not start ${command}: ${cause}`);
    this.name = 'SpawnFailedError';
  }
}

/** Last `lines` lines of a file, '' when it cannot be read. */
export function tailFile(file: string, lines = 40): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
      .trimEnd();
  } catch {
    return '';
  }
}

/**
 * Starts a long-lived process, inside `netns` when given (`ip netns exec` execs the command, so the PID
 * is the command's own). Its PID is registered for cleanup until it exits.
 */
export function spawnIn(
  netns: string | undefined,
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): Promise<ProcessHandle> {
  const argv = netns === undefined ? [cmd, ...args] : ['ip', 'netns', 'exec', netns, cmd, ...args];
  const command = describe(argv[0] ?? cmd, argv.slice(1));
  const logFd = opts.logFile === undefined ? 'ignore' : fs.openSync(opts.logFile, 'a');
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] ?? cmd, argv.slice(1), {
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
    });
    if (typeof logFd === 'number') fs.closeSync(logFd);

    let exit: ProcessExit | null = null;
    const exitWaiters: Array<(e: ProcessExit) => void> = [];
    const exitPromise = new Promise<ProcessExit>((res) => exitWaiters.push(res));
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      if (child.pid !== undefined) unregisterProcess(child.pid);
      for (const w of exitWaiters) w(exit);
    });
    child.on('error', (err) => {
      if (child.pid === undefined) reject(new SpawnFailedError(command, err.message));
    });
    child.on('spawn', () => {
      const pid = child.pid;
      if (pid === undefined) {
        reject(new SpawnFailedError(command, 'no pid'));
        return;
      }
      registerProcess(pid);
      const signalAndWait = async (signal: NodeJS.Signals, graceMs: number): Promise<ProcessExit> => {
        if (exit !== null) return exit;
        try {
          process.kill(pid, signal);
        } catch {
          // Exited between the check and the signal.
        }
        if (signal === 'SIGKILL') return exitPromise;
        let timer: NodeJS.Timeout | undefined;
        const escalated = new Promise<void>((res) => {
          timer = setTimeout(res, graceMs);
        });
        const first = await Promise.race([exitPromise, escalated.then(() => null)]);
        clearTimeout(timer);
        if (first !== null) return first;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
        return exitPromise;
      };
      resolve({
        pid,
        command,
        logFile: opts.logFile,
        get exited() {
          return exit !== null;
        },
        stop: (signal = 'SIGTERM', graceMs = 5_000) => signalAndWait(signal, graceMs),
        kill: () => signalAndWait('SIGKILL', 0),
        waitExit: () => exitPromise,
        logTail: (lines = 40) => (opts.logFile === undefined ? '' : tailFile(opts.logFile, lines)),
      });
    });
  });
}

/** `spawnIn` without a namespace. */
export function spawnProcess(
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): Promise<ProcessHandle> {
  return spawnIn(undefined, cmd, args, opts);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/**
 * Polls `probe` (a throw counts as "not yet") every `intervalMs` until it returns a value other than
 * undefined or `timeoutMs` has passed; resolves with that value, or undefined when it never came.
 */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<T | undefined> {
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + opts.timeoutMs;
  for (let attempt = 0; attempt < 100_000; attempt++) {
    let value: T | undefined;
    try {
      value = await probe();
    } catch {
      value = undefined;
    }
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await sleep(intervalMs);
  }
  return undefined;
}
