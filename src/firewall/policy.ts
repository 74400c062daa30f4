import type { Cidr, Family } from '../ip/index.js';
import { FirewallPlanError } from './rules.js';

/**
 * What the node's firewall must hold, as plain data: one entry per address family of the network config,
 * each saying which of flannel's rule groups it carries. Both renderers (iptables in `rules.ts`, nftables in
 * `nft-rules.ts`) read only this, so the two modes cannot drift apart.
 */
export interface FirewallPolicy {
  readonly families: readonly FamilyPolicy[];
}

export interface FamilyPolicy {
  readonly family: Family;
  /** `--ip-masq`: flannel's masquerade rules for this node's subnet. */
  readonly masq?: { readonly network: Cidr; readonly subnet: Cidr; readonly randomFully: boolean };
  /** `--iptables-forward-rules`: accept forwarding from and to the Network. */
  readonly forward?: { readonly network: Cidr };
  /** `--tunnel-notrack`: the tunnel's own UDP packets skip conntrack. */
  readonly notrack?: { readonly port: number };
}

export interface FirewallPolicyInput {
  /** The config's Networks; a family without one carries no rules. */
  readonly networks: { readonly ipv4?: Cidr; readonly ipv6?: Cidr };
  /** The node's own subnets (the lease). */
  readonly lease: { readonly subnet?: Cidr; readonly ipv6Subnet?: Cidr };
  readonly ipMasq: boolean;
  readonly forwardRules: boolean;
  /** Set when --tunnel-notrack is on and the backend has a UDP tunnel: its port and families. */
  readonly tunnelNotrack?: { readonly port: number; readonly families: readonly Family[] };
  /** MASQUERADE --random-fully / `masquerade fully-random` (flannel uses it whenever the tool supports it). */
  readonly randomFully: boolean;
}

/** The node's rule groups per family, in family order (4, then 6). Pure. */
export function planFirewallPolicy(input: FirewallPolicyInput): FirewallPolicy {
  const families: FamilyPolicy[] = [];
  const pairs: Array<[Family, Cidr | undefined, Cidr | undefined]> = [
    [4, input.networks.ipv4, input.lease.subnet],
    [6, input.networks.ipv6, input.lease.ipv6Subnet],
  ];
  const notrack = input.tunnelNotrack;
  if (notrack && (!Number.isInteger(notrack.port) || notrack.port < 1 || notrack.port > 65535)) {
    throw new FirewallPlanError(`tunnel port ${notrack.port} is not a UDP port (1..65535)`);
  }
  for (const [family, network, subnet] of pairs) {
    if (!network) continue;
    if (network.family !== family || (subnet && subnet.family !== family)) {
      throw new FirewallPlanError(`the IPv${family} Network or subnet is of another address family`);
    }
    families.push({
      family,
      ...(input.ipMasq && subnet ? { masq: { network, subnet, randomFully: input.randomFully } } : {}),
      ...(input.forwardRules && subnet ? { forward: { network } } : {}),
      ...(notrack?.families.includes(family) ? { notrack: { port: notrack.port } } : {}),
    });
  }
  return { families };
}

/** Whether the policy asks for any rule at all (with none, weft needs neither iptables nor nft). */
export function policyHasRules(policy: FirewallPolicy): boolean {
  return policy.families.some((f) => f.masq || f.forward || f.notrack);
}
