// dumpKernelState: reads the kernel state a scope owns with at most three processes run in parallel — one
// `ip -d -json -batch` (the scope's devices, IPv4 routes into the Networks, their neighbours), one `bridge -json
// -batch` (their FDB) and, with an IPv6 Network, one `ip -6 -json route show`. Every process is a fork of the
// daemon and a scheduling round on a busy node: a reconcile pass runs on every lease event, so it pays to keep
// this to a handful (it was five separate reads).
import { type Cidr, type Family, formatCidr } from '../ip/index.js';
import { parseBatchErrors } from './apply.js';
import { isValidDeviceName } from './canonical.js';
import {
  type IprouteTool,
  KernelCommandError,
  KernelToolError,
  readTool,
  runTool,
  type ToolResult,
  toolArgs,
} from './exec.js';
import { filterOwned } from './ownership.js';
import {
  KernelOutputParseError,
  type ListedLink,
  parseFdbList,
  parseLinkList,
  parseNeighborList,
  parseRouteList,
  toAddressEntries,
  toObservedLink,
} from './parse.js';
import type { KernelCallOptions, KernelScope, KernelState, RouteEntry } from './types.js';

/** One line of a read batch: its stdout (one JSON document) or its error. */
export type BatchReadResult = { ok: true; text: string } | { ok: false; error: string };

/**
 * Runs read-only commands as one `<tool> <globalArgs> -force -batch -` and returns each line's output or error,
 * in order (see `matchBatchOutput`).
 */
export async function readBatch(
  tool: IprouteTool,
  globalArgs: readonly string[],
  lines: readonly string[],
  opts: KernelCallOptions = {},
): Promise<BatchReadResult[]> {
  if (lines.length === 0) return [];
  const args = [...globalArgs, '-force', '-batch', '-'];
  const result = await runTool(tool, args, { ...opts, input: `${lines.join('\n')}\n` });
  return matchBatchOutput(lines.length, result, [tool, ...toolArgs(args, opts)].join(' '));
}

/**
 * Matches a read batch's output to its lines. With `-json` every successful command prints exactly one line
 * and a failing one prints nothing on stdout (its message and `Command failed -:<n>` go to stderr). A batch
 * that failed without naming a line, stopped early, or printed a different number of lines is an error.
 */
export function matchBatchOutput(lineCount: number, result: ToolResult, command: string): BatchReadResult[] {
  const { failures, trailing } = parseBatchErrors(result.stderr);
  if (result.code !== 0 && (failures.size === 0 || trailing !== ''))
    throw new KernelCommandError(command, result);
  const outputs = result.stdout.split('\n').filter((l) => l.trim() !== '');
  const failed = [...failures.keys()].filter((n) => n >= 1 && n <= lineCount).length;
  if (outputs.length !== lineCount - failed) {
    throw new KernelOutputParseError(
      command,
      `expected ${lineCount - failed} output lines (${lineCount} commands, ${failed} failed), got ${outputs.length}`,
    );
  }
  let next = 0;
  return Array.from({ length: lineCount }, (_, i) => {
    const error = failures.get(i + 1);
    return error === undefined ? { ok: true, text: outputs[next++]! } : { ok: false, error };
  });
}

function checkedDevice(name: string): string {
  if (!isValidDeviceName(name)) {
    throw new KernelToolError(`scope device ${JSON.stringify(name)} is not a valid device name`);
  }
  return name;
}

function networkOf(scope: KernelScope, family: Family): Cidr | undefined {
  return scope.networks.find((n) => n.family === family);
}

/**
 * Reads the scope's devices with their addresses, main-table routes into the scope's Networks, PERMANENT
 * neighbours on the devices, and the FDB of each VXLAN device in scope; returns only what the scope owns.
 */
export async function dumpKernelState(
  scope: KernelScope,
  opts: KernelCallOptions = {},
): Promise<KernelState> {
  const devices = [...new Set([...scope.devices, ...(scope.entryDevices ?? [])])].map(checkedDevice);
  const v4 = networkOf(scope, 4);
  const v6 = networkOf(scope, 6);

  // `route show` in a batch lists IPv4 (a batch line cannot carry `-6`); `root` keeps it to the Network.
  const ipLines = [
    ...devices.map((d) => `addr show dev ${d}`),
    ...devices.map((d) => `neigh show dev ${d} nud permanent`),
    ...(v4 ? [`route show table main root ${formatCidr(v4)}`] : []),
  ];
  const routes6 = v6
    ? readTool('ip', ['-6', '-json', 'route', 'show', 'table', 'main', 'root', formatCidr(v6)], opts).then(
        (t) => parseRouteList(t, `ip -6 -json route show table main root ${formatCidr(v6)}`),
      )
    : Promise.resolve<RouteEntry[]>([]);
  const [ipResults, fdbResults, routes6List] = await Promise.all([
    readBatch('ip', ['-d', '-json'], ipLines, opts),
    readBatch(
      'bridge',
      ['-json'],
      devices.map((d) => `fdb show dev ${d}`),
      opts,
    ),
    routes6,
  ]);

  const n = devices.length;
  const listed: ListedLink[] = [];
  const present = new Set<string>();
  devices.forEach((dev, i) => {
    const r = ipResults[i]!;
    // A device that does not exist fails its line: it simply has nothing to read.
    if (!r.ok) return;
    for (const link of parseLinkList(r.text, `ip -d -json addr show dev ${dev}`)) {
      if (link.name !== dev) continue;
      listed.push(link);
      present.add(dev);
    }
  });
  const links = listed.map(toObservedLink);
  const vxlanDevices = new Set(links.filter((l) => l.kind === 'vxlan').map((l) => l.name));

  const neighbors = devices.flatMap((dev, i) => {
    const r = ipResults[n + i]!;
    const command = `ip -json neigh show dev ${dev} nud permanent`;
    if (!r.ok) {
      if (present.has(dev)) throw new KernelCommandError(command, { stdout: '', stderr: r.error, code: 1 });
      return [];
    }
    return parseNeighborList(r.text, command, dev);
  });

  let routes4: RouteEntry[] = [];
  if (v4) {
    const r = ipResults[2 * n]!;
    const command = `ip -json route show table main root ${formatCidr(v4)}`;
    if (!r.ok) throw new KernelCommandError(command, { stdout: '', stderr: r.error, code: 1 });
    routes4 = parseRouteList(r.text, command);
  }

  const fdb = devices.flatMap((dev, i) => {
    if (!vxlanDevices.has(dev)) return [];
    const r = fdbResults[i]!;
    const command = `bridge -json fdb show dev ${dev}`;
    if (!r.ok) throw new KernelCommandError(command, { stdout: '', stderr: r.error, code: 1 });
    return parseFdbList(r.text, dev, command);
  });

  const state: KernelState = {
    links,
    addresses: toAddressEntries(listed),
    routes: [...routes4, ...routes6List],
    neighbors,
    fdb,
  };
  return filterOwned(state, scope);
}
