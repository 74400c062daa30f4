// Tearing down a demo that no live process of ours holds: one kept by --keep (`--down`) or the leftovers of a
// crashed one. Works from the state file and from names: every namespace of the prefix, every process inside
// those namespaces (by PID, from `ip netns pids`), the prefix's temp dirs and the harness's marker file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, sleep } from '../testkit/index.js';
import { mountNsFile } from '../testkit/mount-ns.js';
import { isRecordedProcessAlive, MARKER_DIR, type RecordedProcess, recordProcess } from '../testkit/run.js';
import type { DemoState } from './state.js';

/** Names the harness gives a cluster's namespaces: `<base>u`, `<base>e`, `<base>n3`, `<base>h1`, `<base>p12`. */
const SUFFIX = /^(\d*)([uenhp])(\d*)$/;

/** True when `name` is a namespace the demo of `prefix` makes. */
export function isDemoNamespace(prefix: string, name: string): boolean {
  if (!name.startsWith(prefix)) return false;
  const m = SUFFIX.exec(name.slice(prefix.length));
  if (m === null) return false;
  const kind = m[2];
  // u and e have no number; n, h and p always do.
  return kind === 'u' || kind === 'e' ? m[3] === '' : m[3] !== '';
}

/** Pods first (their veths hang off the nodes), then nodes and hosts, the etcd host, the underlay last. */
export function namespaceTeardownOrder(names: readonly string[], prefix: string): string[] {
  const rank = (name: string): number => {
    const kind = SUFFIX.exec(name.slice(prefix.length))?.[2];
    return kind === 'p' ? 0 : kind === 'n' || kind === 'h' ? 1 : kind === 'e' ? 2 : 3;
  };
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export async function listNamespaces(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  // Lines look like `name` or `name (id: 3)`.
  return r.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

export function namespaceExistsSync(name: string): boolean {
  return fs.existsSync(path.join('/run/netns', name));
}

/** PIDs of every process inside a namespace (empty when it is gone). */
async function namespacePids(netns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', netns], { timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

/** The prefix's temp dirs: `<tmpdir>/<prefix>-<label>-XXXXXX` (see the harness's `makeRunTempDir`). */
export function demoTempDirs(prefix: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(os.tmpdir());
  } catch {
    return [];
  }
  return entries
    .filter(
      (e) => e.startsWith(`${prefix}-`) && /^[a-z][a-z0-9]*-[A-Za-z0-9]{6}$/.test(e.slice(prefix.length + 1)),
    )
    .map((e) => path.join(os.tmpdir(), e));
}

function signal(proc: RecordedProcess, sig: NodeJS.Signals): void {
  if (!isRecordedProcessAlive(proc)) return;
  try {
    process.kill(proc.pid, sig);
  } catch {
    // Gone between the check and the signal.
  }
}

/** SIGTERM, wait up to `graceMs` (polling), then SIGKILL whatever still runs. */
export async function stopProcesses(procs: readonly RecordedProcess[], graceMs: number): Promise<void> {
  for (const p of procs) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (procs.some(isRecordedProcessAlive) && Date.now() < deadline) await sleep(50);
  for (const p of procs) signal(p, 'SIGKILL');
  const killDeadline = Date.now() + 3_000;
  while (procs.some(isRecordedProcessAlive) && Date.now() < killDeadline) await sleep(50);
}

/** Whether the harness marker of a run is free to delete: its owner (our demo process) is dead. */
function harnessMarkerIsDead(prefix: string): boolean {
  const file = path.join(MARKER_DIR, `${prefix}.pid`);
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      owner?: { pid?: unknown; startTime?: unknown };
    };
    const pid = parsed.owner?.pid;
    if (typeof pid !== 'number') return true;
    const startTime = typeof parsed.owner?.startTime === 'string' ? parsed.owner.startTime : null;
    return !isRecordedProcessAlive({ pid, startTime });
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

export interface TeardownReport {
  processes: number;
  namespaces: number;
  tempDirs: number;
}

/**
 * Stops every process of the demo (recorded ones and any inside its namespaces), deletes its namespaces and
 * temp dirs and the harness marker of its dead owner. The state file is the caller's to remove.
 */
export async function teardownDemo(prefix: string, state: DemoState | null): Promise<TeardownReport> {
  const namespaces = new Set<string>((await listNamespaces()).filter((n) => isDemoNamespace(prefix, n)));
  for (const ns of state?.namespaces ?? []) if (namespaceExistsSync(ns)) namespaces.add(ns);

  const procs = new Map<number, RecordedProcess>();
  for (const p of state?.processes ?? []) if (isRecordedProcessAlive(p)) procs.set(p.pid, p);
  for (const ns of namespaces) {
    for (const pid of await namespacePids(ns)) if (!procs.has(pid)) procs.set(pid, recordProcess(pid));
  }
  // weftd first so it leaves etcd cleanly, then the rest (etcd, iperf3, shells someone opened in there).
  const all = [...procs.values()];
  const weftds = new Set(
    (state?.processes ?? []).filter((p) => p.role.startsWith('weftd')).map((p) => p.pid),
  );
  await stopProcesses(
    all.filter((p) => weftds.has(p.pid)),
    5_000,
  );
  await stopProcesses(
    all.filter((p) => !weftds.has(p.pid)),
    5_000,
  );

  for (const ns of namespaceTeardownOrder([...namespaces], prefix)) {
    // A wireguard demo node's mount namespace (testkit/mount-ns.ts) goes with its network namespace.
    const mountNs = mountNsFile(ns);
    if (fs.existsSync(mountNs)) {
      await run('umount', [mountNs], { timeoutMs: 10_000 });
      fs.rmSync(mountNs, { force: true });
    }
    await run('ip', ['netns', 'del', ns], { timeoutMs: 10_000 });
  }
  const dirs = new Set([...demoTempDirs(prefix), ...(state?.tempDirs ?? []).filter((d) => fs.existsSync(d))]);
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  if (harnessMarkerIsDead(prefix)) fs.rmSync(path.join(MARKER_DIR, `${prefix}.pid`), { force: true });
  return { processes: procs.size, namespaces: namespaces.size, tempDirs: dirs.size };
}

/** True when anything named for the prefix exists (namespaces or temp dirs). */
export async function hasDemoLeftovers(prefix: string): Promise<boolean> {
  const namespaces = (await listNamespaces()).filter((n) => isDemoNamespace(prefix, n));
  return namespaces.length > 0 || demoTempDirs(prefix).length > 0;
}
