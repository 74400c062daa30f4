#!/usr/bin/env -S node --max-semi-space-size=1
// The shebang's node flags are weftd's memory settings (docs/memory.md): a young generation of 1 MiB semi-spaces
// instead of up to 16 MiB keeps ~15 MiB idle and ~30 MiB at 5000 peers off the resident set. The systemd unit, the
// image and the DaemonSet start weftd through this file, so they all get them; `node dist/daemon/weftd.js` does not.
import { dirname } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { OptionError, toDaemonOptions, WEFTD_FLAGS } from '../src/config/options.js';
import { describeError, envConfig, packageVersion, registerFlags, usageExit } from './cli.js';

async function main(): Promise<void> {
  let fromEnv: Record<string, unknown>;
  try {
    fromEnv = envConfig(WEFTD_FLAGS);
  } catch (err) {
    usageExit(`weftd: ${describeError(err)}`);
  }
  const parser = registerFlags(
    yargs(hideBin(process.argv))
      .scriptName('weftd')
      .usage(
        'weftd [flags]\n\nA flanneld-compatible overlay network daemon. Every flag can also be set as FLANNELD_<FLAG> or WEFT_<FLAG> (e.g. FLANNELD_ETCD_ENDPOINTS).',
      )
      .version(packageVersion())
      .help()
      .alias('h', 'help')
      .strict()
      .wrap(Math.min(120, process.stdout.columns || 100))
      .config(fromEnv)
      .fail((msg, err) => usageExit(`weftd: ${msg || describeError(err)}`)),
    WEFTD_FLAGS,
  );
  const argv = await parser.parseAsync();
  let options: ReturnType<typeof toDaemonOptions>;
  try {
    options = toDaemonOptions(argv as Record<string, unknown>);
  } catch (err) {
    if (err instanceof OptionError) usageExit(`weftd: ${err.message}`);
    throw err;
  }
  // Before the daemon's modules load (half of weftd's start-up): a restarted udp node forwards again at once.
  const { resumeUdpDataPath } = await import('../src/backend/udp/resume.js');
  await resumeUdpDataPath(undefined, dirname(options.subnetFile));
  const { runDaemon } = await import('../src/daemon.js');
  const code = await runDaemon(options, testSettings(process.env));
  process.exit(code);
}

/**
 * Test-only settings, honoured only with WEFT_TEST=1 (the test kit sets it): `WEFT_TEST_LEASE_TTL_SECONDS`
 * gives the etcd lease a TTL of that many seconds (renewed at half of it, a failed renewal retried after 1 s)
 * so a test can stop etcd past the lease's expiry. Never a flag: production leases live 24 h as flannel's.
 */
function testSettings(env: NodeJS.ProcessEnv): import('../src/daemon.js').DaemonTesting {
  const raw = env.WEFT_TEST === '1' ? env.WEFT_TEST_LEASE_TTL_SECONDS : undefined;
  if (raw === undefined) return {};
  const ttl = Number(raw);
  if (!Number.isInteger(ttl) || ttl < 2 || ttl > 86_400)
    usageExit(
      `weftd: WEFT_TEST_LEASE_TTL_SECONDS: expected whole seconds 2..86400, found ${JSON.stringify(raw)}`,
    );
  return { etcdLeaseTiming: { leaseTtlSeconds: ttl, renewMarginSeconds: ttl / 2, renewRetryMs: 1_000 } };
}

main().catch((err: unknown) => {
  process.stderr.write(`weftd: fatal: ${describeError(err)}\n`);
  process.exit(1);
});
