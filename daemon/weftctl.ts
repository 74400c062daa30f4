#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { describeError, packageVersion, usageExit } from './cli.js';
import { configCommand } from './commands/config.js';
import { leasesCommand } from './commands/leases.js';
import { statusCommand } from './commands/status.js';

/** weftctl: inspect leases and config in etcd, and a running weftd's status. */
async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
    .scriptName('weftctl')
    .usage('weftctl <command> [flags]')
    .command(leasesCommand())
    .command(configCommand())
    .command(statusCommand())
    .demandCommand(1, 'weftctl: name a command (leases, config, status)')
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .strict()
    .wrap(Math.min(120, process.stdout.columns || 100))
    .fail((msg, err) => usageExit(`weftctl: ${msg || describeError(err)}`))
    .parseAsync();
}

main().catch((err: unknown) => {
  process.stderr.write(`weftctl: ${describeError(err)}\n`);
  process.exit(1);
});
