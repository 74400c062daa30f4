import { describe, expect, it } from 'vitest';
import { TEST_VXLAN_DEVICE } from '../../testkit/fixtures/kernel.js';
import { parseCidr } from '../ip/index.js';
import { describeKernelOp, planKernel } from './plan.js';
import type { DesiredKernelState, KernelOp, KernelScope, KernelState, VxlanLinkSpec } from './types.js';

const scope: KernelScope = {
  devices: ['flannel.1'],
  networks: [parseCidr('10.5.0.0/16')],
  externalDev: 'eth0',
  protectedDsts: [parseCidr('10.5.1.0/24')],
};

const device = TEST_VXLAN_DEVICE;

function peerEntries(
  n: number,
  mac = `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
  publicIp = `192.168.1.${n}`,
) {
  return {
    route: { dst: `10.5.${n}.0/24`, via: `10.5.${n}.0`, dev: 'flannel.1', onlink: true },
    neighbor: { dev: 'flannel.1', ip: `10.5.${n}.0`, mac },
    fdb: { dev: 'flannel.1', mac, dst: publicIp },
  };
}

function vxlanState(
  peers: Array<ReturnType<typeof peerEntries>>,
  link: VxlanLinkSpec = device,
): DesiredKernelState {
  return {
    links: [link],
    addresses: [{ dev: 'flannel.1', cidr: '10.5.1.0/32' }],
    routes: peers.map((p) => p.route),
    neighbors: peers.map((p) => p.neighbor),
    fdb: peers.map((p) => p.fdb),
  };
}

const empty: KernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };
const kinds = (ops: KernelOp[]) => ops.map((o) => o.kind);
const lines = (ops: KernelOp[]) => ops.map(describeKernelOp);

describe('planKernel', () => {
  it('fresh node: creates the device, address, then neighbour/FDB, routes last', () => {
    const desired = vxlanState([peerEntries(2), peerEntries(3)]);
    const ops = planKernel(desired, empty, scope);
    expect(kinds(ops)).toEqual([
      'link-add',
      'address-add',
      'fdb-replace',
      'fdb-replace',
      'neighbor-replace',
      'neighbor-replace',
      'route-replace',
      'route-replace',
    ]);
  });

  it('steady state: no ops', () => {
    const desired = vxlanState([peerEntries(2), peerEntries(3)]);
    expect(planKernel(desired, desired, scope)).toEqual([]);
  });

  it('a stale peer is removed: route first, then neighbour and FDB', () => {
    const observed = vxlanState([peerEntries(2), peerEntries(3)]);
    const desired = vxlanState([peerEntries(2)]);
    expect(lines(planKernel(desired, observed, scope))).toEqual([
      'route-delete 10.5.3.0/24 via 10.5.3.0 dev flannel.1 onlink',
      'neighbor-delete 10.5.3.0 lladdr 02:00:00:00:00:03 dev flannel.1',
      'fdb-delete 02:00:00:00:00:03 dst 192.168.1.3 dev flannel.1',
    ]);
  });

  it('a changed VtepMAC replaces the neighbour and the FDB entry (old MAC removed)', () => {
    const observed = vxlanState([peerEntries(2)]);
    const desired = vxlanState([peerEntries(2, '02:00:00:00:aa:02')]);
    expect(lines(planKernel(desired, observed, scope))).toEqual([
      'fdb-delete 02:00:00:00:00:02 dst 192.168.1.2 dev flannel.1',
      'fdb-replace 02:00:00:00:aa:02 dst 192.168.1.2 dev flannel.1',
      'neighbor-replace 10.5.2.0 lladdr 02:00:00:00:aa:02 dev flannel.1',
    ]);
  });

  it('a changed PublicIP replaces the FDB entry in place', () => {
    const observed = vxlanState([peerEntries(2)]);
    const desired = vxlanState([peerEntries(2, undefined, '192.168.1.99')]);
    expect(lines(planKernel(desired, observed, scope))).toEqual([
      'fdb-replace 02:00:00:00:00:02 dst 192.168.1.99 dev flannel.1',
    ]);
  });

  it('a device with the wrong VNI or port is recreated and everything on it re-added', () => {
    for (const wrong of [
      { vni: 2 },
      { port: 4789 },
      { local: '192.168.1.11' },
      { dev: 'eth1' },
      { learning: true },
    ]) {
      const observed = vxlanState([peerEntries(2)], { ...device, ...wrong });
      const ops = planKernel(vxlanState([peerEntries(2)]), observed, scope);
      expect(kinds(ops)).toEqual([
        'link-delete',
        'link-add',
        'address-add',
        'fdb-replace',
        'neighbor-replace',
        'route-replace',
      ]);
      expect(ops[0]).toMatchObject({ kind: 'link-delete', name: 'flannel.1' });
      expect((ops[0] as { reason: string }).reason).toMatch(/want/);
    }
  });

  it('a device that is not vxlan at all is recreated', () => {
    const observed: KernelState = {
      ...empty,
      links: [{ kind: 'other', name: 'flannel.1', type: 'bridge', mtu: 1500, up: true }],
    };
    const ops = planKernel(vxlanState([]), observed, scope);
    expect(ops[0]).toEqual({ kind: 'link-delete', name: 'flannel.1', reason: 'is a bridge, expected vxlan' });
  });

  it('a wrong MTU, MAC or down device is fixed in place', () => {
    const observed = vxlanState([peerEntries(2)], {
      ...device,
      mtu: 1400,
      mac: '02:00:00:00:00:99',
      up: false,
    });
    expect(planKernel(vxlanState([peerEntries(2)]), observed, scope)).toEqual([
      { kind: 'link-set', name: 'flannel.1', mtu: 1450, mac: '02:00:00:00:00:01', up: true },
    ]);
  });

  it('removes other addresses inside the Network on weft devices, keeps link-local ones', () => {
    const observed = vxlanState([]);
    observed.addresses.push(
      { dev: 'flannel.1', cidr: '10.5.44.0/32' },
      { dev: 'flannel.1', cidr: 'fe80::1/64' },
    );
    expect(lines(planKernel(vxlanState([]), observed, scope))).toEqual([
      'address-delete 10.5.44.0/32 dev flannel.1',
    ]);
  });

  it('never touches foreign routes, the own subnet route or kernel routes', () => {
    const observed = vxlanState([peerEntries(2)]);
    observed.routes.push(
      // cni0 owns the own subnet (the bridge CNI plugin made it).
      { dst: '10.5.1.0/24', dev: 'cni0', protocol: 'kernel' },
      // Own subnet even on the external interface: protected.
      { dst: '10.5.1.0/24', via: '192.168.1.1', dev: 'eth0' },
      // Outside the Network on the external interface.
      { dst: '10.7.0.0/16', via: '192.168.1.1', dev: 'eth0' },
      // Inside the Network, on a device weft does not own.
      { dst: '10.5.77.0/24', dev: 'docker0' },
      { dst: '0.0.0.0/0', via: '192.168.1.1', dev: 'eth0' },
    );
    observed.neighbors.push({ dev: 'eth0', ip: '192.168.1.1', mac: '02:00:00:00:11:11' });
    observed.fdb.push({ dev: 'vxlan99', mac: '02:00:00:00:22:22', dst: '192.168.1.77' });
    observed.addresses.push({ dev: 'cni0', cidr: '10.5.1.1/24' });
    expect(planKernel(vxlanState([peerEntries(2)]), observed, scope)).toEqual([]);
  });

  it('removes stale host-gw/direct routes on the external interface inside the Network', () => {
    const observed = vxlanState([]);
    observed.routes.push({ dst: '10.5.9.0/24', via: '192.168.1.9', dev: 'eth0' });
    expect(lines(planKernel(vxlanState([]), observed, scope))).toEqual([
      'route-delete 10.5.9.0/24 via 192.168.1.9 dev eth0',
    ]);
  });

  it('switches a peer between tunnel and direct routing with one replace and the stale entries removed', () => {
    const observed = vxlanState([peerEntries(2)]);
    const desired: DesiredKernelState = {
      ...vxlanState([]),
      routes: [{ dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' }],
    };
    expect(lines(planKernel(desired, observed, scope))).toEqual([
      'neighbor-delete 10.5.2.0 lladdr 02:00:00:00:00:02 dev flannel.1',
      'fdb-delete 02:00:00:00:00:02 dst 192.168.1.2 dev flannel.1',
      'route-replace 10.5.2.0/24 via 192.168.1.2 dev eth0',
    ]);
  });

  it('a second route to the same dst with another metric is removed; the desired one kept', () => {
    const observed = vxlanState([peerEntries(2)]);
    observed.routes.push({ ...peerEntries(2).route, metric: 100 });
    expect(lines(planKernel(vxlanState([peerEntries(2)]), observed, scope))).toEqual([
      'route-delete 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink metric 100',
    ]);
  });

  it('an IPv6 route observed with the default metric 1024 matches a desired route without one', () => {
    const v6scope: KernelScope = { devices: ['flannel-v6.1'], networks: [parseCidr('fd00:5::/32')] };
    const route = { dst: 'fd00:5:2::/64', via: 'fd00:5:2::', dev: 'flannel-v6.1', onlink: true };
    const desired: DesiredKernelState = { ...empty, links: [], routes: [route] };
    expect(planKernel(desired, { ...empty, routes: [{ ...route, metric: 1024 }] }, v6scope)).toEqual([]);
  });

  it('deletes weft devices that are no longer wanted, without touching their entries one by one', () => {
    const observed = vxlanState([peerEntries(2)]);
    expect(planKernel(empty as DesiredKernelState, observed, scope)).toEqual([
      { kind: 'link-delete', name: 'flannel.1', reason: 'no longer wanted' },
    ]);
  });

  it('removes extra remotes for one MAC (all-zero MAC with several dsts)', () => {
    const zero = '00:00:00:00:00:00';
    const desired: DesiredKernelState = {
      ...vxlanState([]),
      fdb: [{ dev: 'flannel.1', mac: zero, dst: '192.168.1.2' }],
    };
    const observed = vxlanState([]);
    observed.fdb.push(
      { dev: 'flannel.1', mac: zero, dst: '192.168.1.2' },
      { dev: 'flannel.1', mac: zero, dst: '192.168.1.3' },
    );
    expect(lines(planKernel(desired, observed, scope))).toEqual([
      'fdb-delete 00:00:00:00:00:00 dst 192.168.1.3 dev flannel.1',
    ]);
  });
});
