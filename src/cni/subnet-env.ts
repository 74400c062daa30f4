import * as fs from 'node:fs/promises';
import {
  addressAt,
  type Cidr,
  containsCidr,
  type Family,
  formatCidr,
  formatIp,
  InvalidAddressError,
  parseCidr,
} from '../ip/index.js';
import { writeFileIfChanged } from './atomic-file.js';

/** flanneld's default `--subnet-file`. */
export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

/**
 * The contents of flannel's subnet.env. Subnets are held masked (network address); the file carries the
 * first usable address instead (`FLANNEL_SUBNET=10.5.72.1/24`), which render adds and parse removes.
 */
export interface SubnetEnv {
  network?: Cidr;
  subnet?: Cidr;
  ipv6Network?: Cidr;
  ipv6Subnet?: Cidr;
  mtu: number;
  ipMasq: boolean;
}

/** A subnet.env value that cannot be written: names the field and what is wrong. */
export class SubnetEnvError extends Error {
  override name = 'SubnetEnvError';
}

/** A subnet.env text that does not parse: names the source, the line and the key. */
export class SubnetEnvParseError extends Error {
  override name = 'SubnetEnvParseError';
  constructor(
    readonly source: string,
    readonly line: number | undefined,
    readonly key: string | undefined,
    readonly reason: string,
  ) {
    super(
      `${source}${line === undefined ? '' : `:${line}`}: ${key === undefined ? '' : `${key}: `}${reason}`,
    );
  }
}

const MIN_MTU = 68;
const MAX_MTU = 65535;

type EnvField = 'network' | 'subnet' | 'ipv6Network' | 'ipv6Subnet' | 'mtu' | 'ipMasq';

/** How fields are named in messages: the TypeScript field (render) or the file's key (parse). */
const FIELD_NAMES: Record<EnvField, string> = {
  network: 'network',
  subnet: 'subnet',
  ipv6Network: 'ipv6Network',
  ipv6Subnet: 'ipv6Subnet',
  mtu: 'mtu',
  ipMasq: 'ipMasq',
};
const KEY_NAMES: Record<EnvField, string> = {
  network: 'FLANNEL_NETWORK',
  subnet: 'FLANNEL_SUBNET',
  ipv6Network: 'FLANNEL_IPV6_NETWORK',
  ipv6Subnet: 'FLANNEL_IPV6_SUBNET',
  mtu: 'FLANNEL_MTU',
  ipMasq: 'FLANNEL_IPMASQ',
};

type Fail = (field: EnvField | undefined, message: string) => Error;

function checkPair(
  networkField: EnvField,
  subnetField: EnvField,
  family: Family,
  env: SubnetEnv,
  names: Record<EnvField, string>,
  fail: Fail,
): void {
  const network = env[networkField as 'network'];
  const subnet = env[subnetField as 'subnet'];
  const n = names[networkField];
  const s = names[subnetField];
  if ((network === undefined) !== (subnet === undefined)) {
    throw fail(
      network === undefined ? subnetField : networkField,
      `${n} and ${s} go together: give both or neither`,
    );
  }
  if (network === undefined || subnet === undefined) return;
  if (network.family !== family)
    throw fail(networkField, `${n} ${formatCidr(network)} is not an IPv${family} network`);
  if (subnet.family !== family)
    throw fail(subnetField, `${s} ${formatCidr(subnet)} is not an IPv${family} subnet`);
  if (!containsCidr(network, subnet)) {
    throw fail(subnetField, `${s} ${formatCidr(subnet)} does not lie inside ${n} ${formatCidr(network)}`);
  }
}

function checkEnv(env: SubnetEnv, names: Record<EnvField, string>, fail: Fail): void {
  checkPair('network', 'subnet', 4, env, names, fail);
  checkPair('ipv6Network', 'ipv6Subnet', 6, env, names, fail);
  if (env.network === undefined && env.ipv6Network === undefined) {
    throw fail(
      undefined,
      `neither ${names.network} nor ${names.ipv6Network} is set (flannel needs at least one)`,
    );
  }
  if (!Number.isInteger(env.mtu) || env.mtu < MIN_MTU || env.mtu > MAX_MTU) {
    throw fail('mtu', `${names.mtu} ${String(env.mtu)} is not an integer in ${MIN_MTU}..${MAX_MTU}`);
  }
  if (typeof env.ipMasq !== 'boolean') {
    throw fail('ipMasq', `${names.ipMasq} must be a boolean, found ${typeof env.ipMasq}`);
  }
}

/** `10.5.72.0/24` → `10.5.72.1/24`: flannel writes the first usable address (the bridge gateway). */
function firstUsable(subnet: Cidr): string {
  return `${formatIp(addressAt(subnet, 1n))}/${subnet.prefix}`;
}

/** Renders subnet.env exactly as flanneld writes it (same keys, order, formatting, trailing newline). */
export function renderSubnetEnv(env: SubnetEnv): string {
  checkEnv(env, FIELD_NAMES, (_field, msg) => new SubnetEnvError(`subnet.env: ${msg}`));
  const lines: string[] = [];
  if (env.network && env.subnet) {
    lines.push(`FLANNEL_NETWORK=${formatCidr(env.network)}`);
    lines.push(`FLANNEL_SUBNET=${firstUsable(env.subnet)}`);
  }
  if (env.ipv6Network && env.ipv6Subnet) {
    lines.push(`FLANNEL_IPV6_NETWORK=${formatCidr(env.ipv6Network)}`);
    lines.push(`FLANNEL_IPV6_SUBNET=${firstUsable(env.ipv6Subnet)}`);
  }
  lines.push(`FLANNEL_MTU=${env.mtu}`);
  lines.push(`FLANNEL_IPMASQ=${env.ipMasq ? 'true' : 'false'}`);
  return `${lines.join('\n')}\n`;
}

const CIDR_KEYS = {
  FLANNEL_NETWORK: { field: 'network', family: 4 },
  FLANNEL_SUBNET: { field: 'subnet', family: 4 },
  FLANNEL_IPV6_NETWORK: { field: 'ipv6Network', family: 6 },
  FLANNEL_IPV6_SUBNET: { field: 'ipv6Subnet', family: 6 },
} as const;

// Go's strconv.ParseBool set: flannel's CNI plugin and flanneld read the file with Go.
const TRUE_WORDS = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** Values may be wrapped in one pair of matching quotes (systemd EnvironmentFile style). */
function unquote(value: string): string {
  if (value.length >= 2) {
    const first = value[0];
    if ((first === '"' || first === "'") && value[value.length - 1] === first) return value.slice(1, -1);
  }
  return value;
}

/**
 * Parses subnet.env strictly: `KEY=VALUE` lines, `#` comment lines and blank lines; unknown keys are
 * ignored (other tools add their own), duplicates and malformed values are errors naming the line and key.
 * FLANNEL_MTU, FLANNEL_IPMASQ and at least one network/subnet pair are required (as the flannel CNI plugin requires).
 */
export function parseSubnetEnv(text: string, source = 'subnet.env'): SubnetEnv {
  if (typeof text !== 'string') throw new SubnetEnvParseError(source, undefined, undefined, 'expected text');
  const seen = new Map<string, number>();
  const cidrs: Partial<Record<'network' | 'subnet' | 'ipv6Network' | 'ipv6Subnet', Cidr>> = {};
  let mtu: number | undefined;
  let ipMasq: boolean | undefined;

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new SubnetEnvParseError(
        source,
        lineNo,
        undefined,
        `expected KEY=VALUE, found ${JSON.stringify(line)}`,
      );
    }
    const key = line.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new SubnetEnvParseError(
        source,
        lineNo,
        undefined,
        `${JSON.stringify(key)} is not a valid variable name`,
      );
    }
    const value = unquote(line.slice(eq + 1).trim());
    const previous = seen.get(key);
    if (previous !== undefined) {
      throw new SubnetEnvParseError(source, lineNo, key, `set again (first set on line ${previous})`);
    }
    seen.set(key, lineNo);
    const fail = (reason: string): SubnetEnvParseError =>
      new SubnetEnvParseError(source, lineNo, key, reason);

    if (key in CIDR_KEYS) {
      const spec = CIDR_KEYS[key as keyof typeof CIDR_KEYS];
      let parsed: Cidr;
      try {
        parsed = parseCidr(value);
      } catch (err) {
        if (err instanceof InvalidAddressError) throw fail(err.message);
        throw err;
      }
      if (parsed.family !== spec.family)
        throw fail(`${JSON.stringify(value)} is not an IPv${spec.family} CIDR`);
      cidrs[spec.field] = parsed;
    } else if (key === 'FLANNEL_MTU') {
      if (!/^[0-9]{1,5}$/.test(value) || Number(value) < MIN_MTU || Number(value) > MAX_MTU) {
        throw fail(`expected an integer MTU in ${MIN_MTU}..${MAX_MTU}, found ${JSON.stringify(value)}`);
      }
      mtu = Number(value);
    } else if (key === 'FLANNEL_IPMASQ') {
      if (TRUE_WORDS.has(value)) ipMasq = true;
      else if (FALSE_WORDS.has(value)) ipMasq = false;
      else throw fail(`expected true or false, found ${JSON.stringify(value)}`);
    }
  }

  const missing = (key: string): SubnetEnvParseError =>
    new SubnetEnvParseError(source, undefined, key, 'missing (required)');
  if (mtu === undefined) throw missing('FLANNEL_MTU');
  if (ipMasq === undefined) throw missing('FLANNEL_IPMASQ');
  const env: SubnetEnv = { mtu, ipMasq };
  if (cidrs.network) env.network = cidrs.network;
  if (cidrs.subnet) env.subnet = cidrs.subnet;
  if (cidrs.ipv6Network) env.ipv6Network = cidrs.ipv6Network;
  if (cidrs.ipv6Subnet) env.ipv6Subnet = cidrs.ipv6Subnet;
  checkEnv(env, KEY_NAMES, (field, msg) => {
    const key = field === undefined ? undefined : KEY_NAMES[field];
    return new SubnetEnvParseError(source, key === undefined ? undefined : seen.get(key), undefined, msg);
  });
  return env;
}

/** Writes subnet.env atomically (mode 0644, parent created). Resolves true when the file changed. */
export async function writeSubnetEnv(filePath: string, env: SubnetEnv): Promise<boolean> {
  return writeFileIfChanged(filePath, renderSubnetEnv(env), { mode: 0o644 });
}

/** Reads and parses subnet.env; undefined when the file does not exist. */
export async function readSubnetEnv(filePath: string): Promise<SubnetEnv | undefined> {
  let text: string;
  try {
    text = await fs.readFile(filePath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseSubnetEnv(text, filePath);
}
