// The backends without a data path of weft's own — alloc, and extension (whose commands build it) — want nothing
// from the kernel and own nothing there, so a pass never removes what the user's commands made. They have no
// address a peer answers probes on.
import type { KernelScope } from '../kernel/index.js';
import type { Lease } from '../lease/index.js';
import {
  type Backend,
  type BackendContext,
  BackendNotPreparedError,
  type DesiredBackendState,
  type PreparedBackend,
} from './types.js';

export abstract class NoDataPathBackend implements Backend {
  abstract readonly name: string;
  /** Set by `prepare`: the external interface's MTU (nothing is encapsulated). */
  protected preparedMtu: number | undefined;

  abstract prepare(ctx: BackendContext): Promise<PreparedBackend>;

  probeAddress(_peer: Lease): string | undefined {
    return undefined;
  }

  desired(_own: Lease, _peers: readonly Lease[]): DesiredBackendState {
    this.mtu();
    return { state: { links: [], addresses: [], routes: [], neighbors: [], fdb: [] }, skipped: [] };
  }

  scope(_own: Lease): KernelScope {
    return { devices: [], networks: [] };
  }

  mtu(): number {
    if (this.preparedMtu === undefined) throw new BackendNotPreparedError(this.name, 'mtu');
    return this.preparedMtu;
  }
}
