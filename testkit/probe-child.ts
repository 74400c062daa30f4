// weft-probe: runs a `PeerProber` against the given targets and prints one JSON line per probe result and
// per health transition on stdout (logs go to stderr). A debugging tool (`ip netns exec <ns> node
// dist-dev/testkit/probe-child.js --target 10.5.2.0`) and the child process of probe.int.test.ts: a raw socket
// belongs to the network namespace it was created in, so the prober must run inside that namespace.
//
//   node dist-dev/testkit/probe-child.js --target KEY=ADDRESS [--target …] [--interval-ms 1000]
//        [--timeout-ms 500] [--unhealthy-after 3] [--overlay CIDR …] [--duration-ms N]
// SIGTERM/SIGINT (or --duration-ms) stop it; exit 0. Bad arguments: exit 2 with a message.
import { parseArgs } from 'node:util';
import { type Cidr, parseCidr } from '../src/ip/index.js';
import { createLogger } from '../src/log/index.js';
import { PeerProber, type ProbeTarget } from '../src/observe/probe.js';

class UsageError extends Error {
  override name = 'UsageError';
}

function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text))
    throw new UsageError(`${flag} must be a non-negative integer, found ${JSON.stringify(text)}`);
  return Number(text);
}

function parseTarget(text: string): ProbeTarget {
  const eq = text.indexOf('=');
  return eq < 0 ? { key: text, address: text } : { key: text.slice(0, eq), address: text.slice(eq + 1) };
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string', multiple: true },
      'interval-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'unhealthy-after': { type: 'string' },
      overlay: { type: 'string', multiple: true },
      'duration-ms': { type: 'string' },
    },
    strict: true,
  });
  const targets = (values.target ?? []).map(parseTarget);
  if (targets.length === 0) throw new UsageError('give at least one --target KEY=ADDRESS');
  const intervalMs = positiveInt(values['interval-ms'], '--interval-ms', 1000);
  if (intervalMs === 0) throw new UsageError('--interval-ms must be > 0');
  const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms', Math.min(500, intervalMs));
  const unhealthyAfter = positiveInt(values['unhealthy-after'], '--unhealthy-after', 3);
  const durationMs =
    values['duration-ms'] === undefined ? undefined : positiveInt(values['duration-ms'], '--duration-ms', 0);
  let overlayNetworks: Cidr[] | undefined;
  try {
    overlayNetworks = values.overlay?.map((c) => parseCidr(c));
  } catch (err) {
    throw new UsageError(`--overlay: ${err instanceof Error ? err.message : String(err)}`);
  }

  const logger = createLogger({ name: 'weft-probe', destination: process.stderr, pretty: false });
  const emit = (line: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...line })}\n`);
  };
  const prober = new PeerProber({
    logger,
    timeoutMs,
    unhealthyAfter,
    overlayNetworks,
    onResult: (target, rttMs, state) =>
      emit({ event: 'result', key: target.key, address: target.address, rttMs, health: state.health }),
    onTransition: (t) => emit({ event: 'transition', key: t.key, from: t.from, to: t.to }),
  });
  const rejected = prober.setPeers(targets);
  for (const r of rejected)
    emit({ event: 'rejected', key: r.target.key, address: r.target.address, reason: r.reason });

  const controller = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => controller.abort());
  if (durationMs !== undefined) setTimeout(() => controller.abort(), durationMs).unref();
  emit({
    event: 'started',
    targets: targets.length - rejected.length,
    intervalMs,
    timeoutMs,
    unhealthyAfter,
  });
  prober
    .run(intervalMs, controller.signal)
    .then(() => emit({ event: 'stopped' }))
    .catch((err: unknown) => {
      logger.error({ err }, 'prober failed');
      process.exitCode = 1;
    });
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`weft-probe: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
}
