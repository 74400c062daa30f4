// Fixtures for the kernel planner's and renderer's tests (test-only: production code never imports this).
import type { VxlanLinkSpec } from './types.js';

/** flannel.1 as flannel's vxlan backend makes it: VNI 1 on eth0 from 192.168.1.10, port 8472, MTU 1450, up. */
export const TEST_VXLAN_DEVICE: VxlanLinkSpec = {
  kind: 'vxlan',
  name: 'flannel.1',
  vni: 1,
  local: '192.168.1.10',
  dev: 'eth0',
  port: 8472,
  learning: false,
  gbp: false,
  mtu: 1450,
  mac: '02:00:00:00:00:01',
  up: true,
};
