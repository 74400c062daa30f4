import {
  type Cidr,
  containsCidr,
  type Family,
  formatCidr,
  formatIp,
  InvalidAddressError,
  parseCidr,
  parseIp,
  sizeOf,
} from '../ip/index.js';
import { type BackendConfig, parseBackend } from './backend.js';
import { type Json, KeyReader, NetworkConfigError } from './key-reader.js';

export interface FamilyNetwork {
  network: Cidr;
  subnetLen: number;
  subnetMin: Cidr;
  subnetMax: Cidr;
}

export interface NetworkConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  /** Present when enableIPv4. */
  ipv4?: FamilyNetwork;
  /** Present when enableIPv6. */
  ipv6?: FamilyNetwork;
  backend: BackendConfig;
  /** flannel's `EnableNFTables`: the firewall rules live in nftables tables instead of iptables chains. */
  enableNFTables: boolean;
  /** Keys that were not understood (kept for a warning; flannel ignores them too). */
  unknownKeys: string[];
  /** Set when the config has no `Backend`: weft picked vxlan where flanneld picks udp (see `networkConfigWarnings`). */
  backendDefaulted?: true;
  /** The JSON as given. */
  raw: Record<string, unknown>;
}

/** Parses the network config JSON text (from etcd `<prefix>/config` or `--net-config-path`). */
export function parseNetworkConfigText(text: string, source = 'network config'): NetworkConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new NetworkConfigError(
      '(document)',
      text.slice(0, 40),
      `${source} is not valid JSON: ${(err as Error).message}`,
    );
  }
  return parseNetworkConfig(parsed);
}

/** Validates a parsed network config object and fills flannel's defaults. */
export function parseNetworkConfig(input: unknown): NetworkConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new NetworkConfigError('(document)', input, 'must be a JSON object');
  }
  const raw = input as Json;
  const r = new KeyReader(raw, '');
  const enableIPv4 = r.bool('EnableIPv4', true);
  const enableIPv6 = r.bool('EnableIPv6', false);
  if (!enableIPv4 && !enableIPv6) {
    throw new NetworkConfigError(
      'EnableIPv4',
      false,
      'at least one of EnableIPv4 and EnableIPv6 must be true',
    );
  }
  const ipv4 = enableIPv4 ? familyNetwork(r, 4) : undefined;
  const ipv6 = enableIPv6 ? familyNetwork(r, 6) : undefined;
  if (!enableIPv4) {
    for (const k of ['Network', 'SubnetLen', 'SubnetMin', 'SubnetMax']) r.get(k);
  }
  if (!enableIPv6) {
    for (const k of ['IPv6Network', 'IPv6SubnetLen', 'IPv6SubnetMin', 'IPv6SubnetMax']) r.get(k);
  }
  const backendInput = r.get('Backend');
  const backend = parseBackend(backendInput);
  const enableNFTables = r.bool('EnableNFTables', false);
  const config: NetworkConfig = {
    enableIPv4,
    enableIPv6,
    ipv4,
    ipv6,
    backend,
    enableNFTables,
    unknownKeys: r.unknown(),
    raw,
  };
  if (backendInput === undefined) config.backendDefaulted = true;
  return config;
}

/** A warning about a valid config, for the daemon to log once per start: pino fields and the message. */
export interface NetworkConfigWarning {
  fields: Record<string, unknown>;
  msg: string;
}

/** What an operator should know about a config weft accepts (logged once by the daemon, not by the managers). */
export function networkConfigWarnings(config: NetworkConfig): NetworkConfigWarning[] {
  const warnings: NetworkConfigWarning[] = [];
  if (config.backendDefaulted) {
    warnings.push({
      fields: { backend: config.backend.type, flanneldBackend: 'udp' },
      msg: 'network config has no Backend: weft uses vxlan, but flanneld picks udp for the same config (flannel #1221); in a cluster mixing flanneld and weftd nodes the two cannot reach each other — set "Backend": {"Type": "vxlan"} (or "udp") explicitly',
    });
  }
  if (config.unknownKeys.length > 0) {
    warnings.push({
      fields: { keys: config.unknownKeys },
      msg: 'network config has keys weft does not know; they are ignored',
    });
  }
  return warnings;
}

function familyNetwork(r: KeyReader, family: Family): FamilyNetwork {
  const p = family === 4 ? '' : 'IPv6';
  const networkField = `${p}Network`;
  const networkText = r.get(networkField);
  if (networkText === undefined) {
    throw new NetworkConfigError(
      networkField,
      undefined,
      `is required when EnableIPv${family} is true (an IPv${family} CIDR, e.g. ${family === 4 ? '10.5.0.0/16' : 'fd00:10:5::/48'})`,
    );
  }
  const network = cidrField(networkField, networkText, family);
  // flannel: SubnetLen ≤ 30, IPv6SubnetLen ≤ 126 — a subnet keeps its network address (the VTEP's) and the
  // bridge's ::1/.1 and still has room for pods; a /127 would have none.
  const maxLen = family === 4 ? 30 : 126;
  const defaultLen = family === 4 ? 24 : 64;
  const lenField = `${p}SubnetLen`;
  let subnetLen = r.get(lenField);
  if (subnetLen === undefined || subnetLen === 0) {
    if (network.prefix <= defaultLen - 2) subnetLen = defaultLen;
    else if (network.prefix <= maxLen - 2) subnetLen = network.prefix + 2;
    else {
      throw new NetworkConfigError(
        networkField,
        networkText,
        `network too small: a /${network.prefix} cannot hold four subnets (use a prefix of /${maxLen - 2} or shorter)`,
      );
    }
  }
  if (typeof subnetLen !== 'number' || !Number.isInteger(subnetLen)) {
    throw new NetworkConfigError(lenField, subnetLen, 'must be an integer prefix length');
  }
  if (subnetLen > maxLen) {
    throw new NetworkConfigError(
      lenField,
      subnetLen,
      `must be at most ${maxLen} (a subnet needs usable addresses)`,
    );
  }
  if (subnetLen < network.prefix + 2) {
    throw new NetworkConfigError(
      lenField,
      subnetLen,
      `must be at least the network prefix + 2 (/${network.prefix + 2}) so the network holds at least four subnets`,
    );
  }
  const subnetSize = 1n << BigInt((family === 4 ? 32 : 128) - subnetLen);
  const first: Cidr = { family, value: network.value + subnetSize, prefix: subnetLen };
  const last: Cidr = { family, value: network.value + sizeOf(network) - subnetSize, prefix: subnetLen };
  const subnetMin = boundField(r, `${p}SubnetMin`, family, subnetLen, network) ?? first;
  const subnetMax = boundField(r, `${p}SubnetMax`, family, subnetLen, network) ?? last;
  if (subnetMin.value > subnetMax.value) {
    throw new NetworkConfigError(
      `${p}SubnetMin`,
      formatIp(subnetMin),
      `must not be after ${p}SubnetMax (${formatIp(subnetMax)})`,
    );
  }
  return { network, subnetLen, subnetMin, subnetMax };
}

function cidrField(field: string, value: unknown, family: Family): Cidr {
  if (typeof value !== 'string') throw new NetworkConfigError(field, value, 'must be a CIDR string');
  let c: Cidr;
  try {
    c = parseCidr(value);
  } catch (err) {
    throw new NetworkConfigError(field, value, (err as InvalidAddressError).message);
  }
  if (c.family !== family) throw new NetworkConfigError(field, value, `must be an IPv${family} CIDR`);
  return c;
}

/** SubnetMin/SubnetMax: an address (flannel's form) or a CIDR whose length must equal SubnetLen. */
function boundField(
  r: KeyReader,
  field: string,
  family: Family,
  subnetLen: number,
  network: Cidr,
): Cidr | undefined {
  const text = r.get(field);
  if (text === undefined || text === '') return undefined;
  if (typeof text !== 'string') throw new NetworkConfigError(field, text, 'must be an address string');
  let value: bigint;
  try {
    if (text.includes('/')) {
      const c = parseCidr(text, { strict: true });
      if (c.prefix !== subnetLen) {
        throw new InvalidAddressError(`prefix /${c.prefix} differs from the subnet length /${subnetLen}`);
      }
      value = c.value;
      if (c.family !== family) throw new InvalidAddressError(`must be an IPv${family} address`);
    } else {
      const ip = parseIp(text);
      if (ip.family !== family) throw new InvalidAddressError(`must be an IPv${family} address`);
      value = ip.value;
    }
  } catch (err) {
    throw new NetworkConfigError(field, text, (err as Error).message);
  }
  const subnet: Cidr = { family, value, prefix: subnetLen };
  const mask = (1n << BigInt((family === 4 ? 32 : 128) - subnetLen)) - 1n;
  if ((value & mask) !== 0n) {
    throw new NetworkConfigError(field, text, `must be aligned to the subnet length /${subnetLen}`);
  }
  if (!containsCidr(network, subnet)) {
    throw new NetworkConfigError(field, text, `must lie inside the network ${formatCidr(network)}`);
  }
  return subnet;
}

/** Serialises a config back to flannel's JSON shape (for `weftctl config get` and tests). */
export function networkConfigToJson(cfg: NetworkConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (cfg.ipv4) {
    out.Network = formatCidr(cfg.ipv4.network);
    out.SubnetLen = cfg.ipv4.subnetLen;
    out.SubnetMin = formatIp(cfg.ipv4.subnetMin);
    out.SubnetMax = formatIp(cfg.ipv4.subnetMax);
  }
  out.EnableIPv4 = cfg.enableIPv4;
  out.EnableIPv6 = cfg.enableIPv6;
  if (cfg.enableNFTables) out.EnableNFTables = true;
  if (cfg.ipv6) {
    out.IPv6Network = formatCidr(cfg.ipv6.network);
    out.IPv6SubnetLen = cfg.ipv6.subnetLen;
    out.IPv6SubnetMin = formatIp(cfg.ipv6.subnetMin);
    out.IPv6SubnetMax = formatIp(cfg.ipv6.subnetMax);
  }
  const b = cfg.backend;
  if (b.type === 'vxlan') {
    out.Backend = {
      Type: 'vxlan',
      VNI: b.vni,
      Port: b.port,
      MTU: b.mtu,
      GBP: b.gbp,
      Learning: b.learning,
      DirectRouting: b.directRouting,
    };
  } else if (b.type === 'udp') out.Backend = { Type: 'udp', Port: b.port };
  else if (b.type === 'auto') out.Backend = { Type: 'auto', VNI: b.vxlan.vni, Port: b.vxlan.port };
  else if (b.type === 'wireguard') {
    // The PSK is a secret: shown only as set or not.
    out.Backend = {
      Type: 'wireguard',
      ...(b.psk === undefined ? {} : { PSK: '(hidden)' }),
      ListenPort: b.listenPort,
      ListenPortV6: b.listenPortV6,
      MTU: b.mtu,
      Mode: b.mode,
      PersistentKeepaliveInterval: b.persistentKeepaliveInterval,
    };
  } else if (b.type === 'extension') {
    out.Backend = {
      Type: 'extension',
      PreStartupCommand: b.preStartupCommand,
      PostStartupCommand: b.postStartupCommand,
      SubnetAddCommand: b.subnetAddCommand,
      SubnetRemoveCommand: b.subnetRemoveCommand,
    };
  } else out.Backend = { Type: b.type };
  return out;
}
