// What a backend without a data path of weft's own (alloc; extension, whose commands build it) wants from the
// kernel: nothing, and it owns nothing there, so a pass never removes what the user's commands made.
import type { KernelScope } from '../kernel/index.js';
import type { DesiredBackendState } from './types.js';

export function noKernelState(): DesiredBackendState {
  return { state: { links: [], addresses: [], routes: [], neighbors: [], fdb: [] }, skipped: [] };
}

export function noKernelScope(): KernelScope {
  return { devices: [], networks: [] };
}
