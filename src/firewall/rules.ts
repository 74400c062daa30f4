import { type Cidr, type Family, formatCidr, InvalidAddressError, parseCidr } from '../ip/index.js';
import type { FirewallPolicy } from './policy.js';

/** The iptables tables weft writes to. */
export type IptablesTable = 'nat' | 'filter' | 'raw';

/** flannel's chain and comment names: kept so a node can switch between flanneld and weftd. */
export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
export const FORWARD_CHAIN = 'FLANNEL-FWD';
export const MASQ_COMMENT = 'flanneld masq';
export const FORWARD_COMMENT = 'flanneld forward';
/** weft's own raw-table chains: the tunnel's outer packets skip conntrack (see planTunnelNotrackRules). */
export const NOTRACK_IN_CHAIN = 'WEFT-NOTRACK-IN';
export const NOTRACK_OUT_CHAIN = 'WEFT-NOTRACK-OUT';
export const NOTRACK_COMMENT = 'weft tunnel notrack';
/** kube-proxy marks packets it has already decided to masquerade with this bit. */
export const KUBE_PROXY_MARK = '0x4000/0x4000';

/** One rule: `-t <table> -A <chain> <args…>`. `args` is the rule spec as iptables-save prints it. */
export interface IptablesRule {
  readonly table: IptablesTable;
  readonly chain: string;
  readonly args: readonly string[];
}

export interface ChainRef {
  readonly table: IptablesTable;
  readonly chain: string;
}

/**
 * A desired set of rules for one address family. Chains in `ownedChains` belong to weft: their content
 * must be exactly the rules listed for them, in order. Rules in other chains (the jumps from POSTROUTING
 * and FORWARD) must be present once; weft appends them when missing and leaves the rest of those chains alone.
 */
export interface IptablesRuleSet {
  readonly family: Family;
  readonly ownedChains: readonly ChainRef[];
  readonly rules: readonly IptablesRule[];
}

/** Inputs that cannot make a rule set. */
export class FirewallPlanError extends Error {
  override name = 'FirewallPlanError';
}

export interface MasqRulesInput {
  /** The whole flannel Network. */
  network: Cidr;
  /** This node's subnet (masked). */
  subnet: Cidr;
  /** Must match the CIDRs' family when given. */
  family?: Family;
  /** `--random-fully` on MASQUERADE (flannel uses it whenever iptables supports it). Default true. */
  randomFully?: boolean;
}

function checkFamily(what: string, c: Cidr, family: Family): void {
  if (c.family !== family) {
    throw new FirewallPlanError(`${what} ${formatCidr(c)} is IPv${c.family}, expected IPv${family}`);
  }
}

/**
 * flannel's `--ip-masq` rules, in flannel's order (nat table):
 * the jump from POSTROUTING, then in FLANNEL-POSTRTG: skip kube-proxy-marked packets; no NAT inside the
 * Network (both directions of own subnet ↔ Network); no NAT for outside traffic arriving at own pods;
 * masquerade Network → outside (not multicast); masquerade host → Network.
 */
export function planMasqRules(input: MasqRulesInput): IptablesRuleSet {
  const family = input.family ?? input.network.family;
  checkFamily('network', input.network, family);
  checkFamily('subnet', input.subnet, family);
  const network = formatCidr(input.network);
  const subnet = formatCidr(input.subnet);
  const multicast = family === 4 ? '224.0.0.0/4' : 'ff00::/8';
  const comment = ['-m', 'comment', '--comment', MASQ_COMMENT];
  const masquerade =
    input.randomFully === false ? ['-j', 'MASQUERADE'] : ['-j', 'MASQUERADE', '--random-fully'];
  const rule = (chain: string, ...args: string[]): IptablesRule => ({ table: 'nat', chain, args });
  return {
    family,
    ownedChains: [{ table: 'nat', chain: MASQ_CHAIN }],
    rules: [
      rule('POSTROUTING', ...comment, '-j', MASQ_CHAIN),
      rule(MASQ_CHAIN, '-m', 'mark', '--mark', KUBE_PROXY_MARK, ...comment, '-j', 'RETURN'),
      rule(MASQ_CHAIN, '-s', subnet, '-d', network, ...comment, '-j', 'RETURN'),
      rule(MASQ_CHAIN, '-s', network, '-d', subnet, ...comment, '-j', 'RETURN'),
      rule(MASQ_CHAIN, '!', '-s', network, '-d', subnet, ...comment, '-j', 'RETURN'),
      rule(MASQ_CHAIN, '-s', network, '!', '-d', multicast, ...comment, ...masquerade),
      rule(MASQ_CHAIN, '!', '-s', network, '-d', network, ...comment, ...masquerade),
    ],
  };
}

/** flannel's forward rules (filter table): accept everything from and to the Network. */
export function planForwardRules(input: { network: Cidr; family?: Family }): IptablesRuleSet {
  const family = input.family ?? input.network.family;
  checkFamily('network', input.network, family);
  const network = formatCidr(input.network);
  const comment = ['-m', 'comment', '--comment', FORWARD_COMMENT];
  const rule = (chain: string, ...args: string[]): IptablesRule => ({ table: 'filter', chain, args });
  return {
    family,
    ownedChains: [{ table: 'filter', chain: FORWARD_CHAIN }],
    rules: [
      rule('FORWARD', ...comment, '-j', FORWARD_CHAIN),
      rule(FORWARD_CHAIN, '-s', network, ...comment, '-j', 'ACCEPT'),
      rule(FORWARD_CHAIN, '-d', network, ...comment, '-j', 'ACCEPT'),
    ],
  };
}

export interface TunnelNotrackInput {
  family: Family;
  /** The tunnel's UDP port (vxlan 8472, udp 8285, or Backend.Port). */
  port: number;
}

/**
 * Outer tunnel packets need no connection tracking: VXLAN sends every packet to the fixed port from a
 * per-flow hashed source port, so conntrack sees each flow as a new never-answered UDP "connection", fills
 * its table with UNREPLIED entries and, on a node where anything loaded conntrack (any NAT rule: --ip-masq,
 * kube-proxy), costs a lookup per packet on both ends. The inner packets are still tracked, so masquerade
 * and kube-proxy's DNAT of pod traffic work as before. Calico (felix, VXLAN mode), Antrea and OpenShift SDN
 * install the same raw-table NOTRACK. Scoped to this host's own packets: arriving ones addressed to a local
 * address, and ones this host sends (OUTPUT); forwarded UDP to the port is left alone.
 */
export function planTunnelNotrackRules(input: TunnelNotrackInput): IptablesRuleSet {
  const { family, port } = input;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new FirewallPlanError(`tunnel port ${port} is not a UDP port (1..65535)`);
  }
  const udp = ['-p', 'udp', '-m', 'udp', '--dport', String(port)];
  return {
    family,
    ownedChains: [
      { table: 'raw', chain: NOTRACK_IN_CHAIN },
      { table: 'raw', chain: NOTRACK_OUT_CHAIN },
    ],
    rules: [
      ...tunnelNotrackJumps(family).rules,
      notrackRule(
        NOTRACK_IN_CHAIN,
        ...udp,
        '-m',
        'addrtype',
        '--dst-type',
        'LOCAL',
        ...NOTRACK_MATCH,
        '-j',
        'NOTRACK',
      ),
      notrackRule(NOTRACK_OUT_CHAIN, ...udp, ...NOTRACK_MATCH, '-j', 'NOTRACK'),
    ],
  };
}

const NOTRACK_MATCH = ['-m', 'comment', '--comment', NOTRACK_COMMENT];
const notrackRule = (chain: string, ...args: string[]): IptablesRule => ({ table: 'raw', chain, args });

/**
 * Only the jumps from PREROUTING and OUTPUT into the NOTRACK chains (whatever the port): removing them is what
 * turns an earlier run's --tunnel-notrack off. The chains stay, unused, as flannel leaves its chains.
 */
export function tunnelNotrackJumps(family: Family): IptablesRuleSet {
  return {
    family,
    ownedChains: [],
    rules: [
      notrackRule('PREROUTING', ...NOTRACK_MATCH, '-j', NOTRACK_IN_CHAIN),
      notrackRule('OUTPUT', ...NOTRACK_MATCH, '-j', NOTRACK_OUT_CHAIN),
    ],
  };
}

/**
 * Joins rule sets per family (e.g. masq + forward), keeping their order. Two sets may not own the same chain.
 */
export function mergeRuleSets(sets: readonly IptablesRuleSet[]): IptablesRuleSet[] {
  const byFamily = new Map<Family, { ownedChains: ChainRef[]; rules: IptablesRule[] }>();
  for (const set of sets) {
    let merged = byFamily.get(set.family);
    if (!merged) {
      merged = { ownedChains: [], rules: [] };
      byFamily.set(set.family, merged);
    }
    for (const owned of set.ownedChains) {
      if (merged.ownedChains.some((c) => c.table === owned.table && c.chain === owned.chain)) {
        throw new FirewallPlanError(
          `two rule sets own IPv${set.family} chain ${owned.table}/${owned.chain}; give one set per chain`,
        );
      }
      merged.ownedChains.push(owned);
    }
    merged.rules.push(...set.rules);
  }
  return [...byFamily.entries()]
    .sort(([a], [b]) => a - b)
    .map(([family, m]) => ({ family, ownedChains: m.ownedChains, rules: m.rules }));
}

/**
 * Quotes one argument for an iptables-restore line: bare unless it holds whitespace, a quote or a
 * backslash (then double quotes with `"` and `\\` escaped, which iptables-restore's tokenizer undoes).
 * This matches what iptables-save prints for the values weft uses (`"flanneld masq"`, `10.5.0.0/16`).
 */
export function quoteArg(arg: string): string {
  if (arg !== '' && !/[\s"'\\]/.test(arg)) return arg;
  return `"${arg.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const ADDRESS_OPTIONS = new Set(['-s', '-d', '--source', '--destination', '--src', '--dst']);

/**
 * Canonical form of a rule spec, as iptables-save would print it: `--source` → `-s`, addresses as
 * masked CIDRs with an explicit length (`10.5.1.1` → `10.5.1.1/32`, upper-case or expanded IPv6 → RFC 5952).
 * Anything else is kept verbatim: iptables-save is the reference, and weft's planners emit its spelling.
 */
export function normaliseArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (ADDRESS_OPTIONS.has(arg) && i + 1 < args.length) {
      out.push(arg === '-s' || arg === '--source' || arg === '--src' ? '-s' : '-d');
      out.push(normaliseAddress(args[i + 1] as string));
      i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

function normaliseAddress(text: string): string {
  const withLength = text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`;
  try {
    return formatCidr(parseCidr(withLength));
  } catch (err) {
    // A dotted netmask (`/255.255.0.0`) or anything else unusual: compare verbatim.
    if (err instanceof InvalidAddressError) return text;
    throw err;
  }
}

/** `-A CHAIN args…` with iptables-save quoting, after normalisation: the text two rules are compared by. */
export function ruleText(rule: Pick<IptablesRule, 'chain' | 'args'>): string {
  return ['-A', rule.chain, ...normaliseArgs(rule.args)].map(quoteArg).join(' ');
}

/** How a rule is shown to people (logs, `missing` lists): the iptables command that would add it. */
export function describeRule(rule: IptablesRule): string {
  return `-t ${rule.table} ${ruleText(rule)}`;
}

/** The iptables renderer of the node's policy: its rule sets, merged per family. Pure. */
export function iptablesRuleSets(policy: FirewallPolicy): IptablesRuleSet[] {
  const sets: IptablesRuleSet[] = [];
  for (const f of policy.families) {
    if (f.masq) sets.push(planMasqRules({ ...f.masq, family: f.family }));
    if (f.forward) sets.push(planForwardRules({ network: f.forward.network, family: f.family }));
  }
  for (const f of policy.families) {
    if (f.notrack) sets.push(planTunnelNotrackRules({ family: f.family, port: f.notrack.port }));
  }
  return mergeRuleSets(sets);
}

/**
 * Rules an earlier run may have left that this policy does not want: the NOTRACK jumps of every family of the
 * config without --tunnel-notrack (turning the flag off must take effect). Pure.
 */
export function staleIptablesRuleSets(policy: FirewallPolicy): IptablesRuleSet[] {
  return policy.families.filter((f) => !f.notrack).map((f) => tunnelNotrackJumps(f.family));
}

/** Every chain weft (or flanneld) owns in iptables: what leaving iptables mode removes. */
export const WEFT_IPTABLES_CHAINS: readonly ChainRef[] = [
  { table: 'nat', chain: MASQ_CHAIN },
  { table: 'filter', chain: FORWARD_CHAIN },
  { table: 'raw', chain: NOTRACK_IN_CHAIN },
  { table: 'raw', chain: NOTRACK_OUT_CHAIN },
];
