// Runs iproute2 (`ip`, `bridge`) through core's runCommand (argument arrays, never a shell); `ip -n <netns>`
// when a namespace is given. Kernel errors keep their own classes so callers can tell a missing tool apart.
import { type CommandResult, CommandStartError, CommandTimeoutError, runCommand } from '../core/index.js';
import type { KernelCallOptions } from './types.js';

export type IprouteTool = 'ip' | 'bridge';

/** Output and exit code (null when killed by a signal): core's command result. */
export type ToolResult = CommandResult;

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

function checkNetnsName(name: string): string {
  if (!NETNS_NAME.test(name) || name === '.' || name === '..') {
    throw new KernelToolError(`network namespace name ${JSON.stringify(name)} is not valid`);
  }
  return name;
}

/** The argv for a tool call, with `-n <netns>` first when given. */
export function toolArgs(args: readonly string[], opts: KernelCallOptions = {}): string[] {
  if (opts.netns === undefined) return [...args];
  return ['-n', checkNetnsName(opts.netns), ...args];
}

/** The path of a named namespace as `ip netns` keeps it (`/run/netns/NAME`), undefined for the current one. */
export function netnsPath(opts: KernelCallOptions = {}): string | undefined {
  return opts.netns === undefined ? undefined : `/run/netns/${checkNetnsName(opts.netns)}`;
}

export function describeCommand(tool: IprouteTool, args: readonly string[]): string {
  return [tool, ...args].join(' ');
}

/** Runs a tool; resolves with its output whatever the exit code, rejects only when it cannot run. */
export async function runTool(
  tool: IprouteTool,
  args: readonly string[],
  opts: KernelCallOptions & { input?: string } = {},
): Promise<ToolResult> {
  // `ip -n NS` rather than core's `ip netns exec NS ip`: iproute2 enters the namespace itself, one exec fewer.
  const argv = toolArgs(args, opts);
  try {
    return await runCommand(tool, argv, {
      input: opts.input ?? '',
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      packageHint: 'iproute2',
    });
  } catch (err) {
    if (err instanceof CommandStartError || err instanceof CommandTimeoutError) {
      throw new KernelToolError(err.message);
    }
    throw err;
  }
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
