// Renders kernel ops as iproute2 batch lines. Every field is validated and re-canonicalised here, so a line can
// never carry a space, quote or `#` that would change what the batch tokenizer sees.
import { canonicalIp } from '../ip/index.js';
import {
  canonicalInterfaceAddress,
  canonicalMacText,
  canonicalNetwork,
  familyOfText,
  isValidDeviceName,
} from './canonical.js';
import type { IprouteTool } from './exec.js';
import type { KernelOp } from './types.js';

/** An op that cannot be rendered (bad name, address, MAC or number). It is reported, never run. */
export class InvalidKernelOpError extends Error {
  override name = 'InvalidKernelOpError';
}

export interface RenderedOp {
  tool: IprouteTool;
  /** One or more batch lines (a TUN needs `tuntap add` then `link set`). */
  lines: string[];
}

/** A valid device name, or InvalidKernelOpError naming `what`. */
export function dev(name: string, what: string): string {
  if (!isValidDeviceName(name)) {
    throw new InvalidKernelOpError(
      `${what} ${JSON.stringify(name)} is not a valid device name (1-15 of [A-Za-z0-9_.@+=-])`,
    );
  }
  return name;
}

function wrap<T>(what: string, value: string, fn: (v: string) => T): T {
  try {
    return fn(value);
  } catch (err) {
    throw new InvalidKernelOpError(`${what}: ${(err as Error).message}`);
  }
}

/** An integer in min..max as text, or InvalidKernelOpError naming `what`. */
export function int(value: number, what: string, min: number, max: number): string {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidKernelOpError(`${what} ${value} is not an integer in ${min}..${max}`);
  }
  return String(value);
}

export const ip = (v: string, what: string) => wrap(what, v, canonicalIp);
export const mac = (v: string, what: string) => wrap(what, v, canonicalMacText);
export const network = (v: string, what: string) => wrap(what, v, canonicalNetwork);

/** The batch line(s) and tool for one op; throws InvalidKernelOpError. */
export function renderKernelOp(op: KernelOp): RenderedOp {
  switch (op.kind) {
    case 'link-add': {
      const l = op.link;
      const name = dev(l.name, 'link name');
      const mtu = int(l.mtu, 'mtu', 68, 65535);
      if (l.kind === 'tun') {
        return {
          tool: 'ip',
          lines: [`tuntap add dev ${name} mode tun`, `link set dev ${name} mtu ${mtu}${l.up ? ' up' : ''}`],
        };
      }
      const parts = ['link', 'add', 'name', name];
      if (l.mac !== undefined) parts.push('address', mac(l.mac, 'link address'));
      parts.push('mtu', mtu);
      if (l.up) parts.push('up');
      parts.push('type', 'vxlan', 'id', int(l.vni, 'vni', 0, 0xffffff));
      parts.push('local', ip(l.local, 'vxlan local'), 'dev', dev(l.dev, 'vxlan dev'));
      parts.push('dstport', int(l.port, 'dstport', 0, 65535), l.learning ? 'learning' : 'nolearning');
      if (l.gbp) parts.push('gbp');
      return { tool: 'ip', lines: [parts.join(' ')] };
    }
    case 'link-delete':
      return { tool: 'ip', lines: [`link del dev ${dev(op.name, 'link name')}`] };
    case 'link-set': {
      const parts = ['link', 'set', 'dev', dev(op.name, 'link name')];
      if (op.mtu !== undefined) parts.push('mtu', int(op.mtu, 'mtu', 68, 65535));
      if (op.mac !== undefined) parts.push('address', mac(op.mac, 'link address'));
      if (op.up !== undefined) parts.push(op.up ? 'up' : 'down');
      if (parts.length === 4) throw new InvalidKernelOpError(`link-set ${op.name} changes nothing`);
      return { tool: 'ip', lines: [parts.join(' ')] };
    }
    case 'address-add':
    case 'address-delete': {
      const cidr = wrap('address', op.address.cidr, canonicalInterfaceAddress);
      const d = dev(op.address.dev, 'address dev');
      if (op.kind === 'address-delete') return { tool: 'ip', lines: [`addr del ${cidr} dev ${d}`] };
      // `replace` is idempotent; an IPv6 address skips DAD so it is usable at once (it is unique by design).
      return {
        tool: 'ip',
        lines: [`addr replace ${cidr} dev ${d}${familyOfText(cidr) === 6 ? ' nodad' : ''}`],
      };
    }
    case 'route-replace':
    case 'route-delete': {
      const r = op.route;
      const parts = ['route', op.kind === 'route-replace' ? 'replace' : 'del', network(r.dst, 'route dst')];
      if (op.kind === 'route-replace' && r.via !== undefined) parts.push('via', ip(r.via, 'route via'));
      parts.push('dev', dev(r.dev, 'route dev'));
      if (op.kind === 'route-replace' && r.onlink) parts.push('onlink');
      if (r.metric !== undefined) parts.push('metric', int(r.metric, 'metric', 0, 0xffffffff));
      return { tool: 'ip', lines: [parts.join(' ')] };
    }
    case 'neighbor-replace':
      return {
        tool: 'ip',
        lines: [
          `neigh replace ${ip(op.neighbor.ip, 'neighbor ip')} lladdr ${mac(op.neighbor.mac, 'neighbor lladdr')} dev ${dev(op.neighbor.dev, 'neighbor dev')} nud permanent`,
        ],
      };
    case 'neighbor-delete':
      return {
        tool: 'ip',
        lines: [`neigh del ${ip(op.neighbor.ip, 'neighbor ip')} dev ${dev(op.neighbor.dev, 'neighbor dev')}`],
      };
    case 'fdb-replace':
    case 'fdb-delete': {
      const f = op.fdb;
      const head = `fdb ${op.kind === 'fdb-replace' ? 'replace' : 'del'} ${mac(f.mac, 'fdb mac')} dev ${dev(f.dev, 'fdb dev')} dst ${ip(f.dst, 'fdb dst')} self`;
      return { tool: 'bridge', lines: [op.kind === 'fdb-replace' ? `${head} permanent` : head] };
    }
  }
}
