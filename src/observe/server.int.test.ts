// The observe HTTP server on a loopback ephemeral port, with real HealthState, WeftMetrics and status docs.
import * as http from 'node:http';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseStatusDoc } from '../../daemon/commands/render/index.js';
import { parseExposition, sampleValue } from '../../testkit/exposition.js';
import { parseCidr } from '../ip/index.js';
import { silentLogger } from '../log/index.js';
import { HealthState } from './health.js';
import { WeftMetrics } from './metrics.js';
import { isLocalClient, type ObserveServer, ObserveServerListenError, startObserveServer } from './server.js';
import { buildStatusDoc, type StatusDoc } from './status.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const servers: ObserveServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function start(status?: () => StatusDoc) {
  const health = new HealthState();
  const metrics = new WeftMetrics({ version: '9.9.9' });
  const server = await startObserveServer({
    host: '127.0.0.1',
    port: 'ephemeral',
    health,
    metrics,
    status:
      status ??
      (() =>
        buildStatusDoc({
          version: '9.9.9',
          ownLease: {
            key: '10.5.1.0-24',
            subnet: parseCidr('10.5.1.0/24'),
            attrs: { publicIP: '127.0.0.1' },
            expiration: null,
          },
          backend: { type: 'host-gw', interface: 'lo', device: null, mtu: 65536 },
          peers: [],
          lastReconcile: null,
        })),
    logger: silentLogger(),
  });
  if (server === null) throw new Error('server did not start');
  servers.push(server);
  return { server, health, metrics };
}

describe('observe server', () => {
  it('is off when the port is 0', async () => {
    const server = await startObserveServer({
      host: '127.0.0.1',
      port: 0,
      health: new HealthState(),
      metrics: new WeftMetrics({ defaultMetrics: false }),
      status: () => {
        throw new Error('unused');
      },
      logger: silentLogger(),
    });
    expect(server).toBeNull();
  });

  it('/readyz answers 503 with reasons until the lease, firewall and subnet file exist, then 200', async () => {
    const { server, health } = await start();
    let answer = await request(`${server.url}/readyz`);
    expect(answer.status).toBe(503);
    expect(answer.body).toBe(
      'readyz failed:\n- no subnet lease held\n- firewall rules not installed\n- subnet file not written\n',
    );
    health.setLeaseHeld(true);
    health.setFirewallInstalled(true);
    health.setSubnetFileWritten(true);
    answer = await request(`${server.url}/readyz`);
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('ok\n');
  });

  it('/healthz answers 200, and 503 with the reason when the reconcile loop is stuck', async () => {
    let now = 1_000_000;
    const health = new HealthState({ now: () => now, reconcileStuckAfterMs: 1000 });
    const server = await startObserveServer({
      host: '127.0.0.1',
      port: 'ephemeral',
      health,
      metrics: new WeftMetrics({ defaultMetrics: false }),
      status: () => {
        throw new Error('unused');
      },
      logger: silentLogger(),
    });
    if (server === null) throw new Error('server did not start');
    servers.push(server);
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
    health.reconcileStarted();
    now += 5000;
    const answer = await request(`${server.url}/healthz`);
    expect(answer.status).toBe(503);
    expect(answer.body).toContain('- reconcile running for 5 s (stuck after 1 s)');
  });

  it('/metrics serves Prometheus text that a parser reads, with the values the daemon fed', async () => {
    const { server, metrics } = await start();
    metrics.setPeers(2);
    metrics.leaseRenewed();
    metrics.probeResult('10.5.2.0/24', 0.25);
    const answer = await request(`${server.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parseExposition(answer.body);
    expect(sampleValue(families, 'weft_peers')).toBe(2);
    expect(sampleValue(families, 'weft_lease_renewals_total')).toBe(1);
    expect(sampleValue(families, 'weft_peer_probe_rtt_seconds', { peer: '10.5.2.0/24' })).toBe(0.00025);
    expect(sampleValue(families, 'weft_build_info', { version: '9.9.9' })).toBe(1);
    expect(families.has('process_resident_memory_bytes')).toBe(true);
  });

  it('/status serves the JSON status document', async () => {
    const { server } = await start();
    const answer = await request(`${server.url}/status`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    const doc = parseStatusDoc(JSON.parse(answer.body));
    expect(doc.lease?.subnet).toBe('10.5.1.0/24');
    expect(doc.lease?.reservation).toBe(true);
    expect(doc.backend?.type).toBe('host-gw');
  });

  it('/status serves one page of peers (?limit=&offset=) with a summary of all, and 400 for a bad page', async () => {
    const peers = Array.from({ length: 30 }, (_, i) => ({
      key: `10.5.${i + 10}.0-24`,
      subnet: parseCidr(`10.5.${i + 10}.0/24`),
      attrs: { publicIP: `192.168.64.${i + 10}` },
      expiration: null,
    }));
    const { server } = await start(() =>
      buildStatusDoc({ version: 'x', ownLease: null, backend: null, peers, lastReconcile: null }),
    );
    const page = parseStatusDoc(JSON.parse((await request(`${server.url}/status?limit=10&offset=25`)).body));
    expect(page.peerSummary).toEqual({ total: 30, healthy: 0, unhealthy: 0, unknown: 30 });
    expect(page.peersOffset).toBe(25);
    expect(page.peers.map((p) => p.subnet)).toEqual([
      '10.5.35.0/24',
      '10.5.36.0/24',
      '10.5.37.0/24',
      '10.5.38.0/24',
      '10.5.39.0/24',
    ]);
    const bad = await request(`${server.url}/status?limit=lots`);
    expect(bad.status).toBe(400);
    expect(bad.body).toBe('/status?limit= must be an integer 0..5000, found "lots"\n');
  });

  it('answers 500 when the status document cannot be built, and keeps serving', async () => {
    const { server } = await start(() => {
      throw new Error('backend not ready');
    });
    const answer = await request(`${server.url}/status`);
    expect(answer.status).toBe(500);
    expect(answer.body).toBe('internal error: backend not ready\n');
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
  });

  it('answers 404 for unknown paths, 405 for other methods, and HEAD without a body', async () => {
    const { server } = await start();
    const missing = await request(`${server.url}/nope?x=1`);
    expect(missing.status).toBe(404);
    expect(missing.body).toContain('try /healthz, /readyz, /metrics or /status');
    const post = await request(`${server.url}/healthz`, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const head = await request(`${server.url}/healthz`, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe('3');
  });

  it('fails with a clear error when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const attempt = startObserveServer({
        host: '127.0.0.1',
        port,
        health: new HealthState(),
        metrics: new WeftMetrics({ defaultMetrics: false }),
        status: () => {
          throw new Error('unused');
        },
        logger: silentLogger(),
      });
      await expect(attempt).rejects.toThrow(ObserveServerListenError);
      await expect(attempt).rejects.toThrow(
        `127.0.0.1:${port}: EADDRINUSE (port in use; pick another --healthz-port)`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('tells local clients (loopback, or this host to its own address) from remote ones', () => {
    expect(isLocalClient('127.0.0.1', '127.0.0.1')).toBe(true);
    expect(isLocalClient('127.3.2.1', '10.0.0.1')).toBe(true);
    expect(isLocalClient('::1', '::1')).toBe(true);
    expect(isLocalClient('::ffff:127.0.0.1', '::ffff:127.0.0.1')).toBe(true);
    expect(isLocalClient('10.0.0.1', '10.0.0.1')).toBe(true);
    expect(isLocalClient('10.0.0.2', '10.0.0.1')).toBe(false);
    expect(isLocalClient('::ffff:10.0.0.2', '::ffff:10.0.0.1')).toBe(false);
    expect(isLocalClient(undefined, '10.0.0.1')).toBe(false);
  });

  it('closes: nothing listens afterwards', async () => {
    const { server } = await start();
    await server.close();
    await expect(request(`${server.url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  });
});
