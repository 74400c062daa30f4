// The `--etcd-*` flags weftctl's etcd commands share with weftd (same names, defaults and FLANNELD_*/WEFT_*
// environment fallback), and their translation into etcd client options.
import {
  DEFAULT_ETCD_ENDPOINTS,
  DEFAULT_ETCD_PREFIX,
  ETCD_FLAGS,
  flagsFromEnv,
  OptionError,
  parseEtcdPrefix,
} from '../../src/config/options.js';
import { errorMessage } from '../../src/core/index.js';
import {
  checkEndpoints,
  EtcdClientConfigError,
  type EtcdClientOptions,
  EtcdSubnetManager,
} from '../../src/subnet/index.js';
import type { CliOption } from '../flags.js';
import { type CommandIo, EXIT_UNAVAILABLE, EXIT_USAGE } from './io.js';

/** The parsed `--etcd-*` flags (undefined: not given on the command line). */
export interface EtcdArgs {
  'etcd-endpoints'?: string | undefined;
  'etcd-prefix'?: string | undefined;
  'etcd-keyfile'?: string | undefined;
  'etcd-certfile'?: string | undefined;
  'etcd-cafile'?: string | undefined;
  'etcd-username'?: string | undefined;
  'etcd-password'?: string | undefined;
}

/**
 * The `--etcd-*` flags. Defaults are applied by `etcdConnectionFromArgs` (after the environment), not by the
 * parser, so FLANNELD_ETCD_* can fill a flag that was not given.
 */
export const ETCD_OPTIONS: readonly CliOption[] = ETCD_FLAGS.map((f) => {
  const env = `FLANNELD_${f.name.toUpperCase().replace(/-/g, '_')}`;
  const shownDefault = f.default !== undefined && !f.secret ? ` (default ${JSON.stringify(f.default)})` : '';
  return {
    name: f.name,
    type: 'string',
    group: 'etcd:',
    describe: `${f.describe}${shownDefault} [env ${env}]`,
  };
});

/** Where and how to reach etcd, and under which prefix flannel's keys live. */
export interface EtcdConnection {
  client: EtcdClientOptions;
  prefix: string;
}

function given(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
}

/**
 * Turns parsed flags (command line first, then FLANNELD_ / WEFT_ environment variables, then flannel's
 * defaults) into etcd client options. Throws `OptionError` naming the flag for a bad value.
 */
export function etcdConnectionFromArgs(args: EtcdArgs, env: NodeJS.ProcessEnv = process.env): EtcdConnection {
  const fromEnv = flagsFromEnv(ETCD_FLAGS, env);
  const pick = (name: keyof EtcdArgs): string | undefined => given(args[name]) ?? given(fromEnv[name]);
  const endpointsText = pick('etcd-endpoints') ?? DEFAULT_ETCD_ENDPOINTS;
  const endpoints = endpointsText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  try {
    checkEndpoints(endpoints);
  } catch (err) {
    throw new OptionError(
      'etcd-endpoints',
      err instanceof EtcdClientConfigError ? err.message.replace(/^etcd-endpoints: /, '') : String(err),
    );
  }
  const prefix = parseEtcdPrefix(pick('etcd-prefix') ?? DEFAULT_ETCD_PREFIX);
  const ca = pick('etcd-cafile');
  const cert = pick('etcd-certfile');
  const key = pick('etcd-keyfile');
  if ((cert === undefined) !== (key === undefined)) {
    throw new OptionError(
      cert ? 'etcd-keyfile' : 'etcd-certfile',
      'a client certificate needs both --etcd-certfile and --etcd-keyfile',
    );
  }
  const username = pick('etcd-username');
  const password = pick('etcd-password');
  if (password !== undefined && username === undefined) {
    throw new OptionError('etcd-password', 'given without --etcd-username');
  }
  const client: EtcdClientOptions = { endpoints };
  if (ca || cert || key) {
    client.tls = {};
    if (ca) client.tls.ca = ca;
    if (cert) client.tls.cert = cert;
    if (key) client.tls.key = key;
  }
  if (username !== undefined) {
    client.username = username;
    client.password = password ?? '';
  }
  return { client, prefix };
}

/** Per-call deadline for the CLI: fail in seconds when etcd is down, never hang. */
const CLI_CALL_TIMEOUT_MS = 3_000;

/**
 * Runs a weftctl etcd command: builds the manager from the `--etcd-*` flags (a bad flag → exit 2), runs
 * `body`, maps an etcd failure to exit 1 with the endpoints named, and always closes the client.
 */
export async function withEtcdManager(
  command: string,
  args: EtcdArgs,
  io: CommandIo,
  body: (manager: EtcdSubnetManager, prefix: string) => Promise<number>,
): Promise<number> {
  let connection: EtcdConnection;
  let manager: EtcdSubnetManager;
  try {
    connection = etcdConnectionFromArgs(args, io.env);
    manager = new EtcdSubnetManager({
      ...connection.client,
      callTimeoutMs: CLI_CALL_TIMEOUT_MS,
      prefix: connection.prefix,
      renewMargin: 60,
    });
  } catch (err) {
    io.stderr(`weftctl ${command}: ${errorMessage(err)}\n`);
    return EXIT_USAGE;
  }
  try {
    return await body(manager, connection.prefix);
  } catch (err) {
    io.stderr(
      `weftctl ${command}: etcd (${connection.client.endpoints.join(',')}) failed: ${errorMessage(err)}\n`,
    );
    return EXIT_UNAVAILABLE;
  } finally {
    await manager.close();
  }
}
