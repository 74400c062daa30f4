// `weftctl config get` prints <etcd-prefix>/config; `weftctl config set FILE` validates FILE with the same
// parser weftd uses and writes it only when it is valid (a bad file is refused with the reason and nothing
// is written). Both take weftd's --etcd-* flags.
import * as fs from 'node:fs';
import { type NetworkConfig, networkConfigToJson, parseNetworkConfigText } from '../../src/config/index.js';
import { ETCD_OPTIONS, type EtcdArgs, withEtcdManager } from './etcd-options.js';
import {
  type CommandIo,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  processIo,
  type WeftctlCommand,
} from './io.js';

/** `config set` refuses a bad file with this code (nothing written). */
export const EXIT_INVALID = 3;
/** Largest config file accepted (a real one is a few hundred bytes). */
const MAX_CONFIG_BYTES = 64 * 1024;

export interface ConfigGetArgs extends EtcdArgs {
  effective: boolean;
}

export interface ConfigSetArgs extends EtcdArgs {
  file: string;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Prints the stored config text (or, with `--effective`, the config with weft's defaults filled in). */
export function runConfigGet(args: ConfigGetArgs, io: CommandIo): Promise<number> {
  return withEtcdManager('config get', args, io, async (manager, prefix) => {
    const text = await manager.store.getConfigText();
    if (text === undefined) {
      io.stderr(
        `weftctl config get: ${prefix}/config does not exist (write one with: weftctl config set FILE)\n`,
      );
      return EXIT_UNAVAILABLE;
    }
    if (!args.effective) {
      io.stdout(text.endsWith('\n') ? text : `${text}\n`);
      return EXIT_OK;
    }
    let config: NetworkConfig;
    try {
      config = parseNetworkConfigText(text, `${prefix}/config`);
    } catch (err) {
      io.stderr(`weftctl config get: ${prefix}/config is invalid: ${message(err)}\n`);
      return EXIT_INVALID;
    }
    io.stdout(`${JSON.stringify(networkConfigToJson(config), null, 2)}\n`);
    return EXIT_OK;
  });
}

/** Validates FILE and writes it to `<prefix>/config`; a bad file is refused and nothing is written. */
export async function runConfigSet(args: ConfigSetArgs, io: CommandIo): Promise<number> {
  let text: string;
  try {
    const stat = fs.statSync(args.file);
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > MAX_CONFIG_BYTES) throw new Error(`${stat.size} bytes (at most ${MAX_CONFIG_BYTES})`);
    text = fs.readFileSync(args.file, 'utf8');
  } catch (err) {
    io.stderr(`weftctl config set: cannot read ${args.file}: ${message(err)}\n`);
    return EXIT_USAGE;
  }
  let config: NetworkConfig;
  try {
    config = parseNetworkConfigText(text, args.file);
  } catch (err) {
    io.stderr(`weftctl config set: ${args.file} refused, nothing written: ${message(err)}\n`);
    return EXIT_INVALID;
  }
  return withEtcdManager('config set', args, io, async (manager, prefix) => {
    if (config.unknownKeys.length > 0) {
      io.stderr(
        `weftctl config set: warning: keys weft does not know (ignored): ${config.unknownKeys.join(', ')}\n`,
      );
    }
    // Stored as given (flannel reads the same text); trailing whitespace dropped.
    await manager.store.putConfigText(text.trimEnd());
    io.stdout(`wrote ${prefix}/config\n`);
    return EXIT_OK;
  });
}

/** `weftctl config get` and `weftctl config set <file>`; `io` defaults to the process's streams and environment. */
export function configCommands(io: CommandIo = processIo): WeftctlCommand[] {
  return [
    {
      path: ['config', 'get'],
      describe: 'print the network config stored in etcd (<etcd-prefix>/config)',
      options: [
        ...ETCD_OPTIONS,
        {
          name: 'effective',
          type: 'boolean',
          default: false,
          describe: 'print the config with defaults filled in (SubnetLen, SubnetMin, SubnetMax, Backend)',
        },
      ],
      run: (values) => runConfigGet(values as unknown as ConfigGetArgs, io),
    },
    {
      path: ['config', 'set'],
      describe: 'validate a network config file and write it to etcd (refused with the reason when invalid)',
      options: ETCD_OPTIONS,
      positionals: [{ name: 'file', describe: 'net-conf JSON file' }],
      run: (values, positionals) => runConfigSet({ ...(values as EtcdArgs), file: positionals[0] ?? '' }, io),
    },
  ];
}
