// The rtnetlink writer against the iproute2 batches (root): the same random plans are applied into two scratch
// namespaces (`<run prefix>k<hex>`, each with real vxlan devices), one by netlink and one by `ip`/`bridge`
// batches, and the kernel's own dumps (`ip -d -json route/neigh`, `bridge -json fdb`) must be identical, as must
// weft's parsed dump and each op's outcome.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../../../testkit/prng.js';
import { createScratchNamespace, type ScratchNamespace } from '../../../testkit/scratch-netns.js';
import { parseCidr } from '../../ip/index.js';
import { applyKernelOps, type EntryWriter } from '../apply.js';
import { dumpKernelState } from '../dump.js';
import type { KernelOp, KernelScope, VxlanLinkSpec } from '../types.js';

const hex = (n: number) => n.toString(16).padStart(2, '0');

const V4 = 'flannel.1';
const V6 = 'flannel-v6.1';

function links(ns: ScratchNamespace): VxlanLinkSpec[] {
  const common = { vni: 1, dev: ns.ext, port: 8472, learning: false, gbp: false, up: true } as const;
  return [
    { kind: 'vxlan', name: V4, local: '192.168.0.1', mtu: 1450, mac: '02:6b:00:00:00:01', ...common },
    { kind: 'vxlan', name: V6, local: 'fd00:77::1', mtu: 1430, mac: '02:6b:00:00:06:01', ...common },
  ];
}

interface Peer {
  v6: boolean;
  n: number;
}

/** The entry ops of one peer; `variant` changes its MAC and VTEP address (a peer that came back). */
function peerOps(p: Peer, rand: () => number, variant: number): KernelOp[] {
  const mac = `02:${hex(variant)}:00:${p.v6 ? '06' : '04'}:${hex(p.n >> 8)}:${hex(p.n & 255)}`;
  const style = Math.floor(rand() * 3);
  if (!p.v6) {
    const subnet = `10.${20 + (p.n >> 8)}.${p.n & 255}.0`;
    const route =
      style === 0
        ? { dst: `${subnet}/24`, via: subnet, dev: V4, onlink: true }
        : style === 1
          ? { dst: `${subnet}/24`, dev: V4 }
          : { dst: `${subnet}/24`, via: subnet, dev: V4, onlink: true, metric: 1 + Math.floor(rand() * 100) };
    return [
      { kind: 'fdb-replace', fdb: { dev: V4, mac, dst: `192.168.${(p.n >> 8) + variant}.${p.n & 255}` } },
      { kind: 'neighbor-replace', neighbor: { dev: V4, ip: subnet, mac } },
      { kind: 'route-replace', route },
    ];
  }
  const subnet = `fd00:5:${hex(p.n >> 8)}:${p.n & 255}::`;
  const route =
    style === 0
      ? { dst: `${subnet}/64`, via: subnet, dev: V6, onlink: true, metric: 1024 }
      : style === 1
        ? { dst: `${subnet}/64`, dev: V6 }
        : { dst: `${subnet}/64`, via: subnet, dev: V6, onlink: true, metric: 1 + Math.floor(rand() * 100) };
  return [
    { kind: 'fdb-replace', fdb: { dev: V6, mac, dst: `fd00:77::${variant + 1}:${p.n}` } },
    { kind: 'neighbor-replace', neighbor: { dev: V6, ip: subnet, mac } },
    { kind: 'route-replace', route },
  ];
}

/** The ops that remove what peerOps wrote (in the planner's order: route, neighbour, FDB entry). */
function removeOps(ops: KernelOp[]): KernelOp[] {
  const out: KernelOp[] = [];
  for (const op of ops) {
    if (op.kind === 'route-replace') {
      const { via: _via, onlink: _onlink, ...route } = op.route;
      out.push({ kind: 'route-delete', route });
    } else if (op.kind === 'neighbor-replace') out.push({ kind: 'neighbor-delete', neighbor: op.neighbor });
    else if (op.kind === 'fdb-replace') out.push({ kind: 'fdb-delete', fdb: op.fdb });
  }
  const rank = (k: KernelOp['kind']) => (k === 'route-delete' ? 0 : k === 'neighbor-delete' ? 1 : 2);
  return out.sort((a, b) => rank(a.kind) - rank(b.kind));
}

/** The kernel's view of both devices, as iproute2 prints it (sorted, so the order of writes does not matter). */
async function rawDump(ns: ScratchNamespace): Promise<Record<string, unknown[]>> {
  const read = async (text: Promise<string>) =>
    (JSON.parse(await text) as unknown[]).map((e) => JSON.stringify(e)).sort();
  return {
    routes4: await read(ns.ip(['-4', '-d', '-json', 'route', 'show', 'table', 'main', 'dev', V4])),
    routes6: await read(ns.ip(['-6', '-d', '-json', 'route', 'show', 'table', 'main', 'dev', V6])),
    neigh4: await read(ns.ip(['-d', '-json', 'neigh', 'show', 'dev', V4])),
    neigh6: await read(ns.ip(['-d', '-json', 'neigh', 'show', 'dev', V6])),
    fdb4: await read(ns.bridge(['-d', '-json', 'fdb', 'show', 'dev', V4])),
    fdb6: await read(ns.bridge(['-d', '-json', 'fdb', 'show', 'dev', V6])),
  };
}

describe.skipIf(process.getuid?.() !== 0)('entry ops over rtnetlink vs iproute2 batches', () => {
  const spaces: Record<EntryWriter, ScratchNamespace | undefined> = {
    netlink: undefined,
    iproute2: undefined,
  };
  const scope: KernelScope = {
    devices: [V4, V6],
    networks: [parseCidr('10.0.0.0/8'), parseCidr('fd00:5::/32')],
  };
  const both = async (ops: KernelOp[]) => {
    const out: Partial<Record<EntryWriter, Awaited<ReturnType<typeof applyKernelOps>>>> = {};
    for (const writer of ['netlink', 'iproute2'] as const) {
      // Small chunks, so the chunked path (and its yields) runs even in a small plan.
      out[writer] = await applyKernelOps(ops, {
        netns: spaces[writer]!.name,
        entryWriter: writer,
        chunkOps: 7,
      });
    }
    return out as Record<EntryWriter, Awaited<ReturnType<typeof applyKernelOps>>>;
  };
  const compareDumps = async () => {
    const [a, b] = [spaces.netlink!, spaces.iproute2!];
    expect(await rawDump(a)).toEqual(await rawDump(b));
    // weft's own reading of the entries (the links differ only in their underlay device's name).
    const entries = async (ns: ScratchNamespace) => {
      const state = await dumpKernelState(scope, { netns: ns.name });
      const sorted = (list: unknown[]) => list.map((e) => JSON.stringify(e)).sort();
      return { routes: sorted(state.routes), neighbors: sorted(state.neighbors), fdb: sorted(state.fdb) };
    };
    expect(await entries(a)).toEqual(await entries(b));
  };

  beforeAll(async () => {
    for (const writer of ['netlink', 'iproute2'] as const) {
      const ns = await createScratchNamespace('192.168.0.1/16');
      spaces[writer] = ns;
      await ns.ip(['addr', 'add', 'fd00:77::1/64', 'dev', ns.ext, 'nodad']);
      const setup: KernelOp[] = links(ns).map((link) => ({ kind: 'link-add', link }));
      const results = await applyKernelOps(setup, { netns: ns.name });
      expect(results.filter((r) => !r.ok)).toEqual([]);
    }
  });
  afterAll(() => {
    spaces.netlink?.destroy();
    spaces.iproute2?.destroy();
  });

  it('writes the same routes, neighbours and FDB entries, replaces them, and deletes them', async () => {
    const rand = prng(0x5eed);
    const peers: Peer[] = Array.from({ length: 120 }, (_, k) => ({ v6: k % 3 === 2, n: 2 + k }));
    const written = new Map<Peer, KernelOp[]>();
    const addOps: KernelOp[] = [];
    for (const p of peers) {
      const ops = peerOps(p, rand, 0);
      written.set(p, ops);
      addOps.push(...ops);
    }
    const first = await both(addOps);
    expect(first.netlink.filter((r) => !r.ok)).toEqual([]);
    expect(first.iproute2.filter((r) => !r.ok)).toEqual([]);
    await compareDumps();
    const [nlDump] = [await rawDump(spaces.netlink!)];
    expect(nlDump.routes4!.length + nlDump.routes6!.length).toBeGreaterThanOrEqual(120);
    expect(nlDump.fdb4).toHaveLength(80);

    // Second plan: a third of the peers leave, a third come back with a new MAC, VTEP and route style.
    const leaving = peers.filter(() => rand() < 0.33);
    const changing = peers.filter((p) => !leaving.includes(p) && rand() < 0.5);
    const second: KernelOp[] = leaving.flatMap((p) => removeOps(written.get(p)!));
    for (const p of changing) {
      // The old entries go first, as the planner removes them (a route of another metric is another route).
      second.push(...removeOps(written.get(p)!));
      const ops = peerOps(p, rand, 1);
      written.set(p, ops);
      second.push(...ops);
    }
    const next = await both(second);
    expect(next.netlink.filter((r) => !r.ok)).toEqual([]);
    expect(next.iproute2.filter((r) => !r.ok)).toEqual([]);
    await compareDumps();

    // Everything away: both namespaces hold no entries on the devices.
    const rest = peers.filter((p) => !leaving.includes(p)).flatMap((p) => removeOps(written.get(p)!));
    const last = await both(rest);
    expect(last.netlink.filter((r) => !r.ok)).toEqual([]);
    await compareDumps();
    const empty = await dumpKernelState(scope, { netns: spaces.netlink!.name });
    expect([empty.routes.length, empty.neighbors.length, empty.fdb.length]).toEqual([0, 0, 0]);
  });

  it('maps each failing op to its own message, as iproute2 prints it, while the others apply', async () => {
    const ops: KernelOp[] = [
      {
        kind: 'route-replace',
        route: { dst: '10.30.1.0/24', via: '10.30.1.0', dev: 'wknodev0', onlink: true },
      },
      { kind: 'route-replace', route: { dst: '10.30.2.0/24', via: '10.30.2.0', dev: V4, onlink: true } },
      // Unreachable gateway without onlink: the kernel's extended ack names it.
      { kind: 'route-replace', route: { dst: '10.30.3.0/24', via: '172.31.0.1', dev: V4 } },
      { kind: 'neighbor-replace', neighbor: { dev: V4, ip: '10.30.2.0', mac: '02:00:00:00:30:02' } },
      { kind: 'fdb-replace', fdb: { dev: 'wknodev0', mac: '02:00:00:00:30:03', dst: '192.168.30.3' } },
      { kind: 'fdb-replace', fdb: { dev: V4, mac: '02:00:00:00:30:02', dst: '192.168.30.2' } },
      { kind: 'route-delete', route: { dst: '10.30.9.0/24', dev: V4 } },
      { kind: 'neighbor-delete', neighbor: { dev: V4, ip: '10.30.9.0', mac: '02:00:00:00:30:09' } },
      { kind: 'route-replace', route: { dst: '10.30.4.0/24', dev: 'bad name' } },
      { kind: 'route-replace', route: { dst: '10.30.5.0/24', dev: V4, metric: 7 } },
      // A name of the longest length there is (15 bytes), on no device.
      {
        kind: 'neighbor-replace',
        neighbor: { dev: 'wknodev01234567', ip: '10.30.6.0', mac: '02:00:00:00:30:06' },
      },
      // Last: iproute2 stops its batch at a gateway of the wrong family (the ops after it go unconfirmed).
      { kind: 'route-replace', route: { dst: 'fd00:5:30::/64', via: '10.30.2.0', dev: V6, onlink: true } },
    ];
    const out = await both(ops);
    const oks = [false, true, false, true, false, true, false, false, false, true, false, false];
    expect(out.netlink.map((r) => r.ok)).toEqual(oks);
    // iproute2 cannot confirm the ops after the last failure it names once its batch stopped early.
    expect(out.iproute2.slice(0, 9).map((r) => r.ok)).toEqual(oks.slice(0, 9));
    const nl = out.netlink.map((r) => r.error);
    expect(nl[0]).toBe('Cannot find device "wknodev0"');
    expect(nl[2]).toBe('Error: Nexthop has invalid gateway.');
    expect(nl[4]).toBe('Cannot find device "wknodev0"');
    expect(nl[6]).toBe('RTNETLINK answers: No such process');
    expect(nl[7]).toMatch(/^RTNETLINK answers: No such file or directory$/);
    expect(nl[8]).toMatch(/not a valid device name/);
    expect(nl[10]).toBe('Cannot find device "wknodev01234567"');
    expect(nl[11]).toMatch(/route via 10\.30\.2\.0 is not of the family/);
    // The kernel's answers read as iproute2 prints them.
    for (const i of [0, 2, 4, 6, 7]) expect(out.iproute2[i]!.error).toContain(nl[i]!);
    // The ops around the failures are in the kernel (iproute2's batch stopped before the metric-7 route).
    const routes = await spaces.netlink!.ip(['-4', '-json', 'route', 'show', 'dev', V4]);
    expect(routes).toContain('"dst":"10.30.2.0/24","gateway":"10.30.2.0"');
    expect(routes).toContain('"dst":"10.30.5.0/24","scope":"link","metric":7');
    const fdb = await spaces.netlink!.bridge(['-json', 'fdb', 'show', 'dev', V4]);
    expect(fdb).toContain('"mac":"02:00:00:00:30:02","dst":"192.168.30.2"');
  });
});
