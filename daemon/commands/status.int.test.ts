// `weftctl status` against a real observe server on a loopback ephemeral port, and against nothing.
import * as http from 'node:http';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/ip/index.js';
import { silentLogger } from '../../src/log/index.js';
import { HealthState } from '../../src/observe/health.js';
import { WeftMetrics } from '../../src/observe/metrics.js';
import { PeerHealthTracker } from '../../src/observe/probe/index.js';
import { type ObserveServer, startObserveServer } from '../../src/observe/server.js';
import { buildStatusDoc } from '../../src/observe/status.js';
import { runWeftctl } from './dispatch.js';
import { parseStatusDoc } from './render/index.js';
import {
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  runStatus,
  type StatusArgs,
  statusCommand,
} from './status.js';

const NOW = new Date('2025-03-01T12:00:00.000Z');

function capture(env: NodeJS.ProcessEnv = {}) {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    io: {
      stdout: (t: string) => {
        out.stdout += t;
      },
      stderr: (t: string) => {
        out.stderr += t;
      },
      env,
      now: () => NOW,
    },
  };
}

const servers: ObserveServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** A real observe server whose status comes from a real tracker fed with probe results. */
async function startDaemonLike(): Promise<ObserveServer> {
  const tracker = new PeerHealthTracker({ unhealthyAfter: 2 });
  tracker.setTargets([
    { key: '10.5.2.0-24', address: '10.5.2.0' },
    { key: '10.5.3.0-24', address: '10.5.3.0' },
  ]);
  tracker.record('10.5.2.0-24', 0.31, new Date(NOW.getTime() - 4000));
  tracker.record('10.5.3.0-24', null, NOW);
  tracker.record('10.5.3.0-24', null, NOW);
  const peer = (n: number) => ({
    key: `10.5.${n}.0-24`,
    subnet: parseCidr(`10.5.${n}.0/24`),
    attrs: {
      publicIP: `192.168.64.${n}`,
      backendType: 'vxlan',
      backendData: { VNI: 1, VtepMAC: `aa:00:00:00:00:0${n}` },
    },
    expiration: new Date(NOW.getTime() + 3600_000),
  });
  const server = await startObserveServer({
    host: '127.0.0.1',
    port: 'ephemeral',
    health: new HealthState(),
    metrics: new WeftMetrics({ defaultMetrics: false }),
    status: () =>
      buildStatusDoc({
        version: '0.1.0',
        ownLease: { ...peer(1), expiration: new Date(NOW.getTime() + 2 * 3600_000) },
        backend: { type: 'vxlan', interface: 'eth0', device: 'flannel.1', mtu: 1450 },
        peers: [peer(2), peer(3)],
        probes: tracker.states(),
        probeIntervalMs: 10_000,
        lastReconcile: { at: new Date(NOW.getTime() - 1000), ok: true, ops: 6, failed: 0, durationMs: 2 },
        now: NOW,
      }),
    logger: silentLogger(),
  });
  if (server === null) throw new Error('server did not start');
  servers.push(server);
  return server;
}

function args(over: Partial<StatusArgs>): StatusArgs {
  return { output: 'table', 'timeout-ms': 5000, ...over };
}

/** A loopback port with nothing listening: bind one, then close it. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe('weftctl status', () => {
  it('prints the lease, backend and peers with health and RTT as a table', async () => {
    const server = await startDaemonLike();
    const { out, io } = capture();
    const code = await runStatus(args({ 'healthz-ip': '127.0.0.1', 'healthz-port': server.port }), io);
    expect(out.stderr).toBe('');
    expect(code).toBe(EXIT_OK);
    expect(out.stdout).toBe(
      [
        'Lease:      10.5.1.0/24  public IP 192.168.64.1  expires 2025-03-01T14:00:00.000Z (in 2h00m)',
        'Backend:    vxlan device flannel.1 via eth0  MTU 1450',
        'Reconcile:  ok, 1s ago: 6 ops, 0 failed, 2.0 ms',
        'Peers:      2 (1 healthy, 1 unhealthy, 0 unknown; probes every 10s)',
        'Version:    0.1.0',
        '',
        'SUBNET       PUBLIC IP     VTEP MAC           HEALTH     RTT      LOSS  LAST SEEN',
        '10.5.2.0/24  192.168.64.2  aa:00:00:00:00:02  healthy    0.31 ms  0%    4s ago',
        '10.5.3.0/24  192.168.64.3  aa:00:00:00:00:03  UNHEALTHY  -        100%  -',
        '',
      ].join('\n'),
    );
  });

  it('-o json prints the status document', async () => {
    const server = await startDaemonLike();
    const { out, io } = capture();
    const code = await runStatus(args({ 'healthz-port': server.port, output: 'json' }), io);
    expect(code).toBe(EXIT_OK);
    const doc = parseStatusDoc(JSON.parse(out.stdout));
    expect(doc.peers.map((p) => [p.subnet, p.health])).toEqual([
      ['10.5.2.0/24', 'healthy'],
      ['10.5.3.0/24', 'unhealthy'],
    ]);
  });

  it('finds the port in FLANNELD_HEALTHZ_PORT and asks loopback when weftd listens on 0.0.0.0', async () => {
    const server = await startDaemonLike();
    const { out, io } = capture({
      FLANNELD_HEALTHZ_PORT: String(server.port),
      FLANNELD_HEALTHZ_IP: '0.0.0.0',
    });
    expect(await runStatus(args({}), io)).toBe(EXIT_OK);
    expect(out.stdout).toContain('Backend:    vxlan device flannel.1 via eth0  MTU 1450');
  });

  it("runs through weftctl's dispatcher as the `status` command with -o", async () => {
    const server = await startDaemonLike();
    const { out, io } = capture();
    const argv = ['status', '--healthz-port', String(server.port), '-o', 'json'];
    expect(await runWeftctl(argv, io, [statusCommand(io)])).toBe(EXIT_OK);
    expect(parseStatusDoc(JSON.parse(out.stdout)).version).toBe('0.1.0');
  });

  it('says weftd is not running when nothing listens on the port', async () => {
    const port = await closedPort();
    const { out, io } = capture();
    expect(await runStatus(args({ 'healthz-port': port }), io)).toBe(EXIT_UNAVAILABLE);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(
      `weftctl status: weftd is not running: nothing listens on 127.0.0.1:${port} ` +
        "(check --healthz-ip/--healthz-port match weftd's)\n",
    );
  });

  it("says the health server is off when the port is 0 (flannel's default)", async () => {
    const { out, io } = capture();
    expect(await runStatus(args({}), io)).toBe(EXIT_UNAVAILABLE);
    expect(out.stderr).toContain("weftd's health server is off (--healthz-port=0)");
  });

  it('rejects bad flags and bad environment values with exit 2', async () => {
    let c = capture();
    expect(await runStatus(args({ 'healthz-port': 70000 }), c.io)).toBe(EXIT_USAGE);
    expect(c.out.stderr).toBe('weftctl status: --healthz-port must be an integer 0..65535, found 70000\n');
    c = capture();
    expect(await runStatus(args({ 'healthz-port': 1, 'healthz-ip': 'localhost' }), c.io)).toBe(EXIT_USAGE);
    expect(c.out.stderr).toContain('--healthz-ip must be an IP address, found "localhost"');
    c = capture({ FLANNELD_HEALTHZ_PORT: 'ten' });
    expect(await runStatus(args({}), c.io)).toBe(EXIT_USAGE);
    expect(c.out.stderr).toContain('healthz-port');
  });

  it('explains an answer that is not a weft status document', async () => {
    const impostor = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"hello":"world"}');
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as net.AddressInfo).port;
    try {
      const { out, io } = capture();
      expect(await runStatus(args({ 'healthz-port': port }), io)).toBe(EXIT_UNAVAILABLE);
      expect(out.stderr).toBe(
        `weftctl status: the answer from 127.0.0.1:${port}/status is not a weft status document: ` +
          'status.peers: expected an array, found nothing (the field is missing)\n',
      );
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });
});
