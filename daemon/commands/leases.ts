// `weftctl leases`: lists the leases under <etcd-prefix>/subnets/ as a table or JSON. Takes the same
// --etcd-* flags (and FLANNELD_ETCD_* variables) as weftd. Keys or values that cannot be used are listed on
// stderr with the reason; they never stop the listing.
import { type NetworkConfig, parseNetworkConfigText } from '../../src/config/index.js';
import { errorMessage } from '../../src/core/index.js';
import type { LeaseListing } from '../../src/subnet/index.js';
import { ETCD_OPTIONS, type EtcdArgs, withEtcdManager } from './etcd-options.js';
import { type CommandIo, EXIT_OK, OUTPUT_OPTION, processIo, type WeftctlCommand } from './io.js';
import { leaseToJson, renderLeaseTable, sortLeases } from './render/index.js';

export interface LeasesArgs extends EtcdArgs {
  output: 'table' | 'json';
}

/** Runs the command; resolves with the exit code. Never throws. */
export function runLeases(args: LeasesArgs, io: CommandIo): Promise<number> {
  return withEtcdManager('leases', args, io, async (manager, prefix) => {
    // Leases are checked against the network config when there is a valid one; without it, every
    // well-formed lease is shown.
    let config: NetworkConfig | undefined;
    const text = await manager.store.getConfigText();
    if (text === undefined) {
      io.stderr(
        `weftctl leases: warning: ${prefix}/config does not exist; leases are not checked against a network\n`,
      );
    } else {
      try {
        config = parseNetworkConfigText(text, `${prefix}/config`);
      } catch (err) {
        io.stderr(
          `weftctl leases: warning: ${prefix}/config is invalid (${errorMessage(err)}); leases are not checked against it\n`,
        );
      }
    }
    const listing: LeaseListing = await manager.listLeases(config);
    for (const s of listing.skipped) io.stderr(`weftctl leases: skipped ${s.key}: ${s.reason}\n`);
    const now = io.now?.() ?? new Date();
    if (args.output === 'json') {
      const doc = {
        prefix,
        revision: listing.revision.toString(),
        leases: sortLeases(listing.leases).map((l) => leaseToJson(l, now)),
        skipped: listing.skipped,
      };
      io.stdout(`${JSON.stringify(doc, null, 2)}\n`);
    } else if (listing.leases.length === 0) {
      io.stdout(`no leases under ${prefix}/subnets/\n`);
    } else {
      io.stdout(renderLeaseTable(listing.leases, now));
    }
    return EXIT_OK;
  });
}

/** The command; `io` defaults to the process's streams and environment. */
export function leasesCommand(io: CommandIo = processIo): WeftctlCommand {
  return {
    path: ['leases'],
    describe: 'list the subnet leases in etcd: subnet, public IP, backend, VTEP MAC, expiry or reservation',
    options: [...ETCD_OPTIONS, OUTPUT_OPTION],
    run: (values) => runLeases(values as unknown as LeasesArgs, io),
  };
}

export { type CommandIo, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, processIo } from './io.js';
