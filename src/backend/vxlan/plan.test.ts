import { describe, expect, it } from 'vitest';
import {
  DEFAULT_VXLAN_CONFIG,
  subnetLease,
  TEST_IFACE,
  vxlanLeaseAttrs,
} from '../../../testkit/fixtures/backend.js';
import { parseCidr, stableVtepMac } from '../../ip/index.js';
import { describeKernelOp, outOfScope, planKernel, type SelectedInterface } from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { planVxlan, vxlanDeviceMtu, vxlanScope } from './plan.js';

const vxlan = DEFAULT_VXLAN_CONFIG;
const networks = { ipv4: parseCidr('10.5.0.0/16') };
const iface = TEST_IFACE;

function lease(n: number, overrides: Partial<Lease['attrs']> = {}, publicIP = `192.168.1.${n}`): Lease {
  return subnetLease(`10.5.${n}.0/24`, { ...vxlanLeaseAttrs(publicIP), ...overrides });
}

const own = lease(1);
const plan = (peers: Lease[], config = vxlan, i = iface) =>
  planVxlan({ vxlan: config, networks, iface: i, own, peers });

describe('planVxlan', () => {
  it('builds the device, address and per-peer neighbour, FDB and onlink route', () => {
    const { state, skipped } = plan([own, lease(2), lease(3)]);
    expect(skipped).toEqual([]);
    expect(state.links).toEqual([
      {
        kind: 'vxlan',
        name: 'flannel.1',
        vni: 1,
        local: '192.168.1.1',
        dev: 'eth0',
        port: 8472,
        learning: false,
        gbp: false,
        mtu: 1450,
        mac: stableVtepMac('192.168.1.1', 1),
        up: true,
      },
    ]);
    expect(state.addresses).toEqual([{ dev: 'flannel.1', cidr: '10.5.1.0/32' }]);
    expect(state.neighbors).toEqual([
      { dev: 'flannel.1', ip: '10.5.2.0', mac: stableVtepMac('192.168.1.2', 1) },
      { dev: 'flannel.1', ip: '10.5.3.0', mac: stableVtepMac('192.168.1.3', 1) },
    ]);
    expect(state.fdb).toEqual([
      { dev: 'flannel.1', mac: stableVtepMac('192.168.1.2', 1), dst: '192.168.1.2' },
      { dev: 'flannel.1', mac: stableVtepMac('192.168.1.3', 1), dst: '192.168.1.3' },
    ]);
    expect(state.routes).toEqual([
      { dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', onlink: true },
      { dst: '10.5.3.0/24', via: '10.5.3.0', dev: 'flannel.1', onlink: true },
    ]);
  });

  it('honours VNI, Port, MTU (the underlay MTU: device = MTU − 50), GBP and Learning', () => {
    const config = { ...vxlan, vni: 42, port: 4789, mtu: 1400, gbp: true, learning: true };
    const o = { ...own, attrs: { ...own.attrs, backendData: { VNI: 42, VtepMAC: '02:00:00:00:00:01' } } };
    const { state } = planVxlan({ vxlan: config, networks, iface, own: o, peers: [] });
    expect(state.links[0]).toMatchObject({
      name: 'flannel.42',
      vni: 42,
      port: 4789,
      mtu: 1350,
      gbp: true,
      learning: true,
    });
  });

  it('reads Backend.MTU as the underlay MTU like flannel: "MTU":1500 gives a 1450-byte flannel.1 (v6: 1430)', () => {
    const config = { ...vxlan, mtu: 1500 };
    // A 9000-byte interface must not leak through: Backend.MTU wins over the interface's MTU.
    const { state } = plan([], config, { ...iface, mtu: 9000 });
    expect(state.links[0]).toMatchObject({ name: 'flannel.1', mtu: 1450 });
    expect(vxlanDeviceMtu(config, 9000, 6)).toBe(1430);
    expect(vxlanDeviceMtu(vxlan, 1500, 4)).toBe(1450);
  });

  it('uses the interface address as VTEP local and the stable MAC of the public IP behind NAT', () => {
    const natted = { ...iface, publicIp: '203.0.113.1' };
    const { state } = plan([], vxlan, natted);
    expect(state.links[0]).toMatchObject({ local: '192.168.1.1', mac: stableVtepMac('203.0.113.1', 1) });
  });

  it('skips peers with another backend, a bad VtepMAC, no PublicIP, another VNI, and says why', () => {
    const peers = [
      lease(2, { backendType: 'host-gw', backendData: undefined }),
      lease(3, { backendData: { VNI: 1, VtepMAC: 'not-a-mac' } }),
      lease(4, { backendData: { VNI: 1, VtepMAC: '01:00:5e:00:00:01' } }),
      lease(5, {}, ''),
      lease(6, { backendData: { VNI: 7, VtepMAC: '02:00:00:00:00:06' } }),
      lease(7, { backendData: undefined }),
      lease(8, { backendType: undefined }),
      { ...lease(9), subnet: parseCidr('10.99.9.0/24') },
      lease(10),
    ];
    const { state, skipped } = plan(peers);
    expect(skipped.map((s) => [s.key, s.reason])).toEqual([
      ['10.5.2.0-24', 'backend type host-gw (this node uses vxlan)'],
      ['10.5.3.0-24', 'BackendData.VtepMAC "not-a-mac" is not a unicast MAC'],
      ['10.5.4.0-24', 'BackendData.VtepMAC "01:00:5e:00:00:01" is not a unicast MAC'],
      ['10.5.5.0-24', 'no PublicIP'],
      ['10.5.6.0-24', "BackendData.VNI 7 differs from this node's VNI 1"],
      ['10.5.7.0-24', 'no BackendData'],
      [
        '10.5.8.0-24',
        "no BackendType: a lease of flannel's udp backend (PublicIP only); this node uses vxlan and cannot reach it — every node needs the same Backend.Type",
      ],
      ['10.5.9.0-24', 'subnet 10.99.9.0/24 is outside the Network 10.5.0.0/16'],
    ]);
    expect(state.routes.map((r) => r.dst)).toEqual(['10.5.10.0/24']);
  });

  it('reads backend data case-insensitively, as flannel (Go) does', () => {
    const { state, skipped } = plan([lease(2, { backendData: { vni: 1, vtepmac: '02:AA:00:00:00:02' } })]);
    expect(skipped).toEqual([]);
    expect(state.fdb).toEqual([{ dev: 'flannel.1', mac: '02:aa:00:00:00:02', dst: '192.168.1.2' }]);
  });

  it('ignores the own lease, skips a stale lease with the own PublicIP, a duplicate subnet and a MAC clash', () => {
    const clash = lease(4, { backendData: { VNI: 1, VtepMAC: stableVtepMac('192.168.1.2', 1) } });
    const dup = { ...lease(2), key: '10.5.2.0-24-dup' };
    const { state, skipped } = plan([
      own,
      lease(2),
      dup,
      clash,
      { ...lease(5), attrs: { ...lease(5).attrs, publicIP: '192.168.1.1' } },
    ]);
    expect(skipped.map((s) => s.reason)).toEqual([
      'subnet 10.5.2.0/24 is also leased by 10.5.2.0-24',
      `VtepMAC ${stableVtepMac('192.168.1.2', 1)} is also used by 10.5.2.0-24 (PublicIP 192.168.1.2)`,
      "PublicIP 192.168.1.1 is this node's own (a stale lease of this node?)",
    ]);
    expect(state.routes.map((r) => r.dst)).toEqual(['10.5.2.0/24']);
  });

  it('two leases of one node (same PublicIP, same MAC) share one FDB entry', () => {
    const second = { ...lease(2), key: '10.5.3.0-24', subnet: parseCidr('10.5.3.0/24') };
    const { state, skipped } = plan([lease(2), second]);
    expect(skipped).toEqual([]);
    expect(state.fdb).toHaveLength(1);
    expect(state.neighbors).toHaveLength(2);
    expect(state.routes).toHaveLength(2);
  });

  it('DirectRouting: on-link peers get a plain route via their PublicIP on the external interface', () => {
    const far = lease(3, {}, '172.16.0.3');
    const { state } = plan([lease(2), far], { ...vxlan, directRouting: true });
    expect(state.routes).toEqual([
      { dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' },
      { dst: '10.5.3.0/24', via: '10.5.3.0', dev: 'flannel.1', onlink: true },
    ]);
    expect(state.neighbors.map((n) => n.ip)).toEqual(['10.5.3.0']);
    expect(state.fdb.map((f) => f.dst)).toEqual(['172.16.0.3']);
  });

  it('is deterministic whatever the order of the peers', () => {
    const a = plan([lease(3), lease(2), lease(4)]);
    const b = plan([lease(4), lease(2), lease(3)]);
    expect(a).toEqual(b);
  });

  it('stays inside its own scope (so a dump sees everything it programs)', () => {
    const { state } = plan([lease(2), lease(3, {}, '172.16.0.3')], { ...vxlan, directRouting: true });
    expect(outOfScope(state, vxlanScope(vxlan, networks, iface, own))).toEqual([]);
  });

  it('dual stack: flannel-v6.<VNI> with /128, MTU - 70, v6 neighbours, FDB and routes', () => {
    const ifaceV6: SelectedInterface = {
      ...iface,
      ipv6: { family: 6, ip: 'fd00:1::1', prefix: 64, scope: 'global' },
      publicIpv6: 'fd00:1::1',
      addresses: [...iface.addresses, { family: 6, ip: 'fd00:1::1', prefix: 64, scope: 'global' }],
    };
    const nets = { ipv4: parseCidr('10.5.0.0/16'), ipv6: parseCidr('fd00:5::/48') };
    const v6lease = (n: number): Lease => {
      const base = lease(n);
      return {
        ...base,
        key: `10.5.${n}.0-24&fd00:5:0:${n}::-64`,
        ipv6Subnet: parseCidr(`fd00:5:0:${n}::/64`),
        attrs: {
          ...base.attrs,
          publicIPv6: `fd00:1::${n}`,
          backendV6Data: { VNI: 1, VtepMAC: stableVtepMac(`fd00:1::${n}`, 1) },
        },
      };
    };
    const { state, skipped } = planVxlan({
      vxlan,
      networks: nets,
      iface: ifaceV6,
      own: v6lease(1),
      peers: [v6lease(2), lease(3)],
    });
    expect(state.links.map((l) => [l.name, l.mtu, (l as { local: string }).local])).toEqual([
      ['flannel.1', 1450, '192.168.1.1'],
      ['flannel-v6.1', 1430, 'fd00:1::1'],
    ]);
    expect(state.addresses).toContainEqual({ dev: 'flannel-v6.1', cidr: 'fd00:5:0:1::/128' });
    expect(state.routes).toContainEqual({
      dst: 'fd00:5:0:2::/64',
      via: 'fd00:5:0:2::',
      dev: 'flannel-v6.1',
      onlink: true,
    });
    expect(state.fdb).toContainEqual({
      dev: 'flannel-v6.1',
      mac: stableVtepMac('fd00:1::2', 1),
      dst: 'fd00:1::2',
    });
    // lease(3) is IPv4-only: programmed for IPv4, skipped for IPv6.
    expect(skipped).toEqual([{ key: '10.5.3.0-24', family: 6, reason: 'no IPv6 subnet' }]);
    expect(state.routes).toContainEqual({
      dst: '10.5.3.0/24',
      via: '10.5.3.0',
      dev: 'flannel.1',
      onlink: true,
    });
  });
});

describe('planVxlan + planKernel (reconcile scenarios)', () => {
  const scope = vxlanScope(vxlan, networks, iface, own);
  const ops = (before: Lease[], after: Lease[]) =>
    planKernel(plan(after).state, plan(before).state, scope).map(describeKernelOp);

  it('a peer leaving removes exactly its route, neighbour and FDB entry', () => {
    const mac3 = stableVtepMac('192.168.1.3', 1);
    expect(ops([lease(2), lease(3)], [lease(2)])).toEqual([
      'route-delete 10.5.3.0/24 via 10.5.3.0 dev flannel.1 onlink',
      'neighbor-delete 10.5.3.0 lladdr ' + mac3 + ' dev flannel.1',
      `fdb-delete ${mac3} dst 192.168.1.3 dev flannel.1`,
    ]);
  });

  it('a peer restarting with a new VtepMAC replaces its neighbour and FDB entry', () => {
    const renewed = lease(2, { backendData: { VNI: 1, VtepMAC: '02:00:00:00:be:ef' } });
    expect(ops([lease(2)], [renewed])).toEqual([
      `fdb-delete ${stableVtepMac('192.168.1.2', 1)} dst 192.168.1.2 dev flannel.1`,
      'fdb-replace 02:00:00:00:be:ef dst 192.168.1.2 dev flannel.1',
      'neighbor-replace 10.5.2.0 lladdr 02:00:00:00:be:ef dev flannel.1',
    ]);
  });

  it('a peer moving to a new PublicIP (same MAC) replaces only the FDB entry', () => {
    const moved = lease(
      2,
      { backendData: { VNI: 1, VtepMAC: stableVtepMac('192.168.1.2', 1) } },
      '192.168.1.22',
    );
    expect(ops([lease(2)], [moved])).toEqual([
      `fdb-replace ${stableVtepMac('192.168.1.2', 1)} dst 192.168.1.22 dev flannel.1`,
    ]);
  });

  it('a new Port recreates the device', () => {
    const before = plan([lease(2)]).state;
    const after = plan([lease(2)], { ...vxlan, port: 4789 }).state;
    expect(planKernel(after, before, scope).map((o) => o.kind)).toEqual([
      'link-delete',
      'link-add',
      'address-add',
      'fdb-replace',
      'neighbor-replace',
      'route-replace',
    ]);
  });
});

describe('planVxlan across passes', () => {
  it('gives an unchanged lease the same entries again, and a changed lease new ones', () => {
    const a = lease(2);
    const b = lease(3);
    const first = plan([a, b]).state;
    const again = plan([a, b]).state;
    expect(again).toEqual(first);
    expect(again.routes[0]).toBe(first.routes[0]);
    const moved = lease(3, {}, '192.168.1.33');
    const next = plan([a, moved]).state;
    expect(next.routes[0]).toBe(first.routes[0]);
    expect(next.fdb[1]).toEqual({
      dev: 'flannel.1',
      mac: stableVtepMac('192.168.1.33', 1),
      dst: '192.168.1.33',
    });
  });

  it('derives a lease again when the node around it changes (VNI, own lease, DirectRouting)', () => {
    const peer = lease(2);
    expect(plan([peer]).state.routes).toHaveLength(1);
    const vni2 = plan([peer], { ...vxlan, vni: 2 });
    expect(vni2.state.routes).toEqual([]);
    expect(vni2.skipped[0]?.reason).toMatch(/VNI 1 differs from this node's VNI 2/);
    // The peer as this node's own lease (self), then as a peer again.
    expect(planVxlan({ vxlan, networks, iface, own: peer, peers: [peer] }).state.routes).toEqual([]);
    expect(plan([peer]).state.routes.map((r) => r.dst)).toEqual(['10.5.2.0/24']);
    const direct = plan([peer], { ...vxlan, directRouting: true }).state;
    expect(direct.routes).toEqual([{ dst: '10.5.2.0/24', via: '192.168.1.2', dev: 'eth0' }]);
    expect(plan([peer]).state.routes[0]?.via).toBe('10.5.2.0');
  });
});
