/**
 * What the kernel holds after the last pass, so a pass that only follows lease events can skip the kernel dump
 * (the dump is most of a one-lease pass: ~30 ms of ~55 ms with 1000 peers). flannel works the same way: it
 * applies lease events as deltas and re-checks the kernel on a timer. Here the periodic resync, a retry, a
 * restart and an own-lease change always dump, so hand-made changes are still found within one resync.
 *
 * After a pass whose every op succeeded, the kernel within the scope equals that pass's desired state (that is
 * what the planner's ops do), so that state stands in for the next dump. Any failed op, a pass that threw or
 * a changed scope forgets it. The state is kept indexed (RememberedKernelState), so a lease event's plan diffs
 * only the entries that changed (planKernelDelta).
 */
import { formatCidr } from '../ip/index.js';
import type { KernelScope, RememberedKernelState } from '../kernel/index.js';
import type { PassReason } from './loop.js';

/** Reasons whose passes may use the remembered state: only lease events. Anything else dumps. */
const DELTA_REASONS: ReadonlySet<PassReason> = new Set<PassReason>(['lease']);

/** Whether a pass with these (coalesced) reasons may skip the dump. */
export function mayUseRememberedState(reasons: readonly PassReason[]): boolean {
  return reasons.length > 0 && reasons.every((r) => DELTA_REASONS.has(r));
}

function scopeKey(scope: KernelScope): string {
  return JSON.stringify([
    scope.devices,
    scope.networks.map(formatCidr),
    scope.externalDev ?? null,
    (scope.protectedDsts ?? []).map(formatCidr),
  ]);
}

export class ObservedStateMemory {
  private state: RememberedKernelState | undefined;
  private scope: string | undefined;

  /** The state to plan against instead of a dump, or undefined when the pass must dump. */
  recall(reasons: readonly PassReason[], scope: KernelScope): RememberedKernelState | undefined {
    if (this.state === undefined || !mayUseRememberedState(reasons)) return undefined;
    return this.scope === scopeKey(scope) ? this.state : undefined;
  }

  /**
   * After a pass: remembers the pass's desired state when every op succeeded, otherwise forgets. `desired` is
   * called only then (a delta plan's `next`, which moves the last state's index on).
   */
  passFinished(desired: () => RememberedKernelState, scope: KernelScope, allOk: boolean): void {
    if (!allOk) {
      this.forget();
      return;
    }
    this.state = desired();
    this.scope = scopeKey(scope);
  }

  forget(): void {
    this.state = undefined;
    this.scope = undefined;
  }
}
