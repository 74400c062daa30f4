// The health contract with real processes: each task's underlying work is broken for real and /readyz or
// /healthz changes, then recovers when the work can be done again.
// - iptables made to fail: node 1's weftd finds `iptables-restore` first in a temp dir on its PATH, a script
//   that exits 1 while a flag file exists; a hand-deleted weft rule then cannot be repaired → not ready (with
//   the reason), and ready again with the rule back once the flag is gone.
// - the lease watch cut: node 2's connections to etcd are destroyed (`ss -K`) and new ones rejected (an
//   iptables REJECT in its namespace) → /healthz names `lease-watch`; healthy again once the rule is removed.
// - etcd stopped past the lease's TTL (node 1 runs with a 10 s test TTL): not ready ("own lease expired"),
//   weft_lease_held 0 and weft_lease_lost_total 1; etcd back → the lease is held again and the node ready.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, sampleValue } from '../testkit/exposition.js';
import { type ClusterNode, ETCD_HOST_IP4, pollUntil } from '../testkit/index.js';
import { makeRunTempDir, removeRunTempDir } from '../testkit/run.js';
import { startWeftCluster, type WeftCluster } from '../testkit/weft-cluster.js';
import { weftdGet } from '../testkit/weftd-http.js';

/** Generous bounds for a loaded 2-core machine; these are not timing assertions. */
const CHANGE_MS = 60_000;
const LEASE_TTL_SECONDS = 10;
const ETCD_PORT = '2379';

let c: WeftCluster;
let failDir: string;
let failFlag: string;

async function metric(node: ClusterNode, name: string): Promise<number | undefined> {
  const r = await weftdGet(node, '/metrics');
  return sampleValue(parseExposition(r.body), name);
}

/**
 * Polls a metric until it has `value` (the lease metrics follow the keeper's once-a-second expiry check, so
 * they may trail `/readyz`, which judges the expiry from the clock when asked, by up to a second).
 */
async function waitForMetric(node: ClusterNode, name: string, value: number): Promise<void> {
  let last: number | undefined;
  const ok = await pollUntil(
    async () => {
      last = await metric(node, name);
      return last === value ? true : undefined;
    },
    { timeoutMs: CHANGE_MS, intervalMs: 250 },
  );
  if (ok === undefined) throw new Error(`${name} in ${node.netns} never became ${value}; last: ${last}`);
}

/** Polls `path` until its status is `status`; returns that answer's body. */
async function waitFor(node: ClusterNode, p: string, status: number, bodyMatch?: RegExp): Promise<string> {
  let last = '';
  const body = await pollUntil(
    async () => {
      const r = await weftdGet(node, p);
      last = `${r.status} ${r.body}`;
      return r.status === status && (bodyMatch === undefined || bodyMatch.test(r.body)) ? r.body : undefined;
    },
    { timeoutMs: CHANGE_MS, intervalMs: 500 },
  );
  if (body === undefined) throw new Error(`${p} in ${node.netns} never answered ${status}; last: ${last}`);
  return body;
}

beforeAll(async () => {
  failDir = makeRunTempDir('iptables-fail');
  failFlag = path.join(failDir, 'fail');
  const script = path.join(failDir, 'iptables-restore');
  // A real program that fails while the flag exists, and is the real iptables-restore otherwise.
  fs.writeFileSync(
    script,
    `#!/bin/sh\nif [ -e '${failFlag}' ]; then echo 'iptables-restore: injected failure' >&2; exit 1; fi\nexec /usr/sbin/iptables-restore "$@"\n`,
    { mode: 0o755 },
  );
  c = await startWeftCluster({
    nodes: 2,
    weftdArgs: ['--iptables-resync=1'],
    weftdEnv: (node) =>
      node.index === 1
        ? {
            PATH: `${failDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
            WEFT_TEST_LEASE_TTL_SECONDS: String(LEASE_TTL_SECONDS),
          }
        : {},
  });
  for (const node of c.net.nodes) await waitFor(node, '/readyz', 200);
}, 180_000);

afterAll(async () => {
  await c?.destroy();
  if (failDir) removeRunTempDir(failDir);
});

describe('readiness and liveness follow the tasks’ real work', () => {
  it('is not ready while the firewall repair fails, and ready again once iptables-restore works', async () => {
    const node = c.net.nodes[0]!;
    fs.writeFileSync(failFlag, '');
    // Someone deletes weft's masquerade rules; the check must restore them and cannot.
    const flush = await node.exec('iptables', ['-t', 'nat', '-F', 'FLANNEL-POSTRTG']);
    expect(flush.code).toBe(0);
    const body = await waitFor(node, '/readyz', 503, /firewall rules not in place/);
    expect(body).toContain('iptables-restore');
    expect((await weftdGet(node, '/healthz')).status).toBe(200);
    fs.rmSync(failFlag);
    await waitFor(node, '/readyz', 200);
    const rules = await node.exec('iptables', ['-t', 'nat', '-S', 'FLANNEL-POSTRTG']);
    expect(rules.stdout).toContain('-j MASQUERADE');
  });

  it('names the lease watch in /healthz when its stream is cut and stays cut, and is healthy once it is back', async () => {
    const node = c.net.nodes[1]!;
    const reject = [
      'OUTPUT',
      '-p',
      'tcp',
      '--dport',
      ETCD_PORT,
      '-j',
      'REJECT',
      '--reject-with',
      'tcp-reset',
    ];
    expect((await node.exec('iptables', ['-I', ...reject])).code).toBe(0);
    try {
      // New connections are refused; the open ones are destroyed (an idle stream would not notice a drop).
      const kill = await node.exec('ss', ['-K', 'dst', ETCD_HOST_IP4, 'dport', '=', ETCD_PORT]);
      expect(kill.code).toBe(0);
      const body = await waitFor(node, '/healthz', 503, /task lease-watch: no heartbeat/);
      expect(body).toMatch(/^healthz failed:\n/);
    } finally {
      await node.exec('iptables', ['-D', ...reject]);
    }
    await waitFor(node, '/healthz', 200);
  });

  it('loses the lease when etcd is down past its TTL (not ready, counted once), and holds it again when etcd is back', async () => {
    const node = c.net.nodes[0]!;
    expect(await metric(node, 'weft_lease_held')).toBe(1);
    // A renewal late on a loaded machine may already have counted a loss: count from here.
    const lostBefore = (await metric(node, 'weft_lease_lost_total')) ?? 0;
    await c.net.etcd.kill();
    try {
      await waitFor(node, '/readyz', 503, /own lease expired at .* without renewal/);
      await waitForMetric(node, 'weft_lease_held', 0);
      expect(await metric(node, 'weft_lease_lost_total')).toBe(lostBefore + 1);
      expect(await metric(node, 'weft_lease_renewal_failures_total')).toBeGreaterThan(0);
    } finally {
      await c.net.etcd.restart();
    }
    await waitFor(node, '/readyz', 200);
    expect(await metric(node, 'weft_lease_held')).toBe(1);
    expect(await metric(node, 'weft_lease_lost_total')).toBe(lostBefore + 1);
  });
});
