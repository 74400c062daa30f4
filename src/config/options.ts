import { isIp } from '../ip/index.js';
import { redactUrlCredentials } from './redact.js';

/**
 * weftd's flags: flannel's names and defaults, plus weft's own (marked `weft: true`). One table drives the
 * CLI (daemon/flags.ts), the env-var fallback (`FLANNELD_<FLAG>` / `WEFT_<FLAG>`) and `--help` grouping.
 */
export interface FlagSpec {
  name: string;
  type: 'string' | 'number' | 'boolean' | 'array';
  default?: string | number | boolean | string[];
  group: 'etcd' | 'kubernetes' | 'interface' | 'files' | 'firewall' | 'health' | 'general';
  describe: string;
  weft?: boolean;
  /** Never printed (logs, `--help` defaults). */
  secret?: boolean;
}

export const DEFAULT_ETCD_ENDPOINTS = 'http://127.0.0.1:4001,http://127.0.0.1:2379';
export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';

export const ETCD_FLAGS: FlagSpec[] = [
  {
    name: 'etcd-endpoints',
    type: 'string',
    default: DEFAULT_ETCD_ENDPOINTS,
    group: 'etcd',
    describe: 'comma-separated list of etcd endpoints',
  },
  {
    name: 'etcd-prefix',
    type: 'string',
    default: DEFAULT_ETCD_PREFIX,
    group: 'etcd',
    describe: 'etcd prefix',
  },
  {
    name: 'etcd-keyfile',
    type: 'string',
    group: 'etcd',
    describe: 'SSL key file used to secure etcd communication (a path, or the PEM text itself)',
    secret: true,
  },
  {
    name: 'etcd-certfile',
    type: 'string',
    group: 'etcd',
    describe: 'SSL certification file used to secure etcd communication',
  },
  {
    name: 'etcd-cafile',
    type: 'string',
    group: 'etcd',
    describe: 'SSL Certificate Authority file used to secure etcd communication',
  },
  { name: 'etcd-username', type: 'string', group: 'etcd', describe: 'username for BasicAuth to etcd' },
  {
    name: 'etcd-password',
    type: 'string',
    group: 'etcd',
    describe: 'password for BasicAuth to etcd',
    secret: true,
  },
];

export const HEALTH_FLAGS: FlagSpec[] = [
  {
    name: 'healthz-ip',
    type: 'string',
    default: '0.0.0.0',
    group: 'health',
    describe: 'the IP address for healthz server to listen',
  },
  {
    name: 'healthz-port',
    type: 'number',
    default: 0,
    group: 'health',
    describe:
      'the port for healthz server to listen (0 to disable); serves /healthz /readyz /metrics /status',
  },
];

export const WEFTD_FLAGS: FlagSpec[] = [
  ...ETCD_FLAGS,
  {
    name: 'kube-subnet-mgr',
    type: 'boolean',
    default: false,
    group: 'kubernetes',
    describe: 'contact the Kubernetes API for subnet assignment instead of etcd',
  },
  {
    name: 'kube-api-url',
    type: 'string',
    group: 'kubernetes',
    describe: 'Kubernetes API server URL (only needed outside the cluster)',
  },
  {
    name: 'kubeconfig-file',
    type: 'string',
    group: 'kubernetes',
    describe: 'kubeconfig file location (only needed outside the cluster)',
  },
  {
    name: 'kube-annotation-prefix',
    type: 'string',
    default: 'flannel.alpha.coreos.com',
    group: 'kubernetes',
    describe: 'Kubernetes annotation prefix',
  },
  {
    name: 'net-config-path',
    type: 'string',
    default: '/etc/kube-flannel/net-conf.json',
    group: 'kubernetes',
    describe: 'path to the network configuration file (Kubernetes mode)',
  },
  {
    name: 'iface',
    type: 'array',
    default: [],
    group: 'interface',
    describe: 'interface to use (IP or name) for inter-host communication; repeatable',
  },
  {
    name: 'iface-regex',
    type: 'array',
    default: [],
    group: 'interface',
    describe: 'regex expression to match the first interface to use (IP or name); repeatable',
  },
  {
    name: 'iface-can-reach',
    type: 'string',
    group: 'interface',
    describe: 'detect the interface by the route used to reach this address',
  },
  {
    name: 'public-ip',
    type: 'string',
    group: 'interface',
    describe: 'IP accessible by other nodes for inter-host communication',
  },
  {
    name: 'public-ipv6',
    type: 'string',
    group: 'interface',
    describe: 'IPv6 accessible by other nodes for inter-host communication',
  },
  {
    name: 'subnet-file',
    type: 'string',
    default: '/run/flannel/subnet.env',
    group: 'files',
    describe: 'filename where env variables (subnet, MTU, ...) will be written to',
  },
  {
    name: 'cni-conf-file',
    type: 'string',
    default: '/etc/cni/net.d/10-weft.conflist',
    group: 'files',
    describe: 'where the bridge CNI conflist is written ("" disables)',
    weft: true,
  },
  {
    name: 'cni-ipam-data-dir',
    type: 'string',
    group: 'files',
    describe: 'host-local IPAM dataDir in the written conflist',
    weft: true,
  },
  {
    name: 'subnet-lease-renew-margin',
    type: 'number',
    default: 60,
    group: 'general',
    describe: 'subnet lease renewal margin, in minutes (1..1439)',
  },
  {
    name: 'ip-masq',
    type: 'boolean',
    default: false,
    group: 'firewall',
    describe: 'setup IP masquerade rule for traffic destined outside of overlay network',
  },
  {
    name: 'iptables-resync',
    type: 'number',
    default: 5,
    group: 'firewall',
    describe: 'resync period for iptables rules, in seconds',
  },
  {
    name: 'iptables-forward-rules',
    type: 'boolean',
    default: true,
    group: 'firewall',
    describe: 'add default accept rules to FORWARD chain in iptables',
  },
  {
    name: 'tunnel-notrack',
    type: 'boolean',
    default: false,
    group: 'firewall',
    describe:
      "exempt the tunnel's outer UDP packets (vxlan, udp backends) from conntrack with raw-table NOTRACK rules (halves the conntrack entries tunnelled flows take)",
    weft: true,
  },
  ...HEALTH_FLAGS,
  {
    name: 'extension-command-timeout',
    type: 'number',
    default: 30,
    group: 'general',
    describe: "extension backend: each of the network config's commands is killed after N seconds",
    weft: true,
  },
  {
    name: 'resync-interval',
    type: 'number',
    default: 30,
    group: 'general',
    describe: 'reconcile kernel state against the leases every N seconds',
    weft: true,
  },
  {
    name: 'probe-interval',
    type: 'number',
    default: 10,
    group: 'health',
    describe: 'probe every peer through the overlay every N seconds (0 = off)',
    weft: true,
  },
  {
    name: 'expose-status',
    type: 'boolean',
    default: false,
    group: 'health',
    describe:
      'serve /status and the per-peer metrics (the peer inventory) to other hosts too; by default only local clients get them',
    weft: true,
  },
  {
    name: 'log-level',
    type: 'string',
    default: 'info',
    group: 'general',
    describe: 'log level: trace, debug, info, warn, error, fatal',
    weft: true,
  },
];

/** The validated daemon options. */
export interface DaemonOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdKeyfile?: string;
  etcdCertfile?: string;
  etcdCafile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
  kubeSubnetMgr: boolean;
  kubeApiUrl?: string;
  kubeconfigFile?: string;
  kubeAnnotationPrefix: string;
  netConfigPath: string;
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach?: string;
  publicIp?: string;
  publicIpv6?: string;
  subnetFile: string;
  cniConfFile: string;
  cniIpamDataDir?: string;
  subnetLeaseRenewMargin: number;
  ipMasq: boolean;
  iptablesResync: number;
  iptablesForwardRules: boolean;
  /**
   * Raw-table NOTRACK for the tunnel's outer packets (weft's own; default off: the raw hooks cost every packet
   * ~8% pod-to-pod throughput where nothing else uses conntrack, and gained nothing measurable where it is used).
   */
  tunnelNotrack: boolean;
  healthzIp: string;
  healthzPort: number;
  resyncInterval: number;
  probeInterval: number;
  /** Serve the peer inventory (`/status`, per-peer metrics) to clients on other hosts (`--expose-status`). */
  exposeStatus: boolean;
  /** Seconds an extension backend command may run. */
  extensionCommandTimeout: number;
  logLevel: string;
}

export class OptionError extends Error {
  override name = 'OptionError';
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(`--${flag}: ${message}`);
  }
}

/** `etcd-endpoints` → `FLANNELD_ETCD_ENDPOINTS` (and the `WEFT_` twin). */
export function envNameOf(prefix: 'FLANNELD' | 'WEFT', flag: string): string {
  return `${prefix}_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Values from the environment for flags not given on the command line, as flannel does.
 * WEFT_* wins over FLANNELD_* when both are set. Returns raw strings keyed by flag name.
 */
export function flagsFromEnv(flags: FlagSpec[], env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of flags) {
    const value = env[envNameOf('WEFT', f.name)] ?? env[envNameOf('FLANNELD', f.name)];
    if (value === undefined || value === '') continue;
    if (f.type === 'array')
      out[f.name] = value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (f.type === 'boolean') {
      if (!/^(true|false|1|0)$/i.test(value)) {
        throw new OptionError(
          f.name,
          `environment ${envNameOf('FLANNELD', f.name)}=${JSON.stringify(value)} is not a boolean`,
        );
      }
      out[f.name] = /^(true|1)$/i.test(value);
    } else if (f.type === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n))
        throw new OptionError(f.name, `environment value ${JSON.stringify(value)} is not a number`);
      out[f.name] = n;
    } else out[f.name] = value;
  }
  return out;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function intIn(flag: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OptionError(
      flag,
      `expected an integer between ${min} and ${max}, found ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function optionalString(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
}

function stringList(flag: string, value: unknown): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  // "--iface a,b" is accepted like flannel's string slice flags.
  return list
    .flatMap((v) => String(v).split(','))
    .map((v) => v.trim())
    .filter((v) => {
      if (v === '') throw new OptionError(flag, 'empty value');
      return true;
    });
}

/** `--etcd-prefix`: must start with "/"; trailing slashes dropped (flannel's path.Join). weftd and weftctl both use it. */
export function parseEtcdPrefix(text: string): string {
  if (!text.startsWith('/'))
    throw new OptionError('etcd-prefix', `must start with "/", found ${JSON.stringify(text)}`);
  return text.replace(/\/+$/, '') || '/';
}

/** Validates the merged (argv > env > defaults) flag values into DaemonOptions. */
export function toDaemonOptions(values: Record<string, unknown>): DaemonOptions {
  const endpoints = String(values['etcd-endpoints'] ?? DEFAULT_ETCD_ENDPOINTS)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (endpoints.length === 0) throw new OptionError('etcd-endpoints', 'at least one endpoint is required');
  for (const ep of endpoints) {
    let url: URL;
    try {
      url = new URL(ep);
    } catch {
      throw new OptionError(
        'etcd-endpoints',
        `${JSON.stringify(redactUrlCredentials(ep))} is not a URL (expected http(s)://host:port)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new OptionError(
        'etcd-endpoints',
        `${JSON.stringify(redactUrlCredentials(ep))} must use http:// or https://`,
      );
    }
  }
  const etcdPrefix = parseEtcdPrefix(String(values['etcd-prefix'] ?? DEFAULT_ETCD_PREFIX));

  const publicIp = optionalString(values['public-ip']);
  if (publicIp !== undefined && !isIp(publicIp, 4))
    throw new OptionError('public-ip', `${JSON.stringify(publicIp)} is not an IPv4 address`);
  const publicIpv6 = optionalString(values['public-ipv6']);
  if (publicIpv6 !== undefined && !isIp(publicIpv6, 6)) {
    throw new OptionError('public-ipv6', `${JSON.stringify(publicIpv6)} is not an IPv6 address`);
  }
  const ifaceCanReach = optionalString(values['iface-can-reach']);
  if (ifaceCanReach !== undefined && !isIp(ifaceCanReach)) {
    throw new OptionError('iface-can-reach', `${JSON.stringify(ifaceCanReach)} is not an IP address`);
  }
  const ifaceRegex = stringList('iface-regex', values['iface-regex']);
  for (const re of ifaceRegex) {
    try {
      new RegExp(re);
    } catch (err) {
      throw new OptionError(
        'iface-regex',
        `${JSON.stringify(re)} is not a valid regular expression: ${(err as Error).message}`,
      );
    }
  }
  const healthzIp = String(values['healthz-ip'] ?? '0.0.0.0');
  if (!isIp(healthzIp))
    throw new OptionError('healthz-ip', `${JSON.stringify(healthzIp)} is not an IP address`);
  const logLevel = String(values['log-level'] ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel))
    throw new OptionError('log-level', `must be one of ${LOG_LEVELS.join(', ')}`);
  const subnetFile = String(values['subnet-file'] ?? '/run/flannel/subnet.env');
  if (subnetFile === '') throw new OptionError('subnet-file', 'must not be empty');

  return {
    etcdEndpoints: endpoints,
    etcdPrefix,
    etcdKeyfile: optionalString(values['etcd-keyfile']),
    etcdCertfile: optionalString(values['etcd-certfile']),
    etcdCafile: optionalString(values['etcd-cafile']),
    etcdUsername: optionalString(values['etcd-username']),
    etcdPassword: optionalString(values['etcd-password']),
    kubeSubnetMgr: values['kube-subnet-mgr'] === true,
    kubeApiUrl: optionalString(values['kube-api-url']),
    kubeconfigFile: optionalString(values['kubeconfig-file']),
    kubeAnnotationPrefix: String(values['kube-annotation-prefix'] ?? 'flannel.alpha.coreos.com'),
    netConfigPath: String(values['net-config-path'] ?? '/etc/kube-flannel/net-conf.json'),
    iface: stringList('iface', values.iface),
    ifaceRegex,
    ifaceCanReach,
    publicIp,
    publicIpv6,
    subnetFile,
    cniConfFile: String(values['cni-conf-file'] ?? ''),
    cniIpamDataDir: optionalString(values['cni-ipam-data-dir']),
    subnetLeaseRenewMargin: intIn(
      'subnet-lease-renew-margin',
      values['subnet-lease-renew-margin'] ?? 60,
      1,
      1439,
    ),
    ipMasq: values['ip-masq'] === true,
    iptablesResync: intIn('iptables-resync', values['iptables-resync'] ?? 5, 1, 86400),
    iptablesForwardRules: values['iptables-forward-rules'] !== false,
    tunnelNotrack: values['tunnel-notrack'] === true,
    healthzIp,
    healthzPort: intIn('healthz-port', values['healthz-port'] ?? 0, 0, 65535),
    resyncInterval: intIn('resync-interval', values['resync-interval'] ?? 30, 1, 86400),
    probeInterval: intIn('probe-interval', values['probe-interval'] ?? 10, 0, 3600),
    exposeStatus: values['expose-status'] === true,
    extensionCommandTimeout: intIn(
      'extension-command-timeout',
      values['extension-command-timeout'] ?? 30,
      1,
      3600,
    ),
    logLevel,
  };
}
