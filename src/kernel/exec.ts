// Runs iproute2 (`ip`, `bridge`) with argument arrays, never a shell; `ip -n <netns>` when a namespace is given.
import { execFile } from 'node:child_process';
import type { KernelCallOptions } from './types.js';

export type IprouteTool = 'ip' | 'bridge';

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal. */
  code: number | null;
}

/** iproute2 could not be run at all (missing binary, timeout, bad namespace name). */
export class KernelToolError extends Error {
  override name = 'KernelToolError';
}

/** A read command exited non-zero. */
export class KernelCommandError extends Error {
  override name = 'KernelCommandError';
  constructor(
    readonly command: string,
    readonly result: ToolResult,
  ) {
    super(
      `\`${command}\` failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim() || 'no output'}`,
    );
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** What `ip netns add` accepts, minus characters that would need quoting. */
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** The argv for a tool call, with `-n <netns>` first when given. */
export function toolArgs(args: readonly string[], opts: KernelCallOptions = {}): string[] {
  if (opts.netns === undefined) return [...args];
  if (!NETNS_NAME.test(opts.netns) || opts.netns === '.' || opts.netns === '..') {
    throw new KernelToolError(`network namespace name ${JSON.stringify(opts.netns)} is not valid`);
  }
  return ['-n', opts.netns, ...args];
}

export function describeCommand(tool: IprouteTool, args: readonly string[]): string {
  return [tool, ...args].join(' ');
}

/** Runs a tool; resolves with its output whatever the exit code, rejects only when it cannot run. */
export function runTool(
  tool: IprouteTool,
  args: readonly string[],
  opts: KernelCallOptions & { input?: string } = {},
): Promise<ToolResult> {
  const argv = toolArgs(args, opts);
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = execFile(
      tool,
      argv,
      { timeout, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ stdout, stderr, code: 0 });
          return;
        }
        const err = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
        if (err.killed === true) {
          reject(
            new KernelToolError(`\`${describeCommand(tool, argv)}\` did not finish within ${timeout} ms`),
          );
          return;
        }
        if (typeof err.code === 'string') {
          reject(new KernelToolError(`cannot run \`${describeCommand(tool, argv)}\`: ${err.message}`));
          return;
        }
        resolve({ stdout, stderr, code: typeof err.code === 'number' ? err.code : null });
      },
    );
    child.stdin?.on('error', () => {
      // The tool may exit before reading all of stdin; its exit status and stderr say why.
    });
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs a read command and returns its stdout; a non-zero exit is a KernelCommandError. */
export async function readTool(
  tool: IprouteTool,
  args: readonly string[],
  opts: KernelCallOptions = {},
): Promise<string> {
  const result = await runTool(tool, args, opts);
  if (result.code !== 0) throw new KernelCommandError(describeCommand(tool, toolArgs(args, opts)), result);
  return result.stdout;
}
