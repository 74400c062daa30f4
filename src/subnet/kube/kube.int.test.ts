// The kube subnet manager against the test API server (testkit/kube-apiserver), through the real
// @kubernetes/client-node: acquiring from podCIDR, annotations, conditions, the node watch (added, removed,
// changed, 410 Gone, restarts), retries of 500s, 409s and hanging requests.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeApiServer, makeNode } from '../../../testkit/kube-apiserver/server.js';
import { Collector, eventually, KubeManagerFixture, LogCapture } from '../../../testkit/kube-manager.js';
import type { LeaseAttrs, LeaseWatchBatch } from '../../lease/types.js';
import type { OwnLeaseChange } from '../types.js';
import { kubeAnnotationNames } from './annotations.js';
import type { KubeWatchEvent } from './list-watch.js';
import type { KubeSubnetManager, KubeSubnetManagerOptions } from './manager.js';
import { PodCidrOutsideNetworkError } from './node-lease.js';

const A = kubeAnnotationNames();
const NET_CONF = '{"Network": "10.5.0.0/16", "Backend": {"Type": "vxlan", "VNI": 1}}';

/** Annotations a running flannel/weft node carries. */
function managed(publicIP: string, mac: string): Record<string, string> {
  return {
    [A.kubeSubnetManager]: 'true',
    [A.backendType]: 'vxlan',
    [A.backendData]: JSON.stringify({ VNI: 1, VtepMAC: mac }),
    [A.publicIP]: publicIP,
  };
}

const ATTRS: LeaseAttrs = {
  publicIP: '198.51.100.1',
  backendType: 'vxlan',
  backendData: { VNI: 1, VtepMAC: '0e:00:00:00:00:01' },
};

function summary(batch: LeaseWatchBatch): string[] {
  return batch.events.map((e) => `${e.type} ${e.lease.key} ${e.lease.attrs.publicIP}`);
}

describe('KubeSubnetManager against the test API server', () => {
  let fixture: KubeManagerFixture;
  let server: FakeApiServer;
  let netConfPath: string;
  let logs: LogCapture;

  beforeEach(async () => {
    logs = new LogCapture();
    fixture = await KubeManagerFixture.start({
      tempDirName: 'kube',
      netConf: NET_CONF,
      attrs: ATTRS,
      managerDefaults: { logger: logs.logger },
    });
    ({ server, netConfPath } = fixture);
  });

  afterEach(() => fixture.close());

  const manager = (options?: Partial<KubeSubnetManagerOptions>) => fixture.manager(options);
  const signal = () => fixture.signal();
  const acquire = (m: KubeSubnetManager, attrs?: LeaseAttrs) => fixture.acquire(m, attrs);

  it('acquires the lease from spec.podCIDR and writes flannel annotations through nodes/<n>/status', async () => {
    server.nodes.add(makeNode('n1', { podCIDR: '10.5.3.0/24' }));
    const m = manager();
    const lease = await acquire(m);
    expect(lease.key).toBe('10.5.3.0-24');
    expect(lease.expiration).toBeNull();
    expect(lease.attrs).toEqual(ATTRS);

    const annotations = server.nodes.get('n1')?.metadata.annotations;
    expect(annotations).toEqual({
      [A.backendType]: 'vxlan',
      [A.backendData]: '{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}',
      [A.publicIP]: '198.51.100.1',
      [A.kubeSubnetManager]: 'true',
    });
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(1);
    expect(patches[0]?.path).toBe('/api/v1/nodes/n1/status');
    expect(patches[0]?.contentType).toBe('application/strategic-merge-patch+json');

    // A second acquire with the same attributes finds the node up to date: no new patch.
    const again = await acquire(m);
    expect(again.key).toBe('10.5.3.0-24');
    expect(server.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
  });

  it('rejects a podCIDR outside the net-conf Network with an error naming both and the file', async () => {
    server.nodes.add(makeNode('n1', { podCIDR: '10.99.7.0/24' }));
    const m = manager();
    const err = await acquire(m).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PodCidrOutsideNetworkError);
    expect((err as Error).message).toContain('10.99.7.0/24');
    expect((err as Error).message).toContain('10.5.0.0/16');
    expect((err as Error).message).toContain(netConfPath);
    expect(server.requests.filter((r) => r.method === 'PATCH')).toHaveLength(0);
  });

  it('waits for the controller manager to assign a podCIDR', async () => {
    server.nodes.add(makeNode('n1'));
    const m = manager();
    const pending = acquire(m);
    pending.catch(() => undefined); // awaited below; keeps a failed wait from leaking an unhandled rejection
    const waiting = (): unknown[] =>
      logs
        .matching('acquiring the lease')
        .filter((l) =>
          String((l.err as { message?: string } | undefined)?.message).includes('no IPv4 spec.podCIDR'),
        );
    await eventually(() => (waiting().length >= 2 ? true : undefined), 'a retry');
    server.nodes.update('n1', (n) => {
      n.spec = { podCIDR: '10.5.9.0/24', podCIDRs: ['10.5.9.0/24'] };
      return n;
    });
    const lease = await pending;
    expect(lease.key).toBe('10.5.9.0-24');
  });

  it('learns the node name from the pod POD_NAMESPACE/POD_NAME', async () => {
    server.nodes.add(makeNode('worker-7', { podCIDR: '10.5.7.0/24' }));
    server.pods.add('kube-flannel', 'weft-abcde', 'worker-7');
    const m = manager({
      nodeName: undefined,
      env: { POD_NAMESPACE: 'kube-flannel', POD_NAME: 'weft-abcde' },
    });
    expect(await m.nodeName()).toBe('worker-7');
    const lease = await acquire(m);
    expect(lease.key).toBe('10.5.7.0-24');
    expect(server.nodes.get('worker-7')?.metadata.annotations?.[A.kubeSubnetManager]).toBe('true');
  });

  it('sets NetworkUnavailable=False (FlannelIsUp) and keeps the other conditions', async () => {
    server.nodes.add(makeNode('n1', { podCIDR: '10.5.3.0/24' }));
    const m = manager();
    await acquire(m);
    const ready = m.networkReadyTask()!;
    void ready.run({ signal: signal(), beat: () => undefined });
    await ready.attempted();
    const conditions = server.nodes.get('n1')?.status?.conditions ?? [];
    expect(conditions.map((c) => c.type).sort()).toEqual(['NetworkUnavailable', 'Ready']);
    const condition = conditions.find((c) => c.type === 'NetworkUnavailable');
    expect(condition).toMatchObject({ status: 'False', reason: 'FlannelIsUp' });
    expect(conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  });

  it('publishes public-ip-overwrite instead of the detected address', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.3.0/24', annotations: { [A.publicIPOverwrite]: '203.0.113.7' } }),
    );
    const m = manager();
    const lease = await acquire(m);
    const annotations = server.nodes.get('n1')?.metadata.annotations ?? {};
    expect(annotations[A.publicIP]).toBe('203.0.113.7');
    expect(annotations[A.publicIPOverwrite]).toBe('203.0.113.7');
    // The own lease keeps the detected address (the local VXLAN device uses it), as in flannel.
    expect(lease.attrs.publicIP).toBe('198.51.100.1');
  });

  it('honours node-public-ip: reported to the daemon as --public-ip and published', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.3.0/24', annotations: { [A.nodePublicIP]: '198.51.100.42' } }),
    );
    const m = manager();
    expect(await m.readNodePublicIPOverride(signal())).toEqual({ publicIP: '198.51.100.42', warnings: [] });
    await acquire(m, { ...ATTRS, publicIP: '198.51.100.42' });
    expect(server.nodes.get('n1')?.metadata.annotations?.[A.publicIP]).toBe('198.51.100.42');

    server.nodes.annotate('n1', { [A.nodePublicIP]: 'not-an-ip' });
    const override = await m.readNodePublicIPOverride(signal());
    expect(override.publicIP).toBeUndefined();
    expect(override.warnings[0]).toContain('not-an-ip');
  });

  it('turns node changes into added, changed and removed lease events', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.1.0/24', annotations: managed('198.51.100.1', '0e:00:00:00:00:01') }),
    );
    server.nodes.add(makeNode('n2', { podCIDR: '10.5.2.0/24' })); // not managed: not a lease
    const health: KubeWatchEvent[] = [];
    const m = manager({ onWatchEvent: (e) => health.push(e) });
    const batches = new Collector(m.watchLeases(signal()));

    const snapshot = await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    expect(snapshot.type === 'snapshot' && snapshot.leases.map((l) => l.key)).toEqual(['10.5.1.0-24']);
    expect(summary(snapshot)).toEqual(['added 10.5.1.0-24 198.51.100.1']);

    server.nodes.add(
      makeNode('n3', { podCIDR: '10.5.3.0/24', annotations: managed('198.51.100.3', '0e:00:00:00:00:03') }),
    );
    const added = await batches.next((b) => b.events.some((e) => e.lease.key === '10.5.3.0-24'), 'n3 added');
    expect(summary(added)).toEqual(['added 10.5.3.0-24 198.51.100.3']);
    expect(added.events[0]?.lease.attrs.backendData).toEqual({ VNI: 1, VtepMAC: '0e:00:00:00:00:03' });

    // A new public-ip annotation is a changed lease (flannel's diff would miss a changed attribute).
    server.nodes.annotate('n3', { [A.publicIP]: '198.51.100.33' });
    const changedIp = await batches.next(
      (b) => b.events.some((e) => e.type === 'changed'),
      'n3 public IP changed',
    );
    expect(summary(changedIp)).toEqual(['changed 10.5.3.0-24 198.51.100.33']);

    server.nodes.annotate('n3', {
      [A.backendData]: JSON.stringify({ VNI: 1, VtepMAC: '0e:00:00:00:00:3f' }),
    });
    const changedMac = await batches.next(
      (b) => b.events.some((e) => e.type === 'changed'),
      'n3 VtepMAC changed',
    );
    expect(changedMac.events[0]?.lease.attrs.backendData).toEqual({ VNI: 1, VtepMAC: '0e:00:00:00:00:3f' });

    // A status-only update (kubelet heartbeat) changes nothing a lease carries: no event.
    server.nodes.update('n3', (n) => {
      n.status = { ...n.status, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] };
      return n;
    });

    server.nodes.delete('n1');
    const removed = await batches.next((b) => b.events.some((e) => e.type === 'removed'), 'n1 removed');
    expect(summary(removed)).toEqual(['removed 10.5.1.0-24 198.51.100.1']);

    // A node that becomes managed is added; a managed node with unusable data is skipped until fixed.
    server.nodes.annotate('n2', {
      ...managed('198.51.100.2', '0e:00:00:00:00:02'),
      [A.backendData]: '{not json',
    });
    server.nodes.annotate('n2', {
      [A.backendData]: JSON.stringify({ VNI: 1, VtepMAC: '0e:00:00:00:00:02' }),
    });
    const n2 = await batches.next((b) => b.events.some((e) => e.lease.key === '10.5.2.0-24'), 'n2 added');
    expect(summary(n2)).toEqual(['added 10.5.2.0-24 198.51.100.2']);
    expect(logs.matching('node skipped').some((l) => l.node === 'n2')).toBe(true);
    expect(health.filter((e) => e.type === 'skipped').map((e) => e.type === 'skipped' && e.key)).toEqual([
      'n2',
    ]);

    // Nothing but these five batches: the heartbeat and the skipped state produced no events.
    expect(batches.items).toHaveLength(6);
    expect(batches.items.filter((b) => b.type === 'events' && b.events.length === 0)).toHaveLength(0);
  });

  it('re-lists after 410 Gone and reports the difference as events', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.1.0/24', annotations: managed('198.51.100.1', '0e:00:00:00:00:01') }),
    );
    server.nodes.add(
      makeNode('n2', { podCIDR: '10.5.2.0/24', annotations: managed('198.51.100.2', '0e:00:00:00:00:02') }),
    );
    server.nodes.add(
      makeNode('n3', { podCIDR: '10.5.3.0/24', annotations: managed('198.51.100.3', '0e:00:00:00:00:03') }),
    );
    const health: KubeWatchEvent[] = [];
    const m = manager({ onWatchEvent: (e) => health.push(e) });
    const batches = new Collector(m.watchLeases(signal()));
    await batches.next((b) => b.type === 'snapshot', 'the first snapshot');
    await eventually(() => (server.openWatches() > 0 ? true : undefined), 'the watch');

    // While the client is cut off, the cluster changes and the server forgets that part of its history.
    await server.pause();
    server.nodes.delete('n2');
    server.nodes.annotate('n3', { [A.publicIP]: '198.51.100.30' });
    server.nodes.add(
      makeNode('n4', { podCIDR: '10.5.4.0/24', annotations: managed('198.51.100.4', '0e:00:00:00:00:04') }),
    );
    server.nodes.compact();
    await server.resume();

    const relisted = await batches.next((b) => b.type === 'snapshot', 'the snapshot after 410');
    expect(relisted.type === 'snapshot' && relisted.leases.map((l) => l.key).sort()).toEqual([
      '10.5.1.0-24',
      '10.5.3.0-24',
      '10.5.4.0-24',
    ]);
    expect(summary(relisted)).toEqual([
      'removed 10.5.2.0-24 198.51.100.2',
      'changed 10.5.3.0-24 198.51.100.30',
      'added 10.5.4.0-24 198.51.100.4',
    ]);
    expect(logs.matching('410 Gone').length).toBeGreaterThan(0);
    expect(health.map((e) => e.type)).toContain('relist');
    expect(health[0]).toEqual({ type: 'connected', endpoint: server.url });
    expect(health.at(-1)?.type).toBe('connected');
    const lists = server.requests.filter((r) => r.path === '/api/v1/nodes' && !r.watch && r.method === 'GET');
    expect(lists).toHaveLength(2);

    // And the new watch works.
    server.nodes.delete('n4');
    const removed = await batches.next((b) => b.events.some((e) => e.type === 'removed'), 'n4 removed');
    expect(summary(removed)).toEqual(['removed 10.5.4.0-24 198.51.100.4']);
  });

  it('resumes the watch from its resourceVersion after the API server restarts', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.1.0/24', annotations: managed('198.51.100.1', '0e:00:00:00:00:01') }),
    );
    const health: KubeWatchEvent[] = [];
    const m = manager({ onWatchEvent: (e) => health.push(e) });
    const batches = new Collector(m.watchLeases(signal()));
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await eventually(() => (server.openWatches() > 0 ? true : undefined), 'the watch');

    await server.pause();
    server.nodes.add(
      makeNode('n5', { podCIDR: '10.5.5.0/24', annotations: managed('198.51.100.5', '0e:00:00:00:00:05') }),
    );
    await server.resume();

    const added = await batches.next((b) => b.events.some((e) => e.lease.key === '10.5.5.0-24'), 'n5 added');
    expect(added.type).toBe('events'); // resumed, not re-listed
    expect(summary(added)).toEqual(['added 10.5.5.0-24 198.51.100.5']);
    expect(health.map((e) => e.type).slice(0, 3)).toEqual(['connected', 'reconnect', 'connected']);
    const lists = server.requests.filter((r) => r.path === '/api/v1/nodes' && !r.watch && r.method === 'GET');
    expect(lists).toHaveLength(1);
    // Every watch, the one after the restart included, started from the version of the one list.
    const watches = server.requests.filter((r) => r.watch);
    expect(watches.length).toBeGreaterThanOrEqual(2);
    // (The store starts at 1000; adding n1 made it 1001, the version the list returned.)
    expect(new Set(watches.map((w) => w.query.resourceVersion))).toEqual(new Set(['1001']));

    // A restart that loses the history (like a fresh watch cache) falls back to a re-list.
    await server.restart({ forgetHistory: true });
    server.nodes.delete('n5');
    await eventually(() => (server.openWatches() > 0 ? true : undefined), 'the watch after restart');
    const after = await batches.next((b) => b.events.some((e) => e.type === 'removed'), 'n5 removed');
    expect(summary(after)).toEqual(['removed 10.5.5.0-24 198.51.100.5']);
  });

  it('resumes a watch the server ends (timeout) and one that hangs', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.1.0/24', annotations: managed('198.51.100.1', '0e:00:00:00:00:01') }),
    );
    const m = manager({ watchIdleTimeoutMs: 1_000 });
    const batches = new Collector(m.watchLeases(signal()));
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await eventually(() => (server.openWatches() > 0 ? true : undefined), 'the watch');

    server.faults.hangNext(1, { watch: true });
    server.closeWatches();
    await eventually(
      () => (server.requests.some((r) => r.outcome === 'hang') ? true : undefined),
      'the hung watch',
    );
    server.nodes.add(
      makeNode('n6', { podCIDR: '10.5.6.0/24', annotations: managed('198.51.100.6', '0e:00:00:00:00:06') }),
    );
    const added = await batches.next((b) => b.events.some((e) => e.lease.key === '10.5.6.0-24'), 'n6 added');
    expect(added.type).toBe('events');
  });

  it('retries 500s with growing delays, and 409 and hanging requests, without failing', async () => {
    server.nodes.add(makeNode('n1', { podCIDR: '10.5.3.0/24' }));
    const m = manager({ requestTimeoutMs: 500 });
    server.faults.failNext(3, 500, { method: 'GET', path: '/api/v1/nodes/n1' });
    server.faults.failNext(1, 409, { method: 'PATCH' });
    server.faults.hangNext(1, { method: 'PATCH' });
    const lease = await acquire(m);
    expect(lease.key).toBe('10.5.3.0-24');
    expect(server.nodes.get('n1')?.metadata.annotations?.[A.kubeSubnetManager]).toBe('true');

    const outcomes = server.requests
      .filter((r) => r.path.startsWith('/api/v1/nodes/n1'))
      .map((r) => `${r.method} ${r.outcome}`);
    expect(outcomes).toEqual([
      'GET 500',
      'GET 500',
      'GET 500',
      'GET 200',
      'PATCH 409',
      'GET 200',
      'PATCH hang',
      'GET 200',
      'PATCH 200',
    ]);
    const retries = logs.matching('acquiring the lease of node n1 failed');
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5]);
    const delays = retries.slice(0, 3).map((r) => r.retryInMs as number);
    // Exponential with jitter in [0.5, 1] of a doubling base: each delay is at least the one before.
    expect(delays[1]).toBeGreaterThanOrEqual(delays[0] as number);
    expect(delays[2]).toBeGreaterThanOrEqual(delays[1] as number);
    expect((retries[0]?.err as { message?: string } | undefined)?.message).toContain('500');

    // Lists are retried too: the watch still starts.
    server.faults.failNext(2, 500, { path: '/api/v1/nodes', watch: false, method: 'GET' });
    const batches = new Collector(m.watchLeases(signal()));
    const snapshot = await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    expect(snapshot.type === 'snapshot' && snapshot.leases.map((l) => l.key)).toEqual(['10.5.3.0-24']);
  });

  it('keepLease puts back removed annotations and publishes a later public-ip-overwrite', async () => {
    server.nodes.add(makeNode('n1', { podCIDR: '10.5.3.0/24' }));
    const m = manager();
    const lease = await acquire(m);
    const changes: OwnLeaseChange[] = [];
    const keeping = m.keepLease(lease, (c) => changes.push(c), signal());

    server.nodes.annotate('n1', { [A.publicIP]: null, [A.backendData]: null, [A.kubeSubnetManager]: null });
    await eventually(
      () =>
        server.nodes.get('n1')?.metadata.annotations?.[A.kubeSubnetManager] === 'true' ? true : undefined,
      'annotations restored',
    );
    expect(server.nodes.get('n1')?.metadata.annotations?.[A.publicIP]).toBe('198.51.100.1');
    expect(server.nodes.get('n1')?.metadata.annotations?.[A.backendData]).toBe(
      '{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}',
    );

    server.nodes.annotate('n1', { [A.publicIPOverwrite]: '203.0.113.9' });
    await eventually(
      () => (server.nodes.get('n1')?.metadata.annotations?.[A.publicIP] === '203.0.113.9' ? true : undefined),
      'overwrite published',
    );
    expect(changes).toEqual([]);

    await m.close();
    await keeping; // resolves once closed
  });

  it('talks to --kube-api-url alone (no kubeconfig, no credentials, as through kubectl proxy)', async () => {
    server = await fixture.replaceServer({ token: null, tls: false });
    server.nodes.add(makeNode('n1', { podCIDR: '10.5.3.0/24' }));
    const m = manager({ kubeconfigFile: undefined, apiUrl: server.url });
    const lease = await acquire(m);
    expect(lease.key).toBe('10.5.3.0-24');
    expect(server.nodes.get('n1')?.metadata.annotations?.[A.kubeSubnetManager]).toBe('true');
  });

  it('close() ends watchLeases', async () => {
    server.nodes.add(
      makeNode('n1', { podCIDR: '10.5.1.0/24', annotations: managed('198.51.100.1', '0e:00:00:00:00:01') }),
    );
    const m = manager();
    const batches = new Collector(m.watchLeases(new AbortController().signal));
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await m.close();
    await batches.done;
    expect(batches.error).toBeUndefined();
    await eventually(() => (server.openWatches() === 0 ? true : undefined), 'the watch closed');
  });
});
