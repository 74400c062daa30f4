// The kube subnet manager at the API behaviours large clusters need, with small numbers: paged lists (and the
// unpaged fallback when a continue token expires), bookmarks keeping a quiet watch current, heartbeats that
// touch no weft field producing no batch, one lease per pod CIDR for events as for snapshots, and the
// NetworkUnavailable task that never blocks the lease watch (4xx retried slowly, 5xx with backoff).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeApiServer } from '../../../testkit/kube-apiserver/server.js';
import { makeNode } from '../../../testkit/kube-apiserver/server.js';
import { Collector, eventually, KubeManagerFixture, LogCapture } from '../../../testkit/kube-manager.js';
import type { LeaseAttrs, LeaseWatchBatch } from '../../lease/types.js';
import { kubeAnnotationNames } from './annotations.js';
import type { KubeSubnetManagerOptions } from './manager.js';

const A = kubeAnnotationNames();
const NET_CONF = '{"Network": "10.5.0.0/16", "Backend": {"Type": "host-gw"}}';
const ATTRS: LeaseAttrs = { publicIP: '198.51.100.1', backendType: 'host-gw' };

function managed(publicIP: string): Record<string, string> {
  return {
    [A.kubeSubnetManager]: 'true',
    [A.backendType]: 'host-gw',
    [A.backendData]: 'null',
    [A.publicIP]: publicIP,
  };
}

function summary(batch: LeaseWatchBatch): string[] {
  return batch.events.map((e) => `${e.type} ${e.lease.key} ${e.lease.attrs.publicIP}`);
}

describe('KubeSubnetManager: paging, bookmarks, heartbeats, duplicate CIDRs, the readiness task', () => {
  let fixture: KubeManagerFixture;
  let server: FakeApiServer;
  let logs: LogCapture;
  const manager = (o: Partial<KubeSubnetManagerOptions> = {}) => fixture.manager(o);
  const signal = () => fixture.signal();
  const lists = () => server.requests.filter((r) => r.path === '/api/v1/nodes' && !r.watch);

  beforeEach(async () => {
    logs = new LogCapture();
    fixture = await KubeManagerFixture.start({
      tempDirName: 'kube-scale',
      netConf: NET_CONF,
      attrs: ATTRS,
      managerDefaults: { logger: logs.logger, listPageSize: 2 },
    });
    server = fixture.server;
    server.nodes.add(makeNode('n1', { podCIDR: '10.5.1.0/24' }));
    for (let i = 2; i <= 6; i++) {
      server.nodes.add(
        makeNode(`n${i}`, { podCIDR: `10.5.${i}.0/24`, annotations: managed(`192.0.2.${i}`) }),
      );
    }
  });

  afterEach(async () => {
    await fixture.close();
  });

  it('lists in pages that follow continue tokens, then watches from the list’s version', async () => {
    const batches = new Collector(manager().watchLeases(signal()));
    const snapshot = await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    expect(snapshot.type === 'snapshot' && snapshot.leases.map((l) => l.key).sort()).toEqual([
      '10.5.2.0-24',
      '10.5.3.0-24',
      '10.5.4.0-24',
      '10.5.5.0-24',
      '10.5.6.0-24',
    ]);
    expect(lists().map((r) => [r.query.limit, r.query.continue !== undefined])).toEqual([
      ['2', false],
      ['2', true],
      ['2', true],
    ]);
    await eventually(() => server.requests.some((r) => r.watch), 'the watch');
    const watch = server.requests.find((r) => r.watch);
    expect(watch?.query.allowWatchBookmarks).toBe('true');
    expect(watch?.query.resourceVersion).toBe(String(server.nodes.resourceVersion));
  });

  it('lists again unpaged when a continue token expires mid-list (410), as client-go’s pager', async () => {
    server.faults.failNext(1, 410, { path: '/api/v1/nodes', watch: false, withQuery: 'continue' });
    const batches = new Collector(manager().watchLeases(signal()));
    const snapshot = await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    expect(snapshot.type === 'snapshot' && snapshot.leases).toHaveLength(5);
    expect(lists().map((r) => [r.query.limit ?? 'none', r.outcome])).toEqual([
      ['2', 200],
      ['2', 410],
      ['none', 200],
    ]);
  });

  it('a bookmark keeps a quiet watch’s version current: after a storm it resumes without 410', async () => {
    server.nodes.setHistoryLimit(20);
    const batches = new Collector(manager({ watchTimeoutSeconds: 1 }).watchLeases(signal()));
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await eventually(() => server.openWatches() === 1, 'the watch');
    // Heartbeats on a node that is not a lease: they reach the watch, but change no lease.
    for (let i = 0; i < 50; i++) {
      server.nodes.update('n1', (n) => {
        n.status = {
          ...n.status,
          conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: `t${i}` }],
        };
        return n;
      });
    }
    server.sendBookmarks();
    const before = server.requests.length;
    server.closeWatches();
    await eventually(() => server.requests.slice(before).some((r) => r.watch), 'the resumed watch');
    const resumed = server.requests.slice(before).find((r) => r.watch);
    expect(resumed?.query.resourceVersion).toBe(String(server.nodes.resourceVersion));
    expect(lists()).toHaveLength(3); // the first list's pages only: no relist
    server.nodes.annotate('n6', { [A.publicIP]: '192.0.2.66' });
    const changed = await batches.next((b) => b.type === 'events', 'the change');
    expect(summary(changed)).toEqual(['changed 10.5.6.0-24 192.0.2.66']);
  });

  it('heartbeats that leave weft’s fields alone make no batch; a change to them is one delta', async () => {
    const batches = new Collector(manager().watchLeases(signal()));
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await eventually(() => server.openWatches() === 1, 'the watch');
    for (let i = 0; i < 20; i++) {
      server.nodes.update(`n${2 + (i % 5)}`, (n) => {
        n.status = {
          ...n.status,
          conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: `t${i}` }],
        };
        n.metadata.annotations = { ...n.metadata.annotations, 'node.alpha.kubernetes.io/ttl': String(i) };
        return n;
      });
    }
    server.nodes.annotate('n3', { [A.publicIP]: '192.0.2.33' });
    const next = await batches.next(() => true, 'the next batch');
    expect(summary(next)).toEqual(['changed 10.5.3.0-24 192.0.2.33']);
    expect(batches.items).toHaveLength(2);
  });

  it('keeps the first node’s lease when a second claims its pod CIDR, also when the second is deleted', async () => {
    const batches = new Collector(manager().watchLeases(signal()));
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await eventually(() => server.openWatches() === 1, 'the watch');
    // A node re-registered under another name with the same pod CIDR as n4.
    server.nodes.add(makeNode('n4-twin', { podCIDR: '10.5.4.0/24', annotations: managed('192.0.2.44') }));
    await eventually(() => logs.matching('claims pod CIDR 10.5.4.0-24').length > 0, 'the conflict warning');
    server.nodes.delete('n4-twin');
    // The next batch is the unrelated node added after: n4's lease was neither replaced nor removed.
    server.nodes.add(makeNode('n7', { podCIDR: '10.5.7.0/24', annotations: managed('192.0.2.7') }));
    const next = await batches.next((b) => b.type === 'events', 'n7');
    expect(summary(next)).toEqual(['added 10.5.7.0-24 192.0.2.7']);
    expect(batches.items).toHaveLength(2);
    // When the holder itself goes, the key goes with it.
    server.nodes.delete('n4');
    expect(summary(await batches.next((b) => b.type === 'events', 'n4 removed'))).toEqual([
      'removed 10.5.4.0-24 192.0.2.4',
    ]);
  });

  it('readiness task: a 403 is retried slowly while the lease watch runs; then it sets the condition and beats', async () => {
    server.faults.failNext(2, 403, { method: 'PATCH', path: '/api/v1/nodes/n1/status' });
    const m = manager({ readyRetryAfterClientErrorMs: 300 });
    const task = m.networkReadyTask();
    if (!task) throw new Error('expected a readiness task');
    const beats: number[] = [];
    const running = task.run({ signal: signal(), beat: () => beats.push(Date.now()) });
    const batches = new Collector(m.watchLeases(signal()));
    // Peers arrive while the condition cannot be set.
    await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    await eventually(() => beats.length > 0, 'the first beat');
    const refused = logs.matching('cannot set the node condition');
    expect(refused).toHaveLength(2);
    expect(refused.map((l) => [l.level, l.retryInMs])).toEqual([
      [50, 300],
      [50, 300],
    ]);
    expect((refused[0]?.err as { message?: string } | undefined)?.message).toContain('403');
    const condition = server.nodes
      .get('n1')
      ?.status?.conditions?.find((c) => c.type === 'NetworkUnavailable');
    expect(condition).toMatchObject({ status: 'False', reason: 'FlannelIsUp' });
    expect(task.isMarked).toBe(true);
    await fixture.close();
    await running;
  });

  it('readiness task: 500s are retried with backoff; a node that lost the condition gets it back', async () => {
    const m = manager();
    const lease = await fixture.acquire(m);
    server.faults.failNext(2, 500, { method: 'PATCH', path: '/api/v1/nodes/n1/status' });
    const task = m.networkReadyTask();
    if (!task) throw new Error('expected a readiness task');
    void task.run({ signal: signal(), beat: () => undefined });
    void m.keepLease(lease, () => undefined, signal());
    await eventually(() => task.isMarked, 'the condition set');
    expect(logs.matching('cannot set the node condition').map((l) => l.level)).toEqual([40, 40]);
    // Someone (a cloud controller, a re-registered kubelet) sets NetworkUnavailable=True again.
    server.nodes.update('n1', (n) => {
      n.status = {
        ...n.status,
        conditions: [{ type: 'NetworkUnavailable', status: 'True', reason: 'NoRouteCreated' }],
      };
      return n;
    });
    await eventually(
      () =>
        server.nodes.get('n1')?.status?.conditions?.find((c) => c.type === 'NetworkUnavailable')?.status ===
        'False',
      'the condition set again',
    );
    await eventually(() => logs.matching('NetworkUnavailable=False set').length === 2, 'the second log line');
    expect(logs.matching('NetworkUnavailable=False set').map((l) => l.again)).toEqual([false, true]);
  });
});
