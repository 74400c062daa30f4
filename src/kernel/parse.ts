// Pure parsers for iproute2 `-json` output. Structural surprises (not an array, an entry without a name) throw
// KernelOutputParseError naming the command and the entry; entries weft has no use for (default routes,
// blackholes, multipath, non-permanent neighbours) are skipped.
import { canonicalIp, isMac } from '../ip/index.js';
import { canonicalInterfaceAddress, canonicalMacText, canonicalNetwork, familyOfText } from './canonical.js';
import type {
  AddressEntry,
  FdbEntry,
  InterfaceAddress,
  InterfaceAddressFlag,
  InterfaceFact,
  NeighborEntry,
  ObservedLink,
  RouteEntry,
} from './types.js';

export class KernelOutputParseError extends Error {
  override name = 'KernelOutputParseError';
  constructor(
    readonly command: string,
    readonly detail: string,
  ) {
    super(`cannot read the output of \`${command}\`: ${detail}`);
  }
}

type Json = Record<string, unknown>;

/** Parses JSON text from iproute2; empty output means an empty list. */
export function parseJsonList(text: string, command: string): Json[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (err) {
    throw new KernelOutputParseError(
      command,
      `not JSON (${(err as Error).message}): ${trimmed.slice(0, 80)}`,
    );
  }
  if (!Array.isArray(parsed)) throw new KernelOutputParseError(command, 'expected a JSON array');
  parsed.forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new KernelOutputParseError(command, `entry ${i} is not an object`);
    }
  });
  return parsed as Json[];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function tryCanonical<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/** A device as `ip -d -json addr show` lists it: link facts plus its addresses and link-type details. */
export interface ListedLink {
  index: number;
  name: string;
  mtu: number;
  up: boolean;
  loopback: boolean;
  mac?: string;
  /** `linkinfo.info_kind` ('' when absent, e.g. a plain NIC or loopback). */
  infoKind: string;
  infoData: Json;
  addresses: InterfaceAddress[];
}

/** Reads `ip [-d] -json addr show` (or `link show`: then no addresses). */
export function parseLinkList(text: string, command = 'ip -d -json addr show'): ListedLink[] {
  return parseJsonList(text, command).map((entry, i) => {
    const name = str(entry.ifname);
    const index = num(entry.ifindex);
    const mtu = num(entry.mtu);
    if (name === undefined || index === undefined || mtu === undefined) {
      throw new KernelOutputParseError(command, `entry ${i} lacks ifname/ifindex/mtu`);
    }
    const flags = strings(entry.flags);
    const linkinfo = (
      typeof entry.linkinfo === 'object' && entry.linkinfo !== null ? entry.linkinfo : {}
    ) as Json;
    const infoData = (
      typeof linkinfo.info_data === 'object' && linkinfo.info_data !== null ? linkinfo.info_data : {}
    ) as Json;
    const address = str(entry.address);
    const addresses: InterfaceAddress[] = [];
    const addrInfo = Array.isArray(entry.addr_info) ? (entry.addr_info as unknown[]) : [];
    for (const a of addrInfo) {
      if (typeof a !== 'object' || a === null) continue;
      const info = a as Json;
      const local = str(info.local);
      const prefix = num(info.prefixlen);
      const family = info.family === 'inet' ? 4 : info.family === 'inet6' ? 6 : undefined;
      if (local === undefined || prefix === undefined || family === undefined) continue;
      const ip = tryCanonical(() => canonicalIp(local));
      if (ip === undefined || familyOfText(ip) !== family) continue;
      const address: InterfaceAddress = { family, ip, prefix, scope: str(info.scope) ?? 'global' };
      // iproute2 prints each set flag as `"<name>": true` (IPv4's "secondary" shares temporary's bit: not read).
      const addressFlags = family === 6 ? ADDRESS_FLAGS.filter((f) => info[f] === true) : [];
      if (addressFlags.length > 0) address.flags = addressFlags;
      addresses.push(address);
    }
    return {
      index,
      name,
      mtu,
      up: flags.includes('UP'),
      loopback: flags.includes('LOOPBACK'),
      mac: address !== undefined && isMac(address) ? canonicalMacText(address) : undefined,
      infoKind: str(linkinfo.info_kind) ?? '',
      infoData,
      addresses,
    };
  });
}

const ADDRESS_FLAGS: readonly InterfaceAddressFlag[] = ['temporary', 'deprecated', 'tentative', 'dadfailed'];

/** The weft model of a listed device: vxlan and tun details, anything else as `other`. */
export function toObservedLink(link: ListedLink): ObservedLink {
  if (link.infoKind === 'vxlan') {
    const d = link.infoData;
    const local = str(d.local) ?? str(d.local6) ?? '';
    return {
      kind: 'vxlan',
      name: link.name,
      vni: num(d.id) ?? -1,
      local: tryCanonical(() => canonicalIp(local)) ?? local,
      dev: str(d.link) ?? '',
      port: num(d.port) ?? 0,
      learning: d.learning === true,
      gbp: d.gbp === true,
      mtu: link.mtu,
      mac: link.mac,
      up: link.up,
    };
  }
  if (link.infoKind === 'tun' && link.infoData.type === 'tun') {
    return { kind: 'tun', name: link.name, mtu: link.mtu, up: link.up };
  }
  return { kind: 'other', name: link.name, type: link.infoKind, mtu: link.mtu, mac: link.mac, up: link.up };
}

export function toInterfaceFact(link: ListedLink): InterfaceFact {
  return {
    name: link.name,
    index: link.index,
    mtu: link.mtu,
    up: link.up,
    loopback: link.loopback,
    addresses: link.addresses,
  };
}

/** Addresses of listed devices as kernel-state entries (`dev`, `ip/prefix`). */
export function toAddressEntries(links: ListedLink[]): AddressEntry[] {
  const out: AddressEntry[] = [];
  for (const link of links) {
    for (const a of link.addresses) {
      out.push({ dev: link.name, cidr: canonicalInterfaceAddress(`${a.ip}/${a.prefix}`) });
    }
  }
  return out;
}

/**
 * Reads `ip -4|-6 -json route show table main`: unicast routes with one next hop. Default, typed
 * (blackhole, unreachable, local, …) and multipath routes are not weft's and are skipped.
 */
export function parseRouteList(text: string, command = 'ip -json route show'): RouteEntry[] {
  const out: RouteEntry[] = [];
  for (const entry of parseJsonList(text, command)) {
    const type = str(entry.type);
    if (type !== undefined && type !== 'unicast') continue;
    const dstText = str(entry.dst);
    const dev = str(entry.dev);
    if (dstText === undefined || dstText === 'default' || dev === undefined) continue;
    const dst = tryCanonical(() => canonicalNetwork(dstText));
    if (dst === undefined) continue;
    const gateway = str(entry.gateway);
    const via = gateway === undefined ? undefined : tryCanonical(() => canonicalIp(gateway));
    if (gateway !== undefined && via === undefined) continue;
    const route: RouteEntry = { dst, dev };
    if (via !== undefined) route.via = via;
    if (strings(entry.flags).includes('onlink')) route.onlink = true;
    const metric = num(entry.metric);
    if (metric !== undefined) route.metric = metric;
    const protocol = str(entry.protocol);
    // `boot` is the default; iproute2 names it only with -d (the dump's batch uses -d for link details).
    if (protocol !== undefined && protocol !== 'boot') route.protocol = protocol;
    out.push(route);
  }
  return out;
}

/**
 * Reads `ip -json neigh show nud permanent`: PERMANENT entries with a MAC. With `dev … ` in the command iproute2
 * leaves the device out of each entry; pass it as `dev`.
 */
export function parseNeighborList(
  text: string,
  command = 'ip -json neigh show nud permanent',
  dev?: string,
): NeighborEntry[] {
  const out: NeighborEntry[] = [];
  for (const entry of parseJsonList(text, command)) {
    if (!strings(entry.state).includes('PERMANENT')) continue;
    const dst = str(entry.dst);
    const entryDev = str(entry.dev) ?? dev;
    const lladdr = str(entry.lladdr);
    if (dst === undefined || entryDev === undefined || lladdr === undefined || !isMac(lladdr)) continue;
    const ip = tryCanonical(() => canonicalIp(dst));
    if (ip === undefined) continue;
    out.push({ dev: entryDev, ip, mac: canonicalMacText(lladdr) });
  }
  return out;
}

/** Reads `bridge -json fdb show dev <dev>`: `self` PERMANENT entries with a remote (`dst`). */
export function parseFdbList(
  text: string,
  dev: string,
  command = `bridge -json fdb show dev ${dev}`,
): FdbEntry[] {
  const out: FdbEntry[] = [];
  for (const entry of parseJsonList(text, command)) {
    if (entry.state !== 'permanent' || !strings(entry.flags).includes('self')) continue;
    const mac = str(entry.mac);
    const dst = str(entry.dst);
    if (mac === undefined || dst === undefined || !isMac(mac)) continue;
    const ip = tryCanonical(() => canonicalIp(dst));
    if (ip === undefined) continue;
    out.push({ dev, mac: canonicalMacText(mac), dst: ip });
  }
  return out;
}

/** Reads `ip -json route show default`: the first default route's device. */
export function parseDefaultRouteDev(
  text: string,
  command = 'ip -json route show default',
): string | undefined {
  for (const entry of parseJsonList(text, command)) {
    const dst = str(entry.dst);
    const dev = str(entry.dev);
    if (dst === 'default' && dev !== undefined) return dev;
  }
  return undefined;
}

/** Reads `ip -json route get <ip>`: the chosen device, gateway and source address. */
export function parseRouteGet(
  text: string,
  command = 'ip -json route get',
): { dev?: string; via?: string; src?: string } | undefined {
  const entry = parseJsonList(text, command)[0];
  if (entry === undefined) return undefined;
  return { dev: str(entry.dev), via: str(entry.gateway), src: str(entry.prefsrc) };
}
