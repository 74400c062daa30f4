/**
 * One reconcile pass: the backend's desired state for the current leases, the kernel's observed state (or the
 * state the last clean pass left, for lease events), the plan between them, applied; then the outcome logged
 * and counted. The kernel is injected (`dump`/`apply`), so a pass is tested with plain data and no root.
 */
import type { Backend, SkippedPeerLog } from '../backend/index.js';
import {
  describeKernelOp,
  type KernelOp,
  type KernelOpResult,
  type KernelScope,
  type KernelState,
  planKernel,
  planKernelDelta,
  RememberedKernelState,
} from '../kernel/index.js';
import type { Lease } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import type { PassReason, PassResult } from './loop.js';
import type { ObservedStateMemory } from './observed.js';

/** The kernel as a pass sees it: one read of what weft owns in `scope`, one batched write. */
export interface PassKernel {
  dump(scope: KernelScope): Promise<KernelState>;
  apply(ops: readonly KernelOp[]): Promise<KernelOpResult[]>;
}

/** Where a pass reports what it did (WeftMetrics has this shape). */
export interface PassMetrics {
  reconcileObserved(seconds: number, outcomes: Array<{ kind: string; ok: boolean }>, failed?: boolean): void;
  staleRemoved(kind: string): void;
  setPeers(count: number): void;
}

export interface PassDeps {
  kernel: PassKernel;
  /** The state of the last clean pass (see observed.ts). */
  memory: ObservedStateMemory;
  logger: Logger;
  metrics?: PassMetrics;
  /** Where the peers the backend skipped are reported (a new skip is a warning); absent: debug lines. */
  skipped?: Pick<SkippedPeerLog, 'report'>;
  /** Monotonic nanoseconds (tests). */
  clock?: () => bigint;
}

export interface PassInput {
  reasons: readonly PassReason[];
  backend: Pick<Backend, 'desired' | 'scope' | 'afterReconcile'>;
  own: Lease;
  /** Every lease but the own one. */
  peers: readonly Lease[];
}

export interface PassOutcome extends PassResult {
  removed: number;
  /** The plan (empty when the kernel already matched). */
  ops: KernelOp[];
  results: KernelOpResult[];
  /** Whether the kernel was read (false: the remembered state of the last clean pass stood in). */
  dumped: boolean;
}

/** `route-replace` → `route`: the kind of kernel entry an operation touches (the metric label). */
export function kernelEntryKind(opKind: string): string {
  return opKind.split('-')[0] ?? opKind;
}

export async function runReconcilePass(input: PassInput, deps: PassDeps): Promise<PassOutcome> {
  const { backend, own, peers, reasons } = input;
  const { kernel, memory, logger, metrics } = deps;
  const clock = deps.clock ?? process.hrtime.bigint;
  const started = clock();
  const { state, skipped } = backend.desired(own, peers);
  if (deps.skipped) deps.skipped.report(skipped, logger);
  else
    for (const s of skipped)
      logger.debug({ peer: s.key, family: s.family, reason: s.reason }, 'peer not programmed');
  const scope = backend.scope(own);
  const planned = clock();
  // Lease events plan against the state the last clean pass left; everything else reads the kernel.
  const remembered = memory.recall(reasons, scope);
  memory.forget();
  let observed: KernelState;
  try {
    observed = remembered?.state ?? (await kernel.dump(scope));
  } catch (err) {
    // Counted here: a pass that cannot read the kernel has no ops to report.
    metrics?.reconcileObserved(Number(clock() - started) / 1e9, [], true);
    throw err;
  }
  const dumped = clock();
  // Against the remembered state only the entries that changed are diffed; after a dump, all of them (and the
  // state is indexed for the next lease event here, at the end of this pass, not on that event's path).
  const plan =
    remembered === undefined
      ? { ops: planKernel(state, observed, scope), next: () => RememberedKernelState.indexed(state) }
      : planKernelDelta(state, remembered, scope);
  const { ops } = plan;
  const diffed = clock();
  const results = ops.length > 0 ? await kernel.apply(ops) : [];
  for (const r of results) {
    if (!r.ok) logger.error({ op: describeKernelOp(r.op), error: r.error }, 'kernel operation failed');
  }
  const failed = results.filter((r) => !r.ok).length;
  memory.passFinished(plan.next, scope, failed === 0);
  const removals = results.filter((r) => r.ok && r.op.kind.endsWith('-delete'));
  const seconds = Number(clock() - started) / 1e9;
  for (const r of removals) metrics?.staleRemoved(kernelEntryKind(r.op.kind));
  metrics?.reconcileObserved(
    seconds,
    results.map((r) => ({ kind: kernelEntryKind(r.op.kind), ok: r.ok })),
  );
  metrics?.setPeers(peers.length);
  if (ops.length > 0 || !(reasons.length === 1 && reasons[0] === 'resync')) {
    const ms = (from: bigint, to: bigint) => Math.round(Number(to - from) / 1e6);
    const applied = clock();
    logger.info(
      {
        reasons,
        ops: ops.length,
        failed,
        removed: removals.length,
        peers: peers.length,
        dumped: remembered === undefined,
        ms: Math.round(seconds * 1000),
        // Where the time went: backend plan, kernel dump, diff, apply (+ metrics).
        stepsMs: [ms(started, planned), ms(planned, dumped), ms(dumped, diffed), ms(diffed, applied)],
      },
      'reconciled',
    );
  }
  await backend.afterReconcile?.(own, peers);
  return {
    applied: results.length - failed,
    failed,
    removed: removals.length,
    ops,
    results,
    dumped: remembered === undefined,
  };
}
