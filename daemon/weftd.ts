#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=10
// The shebang's node flags are weftd's memory settings (docs/memory.md): a young generation of 1 MiB semi-spaces
// instead of up to 16 MiB keeps ~15 MiB idle and ~30 MiB at 5000 peers off the resident set; an old generation
// grown by 10% between full collections (V8 grows a small heap by up to 4×) keeps the garbage of a 5000-peer pass
// from lifting the peak by ~10-25 MiB. The systemd unit, the image and the DaemonSet start weftd through this file,
// so they all get them; their NODE_OPTIONS carry the part node allows there (`--max-semi-space-size`) for a weftd
// started as `node dist/daemon/weftd.js`.
import { dirname } from 'node:path';
import {
  describeError,
  helpWidth,
  packageVersion,
  usageExit,
  type WeftdCommandLine,
  weftdCommandLine,
} from './cli.js';

async function main(): Promise<void> {
  let commandLine: WeftdCommandLine;
  try {
    commandLine = weftdCommandLine(process.argv.slice(2), process.env, helpWidth());
  } catch (err) {
    usageExit(`weftd: ${describeError(err)}`);
  }
  if (commandLine.kind === 'help') {
    process.stdout.write(commandLine.text);
    return;
  }
  if (commandLine.kind === 'version') {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  const { options } = commandLine;
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
