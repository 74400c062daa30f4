// The demo's state file `<stateDir>/<prefix>.json`: created atomically when a demo starts (so a second demo
// sees it), rewritten once the cluster is up, marked `kept` by --keep, removed when the demo is torn down.
// A file whose owner died without --keep is a crashed demo: its leftovers are cleaned by the next run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isRecordedProcessAlive, type RecordedProcess, recordProcess } from '../testkit/run.js';

export const STATE_VERSION = 1;

export interface DemoStateProcess extends RecordedProcess {
  /** What it is, e.g. `etcd`, `weftd n1`. */
  role: string;
}

export interface DemoStateNode {
  name: string;
  netns: string;
  underlayIp: string;
  subnet: string;
  logFile: string;
}

export interface DemoStatePod {
  name: string;
  netns: string;
  node: string;
  ip: string;
}

export interface DemoState {
  version: number;
  prefix: string;
  /** The demo process that made this (for `running`: the one still showing results). */
  owner: RecordedProcess;
  /** `running`: a demo is building or showing; `kept`: --keep left the cluster up after its demo exited. */
  mode: 'running' | 'kept';
  startedAt: string;
  backend: string;
  processes: DemoStateProcess[];
  namespaces: string[];
  tempDirs: string[];
  nodes: DemoStateNode[];
  pods: DemoStatePod[];
  etcdEndpoint: string | null;
}

/** The state file exists but does not hold a demo state; the message says what was wrong. */
export class DemoStateFileError extends Error {
  override name = 'DemoStateFileError';
}

export function statePath(stateDir: string, prefix: string): string {
  return path.join(stateDir, `${prefix}.json`);
}

export function newDemoState(prefix: string, backend: string): DemoState {
  return {
    version: STATE_VERSION,
    prefix,
    owner: recordProcess(process.pid),
    mode: 'running',
    startedAt: new Date().toISOString(),
    backend,
    processes: [],
    namespaces: [],
    tempDirs: [],
    nodes: [],
    pods: [],
    etcdEndpoint: null,
  };
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field<T>(o: Obj, key: string, where: string, check: (v: unknown) => v is T, what: string): T {
  const v = o[key];
  if (!check(v))
    throw new DemoStateFileError(`${where}.${key}: expected ${what}, found ${JSON.stringify(v)}`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isArray = (v: unknown): v is unknown[] => Array.isArray(v);

function parseRecorded(v: unknown, where: string): RecordedProcess {
  if (!isObj(v)) throw new DemoStateFileError(`${where}: expected an object`);
  return {
    pid: field(v, 'pid', where, isInt, 'a PID'),
    startTime: field(v, 'startTime', where, isStringOrNull, 'a start time or null'),
  };
}

function stringList(o: Obj, key: string, where: string): string[] {
  return field(o, key, where, isArray, 'an array').map((x, i) => {
    if (typeof x !== 'string') throw new DemoStateFileError(`${where}.${key}[${i}]: expected a string`);
    return x;
  });
}

function objectList<T>(o: Obj, key: string, where: string, parse: (v: Obj, where: string) => T): T[] {
  return field(o, key, where, isArray, 'an array').map((x, i) => {
    const w = `${where}.${key}[${i}]`;
    if (!isObj(x)) throw new DemoStateFileError(`${w}: expected an object`);
    return parse(x, w);
  });
}

/** Validates a parsed state file. Throws `DemoStateFileError` naming the field. */
export function parseDemoState(value: unknown): DemoState {
  const where = 'state';
  if (!isObj(value)) throw new DemoStateFileError('state: expected a JSON object');
  const version = value.version;
  if (version !== STATE_VERSION) {
    throw new DemoStateFileError(
      `state.version: expected ${STATE_VERSION}, found ${JSON.stringify(version)}`,
    );
  }
  const mode = value.mode;
  if (mode !== 'running' && mode !== 'kept') {
    throw new DemoStateFileError(`state.mode: expected "running" or "kept", found ${JSON.stringify(mode)}`);
  }
  return {
    version,
    prefix: field(value, 'prefix', where, isString, 'a string'),
    owner: parseRecorded(value.owner, 'state.owner'),
    mode,
    startedAt: field(value, 'startedAt', where, isString, 'an ISO time'),
    backend: field(value, 'backend', where, isString, 'a string'),
    processes: objectList(value, 'processes', where, (p, w) => ({
      ...parseRecorded(p, w),
      role: field(p, 'role', w, isString, 'a string'),
    })),
    namespaces: stringList(value, 'namespaces', where),
    tempDirs: stringList(value, 'tempDirs', where),
    nodes: objectList(value, 'nodes', where, (n, w) => ({
      name: field(n, 'name', w, isString, 'a string'),
      netns: field(n, 'netns', w, isString, 'a string'),
      underlayIp: field(n, 'underlayIp', w, isString, 'a string'),
      subnet: field(n, 'subnet', w, isString, 'a string'),
      logFile: field(n, 'logFile', w, isString, 'a string'),
    })),
    pods: objectList(value, 'pods', where, (p, w) => ({
      name: field(p, 'name', w, isString, 'a string'),
      netns: field(p, 'netns', w, isString, 'a string'),
      node: field(p, 'node', w, isString, 'a string'),
      ip: field(p, 'ip', w, isString, 'a string'),
    })),
    etcdEndpoint: field(value, 'etcdEndpoint', where, isStringOrNull, 'a URL or null'),
  };
}

/** What the state file says about the demo of a prefix. */
export type DemoStatus =
  | { kind: 'none' }
  /** A demo process is alive and owns the cluster. */
  | { kind: 'running'; state: DemoState }
  /** --keep left the cluster up (some of its processes or namespaces still exist). */
  | { kind: 'kept'; state: DemoState }
  /** Its owner died without --keep, or everything of a kept demo is already gone, or the file is corrupt. */
  | { kind: 'stale'; state: DemoState | null; problem?: string };

/** Reads and classifies the state file. `exists(ns)` tells whether a namespace exists (injectable). */
export function readDemoStatus(file: string, namespaceExists: (ns: string) => boolean): DemoStatus {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'stale', state: null, problem: `cannot read ${file}: ${(err as Error).message}` };
  }
  let state: DemoState;
  try {
    state = parseDemoState(JSON.parse(text));
  } catch (err) {
    return { kind: 'stale', state: null, problem: `${file} is not a demo state: ${(err as Error).message}` };
  }
  if (state.mode === 'kept') {
    const anyAlive =
      state.processes.some((p) => isRecordedProcessAlive(p)) || state.namespaces.some(namespaceExists);
    return anyAlive ? { kind: 'kept', state } : { kind: 'stale', state };
  }
  return isRecordedProcessAlive(state.owner) ? { kind: 'running', state } : { kind: 'stale', state };
}

function writeTemp(file: string, state: DemoState): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  return tmp;
}

/**
 * Creates the state file only if none exists (a hard link of a complete temp file: atomic and never seen
 * half-written). Returns false when another file is already there.
 */
export function createStateExclusive(file: string, state: DemoState): boolean {
  const tmp = writeTemp(file, state);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Replaces the state file atomically (only its owner does this). */
export function writeState(file: string, state: DemoState): void {
  fs.renameSync(writeTemp(file, state), file);
}

/**
 * Removes the state file if it still is the one `expected` describes (same owner), so a demo that just
 * took over a stale file never loses its own. Returns whether it removed it.
 */
export function removeStateIfOwnedBy(file: string, expected: RecordedProcess | null): boolean {
  if (expected !== null) {
    try {
      const current = parseDemoState(JSON.parse(fs.readFileSync(file, 'utf8')));
      if (current.owner.pid !== expected.pid || current.owner.startTime !== expected.startTime) return false;
    } catch {
      // Unreadable or gone: nothing of anyone else's to protect.
    }
  }
  fs.rmSync(file, { force: true });
  return true;
}
