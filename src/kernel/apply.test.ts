import { describe, expect, it } from 'vitest';
import { parseBatchErrors } from './apply.js';
import { InvalidKernelOpError, renderKernelOp } from './render.js';
import { TEST_VXLAN_DEVICE } from './testing.js';

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
