// flannel's alloc backend: the node takes a lease and writes its files; there is no data path (no device, no
// route). Something else (a cloud router, a hand-made config) carries the traffic.
import type { KernelScope } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { noKernelScope, noKernelState } from '../no-data-path.js';
import {
  type Backend,
  type BackendContext,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  type PreparedBackend,
} from '../types.js';

export class AllocBackend implements Backend {
  readonly name = 'alloc';
  private preparedMtu: number | undefined;

  async prepare(ctx: BackendContext): Promise<PreparedBackend> {
    const { iface } = ctx;
    if (iface.publicIp === undefined && iface.publicIpv6 === undefined) {
      throw new BackendPrepareError(`alloc: ${iface.name} has no address to publish`);
    }
    this.preparedMtu = iface.mtu;
    const attrs: PreparedBackend['attrs'] = { publicIP: iface.publicIp ?? '', backendType: 'alloc' };
    if (iface.publicIpv6 !== undefined) attrs.publicIPv6 = iface.publicIpv6;
    return { attrs, mtu: iface.mtu };
  }

  /** alloc only hands out subnets: there is no data path to probe. */
  probeAddress(_peer: Lease): string | undefined {
    return undefined;
  }

  desired(_own: Lease, _peers: readonly Lease[]): DesiredBackendState {
    this.mtu();
    return noKernelState();
  }

  /** Owns nothing in the kernel. */
  scope(_own: Lease): KernelScope {
    return noKernelScope();
  }

  mtu(): number {
    if (this.preparedMtu === undefined) throw new BackendNotPreparedError(this.name, 'mtu');
    return this.preparedMtu;
  }
}
