// The kernel layer against a real kernel, inside a scratch namespace `wk<4 hex>` (root). No packets are sent:
// only devices, addresses, routes, neighbours and FDB entries are written and read back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchNamespace, type ScratchNamespace } from '../../testkit/scratch-netns.js';
import { parseCidr } from '../ip/index.js';
import {
  applyKernelOps,
  type DesiredKernelState,
  describeKernelOp,
  dumpKernelState,
  ensureSysctl,
  type KernelScope,
  listInterfaces,
  planKernel,
  probeVxlanSupport,
  readSysctl,
  type SelectedInterface,
  selectInterface,
  type VxlanLinkSpec,
} from './index.js';

const hex = (n: number) => n.toString(16).padStart(2, '0');

/** Peer i (2 ≤ i < 4096): subnet 10.(10 + i/256).(i%256).0/24, PublicIP 192.168.(i/256).(i%256), MAC 02:00:00:00:hi:lo. */
function peer(i: number) {
  const subnet = `10.${10 + (i >> 8)}.${i & 255}.0`;
  const mac = `02:00:00:00:${hex(i >> 8)}:${hex(i & 255)}`;
  return {
    route: { dst: `${subnet}/24`, via: subnet, dev: 'flannel.1', onlink: true },
    neighbor: { dev: 'flannel.1', ip: subnet, mac },
    fdb: { dev: 'flannel.1', mac, dst: `192.168.${i >> 8}.${i & 255}` },
  };
}

function desiredWith(link: VxlanLinkSpec, peerIds: number[]): DesiredKernelState {
  const peers = peerIds.map(peer);
  return {
    links: [link],
    addresses: [{ dev: link.name, cidr: '10.10.1.0/32' }],
    routes: peers.map((p) => p.route),
    neighbors: peers.map((p) => p.neighbor),
    fdb: peers.map((p) => p.fdb),
  };
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, k) => from + k);

describe.skipIf(process.getuid?.() !== 0)('kernel layer in a namespace', () => {
  let ns: ScratchNamespace;
  let iface: SelectedInterface;
  let device: VxlanLinkSpec;
  let scope: KernelScope;

  const reconcile = async (desired: DesiredKernelState) => {
    const observed = await dumpKernelState(scope, { netns: ns.name });
    const ops = planKernel(desired, observed, scope);
    const results = await applyKernelOps(ops, { netns: ns.name });
    return { ops, results };
  };
  const planOnly = async (desired: DesiredKernelState) =>
    planKernel(desired, await dumpKernelState(scope, { netns: ns.name }), scope);

  beforeAll(async () => {
    ns = await createScratchNamespace('192.168.0.1/16');
    scope = {
      devices: ['flannel.1'],
      networks: [parseCidr('10.0.0.0/8')],
      externalDev: ns.ext,
      protectedDsts: [parseCidr('10.10.1.0/24')],
    };
  });
  afterAll(() => ns?.destroy());

  it('lists interfaces, finds the default-route and can-reach devices, selects the external interface', async () => {
    await ns.ip(['route', 'add', 'default', 'via', '192.168.0.254', 'dev', ns.ext]);
    const facts = await listInterfaces({ netns: ns.name, canReach: '192.168.5.5' });
    expect(facts.defaultRouteDev.ipv4).toBe(ns.ext);
    expect(facts.canReach).toEqual({ target: '192.168.5.5', dev: ns.ext });
    iface = selectInterface(facts, {});
    expect(iface).toMatchObject({
      name: ns.ext,
      mtu: 1500,
      ipv4: { ip: '192.168.0.1', prefix: 16 },
      publicIp: '192.168.0.1',
    });
    expect(selectInterface(facts, { ifaceCanReach: '192.168.5.5', iface: ['nope'] }).name).toBe(ns.ext);
    device = {
      kind: 'vxlan',
      name: 'flannel.1',
      vni: 1,
      local: iface.ipv4!.ip,
      dev: iface.name,
      port: 8472,
      learning: false,
      gbp: false,
      mtu: iface.mtu - 50,
      mac: '02:6b:00:00:00:01',
      up: true,
    };
  });

  it('applies a vxlan state with 3 peers; the next plan is empty', async () => {
    const desired = desiredWith(device, [2, 3, 4]);
    const { ops, results } = await reconcile(desired);
    expect(ops.length).toBe(2 + 3 * 3);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const observed = await dumpKernelState(scope, { netns: ns.name });
    expect(observed.links).toEqual([device]);
    expect(observed.fdb).toHaveLength(3);
    expect(planKernel(desired, observed, scope)).toEqual([]);
  });

  it('restores exactly the route, neighbour and FDB entry deleted by hand', async () => {
    const desired = desiredWith(device, [2, 3, 4]);
    await ns.ip(['route', 'del', '10.10.3.0/24', 'dev', 'flannel.1']);
    await ns.ip(['neigh', 'del', '10.10.2.0', 'dev', 'flannel.1']);
    await ns.bridge(['fdb', 'del', '02:00:00:00:00:04', 'dev', 'flannel.1', 'dst', '192.168.0.4', 'self']);
    const ops = await planOnly(desired);
    expect(ops.map(describeKernelOp)).toEqual([
      'fdb-replace 02:00:00:00:00:04 dst 192.168.0.4 dev flannel.1',
      'neighbor-replace 10.10.2.0 lladdr 02:00:00:00:00:02 dev flannel.1',
      'route-replace 10.10.3.0/24 via 10.10.3.0 dev flannel.1 onlink',
    ]);
    expect((await applyKernelOps(ops, { netns: ns.name })).every((r) => r.ok)).toBe(true);
    expect(await planOnly(desired)).toEqual([]);
  });

  it('removes a departed peer and a stray address, and leaves cni0, its own-subnet route and foreign routes alone', async () => {
    await ns.ip(['link', 'add', 'cni0', 'type', 'bridge']);
    await ns.ip(['addr', 'add', '10.10.1.1/24', 'dev', 'cni0']);
    await ns.ip(['link', 'set', 'cni0', 'up']);
    await ns.ip(['route', 'add', '10.99.0.0/16', 'dev', 'cni0']);
    await ns.ip(['route', 'add', '172.20.0.0/16', 'via', '192.168.0.254', 'dev', ns.ext]);
    await ns.ip(['addr', 'add', '10.10.77.0/32', 'dev', 'flannel.1']);
    const { ops, results } = await reconcile(desiredWith(device, [2, 3]));
    expect(ops.map(describeKernelOp)).toEqual([
      'address-delete 10.10.77.0/32 dev flannel.1',
      'route-delete 10.10.4.0/24 via 10.10.4.0 dev flannel.1 onlink',
      'neighbor-delete 10.10.4.0 lladdr 02:00:00:00:00:04 dev flannel.1',
      'fdb-delete 02:00:00:00:00:04 dst 192.168.0.4 dev flannel.1',
    ]);
    expect(results.every((r) => r.ok)).toBe(true);
    const routes = await ns.ip(['-4', '-json', 'route', 'show']);
    expect(routes).toContain('"dst":"10.10.1.0/24","dev":"cni0"');
    expect(routes).toContain('"dst":"10.99.0.0/16","dev":"cni0"');
    expect(routes).toContain('"dst":"172.20.0.0/16"');
  });

  it('sets a changed MTU in place and recreates the device when its port changes', async () => {
    const smaller = { ...device, mtu: 1400 };
    const first = await reconcile(desiredWith(smaller, [2, 3]));
    expect(first.ops).toEqual([{ kind: 'link-set', name: 'flannel.1', mtu: 1400 }]);
    expect(first.results.every((r) => r.ok)).toBe(true);
    const moved = { ...smaller, port: 4789 };
    const second = await reconcile(desiredWith(moved, [2, 3]));
    expect(second.ops.slice(0, 2).map((o) => o.kind)).toEqual(['link-delete', 'link-add']);
    expect(second.results.filter((r) => !r.ok)).toEqual([]);
    expect(await planOnly(desiredWith(moved, [2, 3]))).toEqual([]);
    device = moved;
  });

  it('applies 1000 peers (3000 entries) and reads every one back', async () => {
    const desired = desiredWith(device, range(2, 1000));
    const { ops, results } = await reconcile(desired);
    expect(ops.length).toBe(3 * 998);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const observed = await dumpKernelState(scope, { netns: ns.name });
    expect(observed.routes).toHaveLength(1000);
    expect(observed.neighbors).toHaveLength(1000);
    expect(observed.fdb).toHaveLength(1000);
    expect(planKernel(desired, observed, scope)).toEqual([]);
    // And back down to 3 peers in one plan.
    const down = await reconcile(desiredWith(device, [2, 3, 4]));
    expect(down.ops).toHaveLength(3 * 997);
    expect(down.results.every((r) => r.ok)).toBe(true);
    expect(await planOnly(desiredWith(device, [2, 3, 4]))).toEqual([]);
  });

  it('reports each failing op with the kernel message while the others apply', async () => {
    const results = await applyKernelOps(
      [
        {
          kind: 'route-replace',
          route: { dst: '10.20.1.0/24', via: '10.20.1.0', dev: 'wknodev0', onlink: true },
        },
        {
          kind: 'route-replace',
          route: { dst: '10.20.2.0/24', via: '10.20.2.0', dev: 'flannel.1', onlink: true },
        },
        { kind: 'route-replace', route: { dst: '10.20.3.0/24', via: '172.31.0.1', dev: ns.ext } },
        {
          kind: 'neighbor-replace',
          neighbor: { dev: 'flannel.1', ip: '10.20.2.0', mac: '02:00:00:00:20:02' },
        },
        { kind: 'fdb-replace', fdb: { dev: 'wknodev0', mac: '02:00:00:00:20:03', dst: '192.168.20.3' } },
        { kind: 'fdb-replace', fdb: { dev: 'flannel.1', mac: '02:00:00:00:20:02', dst: '192.168.20.2' } },
        { kind: 'route-delete', route: { dst: '10.20.9.0/24', dev: 'flannel.1' } },
        { kind: 'route-replace', route: { dst: '10.20.4.0/24', dev: 'bad name' } },
      ],
      { netns: ns.name },
    );
    expect(results.map((r) => r.ok)).toEqual([false, true, false, true, false, true, false, false]);
    expect(results[0]?.error).toBe('Cannot find device "wknodev0"');
    expect(results[2]?.error).toMatch(/Nexthop has invalid gateway/);
    expect(results[4]?.error).toBe('Cannot find device "wknodev0"');
    expect(results[6]?.error).toMatch(/No such process/);
    expect(results[7]?.error).toMatch(/not a valid device name/);
    const routes = await ns.ip(['-4', '-json', 'route', 'show', '10.20.2.0/24']);
    expect(routes).toContain('10.20.2.0/24');
    const fdb = await ns.bridge(['-json', 'fdb', 'show', 'dev', 'flannel.1']);
    expect(fdb).toContain('02:00:00:00:20:02');
  });

  it('reads and writes sysctls inside the namespace', async () => {
    await ensureSysctl('net.ipv4.ip_forward', '0', { netns: ns.name });
    expect(await ensureSysctl('net.ipv4.ip_forward', '1', { netns: ns.name })).toEqual({
      changed: true,
      previous: '0',
    });
    expect(await readSysctl('net.ipv4.ip_forward', { netns: ns.name })).toBe('1');
    expect(await readSysctl('net/ipv4/conf/flannel.1/forwarding', { netns: ns.name })).toBe('1');
  });
});

describe.skipIf(process.getuid?.() !== 0)('VXLAN support probe', () => {
  it('creates and removes a throw-away device, or finds the existing one', async () => {
    const ns = await createScratchNamespace('192.168.0.1/16');
    try {
      expect(await probeVxlanSupport({ netns: ns.name })).toEqual({ supported: true });
      expect(await ns.ip(['-json', 'link', 'show', 'type', 'vxlan'])).not.toContain('weftprobe');
      await ns.ip(['link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dstport', '8472']);
      expect(await probeVxlanSupport({ netns: ns.name, existing: 'flannel.1' })).toEqual({ supported: true });
    } finally {
      ns.destroy();
    }
  });
});

describe.skipIf(process.getuid?.() !== 0)('kernel layer, IPv6 (flannel-v6.<VNI>)', () => {
  it('applies a v6 vxlan state, converges (metric 1024, kernel /128 route kept), removes a departed peer', async () => {
    const ns = await createScratchNamespace('192.168.0.1/24');
    try {
      await ns.ip(['addr', 'add', 'fd00:77::1/64', 'dev', ns.ext, 'nodad']);
      const scope: KernelScope = {
        devices: ['flannel-v6.1'],
        networks: [parseCidr('fd00:5::/32')],
        externalDev: ns.ext,
        protectedDsts: [parseCidr('fd00:5:0:1::/64')],
      };
      const v6peer = (n: number) => ({
        route: { dst: `fd00:5:0:${n}::/64`, via: `fd00:5:0:${n}::`, dev: 'flannel-v6.1', onlink: true },
        neighbor: { dev: 'flannel-v6.1', ip: `fd00:5:0:${n}::`, mac: `02:00:00:00:06:0${n}` },
        fdb: { dev: 'flannel-v6.1', mac: `02:00:00:00:06:0${n}`, dst: `fd00:77::${n}` },
      });
      const desired = (ids: number[]): DesiredKernelState => ({
        links: [
          {
            kind: 'vxlan',
            name: 'flannel-v6.1',
            vni: 1,
            local: 'fd00:77::1',
            dev: ns.ext,
            port: 8472,
            learning: false,
            gbp: false,
            mtu: 1430,
            mac: '02:6b:00:00:06:01',
            up: true,
          },
        ],
        addresses: [{ dev: 'flannel-v6.1', cidr: 'fd00:5:0:1::/128' }],
        routes: ids.map((n) => v6peer(n).route),
        neighbors: ids.map((n) => v6peer(n).neighbor),
        fdb: ids.map((n) => v6peer(n).fdb),
      });
      const pass = async (d: DesiredKernelState) => {
        const ops = planKernel(d, await dumpKernelState(scope, { netns: ns.name }), scope);
        const results = await applyKernelOps(ops, { netns: ns.name });
        expect(results.filter((r) => !r.ok)).toEqual([]);
        return ops.map(describeKernelOp);
      };
      expect(await pass(desired([2, 3, 4]))).toHaveLength(11);
      expect(await pass(desired([2, 3, 4]))).toEqual([]);
      expect(await pass(desired([2, 3]))).toEqual([
        'route-delete fd00:5:0:4::/64 via fd00:5:0:4:: dev flannel-v6.1 onlink metric 1024',
        'neighbor-delete fd00:5:0:4:: lladdr 02:00:00:00:06:04 dev flannel-v6.1',
        'fdb-delete 02:00:00:00:06:04 dst fd00:77::4 dev flannel-v6.1',
      ]);
      expect(await ns.ip(['-6', '-json', 'route', 'show', 'fd00:5:0:1::'])).toContain('"protocol":"kernel"');
    } finally {
      ns.destroy();
    }
  });
});
