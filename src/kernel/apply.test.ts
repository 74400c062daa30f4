import { describe, expect, it } from 'vitest';
import { TEST_VXLAN_DEVICE } from '../../testkit/fixtures/kernel.js';
import { groupBatches, parseBatchErrors, SMALL_PLAN_OPS } from './apply.js';
import { InvalidKernelOpError, renderKernelOp } from './render.js';

describe('renderKernelOp', () => {
  it('renders a vxlan device as flannel creates it', () => {
    expect(
      renderKernelOp({
        kind: 'link-add',
        // A mixed-case MAC: rendered in lower case.
        link: { ...TEST_VXLAN_DEVICE, mac: '02:AA:bb:cc:dd:ee' },
      }),
    ).toEqual({
      tool: 'ip',
      lines: [
        'link add name flannel.1 address 02:aa:bb:cc:dd:ee mtu 1450 up type vxlan id 1 local 192.168.1.10 dev eth0 dstport 8472 nolearning',
      ],
    });
  });

  it('renders a tun device as two lines', () => {
    expect(
      renderKernelOp({ kind: 'link-add', link: { kind: 'tun', name: 'flannel0', mtu: 1472, up: true } }),
    ).toEqual({
      tool: 'ip',
      lines: ['tuntap add dev flannel0 mode tun', 'link set dev flannel0 mtu 1472 up'],
    });
  });

  it('renders routes, neighbours, FDB and addresses', () => {
    const line = (op: Parameters<typeof renderKernelOp>[0]) => renderKernelOp(op).lines.join('|');
    expect(
      line({
        kind: 'route-replace',
        route: { dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', onlink: true },
      }),
    ).toBe('route replace 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink');
    expect(
      line({
        kind: 'route-delete',
        route: { dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', metric: 100 },
      }),
    ).toBe('route del 10.5.2.0/24 dev flannel.1 metric 100');
    expect(
      line({
        kind: 'neighbor-replace',
        neighbor: { dev: 'flannel.1', ip: '10.5.2.0', mac: '02:00:00:00:00:02' },
      }),
    ).toBe('neigh replace 10.5.2.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent');
    expect(
      renderKernelOp({
        kind: 'fdb-replace',
        fdb: { dev: 'flannel.1', mac: '02:00:00:00:00:02', dst: '192.168.1.2' },
      }),
    ).toEqual({
      tool: 'bridge',
      lines: ['fdb replace 02:00:00:00:00:02 dev flannel.1 dst 192.168.1.2 self permanent'],
    });
    expect(
      line({ kind: 'fdb-delete', fdb: { dev: 'flannel.1', mac: '02:00:00:00:00:02', dst: '192.168.1.2' } }),
    ).toBe('fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.168.1.2 self');
    expect(line({ kind: 'address-add', address: { dev: 'flannel-v6.1', cidr: 'FD00:5:1::/128' } })).toBe(
      'addr replace fd00:5:1::/128 dev flannel-v6.1 nodad',
    );
  });

  it('refuses fields that would change what the batch tokenizer sees', () => {
    const bad = [
      { kind: 'route-replace', route: { dst: '10.5.2.0/24', dev: 'eth0 # x' } },
      {
        kind: 'neighbor-replace',
        neighbor: { dev: 'flannel.1', ip: '10.5.2.0\nlink del eth0', mac: '02:00:00:00:00:02' },
      },
      { kind: 'fdb-replace', fdb: { dev: 'flannel.1', mac: 'zz:00:00:00:00:02', dst: '192.168.1.2' } },
      { kind: 'link-set', name: 'flannel.1', mtu: 12 },
      { kind: 'link-set', name: 'a-very-long-device-name', mtu: 1500 },
    ] as const;
    for (const op of bad)
      expect(() => renderKernelOp(op as Parameters<typeof renderKernelOp>[0])).toThrow(InvalidKernelOpError);
  });
});

describe('parseBatchErrors', () => {
  it('maps each failure to its batch line with the kernel message', () => {
    const stderr = [
      'Cannot find device "nosuchdev"',
      'Command failed -:2',
      'Error: Nexthop has invalid gateway.',
      'Command failed -:4',
      'RTNETLINK answers: No such process',
      'Command failed -:5',
      '',
    ].join('\n');
    const { failures, trailing } = parseBatchErrors(stderr);
    expect([...failures]).toEqual([
      [2, 'Cannot find device "nosuchdev"'],
      [4, 'Error: Nexthop has invalid gateway.'],
      [5, 'RTNETLINK answers: No such process'],
    ]);
    expect(trailing).toBe('');
  });

  it('keeps the message of a batch that stopped early', () => {
    const { failures, trailing } = parseBatchErrors('Error: any valid prefix is expected rather than "x".\n');
    expect(failures.size).toBe(0);
    expect(trailing).toMatch(/valid prefix/);
  });
});

describe('groupBatches', () => {
  const dev = 'flannel.1';
  const fdb = (n: number) => ({
    kind: 'fdb-replace' as const,
    fdb: { dev, mac: `02:00:00:00:00:0${n}`, dst: `192.168.1.${n}` },
  });
  const neigh = (n: number) => ({
    kind: 'neighbor-replace' as const,
    neighbor: { dev, ip: `10.5.${n}.0`, mac: `02:00:00:00:00:0${n}` },
  });
  const route = (n: number) => ({
    kind: 'route-replace' as const,
    route: { dst: `10.5.${n}.0/24`, via: `10.5.${n}.0`, dev, onlink: true },
  });
  type Ops = Parameters<typeof groupBatches>[0];
  const render = (ops: Ops, smallPlanOps: number) =>
    groupBatches(ops, { smallPlanOps }).groups.map((g) => g.map((b) => `${b.tool}:${b.opOfLine.join(',')}`));
  /** The staged form every plan above SMALL_PLAN_OPS gets. */
  const shape = (ops: Ops) => render(ops, 0);
  const smallShape = (ops: Ops) => render(ops, SMALL_PLAN_OPS);
  const del = <T extends { kind: string }>(op: T) => ({
    ...op,
    kind: op.kind.replace('replace', 'delete'),
  });

  it('runs new FDB entries beside new neighbours, and the routes after both', () => {
    expect(shape([fdb(2), neigh(2), fdb(3), neigh(3), route(2), route(3)])).toEqual([
      ['bridge:0,2', 'ip:1,3'],
      ['ip:4,5'],
    ]);
  });

  it('removes stale routes before stale neighbours and FDB entries, and those before anything is added', () => {
    const ops = [del(route(4)), del(neigh(4)), del(fdb(4)), fdb(5), neigh(5), route(5)] as Parameters<
      typeof groupBatches
    >[0];
    expect(shape(ops)).toEqual([['ip:0'], ['ip:1', 'bridge:2'], ['bridge:3', 'ip:4'], ['ip:5']]);
  });

  it('keeps the plan order between stages even when the plan goes back to an earlier stage', () => {
    expect(shape([route(2), fdb(3), route(3)])).toEqual([['ip:0'], ['bridge:1'], ['ip:2']]);
  });

  it('runs a small plan of entries as one bridge batch, then one ip batch in plan order', () => {
    const ops = [del(route(4)), del(neigh(4)), del(fdb(4)), fdb(5), neigh(5), route(5)] as Ops;
    expect(smallShape(ops)).toEqual([['bridge:2,3'], ['ip:0,1,4,5']]);
    expect(smallShape([fdb(2), neigh(2), route(2)])).toEqual([['bridge:0'], ['ip:1,2']]);
  });

  it('runs the two batches of a small plan side by side when no new FDB entry precedes a route', () => {
    const removal = [del(route(4)), del(neigh(4)), del(fdb(4))] as Ops;
    expect(smallShape(removal)).toEqual([['bridge:2', 'ip:0,1']]);
    expect(smallShape([fdb(3)])).toEqual([['bridge:0']]);
    expect(smallShape([route(3)])).toEqual([['ip:0']]);
    expect(smallShape([])).toEqual([]);
  });

  it('stages a small plan that touches devices or addresses, and a plan above the size', () => {
    const link = { kind: 'link-set' as const, name: dev, up: true };
    expect(smallShape([link, fdb(2), route(2)])).toEqual([['ip:0'], ['bridge:1'], ['ip:2']]);
    const big = [fdb(2), neigh(2), route(2)];
    expect(render(big, 2)).toEqual([['bridge:0', 'ip:1'], ['ip:2']]);
    expect(render(big, 3)).toEqual([['bridge:0'], ['ip:1,2']]);
  });

  it('reports an op it cannot render, and batches the rest', () => {
    const bad = { kind: 'route-replace' as const, route: { dst: 'nonsense', dev } };
    const { groups, unrenderable } = groupBatches([fdb(2), bad, route(2)]);
    expect([...unrenderable.keys()]).toEqual([1]);
    expect(groups.flat().flatMap((b) => b.opOfLine)).toEqual([0, 2]);
  });
});
