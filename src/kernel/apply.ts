// applyKernelOps: runs a plan in order and maps every failure back to its op. Entry ops (routes, neighbours,
// FDB entries) are written over rtnetlink by the native addon (rtnl/) whenever it loads: no process per pass.
// Links and addresses — and every op when the addon cannot load — run as few iproute2 processes as possible:
// the ops of one stage and tool form one `ip -force -batch -` / `bridge -force -batch -` fed on stdin, a
// stage's `ip` and `bridge` batches run side by side.
import { type IprouteTool, KernelToolError, runTool } from './exec.js';
import { renderKernelOp } from './render.js';
import { isEntryOp, loadRtnl, writeEntries } from './rtnl/index.js';
import type { KernelCallOptions, KernelOp, KernelOpResult } from './types.js';

/** What a batch's stderr says: the message per failed line (1-based) and text after the last failure. */
export interface BatchErrors {
  failures: Map<number, string>;
  /** Messages not followed by `Command failed` (a batch that stopped early prints its reason last). */
  trailing: string;
}

const COMMAND_FAILED = /^Command failed (?:-|\S+):(\d+)\s*$/;

/**
 * Parses iproute2 `-force -batch` stderr: each failure prints its message line(s), then
 * `Command failed -:<line>`.
 */
export function parseBatchErrors(stderr: string): BatchErrors {
  const failures = new Map<number, string>();
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    const m = COMMAND_FAILED.exec(line);
    if (m !== null) {
      const n = Number(m[1]);
      const message = pending.join('; ') || 'failed (no message)';
      failures.set(n, failures.has(n) ? `${failures.get(n)}; ${message}` : message);
      pending = [];
    } else {
      pending.push(line);
    }
  }
  return { failures, trailing: pending.join('; ') };
}

export interface Batch {
  tool: IprouteTool;
  lines: string[];
  /** For each batch line (0-based), the index of its op in the plan. */
  opOfLine: number[];
}

/**
 * The stage of an op: ops of one stage never depend on each other, so their `ip` and `bridge` batches run at
 * the same time (FDB entries are written while the neighbours are). Stages follow the planner's order: links,
 * addresses, stale routes, stale neighbours/FDB entries, new neighbours/FDB entries, new routes (a new route
 * still never precedes its neighbour and FDB entry).
 */
const STAGE: Record<KernelOp['kind'], number> = {
  'link-add': 0,
  'link-delete': 0,
  'link-set': 0,
  'address-add': 1,
  'address-delete': 1,
  'route-delete': 2,
  'neighbor-delete': 3,
  'fdb-delete': 3,
  'neighbor-replace': 4,
  'fdb-replace': 4,
  'route-replace': 5,
};

/**
 * Up to this many ops, a plan of entries only (no device or address ops: a lease event's plan) runs as at most
 * two batches, one per tool, because each process costs more than its lines do (a spawn blocks the JavaScript
 * thread ~10 ms in a daemon holding thousands of peers): every FDB op in one `bridge` batch, then every route and
 * neighbour op in one `ip` batch, in plan order (stale routes before stale neighbours, new neighbours before
 * new routes). A new route still never precedes its FDB entry; with no new FDB entry the two run side by side.
 */
export const SMALL_PLAN_OPS = 64;

export interface GroupOptions {
  /** Plans of entries only up to this many ops run as two batches at most (default SMALL_PLAN_OPS). */
  smallPlanOps?: number;
}

/**
 * Splits a plan into groups that run one after another; a group holds at most one batch per tool, and its
 * batches run concurrently. A new group starts whenever the stage changes, so the plan's order between stages
 * is kept (a plan in an unusual order just makes more groups); small plans of entries only are two batches at
 * most (see SMALL_PLAN_OPS). Ops that cannot be rendered are returned as failures instead. Pure.
 */
export function groupBatches(
  ops: readonly KernelOp[],
  options: GroupOptions = {},
): {
  groups: Batch[][];
  unrenderable: Map<number, string>;
} {
  const unrenderable = new Map<number, string>();
  const rendered: Array<{ index: number; op: KernelOp; tool: IprouteTool; lines: string[] }> = [];
  ops.forEach((op, index) => {
    try {
      rendered.push({ index, op, ...renderKernelOp(op) });
    } catch (err) {
      unrenderable.set(index, (err as Error).message);
    }
  });
  const add = (batch: Batch, r: (typeof rendered)[number]): void => {
    for (const line of r.lines) {
      batch.lines.push(line);
      batch.opOfLine.push(r.index);
    }
  };
  const small = ops.length <= (options.smallPlanOps ?? SMALL_PLAN_OPS);
  if (small && rendered.every((r) => STAGE[r.op.kind] >= STAGE['route-delete'])) {
    const bridge: Batch = { tool: 'bridge', lines: [], opOfLine: [] };
    const ip: Batch = { tool: 'ip', lines: [], opOfLine: [] };
    for (const r of rendered) add(r.tool === 'bridge' ? bridge : ip, r);
    const batches = [bridge, ip].filter((b) => b.lines.length > 0);
    const fdbFirst = rendered.some((r) => r.op.kind === 'fdb-replace') && batches.length === 2;
    return { groups: fdbFirst ? [[bridge], [ip]] : batches.length > 0 ? [batches] : [], unrenderable };
  }
  const groups: Batch[][] = [];
  let stage = -1;
  for (const r of rendered) {
    if (STAGE[r.op.kind] !== stage || groups.length === 0) {
      groups.push([]);
      stage = STAGE[r.op.kind];
    }
    const group = groups[groups.length - 1]!;
    let batch = group.find((b) => b.tool === r.tool);
    if (batch === undefined) {
      batch = { tool: r.tool, lines: [], opOfLine: [] };
      group.push(batch);
    }
    add(batch, r);
  }
  return { groups, unrenderable };
}

/** Who writes routes, neighbours and FDB entries: the addon over rtnetlink, or `ip`/`bridge` batches. */
export type EntryWriter = 'netlink' | 'iproute2';

export interface ApplyOptions extends KernelCallOptions, GroupOptions {
  /** Default: `netlink` when the native addon loads (see `entryWriter()`), else `iproute2`. */
  entryWriter?: EntryWriter;
  /** Netlink requests per native call (default RTNL_CHUNK_OPS); the event loop runs between calls. */
  chunkOps?: number;
}

/** Which writer entry ops get by default, and why iproute2 when it is iproute2 (for the start-up log). */
export function entryWriter(): { writer: EntryWriter; reason?: string } {
  const rtnl = loadRtnl();
  return rtnl.ok ? { writer: 'netlink' } : { writer: 'iproute2', reason: rtnl.reason };
}

/**
 * Applies ops in order and returns one result per op, in the same order. A failing op never stops the others
 * (`-force`, or one netlink answer per request); ops that cannot be rendered are reported and skipped. With
 * the netlink writer, each run of consecutive entry ops is one netlink exchange and each run of link/address
 * ops is iproute2 batches, in plan order.
 */
export async function applyKernelOps(
  ops: readonly KernelOp[],
  opts: ApplyOptions = {},
): Promise<KernelOpResult[]> {
  const writer = opts.entryWriter ?? entryWriter().writer;
  if (writer === 'iproute2') return applyBatches(ops, opts);
  const rtnl = loadRtnl();
  const results: KernelOpResult[] = ops.map((op) => ({ op, ok: true }));
  for (let start = 0; start < ops.length; ) {
    const entries = isEntryOp(ops[start]!);
    let end = start + 1;
    while (end < ops.length && isEntryOp(ops[end]!) === entries) end++;
    const run = ops.slice(start, end);
    if (!entries) {
      (await applyBatches(run, opts)).forEach((r, k) => {
        results[start + k] = r;
      });
    } else if (!rtnl.ok) {
      for (let k = start; k < end; k++) results[k] = { op: ops[k]!, ok: false, error: rtnl.reason };
    } else {
      const errors = await writeEntries(run.filter(isEntryOp), rtnl.addon, opts);
      errors.forEach((error, k) => {
        if (error !== undefined) results[start + k] = { op: ops[start + k]!, ok: false, error };
      });
    }
    start = end;
  }
  return results;
}

/** Applies ops as iproute2 batches only. */
async function applyBatches(ops: readonly KernelOp[], opts: ApplyOptions): Promise<KernelOpResult[]> {
  const results: KernelOpResult[] = ops.map((op) => ({ op, ok: true }));
  const { groups, unrenderable } = groupBatches(ops, opts);
  for (const [i, error] of unrenderable) results[i] = { op: ops[i]!, ok: false, error };
  for (const group of groups) await Promise.all(group.map((batch) => runBatch(batch, results, opts)));
  return results;
}

async function runBatch(batch: Batch, results: KernelOpResult[], opts: KernelCallOptions): Promise<void> {
  const fail = (opIndex: number, message: string): void => {
    const r = results[opIndex]!;
    results[opIndex] = {
      op: r.op,
      ok: false,
      error: r.error === undefined ? message : `${r.error}; ${message}`,
    };
  };
  let outcome: Awaited<ReturnType<typeof runTool>>;
  try {
    outcome = await runTool(batch.tool, ['-force', '-batch', '-'], {
      ...opts,
      input: `${batch.lines.join('\n')}\n`,
    });
  } catch (err) {
    const message = err instanceof KernelToolError ? err.message : String(err);
    for (const i of new Set(batch.opOfLine)) fail(i, message);
    return;
  }
  const { failures, trailing } = parseBatchErrors(outcome.stderr);
  let lastFailed = 0;
  for (const [line, message] of failures) {
    const opIndex = batch.opOfLine[line - 1];
    if (opIndex !== undefined) fail(opIndex, message);
    lastFailed = Math.max(lastFailed, line);
  }
  if (outcome.code !== 0 && trailing !== '') {
    // iproute2 exits on some argument errors even with -force: lines after the last reported failure
    // are unconfirmed. The next reconcile re-plans from a fresh dump.
    const reason = `not confirmed: \`${batch.tool} -batch\` stopped early (exit ${outcome.code}): ${trailing}`;
    for (const i of new Set(batch.opOfLine.slice(lastFailed))) fail(i, reason);
  } else if (outcome.code !== 0 && failures.size === 0) {
    const reason = `\`${batch.tool} -batch\` exited ${outcome.code} without naming a line`;
    for (const i of new Set(batch.opOfLine)) fail(i, reason);
  }
}
