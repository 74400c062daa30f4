// What the data-plane e2e tests read back from a running weft cluster: leases in etcd (flannel format), the
// kernel entries weft programs on a node, weftd's readiness after a restart, and bounded waits.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { type Pod, sleep } from './index.js';
import type { WeftCluster } from './weft-cluster.js';

export const LEASE_PREFIX = '/coreos.com/network/subnets/';

export interface LeaseValue {
  PublicIP: string;
  PublicIPv6?: string | null;
  BackendType?: string;
  BackendData?: { VNI?: number; VtepMAC?: string } | null;
}

export interface LeaseRow {
  /** The full etcd key, `/coreos.com/network/subnets/10.244.5.0-24`. */
  key: string;
  /** The subnet the key names, `10.244.5.0/24`. */
  subnet: string;
  /** The etcd lease ID attached to the key (0 = none, a reservation). */
  leaseId: string;
  value: LeaseValue;
}

/** The lease keys under the subnets prefix, decoded. */
export async function leaseRows(c: WeftCluster): Promise<LeaseRow[]> {
  const r = await c.etcdctl(['get', '--prefix', LEASE_PREFIX, '-w', 'json']);
  const doc = JSON.parse(r.stdout) as {
    kvs?: Array<{ key: string; value: string; lease?: number | string }>;
  };
  return (doc.kvs ?? []).map((kv) => {
    const key = Buffer.from(kv.key, 'base64').toString();
    return {
      key,
      subnet: key.slice(LEASE_PREFIX.length).replace('-', '/'),
      leaseId: String(kv.lease ?? 0),
      value: JSON.parse(Buffer.from(kv.value, 'base64').toString()) as LeaseValue,
    };
  });
}

/**
 * The lease keys, after asserting that they are one flannel-format vxlan lease per node: a `10.244.x.0/24`
 * subnet, BackendType vxlan, VNI 1.
 */
export async function vxlanLeaseRows(c: WeftCluster): Promise<LeaseRow[]> {
  const rows = await leaseRows(c);
  expect(rows).toHaveLength(c.net.nodes.length);
  for (const row of rows) {
    expect(row.key).toMatch(/^\/coreos\.com\/network\/subnets\/10\.244\.\d+\.0-24$/);
    expect(row.value.BackendType).toBe('vxlan');
    expect(row.value.BackendData?.VNI).toBe(1);
  }
  return rows;
}

/** The lease published by node `i` (matched by its underlay address). */
export async function leaseOfNode(c: WeftCluster, i: number): Promise<LeaseRow> {
  const ip = c.net.nodes[i]!.underlayIp;
  const row = (await leaseRows(c)).find((r) => r.value.PublicIP === ip);
  if (!row) throw new Error(`no lease in etcd has PublicIP ${ip} (node ${i + 1})`);
  return row;
}

export interface RouteRow {
  dst: string;
  gateway?: string;
  dev: string;
  flags?: string[];
  protocol?: string;
}

export interface NeighborRow {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbRow {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
}

export interface KernelEntries {
  /** IPv4 main-table routes. */
  routes: RouteRow[];
  /** PERMANENT neighbours on `dev`. */
  neighbors: NeighborRow[];
  /** FDB entries with a remote (`dst`) on `dev`. */
  fdb: FdbRow[];
}

/** Node `i`'s routes, and the PERMANENT neighbours and remote FDB entries on `dev` (none when it is missing). */
export async function kernelEntries(c: WeftCluster, i: number, dev = 'flannel.1'): Promise<KernelEntries> {
  const node = c.net.nodes[i]!;
  const routes = await c.ipJson<RouteRow[]>(i, ['-4', 'route', 'show', 'table', 'main']);
  const link = await node.exec('ip', ['link', 'show', 'dev', dev]);
  if (link.code !== 0) return { routes, neighbors: [], fdb: [] };
  const neighbors = await c.ipJson<NeighborRow[]>(i, ['neigh', 'show', 'dev', dev, 'nud', 'permanent']);
  const fdbRun = await node.exec('bridge', ['-json', 'fdb', 'show', 'dev', dev]);
  if (fdbRun.code !== 0)
    throw new Error(`bridge fdb show dev ${dev} failed on node ${i + 1}: ${fdbRun.stderr}`);
  const fdb = (JSON.parse(fdbRun.stdout || '[]') as FdbRow[]).filter((f) => f.dst !== undefined);
  return { routes, neighbors: neighbors.map((n) => ({ ...n, dev })), fdb };
}

/** The route to `dst` on node `i`, if any. */
export function routeTo(entries: KernelEntries, dst: string): RouteRow | undefined {
  return entries.routes.find((r) => r.dst === dst);
}

/** The first address of a subnet text (`10.244.5.0/24` → `10.244.5.0`). */
export function networkAddress(subnet: string): string {
  return subnet.split('/')[0]!;
}

/**
 * Polls `probe` until it returns something other than undefined/false, at most `timeoutMs`; throws naming
 * `what` (and the last probe error) when it never does. Never asserts on how long it took.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let attempt = 0; attempt < 10_000; attempt++) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}

/** How often node `i`'s weftd log (all runs so far) says `msg`. */
export function countLogMessages(c: WeftCluster, i: number, msg: string): number {
  const file = c.weftNodes[i]!.logFile;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  const needle = `"msg":${JSON.stringify(msg)}`;
  let n = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}

/** The JSON log records of node `i`'s latest weftd run (from its last "weftd starting"). */
export function lastRunLog(c: WeftCluster, i: number): Array<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(c.weftNodes[i]!.logFile, 'utf8');
  } catch {
    return [];
  }
  const records: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.msg === 'weftd starting') records.length = 0;
      records.push(record);
    } catch {
      // not a log record
    }
  }
  return records;
}

/** Restarts weftd on node `i` and waits until it logs "weftd ready" once more. */
export async function restartWeftd(c: WeftCluster, i: number, timeoutMs = 30_000): Promise<void> {
  const before = countLogMessages(c, i, 'weftd ready');
  const handle = await c.startWeftd(i);
  await waitFor(
    `weftd on node ${i + 1} to be ready again`,
    async () => {
      if (handle.exited) throw new Error(`weftd exited:\n${handle.logTail(30)}`);
      return countLogMessages(c, i, 'weftd ready') > before;
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${c.logTail(i, 30)}`);
  });
}

/** A device's MAC in node `i`. */
export async function deviceMac(c: WeftCluster, i: number, dev: string): Promise<string> {
  const [link] = await c.ipJson<Array<{ address?: string }>>(i, ['link', 'show', 'dev', dev]);
  if (!link?.address) throw new Error(`node ${i + 1} has no MAC for ${dev}`);
  return link.address;
}

/** Global (non link-local) addresses of `dev` in node `i`, as `ip/len`. */
export async function globalAddresses(c: WeftCluster, i: number, dev: string): Promise<string[]> {
  const rows = await c.ipJson<
    Array<{ addr_info?: Array<{ local: string; prefixlen: number; scope: string }> }>
  >(i, ['addr', 'show', 'dev', dev]);
  return (rows[0]?.addr_info ?? [])
    .filter((a) => a.scope === 'global')
    .map((a) => `${a.local}/${a.prefixlen}`);
}

/** A device's TX packet counter in node `i`. */
export async function txPackets(c: WeftCluster, i: number, dev: string): Promise<number> {
  const [link] = await c.ipJson<Array<{ stats64?: { tx?: { packets?: number } } }>>(i, [
    '-s',
    'link',
    'show',
    'dev',
    dev,
  ]);
  const n = link?.stats64?.tx?.packets;
  if (typeof n !== 'number') throw new Error(`node ${i + 1}: no TX counter for ${dev}`);
  return n;
}

/**
 * Don't-fragment pings from `from` to `to` with a `size`-byte payload and with one byte more: whether each got
 * through. With `size` the largest payload the pod MTU carries, the first must and the second must not.
 * `output` holds both pings' text for the failure message.
 */
export async function dfPingEdge(
  c: WeftCluster,
  from: Pod,
  to: string,
  size: number,
  count = 1,
): Promise<{ fits: boolean; oneMore: boolean; output: string }> {
  const fits = await c.net.ping(from, to, { size, dontFragment: true, count });
  const over = await c.net.ping(from, to, { size: size + 1, dontFragment: true, count: 1, timeoutSec: 2 });
  return { fits: fits.ok, oneMore: over.ok, output: `${fits.output}\n${over.output}` };
}
