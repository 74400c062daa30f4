import { describe, expect, it } from 'vitest';
import { subnetLease, TEST_IFACE } from '../../../testkit/fixtures/backend.js';
import type { UdpBackendConfig } from '../../config/index.js';
import { parseCidr } from '../../ip/index.js';
import { planKernel } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { OwnLeaseMismatchError } from '../types.js';
import { peerTableKey, planUdp, udpScope } from './plan.js';

const iface = TEST_IFACE;
const network = parseCidr('10.5.0.0/16');
const udp: UdpBackendConfig = { type: 'udp', port: 8285 };

function lease(subnet: string, publicIP: string, extra: Partial<Lease['attrs']> = {}): Lease {
  return subnetLease(subnet, { publicIP, ...extra });
}

const own = lease('10.5.1.0/24', '192.168.1.1');

describe('planUdp', () => {
  it('wants flannel0 (MTU underlay − 28, up), the /32 tunnel address and one route for the Network', () => {
    const plan = planUdp({ udp, network, iface, own, peers: [] });
    expect(plan.state).toEqual({
      links: [{ kind: 'tun', name: 'flannel0', mtu: 1472, up: true }],
      addresses: [{ dev: 'flannel0', cidr: '10.5.1.0/32' }],
      routes: [{ dst: '10.5.0.0/16', dev: 'flannel0' }],
      neighbors: [],
      fdb: [],
    });
    expect(plan.enginePeers).toEqual([]);
    expect(plan.skipped).toEqual([]);
  });

  it('makes every other lease a peer at its PublicIP on this node’s port, sorted by key', () => {
    const peers = [
      lease('10.5.3.0/24', '192.168.1.3'),
      own,
      lease('10.5.2.0/24', '192.168.1.2', { backendType: 'udp' }),
    ];
    const plan = planUdp({ udp: { type: 'udp', port: 9000 }, network, iface, own, peers });
    expect(plan.enginePeers).toEqual([
      { subnet: '10.5.2.0/24', address: '192.168.1.2', port: 9000 },
      { subnet: '10.5.3.0/24', address: '192.168.1.3', port: 9000 },
    ]);
    expect(plan.skipped).toEqual([]);
    // Peers never change the kernel state: the engine routes between them.
    expect(plan.state.routes).toEqual([{ dst: '10.5.0.0/16', dev: 'flannel0' }]);
  });

  it('skips, with a reason, leases it cannot reach', () => {
    const peers = [
      lease('10.5.2.0/24', '192.168.1.2', { backendType: 'vxlan', backendData: { VNI: 1 } }),
      lease('10.6.0.0/24', '192.168.1.4'),
      lease('10.5.4.0/24', ''),
      lease('10.5.5.0/24', '192.168.1.1'),
      lease('10.5.6.0/24', '192.168.1.6'),
      { ...lease('10.5.6.0/24', '192.168.1.7'), key: '10.5.6.0-24-dup' },
      { key: 'fd00::-64', ipv6Subnet: parseCidr('fd00::/64'), attrs: { publicIP: '' }, expiration: null },
    ];
    const plan = planUdp({ udp, network, iface, own, peers });
    expect(plan.enginePeers).toEqual([{ subnet: '10.5.6.0/24', address: '192.168.1.6', port: 8285 }]);
    const reasons = Object.fromEntries(plan.skipped.map((s) => [s.key, s.reason]));
    expect(reasons['10.5.2.0-24']).toMatch(/backend type vxlan/);
    expect(reasons['10.6.0.0-24']).toMatch(/outside the Network 10\.5\.0\.0\/16/);
    expect(reasons['10.5.4.0-24']).toBe('no PublicIP');
    expect(reasons['10.5.5.0-24']).toMatch(/this node's own/);
    expect(reasons['10.5.6.0-24-dup']).toMatch(/also leased by 10\.5\.6\.0-24/);
    expect(reasons['fd00::-64']).toMatch(/no IPv4 subnet/);
  });

  it('refuses an own lease without an IPv4 subnet', () => {
    const v6only: Lease = {
      key: 'x',
      ipv6Subnet: parseCidr('fd00::/64'),
      attrs: { publicIP: '' },
      expiration: null,
    };
    expect(() => planUdp({ udp, network, iface, own: v6only, peers: [] })).toThrow(OwnLeaseMismatchError);
  });

  it('plans the device from nothing, and nothing once it is there', () => {
    const plan = planUdp({ udp, network, iface, own, peers: [] });
    const scope = udpScope(network, iface, own);
    const empty = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
    expect(planKernel(plan.state, empty, scope).map((op) => op.kind)).toEqual([
      'link-add',
      'address-add',
      'route-replace',
    ]);
    expect(planKernel(plan.state, plan.state, scope)).toEqual([]);
  });

  it('removes a stale tunnel address and host-gw routes into the Network, never the own subnet’s route', () => {
    const plan = planUdp({ udp, network, iface, own, peers: [] });
    const scope = udpScope(network, iface, own);
    const observed = {
      links: [{ kind: 'tun' as const, name: 'flannel0', mtu: 1400, up: true }],
      addresses: [
        { dev: 'flannel0', cidr: '10.5.1.0/32' },
        { dev: 'flannel0', cidr: '10.5.9.0/32' },
      ],
      routes: [
        { dst: '10.5.0.0/16', dev: 'flannel0' },
        { dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' },
        { dst: '10.5.1.0/24', dev: 'cni0' },
      ],
      neighbors: [],
      fdb: [],
    };
    expect(planKernel(plan.state, observed, scope)).toEqual([
      { kind: 'link-set', name: 'flannel0', mtu: 1472 },
      { kind: 'address-delete', address: { dev: 'flannel0', cidr: '10.5.9.0/32' } },
      { kind: 'route-delete', route: { dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' } },
    ]);
  });

  it('keys a peer table by content', () => {
    const a = [{ subnet: '10.5.2.0/24', address: '192.168.1.2', port: 8285 }];
    expect(peerTableKey(a)).toBe(peerTableKey([{ ...a[0]! }]));
    expect(peerTableKey(a)).not.toBe(peerTableKey([{ ...a[0]!, address: '192.168.1.9' }]));
  });
});
