// The demo itself: claim the prefix (state file), build the cluster with the weft-cluster fixture, make pods,
// measure (ping matrix, iperf3, weftctl status, leases), show it all, then tear down or leave it for --keep.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseStatusDoc } from '../daemon/commands/render/index.js';
import type { StatusDoc } from '../src/observe/status.js';
import { DEFAULT_CNI_PATH, ETCD_HOST_IP4, liveResources, type Pod, sleep } from '../testkit/index.js';
import { cleanupRunSync, unregisterNamespace, unregisterProcess, unregisterTempDir } from '../testkit/run.js';
import {
  HEALTHZ_PORT,
  REPO_ROOT,
  startWeftCluster,
  WEFTCTL,
  type WeftCluster,
  type WeftClusterStep,
} from '../testkit/weft-cluster.js';
import { DEFAULT_DEMO_PREFIX, type DemoDownOptions, type DemoRunOptions } from './options.js';
import {
  countLeaseKeys,
  heading,
  type MatrixPod,
  type PingCell,
  pairKey,
  renderIperf,
  renderKeepHelp,
  renderLeases,
  renderPingMatrix,
  renderStatusError,
  renderStatusSummary,
  summarizeMatrix,
} from './render.js';
import {
  createStateExclusive,
  type DemoState,
  type DemoStatus,
  newDemoState,
  readDemoStatus,
  removeStateIfOwnedBy,
  statePath,
  writeState,
} from './state.js';
import {
  hasDemoLeftovers,
  namespaceExistsSync,
  stopProcesses,
  type TeardownReport,
  teardownDemo,
} from './teardown.js';
import { formatSeconds, StepReporter, type Style } from './terminal.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Another demo of the same prefix is running or kept. */
export const EXIT_BUSY = 3;

const PINGS_PER_PAIR = 2;
const PING_CONCURRENCY = 8;
const IPERF_SECONDS = 2;

export interface DemoIo {
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  style: Style;
}

/** The command that tears down a kept demo, with the prefix when it is not the default. */
export function downCommand(prefix: string): string {
  return prefix === DEFAULT_DEMO_PREFIX
    ? 'npm run demo -- --down'
    : `WEFT_DEMO_PREFIX=${prefix} npm run demo -- --down`;
}

function describeBusy(status: DemoStatus, prefix: string): string {
  if (status.kind === 'running') {
    const s = status.state;
    return (
      `A weft demo is already running (pid ${s.owner.pid}, ${s.backend}, started ${s.startedAt}).\n` +
      `Wait for it to finish, press Ctrl-C in its terminal, or stop it with: ${downCommand(prefix)}`
    );
  }
  if (status.kind === 'kept') {
    const s = status.state;
    return (
      `A weft demo started with --keep is still up (${s.backend}, started ${s.startedAt}, ` +
      `nodes ${s.nodes.map((n) => n.netns).join(', ') || '?'}).\n` +
      `Explore it, or tear it down first with: ${downCommand(prefix)}`
    );
  }
  return '';
}

function describeTeardown(r: TeardownReport): string {
  if (r.processes + r.namespaces + r.tempDirs === 0) return 'nothing was left';
  return `${r.processes} processes, ${r.namespaces} namespaces, ${r.tempDirs} temp dirs`;
}

function findInPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir !== '' && fs.existsSync(path.join(dir, cmd))) return true;
  }
  return false;
}

/** What the demo needs before it touches anything: root, the Debian tools, a built weftd. */
export function preflightProblems(): string[] {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) {
    problems.push(
      'the demo needs root (it creates network namespaces): run it as root, e.g. sudo npm run demo',
    );
  }
  const missing: string[] = [];
  for (const file of ['/usr/bin/etcd', '/usr/bin/etcdctl', path.join(DEFAULT_CNI_PATH, 'bridge')]) {
    if (!fs.existsSync(file)) missing.push(file);
  }
  for (const cmd of ['ip', 'iptables', 'iperf3', 'ping']) if (!findInPath(cmd)) missing.push(cmd);
  if (missing.length > 0) {
    problems.push(`missing ${missing.join(', ')}: run \`npm run setup\` (npm run demo runs it first)`);
  }
  for (const file of [path.join(REPO_ROOT, 'dist/daemon/weftd.js'), WEFTCTL]) {
    if (!fs.existsSync(file)) problems.push(`${file} is missing: run \`npm run build\``);
  }
  return problems;
}

/** Everything a running demo holds, so a signal handler can tear it down. */
export class DemoSession {
  cluster: WeftCluster | undefined;
  /** Set once the state file is ours. */
  owned: DemoState | undefined;
  interrupted: NodeJS.Signals | undefined;
  /** --keep handed the cluster over to the state file: nothing of it is ours to remove any more. */
  detached = false;
  readonly reporter: StepReporter;

  constructor(
    readonly io: DemoIo,
    readonly stateFile: string,
  ) {
    this.reporter = new StepReporter(io.out, io.style);
  }

  /** Tears down what this process made and releases the state file. Safe to call more than once. */
  async teardown(graceMs = 15_000): Promise<void> {
    if (this.detached) return;
    if (this.cluster) {
      const cluster = this.cluster;
      await Promise.race([cluster.destroy().catch(() => undefined), sleep(graceMs)]);
    }
    // Whatever a half-built cluster registered with the harness (or destroy() did not get to).
    cleanupRunSync();
    this.releaseState();
  }

  releaseState(): void {
    if (this.owned) removeStateIfOwnedBy(this.stateFile, this.owned.owner);
    this.owned = undefined;
  }
}

/**
 * Claims the prefix: creates the state file, or reports the demo that holds it, or cleans up after a crashed
 * one and tries again. Returns an exit code when the demo must not go on.
 */
async function claimPrefix(opts: DemoRunOptions, session: DemoSession): Promise<number | undefined> {
  const { err, style } = session.io;
  for (let attempt = 0; attempt < 3; attempt++) {
    const state = newDemoState(opts.prefix, opts.backend);
    if (createStateExclusive(session.stateFile, state)) {
      session.owned = state;
      // Leftovers with no state file at all (it was removed by hand, or /run was wiped).
      if (await hasDemoLeftovers(opts.prefix)) {
        session.reporter.begin('clean up leftovers of an earlier demo');
        const report = await teardownDemo(opts.prefix, null);
        session.reporter.done(describeTeardown(report));
      }
      return undefined;
    }
    const status = readDemoStatus(session.stateFile, namespaceExistsSync);
    if (status.kind === 'running' || status.kind === 'kept') {
      err.write(`${style.red('weft demo:')} ${describeBusy(status, opts.prefix)}\n`);
      return EXIT_BUSY;
    }
    if (status.kind === 'stale') {
      const owner = status.state?.owner;
      const what =
        status.state === null
          ? `an unreadable ${session.stateFile}`
          : status.state.mode === 'kept'
            ? 'a kept demo whose processes and namespaces are gone'
            : `a crashed demo (pid ${owner?.pid ?? '?'})`;
      session.reporter.begin(`clean up leftovers of ${what}`);
      const report = await teardownDemo(opts.prefix, status.state);
      removeStateIfOwnedBy(session.stateFile, owner ?? null);
      session.reporter.done(describeTeardown(report));
    }
    // 'none': it vanished between our create and our read; just try again.
  }
  err.write(
    `${style.red('weft demo:')} could not claim ${session.stateFile}: another demo keeps taking it\n`,
  );
  return EXIT_BUSY;
}

const STEP_LABELS = (opts: DemoRunOptions): Record<WeftClusterStep, string> => ({
  network: `underlay, ${opts.nodes} node namespaces, etcd host ${ETCD_HOST_IP4}`,
  config: `network config → etcd (Backend ${opts.backend})`,
  weftd: `start weftd on ${Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`).join(' ')}`,
  ready: 'leases taken, subnet.env + conflist written',
});

/** Runs `fn` over `items` with at most `limit` at once, results in order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function pingMatrix(c: WeftCluster, pods: readonly Pod[]): Promise<Map<string, PingCell>> {
  const pairs = pods.flatMap((from) => pods.filter((to) => to !== from).map((to) => ({ from, to })));
  const results = await mapLimited(pairs, PING_CONCURRENCY, async ({ from, to }) => ({
    key: pairKey(from.name, to.name),
    r: await c.net.ping(from, to.ip, { count: PINGS_PER_PAIR, timeoutSec: 3 }),
  }));
  return new Map(
    results.map(({ key, r }) => [key, { transmitted: r.transmitted, received: r.received, rttMs: r.rttMs }]),
  );
}

async function weftctlStatus(c: WeftCluster, i: number): Promise<StatusDoc> {
  const node = c.net.nodes[i]!;
  const r = await node.exec(process.execPath, [
    WEFTCTL,
    'status',
    '--healthz-port',
    String(HEALTHZ_PORT),
    '-o',
    'json',
  ]);
  if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
  return parseStatusDoc(JSON.parse(r.stdout));
}

/** The state with what the cluster runs now (processes by role, namespaces, temp dirs, nodes, pods). */
function stateOfCluster(base: DemoState, c: WeftCluster, pods: readonly Pod[]): DemoState {
  const live = liveResources();
  const roles = new Map<number, string>();
  if (c.net.hasEtcd) roles.set(c.net.etcd.pid, 'etcd');
  for (const w of c.weftNodes) if (w.weftd) roles.set(w.weftd.pid, `weftd ${w.node.name}`);
  return {
    ...base,
    processes: live.processes.map((p) => ({ ...p, role: roles.get(p.pid) ?? 'other' })),
    namespaces: live.namespaces,
    tempDirs: live.tempDirs,
    nodes: c.weftNodes.map((w, i) => ({
      name: w.node.name,
      netns: w.node.netns,
      underlayIp: w.node.underlayIp,
      subnet: c.subnetEnv(i).FLANNEL_SUBNET ?? '',
      logFile: w.logFile,
    })),
    pods: pods.map((p) => ({ name: p.name, netns: p.netns, node: p.node.name, ip: p.ip })),
    etcdEndpoint: c.etcdEndpoint,
  };
}

/** Hands the running cluster over to the state file and forgets it in the harness, so exiting leaves it up. */
function detach(session: DemoSession, c: WeftCluster, pods: readonly Pod[]): void {
  const owned = session.owned;
  if (!owned) return;
  const state: DemoState = { ...stateOfCluster(owned, c, pods), mode: 'kept' };
  writeState(session.stateFile, state);
  session.detached = true;
  session.owned = undefined;
  for (const p of state.processes) unregisterProcess(p.pid);
  for (const ns of state.namespaces) unregisterNamespace(ns);
  for (const dir of state.tempDirs) unregisterTempDir(dir);
}

/** The whole demo. Resolves with the exit code; a signal is handled by the caller through `session`. */
export async function runDemo(opts: DemoRunOptions, session: DemoSession): Promise<number> {
  const { out, err, style } = session.io;
  const problems = preflightProblems();
  if (problems.length > 0) {
    for (const p of problems) err.write(`${style.red('weft demo:')} ${p}\n`);
    return EXIT_FAILED;
  }
  const early = readDemoStatus(session.stateFile, namespaceExistsSync);
  if (early.kind === 'running' || early.kind === 'kept') {
    err.write(`${style.red('weft demo:')} ${describeBusy(early, opts.prefix)}\n`);
    return EXIT_BUSY;
  }
  const podsTotal = opts.nodes * opts.podsPerNode;
  out.write(
    `${style.bold('weft demo')}  ${style.dim(
      `${opts.nodes} nodes × ${opts.podsPerNode} pod${opts.podsPerNode === 1 ? '' : 's'}, ${opts.backend} backend, etcd on its own host` +
        (opts.keep ? ', --keep' : ''),
    )}\n\n`,
  );
  const busy = await claimPrefix(opts, session);
  if (busy !== undefined) return busy;

  const reporter = session.reporter;
  const labels = STEP_LABELS(opts);
  const started = Date.now();
  let failures = 0;
  try {
    const c = await startWeftCluster({
      nodes: opts.nodes,
      netConf: { Network: '10.244.0.0/16', Backend: { Type: opts.backend } },
      // wireguard-go's sockets live in /run/wireguard: each node needs its own (a mount namespace), and its
      // own key file.
      ...(opts.backend === 'wireguard'
        ? {
            mountNamespaces: true,
            weftdEnv: (node: { dir: string }) => ({
              WIREGUARD_KEY_FILE: path.join(node.dir, 'run/flannel/wgkey'),
            }),
          }
        : {}),
      onStep: (step) => reporter.begin(labels[step]),
    });
    session.cluster = c;
    reporter.done();
    // Recorded for a later run in case this one crashes (it finds the rest by name too).
    if (session.owned) {
      session.owned = stateOfCluster(session.owned, c, []);
      writeState(session.stateFile, session.owned);
    }

    const plugins =
      (c.conflist(0).plugins as Array<{ type?: unknown }> | undefined)?.map((p) => String(p.type)) ?? [];
    reporter.begin(`${podsTotal} pods via weftd's conflist (${plugins.join(', ')})`);
    const pods = await c.addPods(opts.podsPerNode);
    reporter.done();
    const clusterMs = Date.now() - started;
    out.write(`  ${style.dim(`cluster up in ${formatSeconds(clusterMs)}`)}\n`);

    const matrixPods: MatrixPod[] = pods.map((p) => ({ name: p.name, ip: p.ip, node: p.node.name }));
    reporter.begin(`ping matrix: ${podsTotal * (podsTotal - 1)} pod pairs × ${PINGS_PER_PAIR} pings`);
    const cells = await pingMatrix(c, pods);
    const summary = summarizeMatrix(matrixPods, cells);
    if (summary.ok === summary.pairs) reporter.done();
    else {
      reporter.fail(`${summary.pairs - summary.ok} pairs lost pings`);
      failures++;
    }

    const iperfFrom = pods[0]!;
    const iperfTo = pods.find((p) => p.node !== iperfFrom.node)!;
    reporter.begin(`iperf3 ${iperfFrom.name} → ${iperfTo.name}, ${IPERF_SECONDS} s`);
    let iperfLine: string;
    try {
      const r = await c.net.iperf(iperfFrom, iperfTo, IPERF_SECONDS);
      reporter.done();
      iperfLine = renderIperf(
        matrixPods[0]!,
        matrixPods[pods.indexOf(iperfTo)]!,
        r.gbps,
        IPERF_SECONDS,
        opts.backend,
        style,
      );
    } catch (e) {
      reporter.fail();
      failures++;
      iperfLine = `  ${style.red(`iperf3 failed: ${(e as Error).message}`)}\n`;
    }

    reporter.begin(`weftctl status on ${opts.nodes} nodes`);
    const statuses = await Promise.all(
      c.weftNodes.map((_, i) =>
        weftctlStatus(c, i).then(
          (doc) => ({ doc, error: undefined }),
          (e: unknown) => ({ doc: undefined, error: (e as Error).message }),
        ),
      ),
    );
    if (statuses.every((s) => s.doc)) reporter.done();
    else {
      reporter.fail();
      failures++;
    }

    reporter.begin('etcdctl get --prefix /coreos.com/network/subnets');
    const leases = await c.etcdctl(['get', '--prefix', '/coreos.com/network/subnets']);
    const leaseCount = countLeaseKeys(leases.stdout);
    if (leaseCount === opts.nodes) reporter.done(`${leaseCount} leases`);
    else {
      reporter.fail(`${leaseCount} leases for ${opts.nodes} nodes`);
      failures++;
    }

    out.write(
      heading(
        'Leases',
        `etcdctl get --prefix /coreos.com/network/subnets (etcd at ${c.etcdEndpoint})`,
        style,
      ),
    );
    out.write(renderLeases(leases.stdout, style));
    out.write(
      heading('Pod-to-pod ping', `RTT in ms, average of ${PINGS_PER_PAIR}; rows ping columns`, style),
    );
    out.write(renderPingMatrix(matrixPods, cells, style));
    out.write(heading('iperf3 across nodes', '', style));
    out.write(iperfLine);
    out.write(
      heading('weftctl status', `per node: subnet, public IP, backend, peers, last reconcile`, style),
    );
    c.weftNodes.forEach((w, i) => {
      const s = statuses[i];
      out.write(
        s?.doc
          ? renderStatusSummary(w.node.name, s.doc, style)
          : renderStatusError(w.node.name, s?.error ?? '?', style),
      );
    });

    if (opts.keep) {
      const device = statuses.find((s) => s.doc?.backend)?.doc?.backend?.device ?? null;
      detach(session, c, pods);
      out.write(
        heading('The demo keeps running', `prefix ${opts.prefix}; state in ${session.stateFile}`, style),
      );
      out.write(
        renderKeepHelp(
          {
            backend: opts.backend,
            device,
            nodes: c.weftNodes.map((w) => ({
              name: w.node.name,
              netns: w.node.netns,
              underlayIp: w.node.underlayIp,
              logFile: w.logFile,
            })),
            pods: matrixPods,
            podNetns: new Map(pods.map((p) => [p.name, p.netns])),
            etcdNetns: `${c.net.base}e`,
            etcdEndpoint: c.etcdEndpoint,
            underlayNetns: c.net.underlayNetns,
            weftctl: displayPath(WEFTCTL),
            healthzPort: HEALTHZ_PORT,
            downCommand: downCommand(opts.prefix),
          },
          style,
        ),
      );
      return failures === 0 ? EXIT_OK : EXIT_FAILED;
    }

    out.write('\n');
    reporter.begin('tear down');
    await session.teardown();
    reporter.done();
    if (failures > 0) err.write(`${style.red('weft demo:')} ${failures} check(s) failed (see above)\n`);
    return failures === 0 ? EXIT_OK : EXIT_FAILED;
  } catch (e) {
    if (session.interrupted) return new Promise<number>(() => undefined); // the signal handler exits
    reporter.fail();
    err.write(`\n${style.red('weft demo failed:')} ${(e as Error).message}\n`);
    reporter.begin('tear down');
    await session.teardown();
    reporter.done();
    return EXIT_FAILED;
  }
}

/** A path relative to the working directory when it is inside it (shorter to copy), else absolute. */
function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/** `--down`: stop a running demo, tear down a kept one or a crashed one's leftovers. */
export async function runDown(opts: DemoDownOptions, io: DemoIo): Promise<number> {
  const { out, err, style } = io;
  if (process.getuid?.() !== 0) {
    err.write(`${style.red('weft demo:')} --down needs root (it deletes network namespaces)\n`);
    return EXIT_FAILED;
  }
  const file = statePath(opts.stateDir, opts.prefix);
  const reporter = new StepReporter(out, style);
  const status = readDemoStatus(file, namespaceExistsSync);
  if (status.kind === 'none') {
    if (!(await hasDemoLeftovers(opts.prefix))) {
      out.write(`No weft demo is up (no ${file}, no ${opts.prefix}* namespaces): nothing to tear down.\n`);
      return EXIT_OK;
    }
    reporter.begin(`tear down leftovers named ${opts.prefix}*`);
    const report = await teardownDemo(opts.prefix, null);
    reporter.done(describeTeardown(report));
    return EXIT_OK;
  }
  if (status.kind === 'running') {
    // Its own signal handler tears down cleanly; we wait, then sweep whatever it could not remove.
    const owner = status.state.owner;
    reporter.begin(`stop the running demo (pid ${owner.pid})`);
    await stopProcesses([owner], 30_000);
    reporter.done();
  }
  const state = status.state;
  reporter.begin(
    status.kind === 'kept' ? `tear down the kept demo (${state?.backend ?? '?'})` : 'tear down what is left',
  );
  const report = await teardownDemo(opts.prefix, state);
  removeStateIfOwnedBy(file, state?.owner ?? null);
  reporter.done(describeTeardown(report));
  return EXIT_OK;
}
