// flannel's alloc backend: the node takes a lease and writes its files; there is no data path (no device, no
// route). Something else (a cloud router, a hand-made config) carries the traffic.
import { NoDataPathBackend } from '../no-data-path.js';
import { type BackendContext, BackendPrepareError, type PreparedBackend } from '../types.js';

export class AllocBackend extends NoDataPathBackend {
  readonly name = 'alloc';

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
}
