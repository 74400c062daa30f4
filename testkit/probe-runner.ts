// Runs testkit/probe-child.js (built into dist-dev) inside a network namespace for the probe benches and
// collects its `stopped` line: echoes sent, packets each socket delivered to JavaScript, event-loop delay,
// CPU time and metric series. The child is registered with the run's sweeper and ended by its PID.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerProcess, unregisterProcess } from './run.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'probe-child.js');

export interface ProbeChildTotals {
  elapsedMs: number;
  beats: number;
  sent: number;
  sockets: { family: 4 | 6; kernelFilter: boolean; received: number }[];
  cpuMs: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  series: number;
  weftSeries: number;
  peerSeries: number;
  healthy: number;
  unhealthy: number;
}

export interface RunningProbeChild {
  /** The `started` line's fields (e.g. `url` of its health server). */
  started: Promise<Record<string, unknown>>;
  /** Resolves with the totals once the child stopped (its `--duration-ms`, or `stop()`). */
  totals: Promise<ProbeChildTotals>;
  stop(): void;
}

/** Starts the probe child in `netns` with `args` (see probe-child.ts). */
export function startProbeChild(netns: string, args: string[]): RunningProbeChild {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, CHILD, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid !== undefined) registerProcess(pid);
  let stderr = '';
  let buffered = '';
  let onStarted: (v: Record<string, unknown>) => void = () => undefined;
  const started = new Promise<Record<string, unknown>>((resolve) => {
    onStarted = resolve;
  });
  let stopped: ProbeChildTotals | undefined;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
      buffered = buffered.slice(nl + 1);
      if (line.event === 'started') onStarted(line);
      if (line.event === 'stopped') stopped = line as unknown as ProbeChildTotals;
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const totals = new Promise<ProbeChildTotals>((resolve, reject) => {
    child.on('exit', (code) => {
      if (pid !== undefined) unregisterProcess(pid);
      if (stopped !== undefined) resolve(stopped);
      else reject(new Error(`probe child in ${netns} exited ${code} without totals:\n${stderr}`));
    });
  });
  return {
    started,
    totals,
    stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}
