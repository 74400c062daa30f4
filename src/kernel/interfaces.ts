// listInterfaces gathers interface facts (effect); selectInterface picks the external interface (pure), by
// flannel's rules: --iface in order, then --iface-regex (addresses, then names), then --iface-can-reach, and
// with none of those the interface holding --public-ip, else the default-route interface.
import { canonicalIp, type Family, isIp } from '../ip/index.js';
import { readTool, runTool } from './exec.js';
import { parseDefaultRouteDev, parseLinkList, parseRouteGet, toInterfaceFact } from './parse.js';
import type {
  InterfaceAddress,
  InterfaceFact,
  InterfaceFacts,
  KernelCallOptions,
  SelectedInterface,
} from './types.js';

export class InterfaceSelectionError extends Error {
  override name = 'InterfaceSelectionError';
  constructor(
    readonly problem: string,
    readonly tried: string[],
    readonly seen: string[],
  ) {
    super(
      `${problem}${tried.length > 0 ? `; tried: ${tried.join('; ')}` : ''}; interfaces seen: ${seen.join(', ') || 'none'}`,
    );
  }
}

export interface ListInterfacesOptions extends KernelCallOptions {
  /** `--iface-can-reach`: also look up the route to this address. */
  canReach?: string;
}

/** Interfaces with their addresses, the default-route devices and (optionally) the route to `canReach`. */
export async function listInterfaces(opts: ListInterfacesOptions = {}): Promise<InterfaceFacts> {
  const [addrText, default4, default6] = await Promise.all([
    readTool('ip', ['-json', 'addr', 'show'], opts),
    readTool('ip', ['-4', '-json', 'route', 'show', 'default'], opts),
    readTool('ip', ['-6', '-json', 'route', 'show', 'default'], opts).catch(() => '[]'),
  ]);
  const facts: InterfaceFacts = {
    interfaces: parseLinkList(addrText, 'ip -json addr show').map(toInterfaceFact),
    defaultRouteDev: {
      ipv4: parseDefaultRouteDev(default4, 'ip -4 -json route show default'),
      ipv6: parseDefaultRouteDev(default6, 'ip -6 -json route show default'),
    },
  };
  if (opts.canReach !== undefined) {
    const target = opts.canReach;
    if (!isIp(target)) {
      facts.canReach = { target, error: `${JSON.stringify(target)} is not an IP address` };
    } else {
      // A route lookup only: no packet is sent.
      const result = await runTool('ip', ['-json', 'route', 'get', canonicalIp(target)], opts);
      if (result.code !== 0) {
        facts.canReach = { target, error: result.stderr.trim() || `exit ${result.code}` };
      } else {
        const got = parseRouteGet(result.stdout, `ip -json route get ${target}`);
        facts.canReach = got?.dev === undefined ? { target, error: 'no route' } : { target, dev: got.dev };
      }
    }
  }
  return facts;
}

export interface SelectInterfaceOptions {
  /** `--public-ip` (may be a NAT address that no interface holds). */
  publicIp?: string;
  publicIpv6?: string;
  /** `--iface`: names or addresses, tried in order. */
  iface?: string[];
  /** `--iface-regex`: tried in order, each against addresses first, then names. */
  ifaceRegex?: string[];
  /** `--iface-can-reach`: the facts must carry its route lookup (`listInterfaces({canReach})`). */
  ifaceCanReach?: string;
  /** Which families need an address on the interface; default IPv4 only. */
  ipv4?: boolean;
  ipv6?: boolean;
}

/**
 * Global-scope addresses of a family, stable ones first (link-local and host addresses are never a VTEP or
 * PublicIP; one that failed duplicate address detection is not this node's).
 */
function usable(facts: InterfaceFact, family: Family): InterfaceAddress[] {
  const global = facts.addresses.filter(
    (a) => a.family === family && a.scope === 'global' && !a.flags?.includes('dadfailed'),
  );
  // A privacy (temporary) or deprecated IPv6 address goes away within hours, taking the VTEP with it:
  // stable addresses first (iproute2 lists the newest address first, often a fresh temporary one).
  const unstable = (a: InterfaceAddress) =>
    a.flags?.some((f) => f === 'temporary' || f === 'deprecated') === true;
  return [...global.filter((a) => !unstable(a)), ...global.filter(unstable)];
}

function describeIface(f: InterfaceFact): string {
  const addrs = f.addresses.filter((a) => a.scope === 'global').map((a) => `${a.ip}/${a.prefix}`);
  return `${f.name}${addrs.length > 0 ? ` (${addrs.join(' ')})` : ''}${f.up ? '' : ' [down]'}`;
}

function holding(
  facts: InterfaceFacts,
  ip: string,
): { iface: InterfaceFact; address: InterfaceAddress } | undefined {
  for (const iface of facts.interfaces) {
    const address = iface.addresses.find((a) => a.ip === ip);
    if (address !== undefined) return { iface, address };
  }
  return undefined;
}

function compileRegex(pattern: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch (err) {
    throw new InterfaceSelectionError(
      `--iface-regex ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`,
      [],
      [],
    );
  }
}

/** Picks the external interface and the addresses weft publishes; throws InterfaceSelectionError. */
export function selectInterface(facts: InterfaceFacts, opts: SelectInterfaceOptions): SelectedInterface {
  const wantV4 = opts.ipv4 ?? true;
  const wantV6 = opts.ipv6 ?? false;
  const seen = facts.interfaces.map(describeIface);
  const tried: string[] = [];
  const fail = (problem: string): never => {
    throw new InterfaceSelectionError(problem, tried, seen);
  };

  const publicIp = opts.publicIp === undefined || opts.publicIp === '' ? undefined : opts.publicIp;
  const publicIpv6 = opts.publicIpv6 === undefined || opts.publicIpv6 === '' ? undefined : opts.publicIpv6;
  if (publicIp !== undefined && !isIp(publicIp, 4))
    fail(`--public-ip ${JSON.stringify(publicIp)} is not an IPv4 address`);
  if (publicIpv6 !== undefined && !isIp(publicIpv6, 6)) {
    fail(`--public-ipv6 ${JSON.stringify(publicIpv6)} is not an IPv6 address`);
  }

  /** An interface qualifies when it has an address of every family asked for. */
  const qualifies = (iface: InterfaceFact): string | undefined => {
    if (wantV4 && usable(iface, 4).length === 0) return `${iface.name} has no global IPv4 address`;
    if (wantV6 && usable(iface, 6).length === 0) return `${iface.name} has no global IPv6 address`;
    if (iface.mtu <= 0) return `${iface.name} reports MTU ${iface.mtu}`;
    return undefined;
  };

  let chosen: { iface: InterfaceFact; address?: InterfaceAddress; reason: string } | undefined;
  const consider = (iface: InterfaceFact, reason: string, address?: InterfaceAddress): boolean => {
    const problem = qualifies(iface);
    if (problem !== undefined) {
      tried.push(`${reason}: ${problem}`);
      return false;
    }
    chosen = { iface, address, reason };
    return true;
  };

  const ifaces = opts.iface ?? [];
  const regexes = opts.ifaceRegex ?? [];
  const explicit = ifaces.length > 0 || regexes.length > 0 || (opts.ifaceCanReach ?? '') !== '';

  if (!explicit) {
    for (const ip of [publicIp, publicIpv6]) {
      if (ip === undefined || chosen !== undefined) continue;
      const found = holding(facts, canonicalIp(ip));
      if (found === undefined) tried.push(`public IP ${ip}: on no interface (NAT), using the default route`);
      else consider(found.iface, `holds public IP ${ip}`, found.address);
    }
    if (chosen === undefined) {
      const devs = [facts.defaultRouteDev.ipv4, facts.defaultRouteDev.ipv6].filter(
        (d): d is string => d !== undefined,
      );
      if (devs.length === 0) tried.push('default route: none');
      for (const dev of devs) {
        const iface = facts.interfaces.find((i) => i.name === dev);
        if (iface === undefined) tried.push(`default route: device ${dev} not listed`);
        else if (consider(iface, `default route dev ${dev}`)) break;
      }
    }
  } else {
    for (const entry of ifaces) {
      if (isIp(entry)) {
        const found = holding(facts, canonicalIp(entry));
        if (found === undefined) tried.push(`--iface ${entry}: no interface holds this address`);
        else if (consider(found.iface, `--iface ${entry}`, found.address)) break;
      } else {
        const iface = facts.interfaces.find((i) => i.name === entry);
        if (iface === undefined) tried.push(`--iface ${entry}: no such interface`);
        else if (consider(iface, `--iface ${entry}`)) break;
      }
    }
    for (const pattern of chosen === undefined ? regexes : []) {
      const re = compileRegex(pattern);
      let matched = false;
      for (const iface of facts.interfaces) {
        const address = iface.addresses.find((a) => a.scope === 'global' && re.test(a.ip));
        if (
          address !== undefined &&
          consider(iface, `--iface-regex ${pattern} matches address ${address.ip}`, address)
        ) {
          matched = true;
          break;
        }
      }
      for (const iface of matched ? [] : facts.interfaces) {
        if (re.test(iface.name) && consider(iface, `--iface-regex ${pattern} matches name ${iface.name}`)) {
          matched = true;
          break;
        }
      }
      if (matched) break;
      tried.push(`--iface-regex ${pattern}: no usable match`);
    }
    if (chosen === undefined && (opts.ifaceCanReach ?? '') !== '') {
      const lookup = facts.canReach;
      if (lookup === undefined || lookup.target !== opts.ifaceCanReach) {
        tried.push(`--iface-can-reach ${opts.ifaceCanReach}: no route lookup in the facts`);
      } else if (lookup.dev === undefined) {
        tried.push(`--iface-can-reach ${lookup.target}: ${lookup.error ?? 'no route'}`);
      } else {
        const iface = facts.interfaces.find((i) => i.name === lookup.dev);
        if (iface === undefined)
          tried.push(`--iface-can-reach ${lookup.target}: device ${lookup.dev} not listed`);
        else consider(iface, `route to ${lookup.target} uses ${lookup.dev}`);
      }
    }
  }

  if (chosen === undefined) {
    return fail(
      explicit
        ? 'no interface matches the --iface / --iface-regex / --iface-can-reach options given'
        : 'cannot find an external interface (no usable default-route interface)',
    );
  }
  const { iface, address, reason } = chosen;
  const pick = (family: Family, preferred: string | undefined): InterfaceAddress | undefined => {
    if (address !== undefined && address.family === family) return address;
    const candidates = usable(iface, family);
    return candidates.find((a) => a.ip === preferred) ?? candidates[0];
  };
  const ipv4 = pick(4, publicIp === undefined ? undefined : canonicalIp(publicIp));
  const ipv6 = pick(6, publicIpv6 === undefined ? undefined : canonicalIp(publicIpv6));
  const selected: SelectedInterface = {
    name: iface.name,
    index: iface.index,
    mtu: iface.mtu,
    addresses: iface.addresses,
    reason,
  };
  if (ipv4 !== undefined) selected.ipv4 = ipv4;
  if (ipv6 !== undefined) selected.ipv6 = ipv6;
  const pub4 = publicIp !== undefined ? canonicalIp(publicIp) : ipv4?.ip;
  const pub6 = publicIpv6 !== undefined ? canonicalIp(publicIpv6) : ipv6?.ip;
  if (wantV4 && pub4 !== undefined) selected.publicIp = pub4;
  if (wantV6 && pub6 !== undefined) selected.publicIpv6 = pub6;
  const nat: string[] = [];
  if (selected.publicIp !== undefined && selected.publicIp !== ipv4?.ip) {
    nat.push(`public IP ${selected.publicIp} is not the interface address ${ipv4?.ip ?? 'none'} (NAT)`);
  }
  if (selected.publicIpv6 !== undefined && selected.publicIpv6 !== ipv6?.ip) {
    nat.push(`public IPv6 ${selected.publicIpv6} is not the interface address ${ipv6?.ip ?? 'none'} (NAT)`);
  }
  if (nat.length > 0) selected.reason = `${reason}; ${nat.join('; ')}`;
  return selected;
}
