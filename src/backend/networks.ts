// The Networks of the enabled families, as the planners need them.
import type { NetworkConfig } from '../config/index.js';
import type { Cidr } from '../ip/index.js';
import type { Family } from './types.js';

export interface FamilyNetworks {
  ipv4?: Cidr;
  ipv6?: Cidr;
}

export function familyNetworks(config: NetworkConfig): FamilyNetworks {
  const out: FamilyNetworks = {};
  if (config.enableIPv4 && config.ipv4 !== undefined) out.ipv4 = config.ipv4.network;
  if (config.enableIPv6 && config.ipv6 !== undefined) out.ipv6 = config.ipv6.network;
  return out;
}

/** `[family, Network]` pairs, IPv4 first. */
export function enabledFamilies(networks: FamilyNetworks): Array<[Family, Cidr]> {
  const out: Array<[Family, Cidr]> = [];
  if (networks.ipv4 !== undefined) out.push([4, networks.ipv4]);
  if (networks.ipv6 !== undefined) out.push([6, networks.ipv6]);
  return out;
}
