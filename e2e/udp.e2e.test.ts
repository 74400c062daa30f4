// Issue 5 (userspace UDP backend) end to end: three nodes running real weftd with `Backend.Type: "udp"`, two pods
// per node made by the real CNI plugins, flannel0 + the native engine as the data path. What every backend does
// (lease format, subnet.env, ping matrix, MTU edge, restart, hand-deleted entries) is in backends.e2e.test.ts. A test host on the
// underlay (h1) plays a udp peer: it sends forged datagrams, and with a lease of its own it is a peer that
// appears and disappears while the daemons keep running.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastRunLog, leaseRows, restartWeftd, waitFor } from '../testkit/dataplane.js';
import { type ClusterMachine, type Pod, type ProcessHandle, runIn, spawnIn } from '../testkit/index.js';
import { ipv4UdpPacket } from '../testkit/udp-peer.js';
import { HEALTHZ_PORT, REPO_ROOT, startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

const NET_CONF = { Network: '10.244.0.0/16', Backend: { Type: 'udp' } };
const UDP_PORT = 8285;
/** The stand-in peer (built from e2e/udp-peer.ts by `npm run build`). */
const UDP_PEER = join(REPO_ROOT, 'dist-dev/testkit/udp-peer.js');
const POD_PORT = 40404;

interface TunLink {
  ifindex: number;
  flags: string[];
  mtu: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: { type?: string; pi?: boolean; vnet_hdr?: boolean; persist?: boolean };
  };
}

interface PeerLine {
  from?: string;
  listening?: string;
  inner?: { src: string; dst: string; protocol: number };
  text?: string;
}

async function flannel0(c: WeftCluster, i: number): Promise<TunLink> {
  const [link] = await c.ipJson<TunLink[]>(i, ['-d', 'link', 'show', 'dev', 'flannel0']);
  if (!link) throw new Error(`node ${i + 1} has no flannel0`);
  return link;
}

/** weftd's udp counters from /metrics inside node `i`: `packets.tx|rx` and `drops.<reason>`. */
/** weft_udp_packets_total by direction and weft_udp_drops_total by reason. */
interface UdpCounters {
  packets: Record<string, number>;
  drops: Record<string, number>;
}

async function udpCounters(c: WeftCluster, i: number): Promise<UdpCounters> {
  const r = await c.net.nodes[i]!.exec('curl', [
    '--silent',
    '--show-error',
    '--max-time',
    '10',
    `http://127.0.0.1:${HEALTHZ_PORT}/metrics`,
  ]);
  if (r.code !== 0) throw new Error(`curl /metrics on node ${i + 1} failed: ${r.stderr.trim()}`);
  const out: UdpCounters = { packets: {}, drops: {} };
  for (const line of r.stdout.split('\n')) {
    const m = /^weft_udp_(packets|drops)_total\{(?:direction|reason)="([a-z_0-9]+)"\} (\S+)$/.exec(line);
    if (m) out[m[1] === 'packets' ? 'packets' : 'drops'][m[2]!] = Number(m[3]);
  }
  return out;
}

/** Waits (bounded) until node `i`'s counters satisfy `ready`, and returns them. */
function waitForUdpCounters(
  c: WeftCluster,
  i: number,
  what: string,
  ready: (m: UdpCounters) => boolean,
): Promise<UdpCounters> {
  return waitFor(
    what,
    async () => {
      const m = await udpCounters(c, i);
      return ready(m) ? m : undefined;
    },
    20_000,
  );
}

/** Waits (bounded) until the full pod ping matrix passes; returns the last (empty) list of failures. */
function waitForFullMatrix(c: WeftCluster, pods: Pod[], what: string): Promise<string[]> {
  return waitFor(
    what,
    async () => {
      const f = await c.pingMatrix(pods, { count: 1, timeoutSec: 2 });
      return f.length === 0 ? f : undefined;
    },
    30_000,
  );
}

/** A TCP connect from `from`'s namespace: 'ok', an error code such as 'ENETUNREACH', or 'timeout'. */
async function tcpConnect(from: Pod, host: string, port: number): Promise<string> {
  const r = await runIn(from.netns, process.execPath, [UDP_PEER, 'connect', host, String(port)], {
    timeoutMs: 15_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (line === undefined)
    throw new Error(`udp-peer connect printed nothing (exit ${r.code}): ${r.stderr.trim()}`);
  return (JSON.parse(line) as { connect: string }).connect;
}

/** The JSON lines a udp-peer process printed so far. */
function peerLines(handle: ProcessHandle): PeerLine[] {
  return handle
    .logTail(10_000)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as PeerLine);
}

describe('udp: 3 nodes × 2 pods with real weftd, etcd and CNI plugins', () => {
  let c: WeftCluster;
  let pods: Pod[];
  let h1: ClusterMachine;
  const helpers: ProcessHandle[] = [];

  /** Starts the stand-in peer tool in a namespace, logging to the cluster's temp dir. */
  async function startPeerTool(netns: string, args: string[], name: string): Promise<ProcessHandle> {
    const h = await spawnIn(netns, process.execPath, [UDP_PEER, ...args], {
      logFile: join(c.net.tempDir, `${name}.log`),
    });
    helpers.push(h);
    await waitFor(`${name} to listen`, async () => {
      if (h.exited) throw new Error(`${name} exited: ${h.logTail(5)}`);
      return peerLines(h).some((l) => l.listening !== undefined);
    });
    return h;
  }

  /** Sends datagrams from `from`'s address and the udp port (as a peer would) to `to`:8285. */
  async function sendFrom(from: ClusterMachine, to: string, packets: Uint8Array[]): Promise<void> {
    const hexes = packets.map((p) => Buffer.from(p).toString('hex'));
    const r = await from.exec(process.execPath, [
      UDP_PEER,
      'send',
      from.underlayIp,
      String(UDP_PORT),
      to,
      String(UDP_PORT),
      ...hexes,
    ]);
    if (r.code !== 0) throw new Error(`udp-peer send from ${from.name} failed: ${r.stderr.trim()}`);
  }

  const payload = (tag: string) => new TextEncoder().encode(tag);

  beforeAll(async () => {
    c = await startWeftCluster({ nodes: 3, extraHosts: 1, netConf: NET_CONF });
    pods = await c.addPods(2);
    h1 = c.net.hosts[0]!;
  });

  afterAll(async () => {
    for (const h of helpers) await h.stop('SIGTERM', 2_000).catch(() => undefined);
    await c?.destroy();
  });

  it('programs flannel0 (persistent TUN, /32, MTU 1472, route for the Network) and binds <node IP>:8285', async () => {
    for (let i = 0; i < 3; i++) {
      const subnet = c.subnetEnv(i).FLANNEL_SUBNET!;
      const tunnelAddress = subnet.replace(/\.1\/24$/, '.0');
      const link = await flannel0(c, i);
      expect(link.linkinfo?.info_kind).toBe('tun');
      expect(link.linkinfo?.info_data).toMatchObject({
        type: 'tun',
        pi: false,
        vnet_hdr: true,
        persist: true,
      });
      expect(link.mtu).toBe(1472);
      expect(link.flags).toContain('UP');
      // The engine holds the device: carrier on.
      expect(link.flags).not.toContain('NO-CARRIER');
      const addrs = await c.ipJson<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>(i, [
        '-4',
        'addr',
        'show',
        'dev',
        'flannel0',
      ]);
      expect(addrs[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${tunnelAddress}/32`]);
      const routes = await c.ipJson<Array<{ dst: string; dev: string }>>(i, [
        '-4',
        'route',
        'show',
        '10.244.0.0/16',
      ]);
      expect(routes.map((r) => `${r.dst} ${r.dev}`)).toEqual(['10.244.0.0/16 flannel0']);
      const ss = await c.net.nodes[i]!.exec('ss', ['-Hlun', 'sport', '=', `:${UDP_PORT}`]);
      expect(ss.stdout).toContain(`${c.net.nodes[i]!.underlayIp}:${UDP_PORT}`);
      const acceptLocal = await c.net.nodes[i]!.exec('cat', [
        '/proc/sys/net/ipv4/conf/flannel0/accept_local',
      ]);
      expect(acceptLocal.stdout.trim()).toBe('1');
      const disableV6 = await c.net.nodes[i]!.exec('cat', ['/proc/sys/net/ipv6/conf/flannel0/disable_ipv6']);
      expect(disableV6.stdout.trim()).toBe('1');
    }
  });

  it('carries TCP between pods on different nodes (iperf3) and counts it in /metrics', async () => {
    const r = await c.net.iperf(pods[0]!, pods[4]!, 2);
    expect(r.gbps).toBeGreaterThan(0);
    // Counters reach the metrics each reconcile pass and every 5 s.
    const sender = await waitForUdpCounters(c, 0, 'tx counters on node 1', (m) => (m.packets.tx ?? 0) > 1000);
    expect(sender.packets.tx).toBeGreaterThan(1000);
    const receiver = await waitForUdpCounters(
      c,
      2,
      'rx counters on node 3',
      (m) => (m.packets.rx ?? 0) > 1000,
    );
    expect(receiver.packets.rx).toBeGreaterThan(1000);
  });

  it('answers a destination no lease holds with ICMP net-unreachable (a TCP connect fails with ENETUNREACH, a ping says so) and counts no_route', async () => {
    const before = (await udpCounters(c, 0)).drops.no_route ?? 0;
    expect(await tcpConnect(pods[0]!, '10.244.254.9', 80)).toBe('ENETUNREACH');
    // Unlike flannel, an echo request is answered too (never an ICMP error): ping reports it at once.
    const ping = await c.net.ping(pods[0]!, '10.244.254.9', { count: 1, timeoutSec: 2 });
    expect(ping.ok).toBe(false);
    expect(ping.output).toContain('Destination Net Unreachable');
    await waitForUdpCounters(c, 0, 'no_route drops on node 1', (m) => (m.drops.no_route ?? 0) > before);
  });

  it('drops forged datagrams (unknown sender, spoofed inner source, wrong destination), counts them, delivers none; peers come and go live', async () => {
    const target = pods[0]!; // on node 1
    const node1 = c.net.nodes[0]!;
    const pids = c.weftNodes.map((w) => w.weftd!.pid);
    // A subnet no node holds, for h1's own lease.
    const leased = new Set((await leaseRows(c)).map((r) => r.subnet));
    const third = [...Array(50).keys()].map((k) => 200 + k).find((k) => !leased.has(`10.244.${k}.0/24`))!;
    const h1Key = `/coreos.com/network/subnets/10.244.${third}.0-24`;
    const h1Pod = `10.244.${third}.7`;

    const listener = await startPeerTool(
      target.netns,
      ['listen', '0.0.0.0', String(POD_PORT), '170'],
      'pod-listener',
    );
    const forged = (src: string, dst: string, tag: string) =>
      ipv4UdpPacket(src, dst, 40000, POD_PORT, payload(tag));

    // 1. h1 is no peer yet: whatever it sends is an unknown sender.
    let m0 = await udpCounters(c, 0);
    await sendFrom(
      h1,
      node1.underlayIp,
      [1, 2, 3].map(() => forged(h1Pod, target.ip, 'unknown-peer')),
    );
    await waitForUdpCounters(
      c,
      0,
      'unknown_peer drops',
      (m) => (m.drops.unknown_peer ?? 0) >= (m0.drops.unknown_peer ?? 0) + 3,
    );

    // 2. h1 gets a lease (PublicIP only, as a flannel udp node writes it): the running daemons take it as a peer.
    await c.etcdctl(['put', h1Key, JSON.stringify({ PublicIP: h1.underlayIp, PublicIPv6: null })]);
    try {
      await waitFor(
        'a datagram from h1 (now a peer) to reach the pod',
        async () => {
          await sendFrom(h1, node1.underlayIp, [forged(h1Pod, target.ip, 'legit')]);
          await new Promise((r) => setTimeout(r, 300));
          return peerLines(listener).some((l) => l.text === 'legit');
        },
        30_000,
      );

      // A peer may only send from its own subnet, and only to this node's subnet.
      m0 = await udpCounters(c, 0);
      await sendFrom(h1, node1.underlayIp, [
        forged(pods[2]!.ip, target.ip, 'spoofed'),
        forged(pods[3]!.ip, target.ip, 'spoofed'),
        forged('192.168.77.101', target.ip, 'spoofed'),
        forged(h1Pod, pods[4]!.ip, 'wrong-destination'),
      ]);
      const m1 = await waitForUdpCounters(
        c,
        0,
        'spoofed_source and wrong_destination drops',
        (m) =>
          (m.drops.spoofed_source ?? 0) >= (m0.drops.spoofed_source ?? 0) + 3 &&
          (m.drops.wrong_destination ?? 0) >= (m0.drops.wrong_destination ?? 0) + 1,
      );
      expect(m1.drops.spoofed_source).toBe((m0.drops.spoofed_source ?? 0) + 3);

      // Traffic towards h1's subnet now goes to h1:8285 (the peer table changed without a restart).
      const h1Listener = await startPeerTool(
        h1.netns,
        ['listen', h1.underlayIp, String(UDP_PORT), '60'],
        'h1-listener',
      );
      try {
        await waitFor(
          'node 1 to send pod traffic for h1’s subnet to h1',
          async () => {
            await c.net.ping(target, `10.244.${third}.5`, { count: 1, timeoutSec: 1 });
            return peerLines(h1Listener).some(
              (l) =>
                l.from === `${node1.underlayIp}:${UDP_PORT}` &&
                l.inner?.dst === `10.244.${third}.5` &&
                l.inner.src === target.ip,
            );
          },
          20_000,
        );
      } finally {
        await h1Listener.stop('SIGTERM', 2_000);
      }
    } finally {
      await c.etcdctl(['del', h1Key]);
    }

    // 3. The lease is gone: h1 is unknown again and its subnet unreachable (ICMP net-unreachable).
    await waitFor(
      'node 1 to forget h1',
      async () => (await tcpConnect(target, `10.244.${third}.5`, 80)) === 'ENETUNREACH',
      20_000,
    );
    m0 = await udpCounters(c, 0);
    await sendFrom(h1, node1.underlayIp, [forged(h1Pod, target.ip, 'after-removal')]);
    await waitForUdpCounters(
      c,
      0,
      'unknown_peer drops after removal',
      (m) => (m.drops.unknown_peer ?? 0) >= (m0.drops.unknown_peer ?? 0) + 1,
    );

    // Nothing forged reached the pod: only the datagrams h1 sent as a peer, from its own subnet.
    await listener.stop('SIGTERM', 2_000);
    const delivered = peerLines(listener).filter((l) => l.from !== undefined);
    expect(delivered.length).toBeGreaterThan(0);
    expect(new Set(delivered.map((l) => l.text))).toEqual(new Set(['legit']));
    expect(new Set(delivered.map((l) => l.from?.split(':')[0]))).toEqual(new Set([h1Pod]));
    // The daemons never restarted.
    expect(c.weftNodes.map((w) => w.weftd!.pid)).toEqual(pids);
    expect(c.weftNodes.every((w) => !w.weftd!.exited)).toBe(true);
  });

  it('re-creates a deleted flannel0 and re-attaches the data path without a restart', async () => {
    const before = await flannel0(c, 0);
    const pid = c.weftNodes[0]!.weftd!.pid;
    const del = await c.net.nodes[0]!.exec('ip', ['link', 'del', 'dev', 'flannel0']);
    expect(del.code).toBe(0);
    const after = await waitFor(
      'a new flannel0 with the engine attached',
      async () => {
        const link = await flannel0(c, 0);
        // Converged: a new device, MTU reconciled, the engine attached (carrier on).
        return link.ifindex !== before.ifindex && link.mtu === 1472 && !link.flags.includes('NO-CARRIER')
          ? link
          : undefined;
      },
      30_000,
    );
    expect(after.flags).toContain('UP');
    const failures = await waitForFullMatrix(c, pods, 'the full matrix after the repair');
    expect(failures).toEqual([]);
    expect(c.weftNodes[0]!.weftd!.pid).toBe(pid);
    expect(c.weftNodes[0]!.weftd!.exited).toBe(false);
  });

  it('survives SIGKILL of one weftd: the others keep working, the restarted one re-attaches to the same flannel0', async () => {
    const before = await flannel0(c, 1);
    await c.weftNodes[1]!.weftd!.kill();
    // The device outlives the process (persistent TUN): no reader, no carrier, address and route still there.
    const orphan = await flannel0(c, 1);
    expect(orphan.ifindex).toBe(before.ifindex);
    expect(orphan.flags).toContain('NO-CARRIER');
    // Nodes 1 and 3 are not affected.
    expect(await c.pingMatrix([pods[0]!, pods[1]!, pods[4]!, pods[5]!])).toEqual([]);

    await restartWeftd(c, 1);
    // The data path ran again before weftd talked to etcd: from the peer table its predecessor saved.
    const log = lastRunLog(c, 1).map((r) => r.msg);
    expect(log).toContain('udp: data path resumed from the last peer table');
    expect(log.indexOf('udp: data path resumed from the last peer table')).toBeLessThan(
      log.indexOf('network config'),
    );
    expect(log).toContain('udp: adopted the resumed data path');
    const after = await flannel0(c, 1);
    expect(after.ifindex).toBe(before.ifindex);
    expect(after.flags).not.toContain('NO-CARRIER');
    const failures = await waitForFullMatrix(c, pods, 'the full matrix after the restart');
    expect(failures).toEqual([]);
  });

  it('SIGTERM leaves flannel0, its address and the route in place; a restart re-attaches', async () => {
    const before = await flannel0(c, 2);
    const exit = await c.weftNodes[2]!.weftd!.stop('SIGTERM', 10_000);
    expect(exit.code).toBe(0);
    const link = await flannel0(c, 2);
    expect(link.ifindex).toBe(before.ifindex);
    const routes = await c.ipJson<Array<{ dst: string; dev: string }>>(2, [
      '-4',
      'route',
      'show',
      '10.244.0.0/16',
    ]);
    expect(routes.map((r) => r.dev)).toEqual(['flannel0']);
    const addrs = await c.ipJson<Array<{ addr_info: Array<{ local: string }> }>>(2, [
      '-4',
      'addr',
      'show',
      'dev',
      'flannel0',
    ]);
    expect(addrs[0]?.addr_info).toHaveLength(1);

    await restartWeftd(c, 2);
    expect((await flannel0(c, 2)).ifindex).toBe(before.ifindex);
    const failures = await waitForFullMatrix(c, pods, 'the full matrix after the restart');
    expect(failures).toEqual([]);
  });
});
