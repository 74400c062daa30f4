// The rtnetlink encoder against golden bytes, laid out by hand from <linux/netlink.h>, <linux/rtnetlink.h> and
// <linux/neighbour.h> (little-endian host): nlmsghdr (len, type, flags, seq 0, pid 0), rtmsg/ndmsg, attributes.
import { describe, expect, it } from 'vitest';
import { InvalidKernelOpError } from '../render.js';
import { encodeEntryOp, entryDevice, isEntryOp } from './encode.js';

/** Hex with spaces and comments allowed, for readable goldens. */
const hex = (text: string) => text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');

describe('encodeEntryOp', () => {
  it('route replace via onlink (IPv4): RTM_NEWROUTE, CREATE|REPLACE, main, boot, universe, RTNH_F_ONLINK', () => {
    const bytes = encodeEntryOp(
      {
        kind: 'route-replace',
        route: { dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', onlink: true },
      },
      7,
    );
    expect(bytes.toString('hex')).toBe(
      hex(`
        34000000 1800 0105 00000000 00000000   # len 52, RTM_NEWROUTE, REQUEST|REPLACE|CREATE
        02 18 00 00 fe 03 00 01 04000000       # AF_INET, /24, table main, proto boot, scope universe, unicast, onlink
        0800 0100 0a050200                     # RTA_DST 10.5.2.0
        0800 0500 0a050200                     # RTA_GATEWAY 10.5.2.0
        0800 0400 07000000                     # RTA_OIF 7
      `),
    );
  });

  it('route replace without gateway has scope link; metric is RTA_PRIORITY', () => {
    const bytes = encodeEntryOp(
      { kind: 'route-replace', route: { dst: '10.5.3.7/24', dev: 'eth0', metric: 100 } },
      2,
    );
    expect(bytes.toString('hex')).toBe(
      hex(`
        34000000 1800 0105 00000000 00000000
        02 18 00 00 fe 03 fd 01 00000000       # scope link (253), no flags
        0800 0100 0a050300                     # host bits masked, as iproute2's canonical line
        0800 0600 64000000                     # RTA_PRIORITY 100
        0800 0400 02000000
      `),
    );
  });

  it('route delete (IPv6, metric 1024): RTM_DELROUTE, table main, scope nowhere, no gateway', () => {
    const bytes = encodeEntryOp(
      {
        kind: 'route-delete',
        route: {
          dst: 'fd00:5:0:4::/64',
          via: 'fd00:5:0:4::',
          dev: 'flannel-v6.1',
          onlink: true,
          metric: 1024,
        },
      },
      3,
    );
    expect(bytes.toString('hex')).toBe(
      hex(`
        40000000 1900 0100 00000000 00000000   # len 64, RTM_DELROUTE, REQUEST
        0a 40 00 00 fe 00 ff 00 00000000       # AF_INET6, /64, main, scope nowhere
        1400 0100 fd000005000000040000000000000000
        0800 0600 00040000                     # RTA_PRIORITY 1024
        0800 0400 03000000
      `),
    );
  });

  it('neighbour replace and delete: ndmsg with NUD_PERMANENT, NDA_DST then NDA_LLADDR (padded)', () => {
    const replace = encodeEntryOp(
      { kind: 'neighbor-replace', neighbor: { dev: 'flannel.1', ip: '10.5.2.0', mac: '02:AB:00:00:00:02' } },
      7,
    );
    expect(replace.toString('hex')).toBe(
      hex(`
        30000000 1c00 0105 00000000 00000000   # len 48, RTM_NEWNEIGH, REQUEST|REPLACE|CREATE
        02 00 0000 07000000 8000 00 00         # AF_INET, ifindex 7, NUD_PERMANENT
        0800 0100 0a050200                     # NDA_DST
        0a00 0200 02ab00000002 0000            # NDA_LLADDR (len 10, padded to 12)
      `),
    );
    const del = encodeEntryOp(
      { kind: 'neighbor-delete', neighbor: { dev: 'flannel-v6.1', ip: 'fd00::1', mac: '02:00:00:00:00:01' } },
      9,
    );
    expect(del.toString('hex')).toBe(
      hex(`
        30000000 1d00 0100 00000000 00000000   # len 48, RTM_DELNEIGH, REQUEST
        0a 00 0000 09000000 8000 00 00
        1400 0100 fd000000000000000000000000000001
      `),
    );
  });

  it('FDB replace and delete: AF_BRIDGE, NTF_SELF, NUD_NOARP|NUD_PERMANENT (delete: NUD_NOARP), LLADDR then DST', () => {
    const fdb = { dev: 'flannel.1', mac: '02:00:00:00:00:02', dst: '192.168.0.2' };
    expect(encodeEntryOp({ kind: 'fdb-replace', fdb }, 7).toString('hex')).toBe(
      hex(`
        30000000 1c00 0105 00000000 00000000
        07 00 0000 07000000 c000 02 00         # AF_BRIDGE, ifindex 7, NOARP|PERMANENT, NTF_SELF
        0a00 0200 020000000002 0000            # NDA_LLADDR
        0800 0100 c0a80002                     # NDA_DST 192.168.0.2
      `),
    );
    expect(encodeEntryOp({ kind: 'fdb-delete', fdb }, 7).toString('hex')).toBe(
      hex(`
        30000000 1d00 0100 00000000 00000000
        07 00 0000 07000000 4000 02 00
        0a00 0200 020000000002 0000
        0800 0100 c0a80002
      `),
    );
  });

  it('rejects what render.ts rejects, a gateway of the other family and a bad interface index', () => {
    const route = (r: object) => ({
      kind: 'route-replace',
      route: { dst: '10.5.2.0/24', dev: 'flannel.1', ...r },
    });
    const bad: Array<[object, number, RegExp]> = [
      [route({ dev: 'bad name' }), 1, /not a valid device name/],
      [route({ dst: '10.5.2.0/33' }), 1, /route dst/],
      [route({ via: 'fd00::1' }), 1, /not of the family/],
      [route({ metric: -1 }), 1, /metric -1/],
      [route({}), 0, /interface index 0/],
      [{ kind: 'fdb-replace', fdb: { dev: 'flannel.1', mac: 'zz', dst: '192.168.0.2' } }, 1, /fdb mac/],
      [
        { kind: 'neighbor-replace', neighbor: { dev: 'flannel.1', ip: '10.5.2', mac: '02:00:00:00:00:01' } },
        1,
        /ip/,
      ],
    ];
    for (const [op, index, message] of bad) {
      expect(() => encodeEntryOp(op as Parameters<typeof encodeEntryOp>[0], index)).toThrow(
        InvalidKernelOpError,
      );
      expect(() => encodeEntryOp(op as Parameters<typeof encodeEntryOp>[0], index)).toThrow(message);
    }
  });

  it('tells entry ops from link and address ops, and names their device', () => {
    expect(isEntryOp({ kind: 'link-delete', name: 'flannel.1', reason: 'x' })).toBe(false);
    expect(isEntryOp({ kind: 'address-add', address: { dev: 'flannel.1', cidr: '10.5.1.0/32' } })).toBe(
      false,
    );
    const fdb = {
      kind: 'fdb-delete',
      fdb: { dev: 'flannel.1', mac: '02:00:00:00:00:02', dst: '192.168.0.2' },
    } as const;
    expect(isEntryOp(fdb)).toBe(true);
    expect(entryDevice(fdb)).toBe('flannel.1');
  });
});
