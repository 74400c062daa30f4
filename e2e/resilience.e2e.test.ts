import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deviceMac,
  type KernelEntries,
  kernelEntries,
  type LeaseRow,
  lastRunLog,
  leaseOfNode,
  networkAddress,
  restartWeftd,
  routeTo,
  waitFor,
} from '../testkit/dataplane.js';
import { type Pod, sleep } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

/** Whether node `i` still has the route, neighbour and FDB entry that reach `peer`. */
function reaches(
  entries: KernelEntries,
  peer: LeaseRow,
): { route: boolean; neighbor: boolean; fdb: boolean } {
  const gateway = networkAddress(peer.subnet);
  const mac = peer.value.BackendData?.VtepMAC;
  return {
    route: routeTo(entries, peer.subnet) !== undefined,
    neighbor: entries.neighbors.some((n) => n.dst === gateway && n.lladdr === mac),
    fdb: entries.fdb.some((f) => f.mac === mac && f.dst === peer.value.PublicIP),
  };
}

const ALL = { route: true, neighbor: true, fdb: true };
const NONE = { route: false, neighbor: false, fdb: false };

async function waitReaches(c: WeftCluster, i: number, peer: LeaseRow, want: typeof ALL, timeoutMs = 10_000) {
  const key = JSON.stringify(want);
  await waitFor(
    `node ${i + 1} to have ${key} for ${peer.subnet}`,
    async () => JSON.stringify(reaches(await kernelEntries(c, i), peer)) === key,
    timeoutMs,
  );
}

describe('vxlan resilience: restarts, removed leases and hand-deleted entries', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await startWeftCluster({ nodes: 3 });
    pods = await c.addPods(1);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('SIGKILL and restart of a node’s weftd loses no ping and keeps its subnet and VTEP MAC', async () => {
    const before = await leaseOfNode(c, 1);
    const envBefore = c.subnetEnv(1);
    const macBefore = await deviceMac(c, 1, 'flannel.1');
    expect(before.value.BackendData?.VtepMAC).toBe(macBefore);

    // 60 echoes at 0.2 s (12 s) in both directions across node 2 while its weftd dies and comes back.
    let pingsDone = false;
    const pinging = Promise.all([
      c.net.ping(pods[0]!, pods[1]!.ip, { count: 60, timeoutSec: 40 }),
      c.net.ping(pods[1]!, pods[2]!.ip, { count: 60, timeoutSec: 40 }),
    ]).finally(() => {
      pingsDone = true;
    });
    await sleep(1_000);
    const exit = await c.weftNodes[1]!.weftd!.kill();
    expect(exit.signal).toBe('SIGKILL');
    await sleep(500);
    await restartWeftd(c, 1);
    expect(pingsDone, 'the restart finished while the pings were still running').toBe(false);
    const results = await pinging;
    for (const r of results) {
      expect(r.transmitted, r.output).toBe(60);
      expect(r.received, r.output).toBe(60);
    }

    const after = await leaseOfNode(c, 1);
    expect(after.key).toBe(before.key);
    expect(after.value.BackendData?.VtepMAC).toBe(macBefore);
    expect(c.subnetEnv(1)).toEqual(envBefore);
    expect(await deviceMac(c, 1, 'flannel.1')).toBe(macBefore);
    // Kernel state survived the kill, so the restarted weftd had nothing to change.
    const firstPass = lastRunLog(c, 1).find((r) => r.msg === 'reconciled');
    expect(firstPass).toMatchObject({ reasons: ['start'], ops: 0, failed: 0 });
  });

  it('removes a stopped node’s entries on the others once its lease is deleted with etcdctl', async () => {
    const gone = await leaseOfNode(c, 2);
    for (const i of [0, 1]) expect(reaches(await kernelEntries(c, i), gone)).toEqual(ALL);
    await c.weftNodes[2]!.weftd!.stop('SIGTERM');
    // Stopping keeps the lease in etcd and the entries everywhere.
    expect((await leaseOfNode(c, 2)).key).toBe(gone.key);
    for (const i of [0, 1]) expect(reaches(await kernelEntries(c, i), gone)).toEqual(ALL);

    await c.etcdctl(['del', gone.key]);
    for (const i of [0, 1]) await waitReaches(c, i, gone, NONE);
  });

  it('removes a node deleted while another node’s weftd was down once that weftd restarts', async () => {
    // Node 3 comes back (same subnet, from its subnet file), and node 1 programs it again.
    await restartWeftd(c, 2);
    const removed = await leaseOfNode(c, 2);
    await waitReaches(c, 0, removed, ALL);

    await c.weftNodes[0]!.weftd!.stop('SIGTERM');
    await c.weftNodes[2]!.weftd!.stop('SIGTERM');
    await c.etcdctl(['del', removed.key]);
    await waitReaches(c, 1, removed, NONE);
    // Nobody is running on node 1 to notice.
    expect(reaches(await kernelEntries(c, 0), removed)).toEqual(ALL);

    await restartWeftd(c, 0);
    await waitReaches(c, 0, removed, NONE);
    // Node 1 still reaches node 2.
    expect((await c.net.ping(pods[0]!, pods[1]!.ip, { count: 2 })).ok).toBe(true);
  });

  it('restores a route, a neighbour and an FDB entry deleted by hand within a resync', async () => {
    const peer = await leaseOfNode(c, 1);
    const mac = peer.value.BackendData!.VtepMAC!;
    const node = c.net.nodes[0]!;
    expect(reaches(await kernelEntries(c, 0), peer)).toEqual(ALL);
    const steps: Array<[string, string[]]> = [
      ['ip', ['route', 'del', peer.subnet]],
      ['ip', ['neigh', 'del', networkAddress(peer.subnet), 'dev', 'flannel.1']],
      ['bridge', ['fdb', 'del', mac, 'dev', 'flannel.1', 'dst', peer.value.PublicIP, 'self']],
    ];
    for (const [tool, args] of steps) {
      const r = await node.exec(tool, args);
      expect(r.code, `${tool} ${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    expect(reaches(await kernelEntries(c, 0), peer)).toEqual(NONE);
    // --resync-interval=2: bounded by a few periods, not asserted as a time.
    await waitReaches(c, 0, peer, ALL, 10_000);
    expect((await c.net.ping(pods[0]!, pods[1]!.ip, { count: 2 })).ok).toBe(true);
  });
});
