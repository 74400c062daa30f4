// weft-probe: runs a `PeerProber` against the given targets and prints one JSON line per probe result and
// per health transition on stdout (logs go to stderr). A debugging tool (`ip netns exec <ns> node
// dist-dev/testkit/probe-child.js --target 10.5.2.0`) and the child process of probe.int.test.ts and the
// probe benches: a raw socket belongs to the network namespace it was created in, so the prober must run
// inside that namespace.
//
//   node dist-dev/testkit/probe-child.js --target KEY=ADDRESS [--target …] [--interval-ms 1000]
//        [--timeout-ms 500] [--unhealthy-after 3] [--overlay CIDR …] [--duration-ms N]
//        [--target-prefix CIDR --target-count N] [--max-probes-per-second N] [--no-icmp-filter]
//        [--quiet] [--healthz-port N] [--max-peer-series N]
// `--target-prefix` adds N targets (the prefix's addresses from .1 on), `--quiet` prints no per-probe lines
// (benches), `--healthz-port` serves /healthz and /metrics on 127.0.0.1 with the prober's metrics.
// SIGTERM/SIGINT (or --duration-ms) stop it; the last line (`stopped`) carries the totals: echoes sent,
// packets each socket delivered to JavaScript, event-loop delay, CPU time and the metric series count.
// Bad arguments: exit 2 with a message.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { addressAt, type Cidr, formatIp, parseCidr } from '../src/ip/index.js';
import { createLogger } from '../src/log/index.js';
import { HealthState, startEventLoopMonitor } from '../src/observe/health.js';
import { WeftMetrics } from '../src/observe/metrics.js';
import { PeerProber, type ProbeTarget } from '../src/observe/probe/index.js';
import { type ObserveServer, startObserveServer } from '../src/observe/server.js';
import { buildStatusDoc } from '../src/observe/status.js';

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

function prefixTargets(prefixText: string | undefined, count: number): ProbeTarget[] {
  if (prefixText === undefined) {
    if (count > 0) throw new UsageError('--target-count needs --target-prefix');
    return [];
  }
  let prefix: Cidr;
  try {
    prefix = parseCidr(prefixText);
  } catch (err) {
    throw new UsageError(`--target-prefix: ${err instanceof Error ? err.message : String(err)}`);
  }
  return Array.from({ length: count }, (_, i) => {
    const address = formatIp(addressAt(prefix, BigInt(i + 1)));
    return { key: address, address };
  });
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string', multiple: true },
      'target-prefix': { type: 'string' },
      'target-count': { type: 'string' },
      'interval-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'unhealthy-after': { type: 'string' },
      'max-probes-per-second': { type: 'string' },
      'max-peer-series': { type: 'string' },
      overlay: { type: 'string', multiple: true },
      'duration-ms': { type: 'string' },
      'no-icmp-filter': { type: 'boolean' },
      quiet: { type: 'boolean' },
      'healthz-port': { type: 'string' },
    },
    strict: true,
  });
  const targets = [
    ...(values.target ?? []).map(parseTarget),
    ...prefixTargets(values['target-prefix'], positiveInt(values['target-count'], '--target-count', 0)),
  ];
  if (targets.length === 0) throw new UsageError('give at least one --target KEY=ADDRESS');
  const intervalMs = positiveInt(values['interval-ms'], '--interval-ms', 1000);
  if (intervalMs === 0) throw new UsageError('--interval-ms must be > 0');
  const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms', Math.min(500, intervalMs));
  const unhealthyAfter = positiveInt(values['unhealthy-after'], '--unhealthy-after', 3);
  const maxProbesPerSecond =
    values['max-probes-per-second'] === undefined
      ? undefined
      : positiveInt(values['max-probes-per-second'], '--max-probes-per-second', 0);
  const durationMs =
    values['duration-ms'] === undefined ? undefined : positiveInt(values['duration-ms'], '--duration-ms', 0);
  const healthzPort =
    values['healthz-port'] === undefined
      ? undefined
      : positiveInt(values['healthz-port'], '--healthz-port', 0);
  let overlayNetworks: Cidr[] | undefined;
  try {
    overlayNetworks = values.overlay?.map((c) => parseCidr(c));
  } catch (err) {
    throw new UsageError(`--overlay: ${err instanceof Error ? err.message : String(err)}`);
  }
  const quiet = values.quiet === true;

  const logger = createLogger({ name: 'weft-probe', destination: process.stderr, pretty: false });
  const emit = (line: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...line })}\n`);
  };
  const metrics = new WeftMetrics({
    maxPeerSeries:
      values['max-peer-series'] === undefined
        ? undefined
        : positiveInt(values['max-peer-series'], '--max-peer-series', 0),
  });
  let beats = 0;
  const prober = new PeerProber({
    logger,
    intervalMs,
    timeoutMs,
    unhealthyAfter,
    overlayNetworks,
    maxProbesPerSecond,
    kernelFilter: values['no-icmp-filter'] !== true,
    onResult: (target, rttMs, state) => {
      metrics.probeResult(target.key, rttMs, state.lossRatio ?? undefined);
      if (!quiet)
        emit({ event: 'result', key: target.key, address: target.address, rttMs, health: state.health });
    },
    onTransition: (t) => {
      metrics.peerHealth(t.key, t.to);
      if (!quiet) emit({ event: 'transition', key: t.key, from: t.from, to: t.to });
    },
    onTargetRemoved: (key) => metrics.forgetPeer(key),
  });
  const rejected = prober.setTargets(targets);
  for (const r of rejected)
    emit({ event: 'rejected', key: r.target.key, address: r.target.address, reason: r.reason });

  const health = new HealthState();
  const monitor = startEventLoopMonitor(health, 1000);
  let server: ObserveServer | null = null;
  if (healthzPort !== undefined) {
    server = await startObserveServer({
      host: '127.0.0.1',
      port: healthzPort,
      health,
      metrics,
      status: () =>
        buildStatusDoc({ version: 'probe', ownLease: null, backend: null, peers: [], lastReconcile: null }),
      logger,
    });
  }
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const cpuStart = process.cpuUsage();

  const controller = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => controller.abort());
  if (durationMs !== undefined) setTimeout(() => controller.abort(), durationMs).unref();
  emit({
    event: 'started',
    targets: targets.length - rejected.length,
    intervalMs,
    timeoutMs,
    unhealthyAfter,
    maxProbesPerSecond: prober.maxProbesPerSecond,
    url: server?.url ?? null,
  });
  const startedAt = performance.now();
  await prober.run({ signal: controller.signal, beat: () => beats++ });
  const elapsedMs = performance.now() - startedAt;
  delay.disable();
  const cpu = process.cpuUsage(cpuStart);
  const exposition = await metrics.render();
  const series = exposition.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const weftSeries = exposition.split('\n').filter((l) => l.startsWith('weft_')).length;
  const peerSeries = exposition
    .split('\n')
    .filter((l) => l.startsWith('weft_') && l.includes('peer="')).length;
  emit({
    event: 'stopped',
    elapsedMs,
    beats,
    sent: prober.sent,
    sockets: prober.socketStats(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    eventLoopDelayMs: {
      p50: delay.percentile(50) / 1e6,
      p99: delay.percentile(99) / 1e6,
      max: delay.max / 1e6,
    },
    series,
    weftSeries,
    peerSeries,
    unhealthy: [...prober.states().values()].filter((s) => s.health === 'unhealthy').length,
    healthy: [...prober.states().values()].filter((s) => s.health === 'healthy').length,
  });
  monitor.stop();
  await server?.close();
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`weft-probe: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
