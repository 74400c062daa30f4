// Fixtures for the backend planners' tests and benchmarks (test-only: production code never imports this):
// the external interface they plan for, the default vxlan config, and leases built from a subnet text.
import type { VxlanBackendConfig } from '../config/index.js';
import { parseCidr, stableVtepMac } from '../ip/index.js';
import type { SelectedInterface } from '../kernel/index.js';
import type { Lease, LeaseAttrs } from '../lease/index.js';

/** eth0 (index 2, MTU 1500) with 192.168.1.1/24, as selectInterface returns it. */
export const TEST_IFACE: SelectedInterface = {
  name: 'eth0',
  index: 2,
  mtu: 1500,
  ipv4: { family: 4, ip: '192.168.1.1', prefix: 24, scope: 'global' },
  publicIp: '192.168.1.1',
  addresses: [{ family: 4, ip: '192.168.1.1', prefix: 24, scope: 'global' }],
  reason: 'test',
};

/** The vxlan backend config of `"Backend": {"Type": "vxlan"}`: VNI 1, kernel defaults for port and MTU. */
export const DEFAULT_VXLAN_CONFIG: VxlanBackendConfig = {
  type: 'vxlan',
  vni: 1,
  port: 0,
  mtu: 0,
  gbp: false,
  learning: false,
  directRouting: false,
};

/** A lease of `subnet` (`10.5.2.0/24`, keyed `10.5.2.0-24`) that does not expire. */
export function subnetLease(subnet: string, attrs: LeaseAttrs): Lease {
  return { key: subnet.replace('/', '-'), subnet: parseCidr(subnet), attrs, expiration: null };
}

/** What a vxlan node publishes: VNI 1 and the VTEP MAC weft derives from its public IP. */
export function vxlanLeaseAttrs(publicIP: string): LeaseAttrs {
  return { publicIP, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: stableVtepMac(publicIP, 1) } };
}
