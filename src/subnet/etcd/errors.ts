import type { FamilyNetwork } from '../../config/index.js';
import { formatCidr, formatIp } from '../../ip/index.js';

/** Every subnet between SubnetMin and SubnetMax is leased. Names the network and how many leases it holds. */
export class OutOfSubnetsError extends Error {
  override name = 'OutOfSubnetsError';
  constructor(
    readonly network: FamilyNetwork,
    readonly leaseCount: number,
  ) {
    super(
      `out of subnets: network ${formatCidr(network.network)} has no free /${network.subnetLen} between ` +
        `SubnetMin ${formatIp(network.subnetMin)} and SubnetMax ${formatIp(network.subnetMax)}; it holds ` +
        `${leaseCount} lease${leaseCount === 1 ? '' : 's'}. Remove stale leases under <prefix>/subnets/ or ` +
        'widen the network',
    );
  }
}

/** The own lease is gone or belongs to someone else now. `reason` says which. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`lease ${key} lost: ${reason}`);
  }
}

/** A manager setting out of range (e.g. the renew margin). */
export class EtcdSubnetManagerConfigError extends Error {
  override name = 'EtcdSubnetManagerConfigError';
}

/** The manager was closed while a call was waiting. */
export class SubnetManagerClosedError extends Error {
  override name = 'SubnetManagerClosedError';
  constructor() {
    super('etcd subnet manager closed');
  }
}
