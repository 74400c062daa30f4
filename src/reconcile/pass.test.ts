// One reconcile pass with plain data: a prepared host-gw or vxlan backend, leases from fixtures, and a kernel
// that is a record of calls (dump returns what the test says the kernel holds; apply succeeds or fails per op).
import { describe, expect, it } from 'vitest';
import { subnetLease, TEST_IFACE, vxlanLeaseAttrs } from '../../testkit/fixtures/backend.js';
import { createBackend } from '../backend/index.js';
import { type BackendConfig, parseNetworkConfig } from '../config/index.js';
import type { KernelOp, KernelOpResult, KernelScope, KernelState } from '../kernel/index.js';
import { silentLogger } from '../log/index.js';
import { ObservedStateMemory } from './observed.js';
import { type PassKernel, type PassMetrics, runReconcilePass } from './pass.js';

const EMPTY: KernelState = { links: [], addresses: [], routes: [], neighbors: [], fdb: [] };

class RecordedKernel implements PassKernel {
  dumps = 0;
  applied: KernelOp[][] = [];
  /** What the next dump returns (what the kernel holds). */
  state: KernelState = EMPTY;
  /** Ops of these kinds fail. */
  failKinds = new Set<string>();
  dumpError: Error | undefined;

  async dump(_scope: KernelScope): Promise<KernelState> {
    this.dumps++;
    if (this.dumpError) throw this.dumpError;
    return this.state;
  }

  async apply(ops: readonly KernelOp[]): Promise<KernelOpResult[]> {
    this.applied.push([...ops]);
    return ops.map((op) =>
      this.failKinds.has(op.kind)
        ? { op, ok: false, error: 'RTNETLINK answers: File exists' }
        : { op, ok: true },
    );
  }
}

class RecordedMetrics implements PassMetrics {
  passes: Array<{ ops: number; failed: boolean | undefined }> = [];
  stale: string[] = [];
  peers = -1;
  reconcileObserved(_s: number, outcomes: Array<{ kind: string; ok: boolean }>, failed?: boolean): void {
    this.passes.push({ ops: outcomes.length, failed });
  }
  staleRemoved(kind: string): void {
    this.stale.push(kind);
  }
  setPeers(count: number): void {
    this.peers = count;
  }
}

async function hostGw() {
  const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'host-gw' } });
  const backend = createBackend(config.backend as BackendConfig);
  await backend.prepare({ config, iface: TEST_IFACE });
  const lease = (i: number) =>
    subnetLease(`10.5.${i}.0/24`, { publicIP: `192.168.1.${i}`, backendType: 'host-gw' });
  return { backend, own: lease(1), lease };
}

describe('runReconcilePass', () => {
  it('programs every peer on start, then plans lease events against the remembered state without a dump', async () => {
    const { backend, own, lease } = await hostGw();
    const kernel = new RecordedKernel();
    const metrics = new RecordedMetrics();
    const deps = { kernel, memory: new ObservedStateMemory(), logger: silentLogger(), metrics };
    const first = await runReconcilePass(
      { reasons: ['start'], backend, own, peers: [lease(2), lease(3)] },
      deps,
    );
    expect(first).toMatchObject({ applied: 2, failed: 0, removed: 0, dumped: true });
    expect(first.ops.map((op) => op.kind)).toEqual(['route-replace', 'route-replace']);
    expect(kernel.dumps).toBe(1);

    const second = await runReconcilePass(
      { reasons: ['lease'], backend, own, peers: [lease(2), lease(3), lease(4)] },
      deps,
    );
    expect(second.dumped).toBe(false);
    expect(kernel.dumps).toBe(1);
    expect(second.ops).toHaveLength(1);
    expect(JSON.stringify(second.ops[0])).toContain('10.5.4.0');

    const gone = await runReconcilePass(
      { reasons: ['lease'], backend, own, peers: [lease(2), lease(4)] },
      deps,
    );
    expect(gone.ops.map((op) => op.kind)).toEqual(['route-delete']);
    expect(gone.removed).toBe(1);
    expect(metrics.stale).toEqual(['route']);
    expect(metrics.peers).toBe(2);
    expect(metrics.passes).toEqual([
      { ops: 2, failed: undefined },
      { ops: 1, failed: undefined },
      { ops: 1, failed: undefined },
    ]);
  });

  it('a failed op counts as failed and makes the next lease pass read the kernel again', async () => {
    const { backend, own, lease } = await hostGw();
    const kernel = new RecordedKernel();
    kernel.failKinds.add('route-replace');
    const deps = { kernel, memory: new ObservedStateMemory(), logger: silentLogger() };
    const first = await runReconcilePass({ reasons: ['start'], backend, own, peers: [lease(2)] }, deps);
    expect(first).toMatchObject({ applied: 0, failed: 1 });
    kernel.failKinds.clear();
    const second = await runReconcilePass({ reasons: ['lease'], backend, own, peers: [lease(2)] }, deps);
    expect(second).toMatchObject({ applied: 1, failed: 0, dumped: true });
    expect(kernel.dumps).toBe(2);
  });

  it('a resync, a retry or an own-lease pass always reads the kernel, and repairs what was deleted by hand', async () => {
    const { backend, own, lease } = await hostGw();
    const kernel = new RecordedKernel();
    const deps = { kernel, memory: new ObservedStateMemory(), logger: silentLogger() };
    await runReconcilePass({ reasons: ['start'], backend, own, peers: [lease(2)] }, deps);
    // The kernel still holds nothing (the route was deleted by hand): a resync finds and repairs it.
    for (const reasons of [['resync'], ['lease', 'resync'], ['retry'], ['own-lease']] as const) {
      const pass = await runReconcilePass({ reasons, backend, own, peers: [lease(2)] }, deps);
      expect(pass).toMatchObject({ dumped: true, applied: 1 });
    }
    expect(kernel.dumps).toBe(5);
  });

  it('vxlan lease passes plan only the changed peer; a resync still finds a neighbour deleted by hand', async () => {
    const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } });
    const backend = createBackend(config.backend as BackendConfig);
    await backend.prepare({ config, iface: TEST_IFACE });
    const lease = (i: number) => subnetLease(`10.5.${i}.0/24`, vxlanLeaseAttrs(`192.168.1.${i}`));
    const own = lease(1);
    const kernel = new RecordedKernel();
    const deps = { kernel, memory: new ObservedStateMemory(), logger: silentLogger() };
    const peers = [2, 3, 4, 5].map(lease);
    await runReconcilePass({ reasons: ['start'], backend, own, peers }, deps);
    // A new peer (lease objects as the watch delivers them: the old ones kept, one new).
    peers.push(lease(6));
    const event = await runReconcilePass({ reasons: ['lease'], backend, own, peers }, deps);
    expect(event.dumped).toBe(false);
    expect(event.ops.map((op) => op.kind)).toEqual(['fdb-replace', 'neighbor-replace', 'route-replace']);
    expect(
      event.ops.every(
        (op) => JSON.stringify(op).includes('10.5.6.0') || JSON.stringify(op).includes('192.168.1.6'),
      ),
    ).toBe(true);

    // Someone deletes peer 3's neighbour: lease passes do not look, the resync does and puts it back alone.
    const programmed = backend.desired(own, peers).state;
    const lost = programmed.neighbors.find((n) => n.ip === '10.5.3.0')!;
    kernel.state = { ...programmed, neighbors: programmed.neighbors.filter((n) => n !== lost) };
    const resync = await runReconcilePass({ reasons: ['resync'], backend, own, peers }, deps);
    expect(resync.dumped).toBe(true);
    expect(resync.ops).toEqual([{ kind: 'neighbor-replace', neighbor: lost }]);

    // After the resync, lease passes plan against its state again: a removed peer's three entries go.
    const gone = await runReconcilePass(
      { reasons: ['lease'], backend, own, peers: peers.filter((p) => p.key !== '10.5.4.0-24') },
      deps,
    );
    expect(gone.dumped).toBe(false);
    expect(gone.ops.map((op) => op.kind)).toEqual(['route-delete', 'neighbor-delete', 'fdb-delete']);
  });

  it('a kernel that cannot be read fails the pass and is counted as a failed reconcile', async () => {
    const { backend, own, lease } = await hostGw();
    const kernel = new RecordedKernel();
    kernel.dumpError = new Error('ip: cannot open netlink socket');
    const metrics = new RecordedMetrics();
    const deps = { kernel, memory: new ObservedStateMemory(), logger: silentLogger(), metrics };
    await expect(
      runReconcilePass({ reasons: ['start'], backend, own, peers: [lease(2)] }, deps),
    ).rejects.toThrow('cannot open netlink socket');
    expect(metrics.passes).toEqual([{ ops: 0, failed: true }]);
    expect(kernel.applied).toEqual([]);
  });

  it('hands the backend the peer set after the kernel is programmed (vxlan: neighbour, FDB and route per peer)', async () => {
    const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } });
    const backend = createBackend(config.backend as BackendConfig);
    await backend.prepare({ config, iface: TEST_IFACE });
    const own = subnetLease('10.5.1.0/24', vxlanLeaseAttrs('192.168.1.1'));
    const peer = subnetLease('10.5.2.0/24', vxlanLeaseAttrs('192.168.1.2'));
    const handed: string[][] = [];
    const kernel = new RecordedKernel();
    const pass = await runReconcilePass(
      {
        reasons: ['start'],
        backend: {
          desired: (o, p) => backend.desired(o, p),
          scope: (o) => backend.scope(o),
          afterReconcile: (_o, p) => {
            handed.push(p.map((l) => l.key));
          },
        },
        own,
        peers: [peer],
      },
      { kernel, memory: new ObservedStateMemory(), logger: silentLogger() },
    );
    const kinds = pass.ops.map((op) => op.kind);
    for (const kind of ['link-add', 'neighbor-replace', 'fdb-replace', 'route-replace'])
      expect(kinds).toContain(kind);
    expect(handed).toEqual([['10.5.2.0-24']]);
  });
});
