// `npm run demo` flags and environment, parsed and validated in one pure function (no effects).
import { parseArgs } from 'node:util';

export const BACKENDS = ['vxlan', 'host-gw', 'udp', 'wireguard'] as const;
export type DemoBackend = (typeof BACKENDS)[number];

/** Default name prefix of everything the demo creates (namespaces `wdemon1`, temp dirs `/tmp/wdemo-…`). */
export const DEFAULT_DEMO_PREFIX = 'wdemo';
/** Where the demo keeps `<prefix>.json`: who runs the demo, or what a `--keep` demo left running. */
export const DEFAULT_STATE_DIR = '/run/weft-demo';

export const LIMITS = { nodes: { min: 2, max: 8 }, pods: { min: 1, max: 4 } } as const;

export interface DemoRunOptions {
  command: 'run';
  backend: DemoBackend;
  nodes: number;
  podsPerNode: number;
  keep: boolean;
  prefix: string;
  stateDir: string;
}

export interface DemoDownOptions {
  command: 'down';
  prefix: string;
  stateDir: string;
}

export type DemoCommand = DemoRunOptions | DemoDownOptions | { command: 'help' };

/** A flag or environment variable had a value the demo cannot use; the message says which and why. */
export class DemoUsageError extends Error {
  override name = 'DemoUsageError';
}

export const USAGE = `Usage: npm run demo [-- <flags>]

Builds a weft cluster in network namespaces: etcd on its own host, nodes each running a real weftd,
pods made with the real CNI plugins from the conflist weftd wrote. Shows the leases, a pod-to-pod ping
matrix, an iperf3 figure and every node's \`weftctl status\`, then tears everything down. Needs root.

Flags:
  --backend <type>  vxlan (default), host-gw, udp or wireguard (encrypted, on wireguard-go)
  --nodes <n>       number of nodes, ${LIMITS.nodes.min}-${LIMITS.nodes.max} (default 3)
  --pods <n>        pods per node, ${LIMITS.pods.min}-${LIMITS.pods.max} (default 2)
  --keep            leave the cluster running and print how to explore it
  --down            tear down a demo left by --keep (or the leftovers of a crashed one)
  -h, --help        this text

Environment:
  WEFT_DEMO_PREFIX     name prefix of everything the demo makes (default ${DEFAULT_DEMO_PREFIX}; 2-8 of [a-z0-9],
                       starting and ending with a letter)
  WEFT_DEMO_STATE_DIR  where the demo records what runs (default ${DEFAULT_STATE_DIR})
  NO_COLOR             no colors even on a terminal

Exit status: 0 done, 1 the demo failed, 2 bad flags, 3 another demo is up, 130 interrupted (Ctrl-C).
`;

function parseCount(
  flag: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw))
    throw new DemoUsageError(`--${flag} must be a whole number, found ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new DemoUsageError(`--${flag} must be ${min}-${max}, found ${n}`);
  return n;
}

/** Checks a prefix: namespace names like `<prefix>p12` must fit 15 characters and be told apart. */
export function parseDemoPrefix(raw: string | undefined): string {
  if (raw === undefined || raw === '') return DEFAULT_DEMO_PREFIX;
  // Ending in a letter keeps `<prefix><k>n1` (a second cluster base) apart from another prefix's names;
  // not starting with `wt` + 4 hex keeps the test harness's sweeper away from a demo kept running.
  if (!/^[a-z][a-z0-9]{0,6}[a-z]$/.test(raw) || /^wt[0-9a-f]{4}/.test(raw)) {
    throw new DemoUsageError(
      `WEFT_DEMO_PREFIX=${JSON.stringify(raw)} is not usable: expected 2-8 characters of [a-z0-9] starting ` +
        'and ending with a letter (and not wt + 4 hex digits, which the test harness sweeps)',
    );
  }
  return raw;
}

export function parseStateDir(raw: string | undefined): string {
  if (raw === undefined || raw === '') return DEFAULT_STATE_DIR;
  if (!raw.startsWith('/')) {
    throw new DemoUsageError(`WEFT_DEMO_STATE_DIR must be an absolute path, found ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** Parses the demo's argv (without node and the script) and environment. Throws `DemoUsageError`. */
export function parseDemoArgs(argv: readonly string[], env: NodeJS.ProcessEnv): DemoCommand {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        backend: { type: 'string' },
        nodes: { type: 'string' },
        pods: { type: 'string' },
        keep: { type: 'boolean' },
        down: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    // node:util's messages already name the flag ("Unknown option '--x'").
    throw new DemoUsageError((err as Error).message.split('\n')[0] ?? String(err));
  }
  if (values.help === true) return { command: 'help' };
  const prefix = parseDemoPrefix(env.WEFT_DEMO_PREFIX);
  const stateDir = parseStateDir(env.WEFT_DEMO_STATE_DIR);
  if (values.down === true) {
    const extra = ['backend', 'nodes', 'pods', 'keep'].filter((k) => values[k] !== undefined);
    if (extra.length > 0) {
      throw new DemoUsageError(
        `--down takes no other flags (found ${extra.map((k) => `--${k}`).join(', ')})`,
      );
    }
    return { command: 'down', prefix, stateDir };
  }
  const backendRaw = values.backend;
  const backend = backendRaw === undefined ? 'vxlan' : String(backendRaw);
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new DemoUsageError(
      `--backend must be one of ${BACKENDS.join(', ')}, found ${JSON.stringify(backend)}`,
    );
  }
  return {
    command: 'run',
    backend: backend as DemoBackend,
    nodes: parseCount('nodes', values.nodes as string | undefined, 3, LIMITS.nodes.min, LIMITS.nodes.max),
    podsPerNode: parseCount('pods', values.pods as string | undefined, 2, LIMITS.pods.min, LIMITS.pods.max),
    keep: values.keep === true,
    prefix,
    stateDir,
  };
}
