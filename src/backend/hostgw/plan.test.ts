import { describe, expect, it } from 'vitest';
import { subnetLease, TEST_IFACE } from '../../../testkit/fixtures/backend.js';
import { parseCidr } from '../../ip/index.js';
import { outOfScope, planKernel, type SelectedInterface } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { hostGwScope, planHostGw } from './plan.js';

const networks = { ipv4: parseCidr('10.5.0.0/16') };
const iface = TEST_IFACE;
const lease = (n: number, publicIP = `192.168.1.${n}`, backendType: string | undefined = 'host-gw'): Lease =>
  subnetLease(`10.5.${n}.0/24`, { publicIP, backendType });
const own = lease(1);

describe('planHostGw', () => {
  it('routes each peer subnet via its PublicIP on the external interface', () => {
    const { state, skipped } = planHostGw({ networks, iface, own, peers: [own, lease(3), lease(2)] });
    expect(skipped).toEqual([]);
    expect(state).toEqual({
      links: [],
      addresses: [],
      neighbors: [],
      fdb: [],
      routes: [
        { dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' },
        { dst: '10.5.3.0/24', via: '192.168.1.3', dev: 'eth0' },
      ],
    });
  });

  it('skips peers that are not on-link, use another backend or lack a PublicIP', () => {
    const { state, skipped } = planHostGw({
      networks,
      iface,
      own,
      peers: [lease(2, '172.16.0.2'), lease(3, '192.168.1.3', 'vxlan'), lease(4, ''), lease(5)],
    });
    expect(skipped.map((s) => s.reason)).toEqual([
      'PublicIP 172.16.0.2 is not on-link on eth0 (192.168.1.1/24): host-gw needs all nodes on one L2 network',
      'backend type vxlan (this node uses host-gw)',
      'no PublicIP',
    ]);
    expect(state.routes.map((r) => r.dst)).toEqual(['10.5.5.0/24']);
  });

  it('stays inside its scope; a departed peer loses its route; the own subnet is never touched', () => {
    const scope = hostGwScope(networks, iface, own);
    const before = planHostGw({ networks, iface, own, peers: [lease(2), lease(3)] }).state;
    const after = planHostGw({ networks, iface, own, peers: [lease(2)] }).state;
    expect(outOfScope(before, scope)).toEqual([]);
    const observed = {
      ...before,
      routes: [...before.routes, { dst: '10.5.1.0/24', dev: 'cni0', protocol: 'kernel' }],
    };
    expect(planKernel(after, observed, scope)).toEqual([
      { kind: 'route-delete', route: { dst: '10.5.3.0/24', via: '192.168.1.3', dev: 'eth0' } },
    ]);
  });

  it('skips a peer outside the Network and a second lease of an already routed subnet', () => {
    const outside: Lease = { ...lease(7), key: '10.6.7.0-24', subnet: parseCidr('10.6.7.0/24') };
    const duplicate: Lease = { ...lease(8), key: '10.5.2.0-24-dup', subnet: parseCidr('10.5.2.0/24') };
    const { state, skipped } = planHostGw({ networks, iface, own, peers: [lease(2), outside, duplicate] });
    expect(state.routes).toEqual([{ dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' }]);
    expect(skipped.map((s) => [s.key, s.reason])).toEqual([
      ['10.5.2.0-24-dup', 'subnet 10.5.2.0/24 is also leased by 10.5.2.0-24'],
      ['10.6.7.0-24', 'subnet 10.6.7.0/24 is outside the Network 10.5.0.0/16'],
    ]);
  });

  it('dual stack: IPv6 routes via PublicIPv6 on the external interface, inside the scope', () => {
    const dual = { ipv4: networks.ipv4, ipv6: parseCidr('fd00:5::/32') };
    const v6 = { family: 6 as const, ip: 'fd77::1', prefix: 64, scope: 'global' };
    const iface6: SelectedInterface = {
      ...iface,
      ipv6: v6,
      publicIpv6: 'fd77::1',
      addresses: [...iface.addresses, v6],
    };
    const dualLease = (n: number): Lease => ({
      ...lease(n),
      ipv6Subnet: parseCidr(`fd00:5:${n}::/64`),
      attrs: { publicIP: `192.168.1.${n}`, publicIPv6: `fd77::${n}`, backendType: 'host-gw' },
    });
    const ownDual = dualLease(1);
    const { state, skipped } = planHostGw({
      networks: dual,
      iface: iface6,
      own: ownDual,
      peers: [ownDual, dualLease(2), lease(3)],
    });
    expect(state.routes).toEqual([
      { dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' },
      { dst: '10.5.3.0/24', via: '192.168.1.3', dev: 'eth0' },
      { dst: 'fd00:5:2::/64', via: 'fd77::2', dev: 'eth0' },
    ]);
    expect(skipped).toEqual([{ key: '10.5.3.0-24', family: 6, reason: 'no IPv6 subnet' }]);
    expect(outOfScope(state, hostGwScope(dual, iface6, ownDual))).toEqual([]);
  });
});
