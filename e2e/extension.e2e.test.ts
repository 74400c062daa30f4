// flannel's extension backend with real weftd: flannel's own documented host-gw example commands (ip route
// add/del through `sh -c`, env SUBNET and PUBLIC_IP) carry the pod traffic; a command that hangs is cut at
// --extension-command-timeout and reported.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseRows } from '../testkit/dataplane.js';
import { type Pod, pollUntil } from '../testkit/index.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';
import { weftdGet } from '../testkit/weftd-http.js';

describe('extension: host-gw made of flannel’s documented example commands', () => {
  let c: WeftCluster;
  let pods: Pod[];

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 3,
      netConf: {
        Network: '10.244.0.0/16',
        Backend: {
          Type: 'extension',
          PreStartupCommand: 'echo started',
          SubnetAddCommand: 'ip route add $SUBNET via $PUBLIC_IP',
          SubnetRemoveCommand: 'ip route del $SUBNET via $PUBLIC_IP',
        },
      },
    });
    pods = await c.addPods(2);
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('publishes extension leases whose BackendData holds PreStartupCommand’s output', async () => {
    const rows = await leaseRows(c);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row.value.BackendType).toBe('extension');
      expect(row.value.BackendData).toEqual({ Output: 'started' });
    }
  });

  it('SubnetAddCommand routes every peer subnet via its PublicIP; the ping matrix passes', async () => {
    const rows = await leaseRows(c);
    for (let i = 0; i < 3; i++) {
      const own = c.net.nodes[i]!.underlayIp;
      for (const peer of rows.filter((r) => r.value.PublicIP !== own)) {
        const routes = await c.ipJson<Array<{ gateway?: string }>>(i, ['route', 'show', peer.subnet]);
        expect(routes.map((r) => r.gateway)).toEqual([peer.value.PublicIP]);
      }
    }
    expect(await c.pingMatrix(pods)).toEqual([]);
  });
});

describe('extension: a command that hangs', () => {
  let c: WeftCluster;

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 2,
      weftdArgs: ['--extension-command-timeout=1'],
      netConf: {
        Network: '10.244.0.0/16',
        Backend: { Type: 'extension', SubnetAddCommand: 'sleep 600' },
      },
    });
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('is killed at its time limit, reported, and retried while weftd stays ready', async () => {
    const log = () => readFileSync(c.weftNodes[0]!.logFile, 'utf8');
    const killed = await pollUntil(
      async () => (log().split('command killed after 1000 ms').length > 2 ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(killed, 'two timed-out runs of SubnetAddCommand in the log').toBe(true);
    const line = log()
      .split('\n')
      .find((l) => l.includes('command killed after'));
    expect(JSON.parse(line!)).toMatchObject({ command: 'SubnetAddCommand', timedOut: true, level: 50 });
    // The reconcile loop and health were never held up by it.
    expect((await weftdGet(c.net.nodes[0]!, '/readyz')).status).toBe(200);
  });
});
