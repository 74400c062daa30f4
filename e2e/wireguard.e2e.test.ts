import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dfPingEdge, leaseOfNode, leaseRows } from '../testkit/dataplane.js';
import { type Pod, pollUntil, runIn, sleep } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';

const DEVICE = 'flannel-wg';
/** A fixed pre-shared key (as `wg genpsk` prints one) for every peer. */
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';
const PORT = 51820;
/** ASCII "weftWGmarker!!" + 2: sixteen bytes ping repeats through its payload (`ping -p`). */
const MARKER_HEX = '77656674574'.padEnd(32, '7');

interface WgData {
  PublicKey?: string;
  Port?: number;
}

const keyFile = (c: WeftCluster, i: number) => join(c.net.nodes[i]!.dir, 'run/flannel/wgkey');

async function publicKeyOf(c: WeftCluster, i: number): Promise<string> {
  return ((await leaseOfNode(c, i)).value.BackendData as WgData).PublicKey ?? '';
}

/** Polls `probe` every 200 ms until it is true; throws naming `what` after `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const ok = await pollUntil(async () => ((await probe()) ? true : undefined), {
    timeoutMs,
    intervalMs: 200,
  });
  if (ok === undefined) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function wgPeers(c: WeftCluster, i: number): Promise<string[]> {
  const r = await c.net.nodes[i]!.exec('wg', ['show', DEVICE, 'peers']);
  if (r.code !== 0) throw new Error(`wg show on node ${i + 1} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

describe('wireguard: 3 nodes × 2 pods over wireguard-go with real weftd, wg and CNI plugins', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 3,
      mountNamespaces: true,
      netConf: {
        Network: '10.244.0.0/16',
        Backend: { Type: 'wireguard', PSK, PersistentKeepaliveInterval: 5 },
      },
      weftdEnv: (node) => ({ WIREGUARD_KEY_FILE: join(node.dir, 'run/flannel/wgkey') }),
    });
    pods = await c.addPods(2);
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes flannel-format leases with PublicKey and Port, from a 0400 key file', async () => {
    const rows = await leaseRows(c);
    expect(rows).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const row = await leaseOfNode(c, i);
      expect(row.value.BackendType).toBe('wireguard');
      const data = row.value.BackendData as WgData;
      expect(data.Port).toBe(PORT);
      expect(data.PublicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      expect(statSync(keyFile(c, i)).mode & 0o777).toBe(0o400);
      // The lease's key is the file's key's public half.
      const pub = await c.net.nodes[i]!.exec('wg', ['pubkey'], {
        input: readFileSync(keyFile(c, i), 'utf8'),
      });
      expect(pub.stdout.trim()).toBe(data.PublicKey);
    }
    expect(new Set(rows.map((r) => (r.value.BackendData as WgData).PublicKey)).size).toBe(3);
  });

  it('gives every peer the PSK and never logs it or the private key', async () => {
    for (let i = 0; i < 3; i++) {
      const psks = await c.net.nodes[i]!.exec('wg', ['show', DEVICE, 'preshared-keys']);
      const values = psks.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[1]);
      expect(values).toEqual([PSK, PSK]);
      const log = readFileSync(c.weftNodes[i]!.logFile, 'utf8');
      expect(log).not.toContain(PSK);
      expect(log).not.toContain(readFileSync(keyFile(c, i), 'utf8').trim());
      const status = await c.net.nodes[i]!.exec('curl', ['-s', 'http://127.0.0.1:10256/status']);
      const metrics = await c.net.nodes[i]!.exec('curl', ['-s', 'http://127.0.0.1:10256/metrics']);
      expect(status.stdout).toContain('wireguard');
      for (const text of [status.stdout, metrics.stdout]) {
        expect(text).not.toContain(PSK);
        expect(text).not.toContain(readFileSync(keyFile(c, i), 'utf8').trim());
      }
    }
  });

  it('runs wireguard-go (the kernel has no WireGuard), says so, and sets address, route and MTU', async () => {
    expect(readFileSync(c.weftNodes[0]!.logFile, 'utf8')).toContain('created flannel-wg with wireguard-go');
    for (let i = 0; i < 3; i++) {
      const own = await leaseOfNode(c, i);
      const [link] = await c.ipJson<
        Array<{ mtu: number; flags: string[]; addr_info: Array<{ local: string; prefixlen: number }> }>
      >(i, ['-4', 'addr', 'show', 'dev', DEVICE]);
      expect(link?.mtu).toBe(1420);
      expect(link?.flags).toContain('UP');
      expect(link?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual([
        own.subnet.replace('/24', '/32'),
      ]);
      const routes = await c.ipJson<Array<{ dst: string; dev: string; scope?: string }>>(i, [
        'route',
        'show',
        '10.244.0.0/16',
      ]);
      expect(routes).toEqual([expect.objectContaining({ dst: '10.244.0.0/16', dev: DEVICE, scope: 'link' })]);
      expect(c.subnetEnv(i).FLANNEL_MTU).toBe('1420');
      expect(await wgPeers(c, i)).toHaveLength(2);
    }
  });

  it('passes the full 6×6 pod ping matrix', async () => {
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('has the MTU right: a DF ping of exactly 1420 bytes passes, one byte more fails', async () => {
    expect(await dfPingEdge(c, pods[0]!, pods[2]!.ip, 1420 - 28)).toMatchObject({
      fits: true,
      oneMore: false,
    });
  });

  it('encrypts: a marker payload never shows on the underlay, where nodes exchange only UDP to the listen port', async () => {
    const u = c.net.underlayNetns;
    const pcap = join(c.net.tempDir, 'underlay.pcap');
    const nodeIps = c.net.nodes.map((n) => n.underlayIp);
    const filter = `host ${nodeIps[0]} or host ${nodeIps[1]} or host ${nodeIps[2]}`;
    const dump = await c.net.spawnIn(u, c.net.tempDir, 'tcpdump', [
      '-i',
      'br0',
      '-nn',
      '-U',
      '-w',
      pcap,
      filter,
    ]);
    try {
      await sleep(1_000);
      // A plain ping of the marker from pod to pod across nodes, and TCP too.
      const ping = await runIn(pods[0]!.netns, 'ping', [
        '-n',
        '-c',
        '5',
        '-i',
        '0.2',
        '-p',
        MARKER_HEX,
        pods[3]!.ip,
      ]);
      expect(ping.code).toBe(0);
      await sleep(500);
    } finally {
      await dump.stop('SIGTERM', 3_000);
    }
    const bytes = readFileSync(pcap);
    expect(bytes.length).toBeGreaterThan(100);
    expect(bytes.includes(Buffer.from(MARKER_HEX, 'hex'))).toBe(false);
    const text = await runIn(u, 'tcpdump', ['-r', pcap, '-nn', '-q']);
    const between = text.stdout
      .split('\n')
      .filter((l) => / IP /.test(l))
      .filter((l) => nodeIps.filter((ip) => l.includes(`${ip}.`)).length === 2);
    expect(between.length).toBeGreaterThan(0);
    for (const line of between) expect(line).toMatch(new RegExp(`\\.${PORT}: UDP, length \\d+$`));
  });

  it('restores a peer removed by hand within a resync', async () => {
    const [victim] = await wgPeers(c, 0);
    const rm = await c.net.nodes[0]!.exec('wg', ['set', DEVICE, 'peer', victim!, 'remove']);
    expect(rm.code).toBe(0);
    expect(await wgPeers(c, 0)).not.toContain(victim);
    await waitFor('the removed peer to come back', 20_000, async () =>
      (await wgPeers(c, 0)).includes(victim!),
    );
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('re-creates a device deleted by hand (its wireguard-go exits with it) with key, peers, address and route', async () => {
    const del = await c.net.nodes[0]!.exec('ip', ['link', 'del', DEVICE]);
    expect(del.code).toBe(0);
    await waitFor('flannel-wg to carry traffic again', 40_000, async () => {
      const r = await runIn(pods[0]!.netns, 'ping', ['-n', '-c', '1', '-W', '1', pods[2]!.ip]);
      return r.code === 0;
    });
    expect(await wgPeers(c, 0)).toHaveLength(2);
    expect(await c.pingMatrix(pods)).toEqual([]);
  });

  it('survives SIGKILL and restart of a weftd while pods ping across it: no ping lost, same key, wireguard-go adopted', async () => {
    const before = await publicKeyOf(c, 1);
    const wgPidsBefore = await c.net.nodes[1]!.exec('ip', ['netns', 'pids', c.net.nodes[1]!.netns]);
    const pinger = runIn(pods[0]!.netns, 'ping', ['-n', '-c', '60', '-i', '0.1', '-W', '1', pods[2]!.ip], {
      timeoutMs: 30_000,
    });
    await sleep(1_000);
    await c.weftNodes[1]!.weftd!.kill();
    await c.startWeftd(1);
    await waitFor('the restarted weftd to adopt flannel-wg', 20_000, async () =>
      readFileSync(c.weftNodes[1]!.logFile, 'utf8').includes('adopted flannel-wg'),
    );
    const result = await pinger;
    expect(result.stdout).toMatch(/60 packets transmitted, 60 received/);
    expect(await publicKeyOf(c, 1)).toBe(before);
    // The wireguard-go that served the device before is still the one serving it.
    const after = await c.net.nodes[1]!.exec('ip', ['netns', 'pids', c.net.nodes[1]!.netns]);
    const wgBefore = wgPidsBefore.stdout.split('\n').filter(Boolean);
    expect(wgBefore.some((pid) => after.stdout.split('\n').includes(pid))).toBe(true);
  });

  it('keeps traffic flowing over a SIGTERM stop and start of a weftd (device and peers stay)', async () => {
    const pinger = runIn(pods[1]!.netns, 'ping', ['-n', '-c', '40', '-i', '0.1', '-W', '1', pods[4]!.ip], {
      timeoutMs: 30_000,
    });
    await sleep(500);
    await c.weftNodes[2]!.weftd!.stop('SIGTERM', 5_000);
    await c.startWeftd(2);
    await c.waitReady(2);
    expect((await pinger).stdout).toMatch(/40 packets transmitted, 40 received/);
  });

  it('reaches a node whose key changed (key file removed, weftd restarted) from every node without restarting them', async () => {
    const before = await publicKeyOf(c, 2);
    await c.weftNodes[2]!.weftd!.stop('SIGTERM', 5_000);
    rmSync(keyFile(c, 2));
    await c.startWeftd(2);
    await waitFor(
      'node 3 to publish its new public key',
      20_000,
      async () => (await publicKeyOf(c, 2)) !== before,
    );
    const after = await publicKeyOf(c, 2);
    for (const i of [0, 1]) {
      await waitFor(`node ${i + 1} to configure node 3's new key`, 20_000, async () =>
        (await wgPeers(c, i)).includes(after),
      );
      expect(await wgPeers(c, i)).not.toContain(before);
    }
    expect(await c.pingMatrix(pods, { count: 2, timeoutSec: 5 })).toEqual([]);
  });
});
