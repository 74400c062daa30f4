// Issue 7 (observability) end to end: /metrics (checked with a real Prometheus text parser) against what
// etcd and the kernel say, peer probes noticing a cut underlay link and its recovery, /readyz before and
// after the node has a lease and a subnet file, and `weftctl status` (table, JSON, nothing listening).
// The health server listens on 127.0.0.1 inside each node namespace: every request runs there (curl).
import { existsSync } from 'node:fs';
import type { ParsedFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStatusDoc } from '../daemon/commands/render/index.js';
import type { StatusDoc } from '../src/observe/status.js';
import { parseExposition, sampleValue } from '../testkit/exposition.js';
import { type ClusterNode, etcdctl, netnsCluster, pollUntil, UNDERLAY_GATEWAY4 } from '../testkit/index.js';
import {
  DEFAULT_NET_CONF,
  HEALTHZ_PORT,
  startWeftCluster,
  WEFTCTL,
  WeftCluster,
} from '../testkit/weft-cluster.js';
import { weftdGet as httpGet } from '../testkit/weftd-http.js';

/** A port nothing listens on inside the node namespaces. */
const CLOSED_PORT = HEALTHZ_PORT + 1;
/** "Within 3 probe intervals" (1 s each), with room for a loaded 2-core machine; not a timing assertion. */
const DETECT_MS = 15_000;
const RECOVER_MS = 30_000;

async function metrics(node: ClusterNode): Promise<Map<string, ParsedFamily>> {
  const r = await httpGet(node, '/metrics');
  expect(r.status).toBe(200);
  expect(r.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(r.body);
}

async function status(node: ClusterNode): Promise<StatusDoc> {
  const r = await httpGet(node, '/status');
  expect(r.status).toBe(200);
  return parseStatusDoc(JSON.parse(r.body));
}

/** Sum of every sample of a counter/gauge family whose labels include `labels`. */
function sumOf(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.get(name);
  if (family === undefined) return 0;
  return family.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((sum, m) => sum + Number(m.value), 0);
}

function weftctl(node: ClusterNode, args: string[]) {
  return node.exec(process.execPath, [WEFTCTL, 'status', ...args], { timeoutMs: 30_000 });
}

interface EtcdLease {
  /** The lease key as in metrics labels, e.g. `10.244.3.0-24`. */
  key: string;
  /** `10.244.3.0/24`. */
  subnet: string;
  publicIP: string;
  vtepMAC: string;
  /** The etcd lease id (decimal, as etcdctl prints it). */
  leaseId: string;
}

const SUBNETS_PREFIX = '/coreos.com/network/subnets/';

async function etcdLeases(c: WeftCluster): Promise<EtcdLease[]> {
  // `-w fields` prints the 64-bit lease id as a decimal without going through a JSON number.
  const r = await c.etcdctl(['get', '--prefix', SUBNETS_PREFIX, '-w', 'fields']);
  const out: EtcdLease[] = [];
  for (const block of r.stdout.split(/\n(?="Key" : )/)) {
    const key = /"Key" : "([^"]+)"/.exec(block)?.[1];
    const lease = /"Lease" : (\d+)/.exec(block)?.[1];
    const value = /"Value" : "((?:[^"\\]|\\.)*)"/.exec(block)?.[1];
    if (key === undefined || lease === undefined || value === undefined) continue;
    const attrs = JSON.parse(JSON.parse(`"${value}"`) as string) as {
      PublicIP: string;
      BackendData: { VtepMAC: string };
    };
    const leaseKey = key.slice(SUBNETS_PREFIX.length);
    out.push({
      key: leaseKey,
      subnet: leaseKey.replace('-', '/'),
      publicIP: attrs.PublicIP,
      vtepMAC: attrs.BackendData.VtepMAC,
      leaseId: lease,
    });
  }
  return out;
}

/** Seconds the etcd lease `id` has left, as etcd reports it. */
async function etcdLeaseRemaining(c: WeftCluster, id: string): Promise<{ ttl: number; remaining: number }> {
  const r = await c.etcdctl(['lease', 'timetolive', BigInt(id).toString(16)]);
  const m = /granted with TTL\((\d+)s\), remaining\((-?\d+)s\)/.exec(r.stdout);
  if (!m) throw new Error(`unexpected etcdctl lease timetolive output: ${r.stdout}`);
  return { ttl: Number(m[1]), remaining: Number(m[2]) };
}

/** Polls every node's /status until `check` holds for all of them; returns the last docs. */
async function waitForStatus(
  c: WeftCluster,
  nodes: number[],
  check: (doc: StatusDoc, node: number) => boolean,
  timeoutMs: number,
): Promise<StatusDoc[] | undefined> {
  return pollUntil(
    async () => {
      const docs = await Promise.all(nodes.map((i) => status(c.net.nodes[i]!)));
      return docs.every((d, k) => check(d, nodes[k]!)) ? docs : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

function peerHealth(doc: StatusDoc, publicIP: string): string | undefined {
  return doc.peers.find((p) => p.publicIP === publicIP)?.health;
}

describe('observability: 3 nodes with real weftd', () => {
  let c: WeftCluster;
  let leases: EtcdLease[];
  /** Node i's lease (found by its public IP). */
  const leaseOf = (i: number): EtcdLease => leases.find((l) => l.publicIP === c.net.nodes[i]!.underlayIp)!;
  const logs = (): string => [0, 1, 2].map((i) => `--- node ${i + 1}\n${c.logTail(i, 15)}`).join('\n');

  beforeAll(async () => {
    // Nodes 1 and 2 listen on every address (flannel's default --healthz-ip); node 2 also exposes the peer
    // inventory. Node 3 keeps the fixture's 127.0.0.1.
    c = await startWeftCluster({
      nodes: 3,
      nodeArgs: { 0: ['--healthz-ip=0.0.0.0'], 1: ['--healthz-ip=0.0.0.0', '--expose-status'] },
    });
    leases = await etcdLeases(c);
    // Every node sees both peers answer before the checks start.
    const ready = await waitForStatus(
      c,
      [0, 1, 2],
      (d) => d.peers.length === 2 && d.peers.every((p) => p.health === 'healthy'),
      RECOVER_MS,
    );
    if (ready === undefined) throw new Error(`peers never became healthy:\n${logs()}`);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('serves /healthz and /readyz as ok and unknown paths as 404', async () => {
    for (const node of c.net.nodes) {
      expect(await httpGet(node, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
      expect(await httpGet(node, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
      expect((await httpGet(node, '/nope')).status).toBe(404);
    }
  });

  it('serves /healthz and aggregate metrics to other hosts, /status and per-peer series only with --expose-status', async () => {
    const [node1, node2, node3] = c.net.nodes as [ClusterNode, ClusterNode, ClusterNode];
    // From node 3's namespace, over the underlay, to node 1 (default: the inventory stays on the host).
    const remote = (path: string, target: ClusterNode) =>
      httpGet(node3, path, HEALTHZ_PORT, target.underlayIp);
    expect(await remote('/healthz', node1)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await remote('/readyz', node1)).toMatchObject({ status: 200, body: 'ok\n' });
    const refused = await remote('/status', node1);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('--expose-status');
    expect(refused.body).not.toContain(node2.underlayIp);
    const aggregate = await remote('/metrics', node1);
    expect(aggregate.status).toBe(200);
    expect(aggregate.body).not.toContain('peer="');
    const f = parseExposition(aggregate.body);
    expect(sampleValue(f, 'weft_probes_sent_total')).toBeGreaterThan(0);
    expect(sampleValue(f, 'weft_peers_unhealthy')).toBe(0);
    expect(f.has('weft_peer_probes_total')).toBe(false);
    // The same node asked from itself, on its underlay address: local, so the whole inventory.
    const own = await httpGet(node1, '/status', HEALTHZ_PORT, node1.underlayIp);
    expect(own.status).toBe(200);
    expect(parseStatusDoc(JSON.parse(own.body)).peerSummary.total).toBe(2);
    // Node 2 runs with --expose-status: the operator asked for it.
    const exposed = await remote('/status', node2);
    expect(exposed.status).toBe(200);
    expect(parseStatusDoc(JSON.parse(exposed.body)).peers).toHaveLength(2);
    expect((await remote('/metrics', node2)).body).toContain('weft_peer_probes_total{peer="');
  });

  it('/metrics parses as Prometheus text and its lease and peer values match etcd', async () => {
    expect(leases).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const own = leaseOf(i);
      const f = await metrics(c.net.nodes[i]!);
      expect(sampleValue(f, 'weft_build_info')).toBe(1);
      expect(sampleValue(f, 'weft_lease_held')).toBe(1);
      expect(sampleValue(f, 'weft_lease_reservation')).toBe(0);
      expect(sampleValue(f, 'weft_lease_acquisitions_total')).toBe(1);
      expect(sampleValue(f, 'weft_lease_renewal_failures_total')).toBe(0);
      // Peer count: the other nodes' leases in etcd.
      expect(sampleValue(f, 'weft_peers')).toBe(leases.length - 1);

      // Lease expiry: the own subnet, and the same instant etcd will drop the key (within a generous margin:
      // the two clocks are read a moment apart and etcd rounds to seconds).
      const etcdTtl = await etcdLeaseRemaining(c, own.leaseId);
      const nowSeconds = Date.now() / 1000;
      const expiry = f.get('weft_lease_expiry_timestamp_seconds')?.metrics ?? [];
      expect(expiry).toHaveLength(1);
      expect(expiry[0]!.labels).toEqual({ subnet: own.subnet });
      expect(Math.abs(Number(expiry[0]!.value) - (nowSeconds + etcdTtl.remaining))).toBeLessThan(60);
      const remaining = sampleValue(f, 'weft_lease_remaining_seconds', { subnet: own.subnet })!;
      expect(Math.abs(remaining - etcdTtl.remaining)).toBeLessThan(60);
      expect(remaining).toBeGreaterThan(0);
      expect(remaining).toBeLessThanOrEqual(etcdTtl.ttl);

      // Probe series exist for exactly the two peers, by lease key, and both are healthy.
      const peerKeys = leases.filter((l) => l !== own).map((l) => l.key);
      const probed = (f.get('weft_peer_probes_total')?.metrics ?? []).map((m) => m.labels?.peer).sort();
      expect(probed).toEqual([...peerKeys].sort());
      for (const key of peerKeys) {
        expect(sampleValue(f, 'weft_peer_healthy', { peer: key })).toBe(1);
        expect(sampleValue(f, 'weft_peer_probes_total', { peer: key })).toBeGreaterThan(0);
        expect(sampleValue(f, 'weft_peer_probe_rtt_seconds', { peer: key })).toBeGreaterThan(0);
      }
      // Standard process metrics for dashboards.
      expect(sampleValue(f, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    }
  });

  it('/status agrees with etcd, the kernel and /metrics', async () => {
    for (let i = 0; i < 3; i++) {
      const node = c.net.nodes[i]!;
      const doc = await status(node);
      const own = leaseOf(i);
      expect(doc.lease).toMatchObject({ subnet: own.subnet, publicIP: node.underlayIp, reservation: false });
      expect(doc.backend).toEqual({ type: 'vxlan', interface: 'eth0', device: 'flannel.1', mtu: 1450 });
      expect(doc.peers.map((p) => p.subnet).sort()).toEqual(
        leases
          .filter((l) => l !== own)
          .map((l) => l.subnet)
          .sort(),
      );
      // The kernel has one route per peer subnet on the vxlan device.
      const routes = await c.ipJson<Array<{ dst: string }>>(i, ['route', 'show', 'dev', 'flannel.1']);
      for (const p of doc.peers) expect(routes.map((r) => r.dst)).toContain(p.subnet);
      expect(doc.lastReconcile).toMatchObject({ ok: true, failed: 0 });
      expect(doc.probes).toEqual({ enabled: true, intervalMs: 1000 });
    }
  });

  it('reconcile metrics grow with every resync while a converged node applies no further kernel ops', async () => {
    const node = c.net.nodes[0]!;
    const before = await metrics(node);
    const reconcilesBefore = sampleValue(before, 'weft_reconciles_total', { result: 'ok' })!;
    const lastBefore = sampleValue(before, 'weft_last_reconcile_timestamp_seconds')!;
    expect(reconcilesBefore).toBeGreaterThan(0);
    // Start-up programmed at least a route, a neighbour and an FDB entry per peer.
    for (const kind of ['route', 'neighbor', 'fdb']) {
      expect(sampleValue(before, 'weft_kernel_ops_applied_total', { kind })).toBeGreaterThanOrEqual(2);
    }
    expect(sumOf(before, 'weft_kernel_ops_failed_total')).toBe(0);

    // --resync-interval=2: a few more passes come within a bounded wait.
    const after = await pollUntil(
      async () => {
        const f = await metrics(node);
        return sampleValue(f, 'weft_reconciles_total', { result: 'ok' })! >= reconcilesBefore + 2
          ? f
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(after, 'no resync passes within 30 s').toBeDefined();
    expect(sampleValue(after!, 'weft_last_reconcile_timestamp_seconds')).toBeGreaterThan(lastBefore);
    expect(sampleValue(after!, 'weft_reconciles_total', { result: 'failed' }) ?? 0).toBe(0);
    const histogram = after!.get('weft_reconcile_duration_seconds')?.metrics[0];
    expect(Number(histogram?.count)).toBe(sampleValue(after!, 'weft_reconciles_total', { result: 'ok' }));
    // Nothing changed in the cluster: the extra passes found the kernel as wanted.
    expect(sumOf(after!, 'weft_kernel_ops_applied_total')).toBe(
      sumOf(before, 'weft_kernel_ops_applied_total'),
    );

    const doc = await status(node);
    expect(Date.parse(doc.lastReconcile!.at) / 1000).toBeGreaterThanOrEqual(lastBefore);
  });

  it('weftctl status prints the own lease, the backend and both peers with their health', async () => {
    const node = c.net.nodes[0]!;
    const own = leaseOf(0);
    const r = await weftctl(node, ['--healthz-port', String(HEALTHZ_PORT)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^Lease: +${own.subnet.replaceAll('.', '\\.')} +public IP ${node.underlayIp} +expires \\S+ \\(in `,
      ),
    );
    expect(r.stdout).toContain('Backend:    vxlan device flannel.1 via eth0  MTU 1450');
    expect(r.stdout).toMatch(/^Reconcile: +ok, /m);
    expect(r.stdout).toContain('Peers:      2 (2 healthy, 0 unhealthy, 0 unknown; probes every 1s)');
    const header = lines.findIndex((l) => l.startsWith('SUBNET'));
    expect(lines[header]).toMatch(/^SUBNET +PUBLIC IP +VTEP MAC +HEALTH +RTT +LOSS +LAST SEEN$/);
    const rows = lines.slice(header + 1).filter((l) => l !== '');
    expect(rows).toHaveLength(2);
    for (const peer of leases.filter((l) => l !== own)) {
      const row = rows.find((l) => l.startsWith(`${peer.subnet} `));
      expect(row, `no row for ${peer.subnet} in\n${r.stdout}`).toBeDefined();
      expect(row).toMatch(
        new RegExp(
          `^\\S+ +${peer.publicIP.replaceAll('.', '\\.')} +${peer.vtepMAC} +healthy +[\\d.]+ ms +[\\d.]+% +\\S+ ago$`,
        ),
      );
    }
  });

  it('weftctl status -o json prints the /status document', async () => {
    const node = c.net.nodes[1]!;
    const r = await weftctl(node, ['--healthz-port', String(HEALTHZ_PORT), '-o', 'json']);
    expect(r.code).toBe(0);
    const doc = parseStatusDoc(JSON.parse(r.stdout));
    expect(doc.lease?.subnet).toBe(leaseOf(1).subnet);
    expect(doc.backend?.type).toBe('vxlan');
    expect(doc.peers).toHaveLength(2);
    expect(doc.peers.map((p) => p.publicIP).sort()).toEqual(
      [c.net.nodes[0]!.underlayIp, c.net.nodes[2]!.underlayIp].sort(),
    );
  });

  it('weftctl status says clearly when nothing listens, and exits non-zero', async () => {
    const r = await weftctl(c.net.nodes[0]!, ['--healthz-port', String(CLOSED_PORT)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `weftctl status: weftd is not running: nothing listens on 127.0.0.1:${CLOSED_PORT} (check --healthz-ip/--healthz-port match weftd's)\n`,
    );
    const off = await weftctl(c.net.nodes[0]!, ['--healthz-port', '0']);
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/health server is off/);
  });

  /**
   * Cuts node 3 off the underlay with `cut`, checks that nodes 1 and 2 (and node 3 itself) notice through
   * the probes and the metrics, then restores it with `restore` and checks the recovery.
   */
  async function cutAndRestore(cut: () => Promise<void>, restore: () => Promise<void>): Promise<void> {
    const lost = leaseOf(2);
    const nodes = c.net.nodes;
    const healthy = await waitForStatus(
      c,
      [0, 1, 2],
      (d) => d.peers.length === 2 && d.peers.every((p) => p.health === 'healthy'),
      RECOVER_MS,
    );
    expect(healthy, `not every peer was healthy before the cut:\n${logs()}`).toBeDefined();
    const before = await Promise.all([metrics(nodes[0]!), metrics(nodes[1]!)]);
    const lossesBefore = before.map(
      (f) => sampleValue(f, 'weft_peer_probe_losses_total', { peer: lost.key })!,
    );

    await cut();
    let restored = false;
    try {
      const noticed = await waitForStatus(
        c,
        [0, 1],
        (d) => peerHealth(d, lost.publicIP) === 'unhealthy',
        DETECT_MS,
      );
      expect(noticed, `nodes 1 and 2 did not mark node 3 unhealthy:\n${logs()}`).toBeDefined();
      for (const [k, doc] of noticed!.entries()) {
        // The other peer is still fine.
        const other = leaseOf(k === 0 ? 1 : 0);
        expect(peerHealth(doc, other.publicIP)).toBe('healthy');
        expect(doc.peers.find((p) => p.publicIP === lost.publicIP)!.lossPct).toBeGreaterThan(0);
      }
      for (const [k, node] of [nodes[0]!, nodes[1]!].entries()) {
        const f = await metrics(node);
        expect(sampleValue(f, 'weft_peer_healthy', { peer: lost.key })).toBe(0);
        expect(sampleValue(f, 'weft_peer_probe_losses_total', { peer: lost.key })).toBeGreaterThanOrEqual(
          lossesBefore[k]! + 3,
        );
        expect(sampleValue(f, 'weft_peer_probe_loss_ratio', { peer: lost.key })).toBeGreaterThan(0);
        expect(sampleValue(f, 'weft_peer_healthy', { peer: leaseOf(k === 0 ? 1 : 0).key })).toBe(1);
      }
      // Node 3 sees it from the other side: both peers unreachable.
      const isolated = await waitForStatus(
        c,
        [2],
        (d) => d.peers.length === 2 && d.peers.every((p) => p.health === 'unhealthy'),
        DETECT_MS,
      );
      expect(isolated, `node 3 did not mark its peers unhealthy:\n${logs()}`).toBeDefined();
      // weftctl shows it too.
      const table = await weftctl(nodes[0]!, ['--healthz-port', String(HEALTHZ_PORT)]);
      expect(table.code).toBe(0);
      expect(table.stdout).toContain('Peers:      2 (1 healthy, 1 unhealthy, 0 unknown; probes every 1s)');
      expect(table.stdout).toMatch(new RegExp(`^${lost.subnet.replaceAll('.', '\\.')} .* UNHEALTHY `, 'm'));

      await restore();
      restored = true;
      const recovered = await waitForStatus(
        c,
        [0, 1, 2],
        (d) => d.peers.length === 2 && d.peers.every((p) => p.health === 'healthy'),
        RECOVER_MS,
      );
      expect(recovered, `node 3 did not recover:\n${logs()}`).toBeDefined();
      for (const node of [nodes[0]!, nodes[1]!]) {
        const f = await metrics(node);
        expect(sampleValue(f, 'weft_peer_healthy', { peer: lost.key })).toBe(1);
      }
    } finally {
      if (!restored) await restore().catch(() => undefined);
    }
  }

  it('marks a node whose underlay veth (bridge side) is down unhealthy, and healthy again when it is up', async () => {
    const u = c.net.underlayNetns;
    const veth = `v${c.net.nodes[2]!.name}`;
    const links = await c.net.nodes[2]!.exec('ip', ['-n', u, '-json', 'link', 'show', 'dev', veth]);
    expect(links.code, `no ${veth} in ${u}: ${links.stderr}`).toBe(0);
    const setLink = async (state: 'up' | 'down'): Promise<void> => {
      const r = await c.net.nodes[2]!.exec('ip', ['-n', u, 'link', 'set', 'dev', veth, state]);
      if (r.code !== 0) throw new Error(`ip -n ${u} link set ${veth} ${state}: ${r.stderr}`);
    };
    await cutAndRestore(
      () => setLink('down'),
      () => setLink('up'),
    );
  });

  it('marks a node whose own eth0 is set down unhealthy, and healthy again when it is up', async () => {
    const node = c.net.nodes[2]!;
    const ip = async (args: string[]): Promise<void> => {
      const r = await node.exec('ip', args);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')} in ${node.netns}: ${r.stderr}`);
    };
    await cutAndRestore(
      () => ip(['link', 'set', 'dev', node.ifname, 'down']),
      async () => {
        await ip(['link', 'set', 'dev', node.ifname, 'up']);
        // Setting the link down flushed the default route; the underlay traffic needs none (one /24), but
        // the namespace is put back as the harness made it.
        await ip(['route', 'replace', 'default', 'via', UNDERLAY_GATEWAY4]);
      },
    );
  });
});

describe('observability: /readyz before and after the node has a lease and a subnet file', () => {
  let c: WeftCluster | undefined;

  beforeAll(async () => {
    // The cluster is built by hand: startWeftCluster writes the config first and waits for readiness.
    const net = await netnsCluster({ nodes: 1, withEtcdHost: true });
    c = new WeftCluster(net, { nodes: 1, skipEtcdConfig: true });
    c.addWeftNodes();
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('weftctl status reports that weftd is not running before it starts', async () => {
    const r = await weftctl(c!.net.nodes[0]!, ['--healthz-port', String(HEALTHZ_PORT)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/weftd is not running: nothing listens on 127\.0\.0\.1:10256/);
  });

  it('is not ready while the network config is missing, and ready once it is written', async () => {
    const cluster = c!;
    const node = cluster.net.nodes[0]!;
    const w = cluster.weftNodes[0]!;
    await cluster.startWeftd(0);

    // The server comes up before the daemon asks etcd for the config.
    const early = await pollUntil(
      async () => {
        if (w.weftd?.exited) throw new Error('weftd exited');
        return await httpGet(node, '/readyz');
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(early, `weftd never served /readyz:\n${cluster.logTail(0)}`).toBeDefined();
    expect(early!.status).toBe(503);
    expect(early!.body).toMatch(/^readyz failed:\n/);
    expect(early!.body).toContain('- no subnet lease held\n');
    expect(early!.body).toContain('- subnet file not written\n');
    expect(existsSync(w.subnetFile)).toBe(false);
    // Waiting for the config is no reason to restart the process.
    expect((await httpGet(node, '/healthz')).status).toBe(200);
    const f = await metrics(node);
    expect(sampleValue(f, 'weft_lease_held')).toBe(0);
    expect(f.get('weft_lease_expiry_timestamp_seconds')?.metrics ?? []).toEqual([]);
    expect(sampleValue(f, 'weft_lease_acquisitions_total')).toBe(0);
    const table = await weftctl(node, ['--healthz-port', String(HEALTHZ_PORT)]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('Lease:      none (weftd has not acquired a subnet yet)');
    expect(table.stdout).toContain('Backend:    not started');
    expect(table.stdout).toContain('Reconcile:  not run yet');

    // Still waiting a moment later (the daemon polls for the config).
    const stillWaiting = await httpGet(node, '/readyz');
    expect(stillWaiting.status).toBe(503);

    await etcdctl(
      cluster.etcdEndpoint,
      ['put', '/coreos.com/network/config', JSON.stringify(DEFAULT_NET_CONF)],
      {
        netns: node.netns,
      },
    );
    const ready = await pollUntil(
      async () => {
        if (w.weftd?.exited) throw new Error('weftd exited');
        const r = await httpGet(node, '/readyz');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(ready, `weftd never became ready:\n${cluster.logTail(0)}`).toBeDefined();
    expect(ready!.body).toBe('ok\n');
    expect(existsSync(w.subnetFile)).toBe(true);
    expect(cluster.subnetEnv(0).FLANNEL_NETWORK).toBe('10.244.0.0/16');
    const after = await metrics(node);
    expect(sampleValue(after, 'weft_lease_held')).toBe(1);
    expect(sampleValue(after, 'weft_lease_acquisitions_total')).toBe(1);
    expect(sampleValue(after, 'weft_peers')).toBe(0);
    const doc = await status(node);
    expect(doc.lease?.subnet).toBe(cluster.subnetEnv(0).FLANNEL_SUBNET?.replace(/\.1\/24$/, '.0/24'));
  });
});
