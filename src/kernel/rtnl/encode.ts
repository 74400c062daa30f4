// Encodes weft's entry ops (routes, permanent neighbours, `self` permanent FDB entries) as rtnetlink requests,
// field for field what iproute2 sends for the lines `render.ts` writes:
//   ip route replace DST [via GW] dev DEV [onlink] [metric M]   RTM_NEWROUTE, CREATE|REPLACE, table main,
//                                                               proto boot, scope universe (link without via)
//   ip route del DST dev DEV [metric M]                         RTM_DELROUTE, table main, scope nowhere
//   ip neigh replace IP lladdr MAC dev DEV nud permanent         RTM_NEWNEIGH, CREATE|REPLACE, NUD_PERMANENT
//   ip neigh del IP dev DEV                                      RTM_DELNEIGH
//   bridge fdb replace MAC dev DEV dst IP self permanent         RTM_NEWNEIGH AF_BRIDGE, CREATE|REPLACE,
//                                                               NUD_NOARP|NUD_PERMANENT, NTF_SELF
//   bridge fdb del MAC dev DEV dst IP self                       RTM_DELNEIGH AF_BRIDGE, NUD_NOARP, NTF_SELF
// Pure: every field is validated (as render.ts does) and the device comes in as an index. The sequence number
// is left 0; the native sender numbers the requests and adds NLM_F_ACK.
import { type Family, parseIp } from '../../ip/index.js';
import { dev, InvalidKernelOpError, int, ip, mac, network } from '../render.js';
import type { KernelOp } from '../types.js';

export type EntryOp = Extract<
  KernelOp,
  {
    kind:
      | 'route-replace'
      | 'route-delete'
      | 'neighbor-replace'
      | 'neighbor-delete'
      | 'fdb-replace'
      | 'fdb-delete';
  }
>;

const ENTRY_KINDS: ReadonlySet<KernelOp['kind']> = new Set([
  'route-replace',
  'route-delete',
  'neighbor-replace',
  'neighbor-delete',
  'fdb-replace',
  'fdb-delete',
]);

/** Whether an op is written over rtnetlink (links and addresses stay on iproute2). */
export function isEntryOp(op: KernelOp): op is EntryOp {
  return ENTRY_KINDS.has(op.kind);
}

/** The device an entry op is on (validated). */
export function entryDevice(op: EntryOp): string {
  switch (op.kind) {
    case 'route-replace':
    case 'route-delete':
      return dev(op.route.dev, 'route dev');
    case 'neighbor-replace':
    case 'neighbor-delete':
      return dev(op.neighbor.dev, 'neighbor dev');
    case 'fdb-replace':
    case 'fdb-delete':
      return dev(op.fdb.dev, 'fdb dev');
  }
}

// <linux/netlink.h>, <linux/rtnetlink.h>, <linux/neighbour.h>, <linux/socket.h>
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_CREATE = 0x400;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const RTN_UNICAST = 1;
const RTNH_F_ONLINK = 4;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;

const NLMSG_HDRLEN = 16;
/** struct rtmsg and struct ndmsg are both 12 bytes. */
const BODY_LEN = 12;

const align4 = (n: number) => (n + 3) & ~3;

interface Attr {
  type: number;
  data: Buffer;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

function addressBytes(text: string, what: string): { family: Family; bytes: Buffer } {
  const address = parseIp(ip(text, what));
  const size = address.family === 4 ? 4 : 16;
  const bytes = Buffer.alloc(size);
  let v = address.value;
  for (let i = size - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { family: address.family, bytes };
}

function macBytes(text: string, what: string): Buffer {
  return Buffer.from(
    mac(text, what)
      .split(':')
      .map((h) => Number.parseInt(h, 16)),
  );
}

function ifindexOf(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff) {
    throw new InvalidKernelOpError(`interface index ${value} is not an integer in 1..2147483647`);
  }
  return value;
}

/** One netlink message: header (length, type, flags; seq and port 0), a 12-byte body, attributes. */
function message(type: number, flags: number, body: Buffer, attrs: Attr[]): Buffer {
  const length = NLMSG_HDRLEN + BODY_LEN + attrs.reduce((sum, a) => sum + align4(4 + a.data.length), 0);
  const out = Buffer.alloc(length);
  out.writeUInt32LE(length, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  body.copy(out, NLMSG_HDRLEN);
  let offset = NLMSG_HDRLEN + BODY_LEN;
  for (const a of attrs) {
    out.writeUInt16LE(4 + a.data.length, offset);
    out.writeUInt16LE(a.type, offset + 2);
    a.data.copy(out, offset + 4);
    offset += align4(4 + a.data.length);
  }
  return out;
}

const familyCode = (f: Family) => (f === 4 ? AF_INET : AF_INET6);

/** struct ndmsg: family, pad, pad16, ifindex (s32), state (u16), flags (u8), type (u8). */
function ndmsg(family: number, ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(BODY_LEN);
  b.writeUInt8(family, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

/** The rtnetlink request for one entry op on the device with index `ifindex`; throws InvalidKernelOpError. */
export function encodeEntryOp(op: EntryOp, ifindex: number): Buffer {
  const index = ifindexOf(ifindex);
  entryDevice(op);
  switch (op.kind) {
    case 'route-replace':
    case 'route-delete': {
      const r = op.route;
      const replace = op.kind === 'route-replace';
      const dstText = network(r.dst, 'route dst');
      const slash = dstText.indexOf('/');
      const dst = addressBytes(dstText.slice(0, slash), 'route dst');
      const prefix = Number(dstText.slice(slash + 1));
      const attrs: Attr[] = [];
      if (prefix > 0) attrs.push({ type: RTA_DST, data: dst.bytes });
      const via = replace && r.via !== undefined ? addressBytes(r.via, 'route via') : undefined;
      if (via !== undefined) {
        if (via.family !== dst.family) {
          throw new InvalidKernelOpError(`route via ${r.via} is not of the family of ${dstText}`);
        }
        attrs.push({ type: RTA_GATEWAY, data: via.bytes });
      }
      if (r.metric !== undefined) {
        attrs.push({ type: RTA_PRIORITY, data: u32(Number(int(r.metric, 'metric', 0, 0xffffffff))) });
      }
      attrs.push({ type: RTA_OIF, data: u32(index) });
      const body = Buffer.alloc(BODY_LEN);
      body.writeUInt8(familyCode(dst.family), 0);
      body.writeUInt8(prefix, 1);
      body.writeUInt8(RT_TABLE_MAIN, 4);
      if (replace) {
        body.writeUInt8(RTPROT_BOOT, 5);
        body.writeUInt8(via === undefined ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, 6);
        body.writeUInt8(RTN_UNICAST, 7);
        body.writeUInt32LE(r.onlink ? RTNH_F_ONLINK : 0, 8);
      } else {
        body.writeUInt8(RT_SCOPE_NOWHERE, 6);
      }
      return replace
        ? message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, body, attrs)
        : message(RTM_DELROUTE, NLM_F_REQUEST, body, attrs);
    }
    case 'neighbor-replace': {
      const dst = addressBytes(op.neighbor.ip, 'neighbor ip');
      return message(
        RTM_NEWNEIGH,
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
        ndmsg(familyCode(dst.family), index, NUD_PERMANENT, 0),
        [
          { type: NDA_DST, data: dst.bytes },
          { type: NDA_LLADDR, data: macBytes(op.neighbor.mac, 'neighbor lladdr') },
        ],
      );
    }
    case 'neighbor-delete': {
      const dst = addressBytes(op.neighbor.ip, 'neighbor ip');
      return message(RTM_DELNEIGH, NLM_F_REQUEST, ndmsg(familyCode(dst.family), index, NUD_PERMANENT, 0), [
        { type: NDA_DST, data: dst.bytes },
      ]);
    }
    case 'fdb-replace':
    case 'fdb-delete': {
      const replace = op.kind === 'fdb-replace';
      const attrs: Attr[] = [
        { type: NDA_LLADDR, data: macBytes(op.fdb.mac, 'fdb mac') },
        { type: NDA_DST, data: addressBytes(op.fdb.dst, 'fdb dst').bytes },
      ];
      return replace
        ? message(
            RTM_NEWNEIGH,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
            ndmsg(AF_BRIDGE, index, NUD_NOARP | NUD_PERMANENT, NTF_SELF),
            attrs,
          )
        : message(RTM_DELNEIGH, NLM_F_REQUEST, ndmsg(AF_BRIDGE, index, NUD_NOARP, NTF_SELF), attrs);
    }
  }
}
