#!/usr/bin/env node
import { describeError, helpWidth } from './cli.js';
import { configCommands } from './commands/config.js';
import { runWeftctl } from './commands/dispatch.js';
import { processIo } from './commands/io.js';
import { leasesCommand } from './commands/leases.js';
import { statusCommand } from './commands/status.js';

/** weftctl: inspect leases and config in etcd, and a running weftd's status. */
async function main(): Promise<void> {
  process.exitCode = await runWeftctl(
    process.argv.slice(2),
    processIo,
    [leasesCommand(), ...configCommands(), statusCommand()],
    { config: 'read or write the network config in etcd' },
    helpWidth(),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`weftctl: ${describeError(err)}\n`);
  process.exit(1);
});
