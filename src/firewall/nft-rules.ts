import { type Cidr, type Family, formatCidr, formatIp } from '../ip/index.js';
import type { FirewallPolicy } from './policy.js';
import { FORWARD_COMMENT, MASQ_COMMENT, NOTRACK_COMMENT } from './rules.js';

/** nftables' address family keyword for an IP family. */
export type NftFamily = 'ip' | 'ip6';

/** flannel's table names (pkg/trafficmngr/nftables): kept so a node can switch between flanneld and weftd. */
export const NFT_TABLE_NAMES: Readonly<Record<Family, string>> = { 4: 'flannel-ipv4', 6: 'flannel-ipv6' };
export const nftFamilyOf = (family: Family): NftFamily => (family === 4 ? 'ip' : 'ip6');

/** The kube-proxy "masquerade me" bit, tested with its mask (flannel tests `meta mark 0x4000`, all 32 bits). */
export const NFT_KUBE_PROXY_MARK = 'meta mark & 0x4000 == 0x4000';

export interface NftTableRef {
  readonly family: NftFamily;
  readonly name: string;
}

/**
 * One base chain. `rules` are in nftables' own listing spelling (what `nft list` prints, see
 * `nftRuleText` in nft-list.ts), so the same strings are written by `nft -f` and compared after `nft -j list`.
 */
export interface NftChainSpec {
  readonly name: string;
  readonly type: 'nat' | 'filter';
  readonly hook: 'postrouting' | 'forward' | 'prerouting' | 'output';
  /** The priority keyword written (`srcnat`) and its number as listed (100). */
  readonly priority: { readonly keyword: string; readonly value: number };
  readonly rules: readonly string[];
}

export interface NftTableSpec extends NftTableRef {
  readonly chains: readonly NftChainSpec[];
}

const SRCNAT = { keyword: 'srcnat', value: 100 };
const FILTER = { keyword: 'filter', value: 0 };
const RAW = { keyword: 'raw', value: -300 };

/** A CIDR as nft lists it: a full-length prefix is a bare address. */
function nftCidr(c: Cidr): string {
  return c.prefix === (c.family === 4 ? 32 : 128) ? formatIp(c) : formatCidr(c);
}

const comment = (text: string): string => `comment "${text}"`;

/**
 * The nftables renderer of the node's policy: flannel's tables, chains and rules in flannel's order, one table
 * per family that has any rule (a family with none gets no table). `--tunnel-notrack` adds weft's chains
 * `notrack-in` (prerouting, priority raw; only packets to a local address) and `notrack-out` (output). Pure.
 */
export function nftTables(policy: FirewallPolicy): NftTableSpec[] {
  const tables: NftTableSpec[] = [];
  for (const f of policy.families) {
    const ip = f.family === 4 ? 'ip' : 'ip6';
    const chains: NftChainSpec[] = [];
    if (f.masq) {
      const network = nftCidr(f.masq.network);
      const subnet = nftCidr(f.masq.subnet);
      const multicast = f.family === 4 ? '224.0.0.0/4' : 'ff00::/8';
      const masquerade = f.masq.randomFully ? 'masquerade fully-random' : 'masquerade';
      const c = comment(MASQ_COMMENT);
      chains.push({
        name: 'postrtg',
        type: 'nat',
        hook: 'postrouting',
        priority: SRCNAT,
        rules: [
          `${NFT_KUBE_PROXY_MARK} return ${c}`,
          `${ip} saddr ${subnet} ${ip} daddr ${network} return ${c}`,
          `${ip} saddr ${network} ${ip} daddr ${subnet} return ${c}`,
          `${ip} saddr != ${network} ${ip} daddr ${subnet} return ${c}`,
          `${ip} saddr ${network} ${ip} daddr != ${multicast} ${masquerade} ${c}`,
          `${ip} saddr != ${network} ${ip} daddr ${network} ${masquerade} ${c}`,
        ],
      });
    }
    if (f.forward) {
      const network = nftCidr(f.forward.network);
      const c = comment(FORWARD_COMMENT);
      chains.push({
        name: 'forward',
        type: 'filter',
        hook: 'forward',
        priority: FILTER,
        rules: [`${ip} saddr ${network} accept ${c}`, `${ip} daddr ${network} accept ${c}`],
      });
    }
    if (f.notrack) {
      const udp = `udp dport ${f.notrack.port}`;
      const c = comment(NOTRACK_COMMENT);
      chains.push(
        {
          name: 'notrack-in',
          type: 'filter',
          hook: 'prerouting',
          priority: RAW,
          rules: [`${udp} fib daddr type local notrack ${c}`],
        },
        {
          name: 'notrack-out',
          type: 'filter',
          hook: 'output',
          priority: RAW,
          rules: [`${udp} notrack ${c}`],
        },
      );
    }
    if (chains.length > 0) {
      tables.push({ family: nftFamilyOf(f.family), name: NFT_TABLE_NAMES[f.family], chains });
    }
  }
  return tables;
}

/**
 * The `nft -f` input that replaces `write` tables whole and removes `remove` tables, as one transaction
 * (nft applies a file atomically). `add table` before `delete table` makes the delete valid whether or not
 * the table exists (nft 1.0.6 has no `destroy`). '' when there is nothing to do. Pure.
 */
export function renderNftTransaction(change: {
  write: readonly NftTableSpec[];
  remove: readonly NftTableRef[];
}): string {
  const out: string[] = [];
  for (const t of [...change.remove, ...change.write]) {
    out.push(`add table ${t.family} ${t.name}`, `delete table ${t.family} ${t.name}`);
  }
  for (const t of change.write) {
    out.push(`table ${t.family} ${t.name} {`);
    for (const c of t.chains) {
      out.push(`\tchain ${c.name} {`);
      out.push(`\t\ttype ${c.type} hook ${c.hook} priority ${c.priority.keyword}; policy accept;`);
      for (const r of c.rules) out.push(`\t\t${r}`);
      out.push('\t}');
    }
    out.push('}');
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
