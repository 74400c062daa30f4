// The run: one short prefix per process that names every namespace, veth, temp dir and process a test
// creates, plus a registry of those live resources. The registry is mirrored into a marker file under
// /run/weft-test so a later run can sweep what a crashed run (its PID dead) left behind.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where each live run keeps its marker file `<prefix>.pid` (JSON, see `RunMarker`). */
export const MARKER_DIR = process.env.WEFT_MARKER_DIR ?? '/run/weft-test';

/** Prefixes made by `runPrefix()`: `wt` + 4 hex digits. Only these are ever swept. */
export const SWEEPABLE_PREFIX = /^wt[0-9a-f]{4}/;

/** Interface and namespace names built from the prefix must fit IFNAMSIZ-1 = 15 characters. */
const MAX_PREFIX_LENGTH = 8;

export class InvalidRunPrefixError extends Error {
  constructor(value: string) {
    super(
      `WEFT_RUN_PREFIX=${JSON.stringify(value)} is not usable: expected 2-${MAX_PREFIX_LENGTH} characters ` +
        `of [a-z0-9] starting with a letter (names like <prefix>n1b must fit 15 characters)`,
    );
    this.name = 'InvalidRunPrefixError';
  }
}

let cachedPrefix: string | undefined;

/** The run's prefix, e.g. `wt3fa9`: derived once per process; env `WEFT_RUN_PREFIX` overrides. */
export function runPrefix(): string {
  if (cachedPrefix !== undefined) return cachedPrefix;
  const fromEnv = process.env.WEFT_RUN_PREFIX;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!new RegExp(`^[a-z][a-z0-9]{1,${MAX_PREFIX_LENGTH - 1}}$`).test(fromEnv)) {
      throw new InvalidRunPrefixError(fromEnv);
    }
    cachedPrefix = fromEnv;
  } else {
    cachedPrefix = `wt${randomBytes(2).toString('hex')}`;
  }
  return cachedPrefix;
}

/** A process recorded by PID plus its start time, so a reused PID is never mistaken for ours. */
export interface RecordedProcess {
  pid: number;
  startTime: string | null;
}

/** What the marker file holds: the owner process and every resource it registered. */
export interface RunMarker {
  prefix: string;
  owner: RecordedProcess;
  namespaces: string[];
  rootVeths: string[];
  processes: RecordedProcess[];
  tempDirs: string[];
}

/** Start time of a process (field 22 of /proc/<pid>/stat), or null when it does not exist. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
    const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return afterName[19] ?? null;
  } catch {
    return null;
  }
}

/** True when the recorded process is still the same live process (not a zombie, not a reused PID). */
export function isRecordedProcessAlive(proc: RecordedProcess): boolean {
  const start = processStartTime(proc.pid);
  if (start === null) return false;
  if (proc.startTime !== null && start !== proc.startTime) return false;
  try {
    const stat = fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function recordProcess(pid: number): RecordedProcess {
  return { pid, startTime: processStartTime(pid) };
}

class ResourceRegistry {
  readonly namespaces = new Set<string>();
  readonly rootVeths = new Set<string>();
  readonly processes = new Map<number, RecordedProcess>();
  readonly tempDirs = new Set<string>();
  private hooksInstalled = false;

  marker(): RunMarker {
    return {
      prefix: runPrefix(),
      owner: recordProcess(process.pid),
      namespaces: [...this.namespaces],
      rootVeths: [...this.rootVeths],
      processes: [...this.processes.values()],
      tempDirs: [...this.tempDirs],
    };
  }

  /** Rewrites the marker file; written before a resource is created so a crash never leaves it unknown. */
  persist(): void {
    this.installHooks();
    try {
      fs.mkdirSync(MARKER_DIR, { recursive: true });
      const file = markerPath(runPrefix());
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${JSON.stringify(this.marker())}\n`);
      fs.renameSync(tmp, file);
    } catch {
      // Best effort: without /run (not root) the in-process exit hook still cleans up.
    }
  }

  private installHooks(): void {
    if (this.hooksInstalled) return;
    this.hooksInstalled = true;
    process.on('exit', () => cleanupRunSync());
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      if (process.listenerCount(signal) > 0) continue;
      const onSignal = (): void => {
        cleanupRunSync();
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      };
      process.on(signal, onSignal);
    }
  }
}

const registry = new ResourceRegistry();

export function markerPath(prefix: string): string {
  return path.join(MARKER_DIR, `${prefix}.pid`);
}

export function registerNamespace(name: string): void {
  registry.namespaces.add(name);
  registry.persist();
}
export function unregisterNamespace(name: string): void {
  if (registry.namespaces.delete(name)) registry.persist();
}
export function registerRootVeth(name: string): void {
  registry.rootVeths.add(name);
  registry.persist();
}
export function unregisterRootVeth(name: string): void {
  if (registry.rootVeths.delete(name)) registry.persist();
}
export function registerProcess(pid: number): void {
  registry.processes.set(pid, recordProcess(pid));
  registry.persist();
}
export function unregisterProcess(pid: number): void {
  if (registry.processes.delete(pid)) registry.persist();
}
export function registerTempDir(dir: string): void {
  registry.tempDirs.add(dir);
  registry.persist();
}
export function unregisterTempDir(dir: string): void {
  if (registry.tempDirs.delete(dir)) registry.persist();
}

/** A snapshot of what this process has registered and not yet released. */
export function liveResources(): RunMarker {
  return registry.marker();
}

/** Creates a temp dir `<tmpdir>/<prefix>-<label>-XXXXXX`, registered for cleanup. */
export function makeRunTempDir(label: string): string {
  // The marker must exist before the dir does, or a concurrent sweeper would take it for a dead run's.
  registry.persist();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${runPrefix()}-${label}-`));
  registerTempDir(dir);
  return dir;
}

/** Removes a temp dir made by `makeRunTempDir` (idempotent). */
export function removeRunTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  unregisterTempDir(dir);
}

function killRecordedSync(proc: RecordedProcess): void {
  if (!isRecordedProcessAlive(proc)) return;
  try {
    process.kill(proc.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * Deletes a test namespace. What still runs in it is the test's and dies first, by PID (a detached
 * wireguard-go outlives its weftd on purpose), and the node's mount namespace (mount-ns.ts) goes with it.
 */
function deleteNamespaceSync(name: string): void {
  killNamespaceProcessesSync(name);
  const mountNs = path.join(MARKER_DIR, 'mnt', name);
  if (fs.existsSync(mountNs)) {
    try {
      execFileSync('umount', [mountNs], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // Not mounted (any more).
    }
    fs.rmSync(mountNs, { force: true });
  }
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // Already gone.
  }
}

function killNamespaceProcessesSync(name: string): void {
  let pids: number[] = [];
  try {
    pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', timeout: 10_000 })
      .split('\n')
      .filter((l) => /^\d+$/.test(l.trim()))
      .map((l) => Number(l.trim()));
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Deletes a namespace this run made (see `deleteNamespaceSync`); for destroy paths that are async. */
export function releaseNamespaceSync(name: string): void {
  deleteNamespaceSync(name);
  unregisterNamespace(name);
}

function deleteRootLinkSync(name: string): void {
  try {
    execFileSync('ip', ['link', 'del', name], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // Already gone.
  }
}

/** Synchronous best-effort cleanup of everything this process registered (for exit and signal hooks). */
export function cleanupRunSync(): void {
  for (const proc of registry.processes.values()) killRecordedSync(proc);
  registry.processes.clear();
  for (const ns of registry.namespaces) deleteNamespaceSync(ns);
  registry.namespaces.clear();
  for (const link of registry.rootVeths) deleteRootLinkSync(link);
  registry.rootVeths.clear();
  for (const dir of registry.tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  registry.tempDirs.clear();
  try {
    fs.rmSync(markerPath(runPrefix()), { force: true });
  } catch {
    // Best effort.
  }
}

/** What one sweep removed. */
export interface SweepReport {
  prefixes: string[];
  namespaces: string[];
  rootLinks: string[];
  processes: number[];
  tempDirs: string[];
}

function readMarker(file: string): RunMarker | null {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null) return null;
    const m = parsed as Partial<RunMarker>;
    if (typeof m.prefix !== 'string' || typeof m.owner?.pid !== 'number') return null;
    return {
      prefix: m.prefix,
      owner: { pid: m.owner.pid, startTime: m.owner.startTime ?? null },
      namespaces: Array.isArray(m.namespaces) ? m.namespaces.filter((x) => typeof x === 'string') : [],
      rootVeths: Array.isArray(m.rootVeths) ? m.rootVeths.filter((x) => typeof x === 'string') : [],
      processes: Array.isArray(m.processes)
        ? m.processes.filter((p): p is RecordedProcess => typeof p?.pid === 'number')
        : [],
      tempDirs: Array.isArray(m.tempDirs) ? m.tempDirs.filter((x) => typeof x === 'string') : [],
    };
  } catch {
    return null;
  }
}

function listNamespacesSync(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
    // Lines look like `name` or `name (id: 3)`.
    return out
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter((n) => n !== '');
  } catch {
    return [];
  }
}

function listRootLinksSync(): string[] {
  try {
    const out = execFileSync('ip', ['-json', 'link', 'show'], { encoding: 'utf8', timeout: 10_000 });
    const parsed: unknown = JSON.parse(out);
    if (!Array.isArray(parsed)) return [];
    return parsed
      .map((l: { ifname?: unknown }) => (typeof l.ifname === 'string' ? l.ifname : ''))
      .filter((n) => n !== '');
  } catch {
    return [];
  }
}

/**
 * A prefix is dead when its marker's owner is no longer alive, or when it has no marker at all
 * (markers are written before any resource is created, so such leftovers have no live owner).
 */
function isPrefixDead(prefix: string): boolean {
  if (prefix === runPrefix()) return false;
  const marker = readMarker(markerPath(prefix));
  if (marker === null) return !fs.existsSync(markerPath(prefix)) || isMarkerStale(prefix);
  return !isRecordedProcessAlive(marker.owner);
}

/** A marker that exists but cannot be parsed: only stale once it is older than a minute (not mid-write). */
function isMarkerStale(prefix: string): boolean {
  try {
    return Date.now() - fs.statSync(markerPath(prefix)).mtimeMs > 60_000;
  } catch {
    return true;
  }
}

function sweepablePrefixOf(name: string): string | null {
  const match = SWEEPABLE_PREFIX.exec(name);
  return match ? match[0] : null;
}

/**
 * Removes what dead runs left behind: their namespaces, root-namespace veths, recorded processes, temp
 * dirs and marker files. Only `wt<4 hex>` prefixes whose owner PID is dead are touched; live runs of
 * other processes (other helpers, parallel test files) are left alone.
 */
export function sweepLeftovers(): SweepReport {
  const report: SweepReport = { prefixes: [], namespaces: [], rootLinks: [], processes: [], tempDirs: [] };
  const dead = new Map<string, boolean>();
  const deadPrefix = (prefix: string): boolean => {
    let verdict = dead.get(prefix);
    if (verdict === undefined) {
      verdict = isPrefixDead(prefix);
      dead.set(prefix, verdict);
    }
    return verdict;
  };

  let markerFiles: string[] = [];
  try {
    markerFiles = fs.readdirSync(MARKER_DIR).filter((f) => f.endsWith('.pid'));
  } catch {
    // No marker dir yet.
  }
  // Processes first: a namespace whose processes still run keeps its devices busy.
  for (const file of markerFiles) {
    const prefix = file.slice(0, -'.pid'.length);
    if (!deadPrefix(prefix)) continue;
    const marker = readMarker(path.join(MARKER_DIR, file));
    if (marker !== null) {
      for (const proc of marker.processes) {
        if (isRecordedProcessAlive(proc)) {
          killRecordedSync(proc);
          report.processes.push(proc.pid);
        }
      }
      for (const ns of marker.namespaces) {
        if (fs.existsSync(path.join('/run/netns', ns))) {
          deleteNamespaceSync(ns);
          report.namespaces.push(ns);
        }
      }
      for (const dir of marker.tempDirs) {
        if (fs.existsSync(dir)) {
          fs.rmSync(dir, { recursive: true, force: true });
          report.tempDirs.push(dir);
        }
      }
    }
    report.prefixes.push(prefix);
  }

  for (const ns of listNamespacesSync()) {
    const prefix = sweepablePrefixOf(ns);
    if (prefix === null || !deadPrefix(prefix)) continue;
    deleteNamespaceSync(ns);
    if (!report.namespaces.includes(ns)) report.namespaces.push(ns);
  }

  for (const link of listRootLinksSync()) {
    const prefix = sweepablePrefixOf(link);
    if (prefix === null || !deadPrefix(prefix)) continue;
    deleteRootLinkSync(link);
    report.rootLinks.push(link);
  }

  let tmpEntries: string[] = [];
  try {
    tmpEntries = fs.readdirSync(os.tmpdir());
  } catch {
    // Unreadable tmpdir: nothing to sweep there.
  }
  for (const entry of tmpEntries) {
    const prefix = sweepablePrefixOf(entry);
    if (prefix === null || entry[prefix.length] !== '-' || !deadPrefix(prefix)) continue;
    const dir = path.join(os.tmpdir(), entry);
    fs.rmSync(dir, { recursive: true, force: true });
    if (!report.tempDirs.includes(dir)) report.tempDirs.push(dir);
  }

  for (const file of markerFiles) {
    const prefix = file.slice(0, -'.pid'.length);
    if (deadPrefix(prefix)) fs.rmSync(path.join(MARKER_DIR, file), { force: true });
  }
  for (const [prefix, isDead] of dead) {
    if (isDead && !report.prefixes.includes(prefix)) report.prefixes.push(prefix);
  }
  return report;
}
