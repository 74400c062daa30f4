// The udp data path across a weftd SIGKILL + restart (issue 13 item 14): a 2-node weft cluster with the udp
// backend, a ping every 5 ms from a pod on node 1 to a pod on node 2, and node 2's weftd killed with SIGKILL
// and started again at once, a few rounds. Per round, from the restarted weftd's spawn:
//   - "weftd starting" (its first log line: Node start-up and module loading),
//   - "udp: data path resumed from the last peer table" or else "… attached" (the engine runs on flannel0
//     with a peer table),
//   - the first ping answered again (node 2 forwards both ways),
//   - "weftd ready";
// and the traffic gap seen by the pinging pod (longest time between two answers, kill included).
//
//   npm run build && npm run build:dev && node dist-dev/bench/udp-restart.js [--rounds 3]
//
// Needs root, etcd, the CNI plugins and the built addon. Everything lives in the cluster's namespaces.
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { resumeStateFile } from '../src/backend/udp/resume.js';
import { lastRunLog, waitFor } from '../testkit/dataplane.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

/** Goal: the data path forwards again within this long of weftd's spawn (Node itself needs ~0.3 s of it). */
const GOAL_FORWARDING_MS = 600;

interface Round {
  starting: number;
  attached: number;
  forwarding: number;
  ready: number;
  gap: number;
}

/** Runs `ping -D` from a pod; resolves with the UNIX-ms times of the answers once ping exits. */
function pingTimes(netns: string, target: string, seconds: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, 'ping', '-D', '-n', '-i', '0.005', '-W', '1', '-w', String(seconds), target],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString();
    });
    child.on('error', reject);
    child.on('exit', () => {
      const times: number[] = [];
      for (const line of out.split('\n')) {
        const m = /^\[(\d+\.\d+)\] \d+ bytes from /.exec(line);
        if (m) times.push(Number(m[1]) * 1000);
      }
      resolve(times);
    });
  });
}

function logTime(c: WeftCluster, node: number, msg: string): number | undefined {
  const record = lastRunLog(c, node).find((r) => r.msg === msg);
  // The resumed engine may start before weftd has a logger: its record says when (startedAt).
  const time = record?.startedAt ?? record?.time;
  if (typeof time === 'number') return time;
  return typeof time === 'string' ? Date.parse(time) : undefined;
}

async function round(c: WeftCluster, from: { netns: string }, to: string, cold: boolean): Promise<Round> {
  const pinging = pingTimes(from.netns, to, 6);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await c.weftNodes[1]!.weftd!.kill();
  // A cold restart: without the saved peer table weftd attaches the engine only after its first pass.
  if (cold) {
    const dir = path.dirname(c.weftNodes[1]!.subnetFile);
    await rm(resumeStateFile(c.weftNodes[1]!.node.underlayIp, 8285, dir), { force: true });
  }
  const killedAt = Date.now();
  const spawnedAt = Date.now();
  await c.startWeftd(1);
  await waitFor(
    'weftd ready after the restart',
    async () => logTime(c, 1, 'weftd ready') !== undefined,
    30_000,
  );
  const answers = await pinging;
  const after = answers.filter((t) => t > killedAt);
  if (after.length === 0) throw new Error('no ping was answered after the restart');
  let gap = 0;
  for (let i = 1; i < answers.length; i++) gap = Math.max(gap, answers[i]! - answers[i - 1]!);
  const since = (t: number | undefined) => (t === undefined ? Number.NaN : t - spawnedAt);
  if (process.env.WEFT_BENCH_TIMELINE === '1') {
    for (const r of lastRunLog(c, 1))
      console.log(`    ${since(Date.parse(String(r.time)))} ms  ${String(r.msg)}`);
  }
  return {
    starting: since(logTime(c, 1, 'weftd starting')),
    attached: since(
      logTime(c, 1, 'udp: data path resumed from the last peer table') ??
        logTime(c, 1, 'udp: data path attached'),
    ),
    forwarding: after[0]! - spawnedAt,
    ready: since(logTime(c, 1, 'weftd ready')),
    gap,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    throw new Error(`--rounds must be an integer 1..20, got ${values.rounds}`);
  }
  const c = await startWeftCluster({
    nodes: 2,
    netConf: { Network: '10.244.0.0/16', Backend: { Type: 'udp' } },
  });
  try {
    const pods = await c.addPods(1);
    const [from, to] = [pods[0]!, pods[1]!];
    await waitFor(
      'the pods to reach each other',
      async () => (await pingTimes(from.netns, to.ip, 1)).length > 0,
      30_000,
    );
    const report = (title: string, results: Round[]) => {
      const median = (pick: (r: Round) => number) => {
        const sorted = results.map(pick).sort((a, b) => a - b);
        return sorted[Math.floor(sorted.length / 2)]!;
      };
      const row = (label: string, value: number, note = '') =>
        console.log(`  ${label.padEnd(34)} ${value.toFixed(0).padStart(6)} ms${note}`);
      console.log(`${title}, ${results.length} rounds, from weftd's spawn (median):`);
      row(
        '"weftd starting" logged',
        median((r) => r.starting),
      );
      row(
        'data path resumed or attached',
        median((r) => r.attached),
      );
      const forwarding = median((r) => r.forwarding);
      row('forwarding again (ping answered)', forwarding);
      row(
        '"weftd ready"',
        median((r) => r.ready),
      );
      row(
        'traffic gap seen by the pod',
        median((r) => r.gap),
        '  (kill included)',
      );
      const rounded = results.map((r) =>
        Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)])),
      );
      console.log(`  rounds: ${JSON.stringify(rounded)}`);
      return forwarding;
    };
    const cold: Round[] = [];
    const resumed: Round[] = [];
    for (let i = 0; i < rounds; i++) {
      cold.push(await round(c, from, to.ip, true));
      resumed.push(await round(c, from, to.ip, false));
    }
    const coldForwarding = report(
      'cold restart (no saved peer table: engine attached after the first pass)',
      cold,
    );
    const forwarding = report(
      'resumed restart (engine on flannel0 from the saved peer table first)',
      resumed,
    );
    const met = forwarding <= GOAL_FORWARDING_MS ? 'met' : 'NOT met';
    console.log(
      `resumed / cold forwarding: ${(forwarding / coldForwarding).toFixed(2)}; resumed forwarding ${forwarding.toFixed(0)} ms, goal <= ${GOAL_FORWARDING_MS} ms: ${met}`,
    );
  } finally {
    await c.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
