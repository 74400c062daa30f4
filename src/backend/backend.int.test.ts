// Two nodes in namespaces (`wk<4 hex>a`, `wk<4 hex>b`) joined by a veth underlay, each programmed through the
// real path — listInterfaces → selectInterface → Backend.prepare → desired → dump → planKernel → apply —
// then ping across. Traffic stays between the two namespaces.
import { execFile } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { createScratchPair, type ScratchNamespace } from '../../testkit/scratch-netns.js';
import { parseNetworkConfig } from '../config/index.js';
import { parseCidr } from '../ip/index.js';
import {
  applyKernelOps,
  dumpKernelState,
  listInterfaces,
  planKernel,
  readSysctl,
  selectInterface,
} from '../kernel/index.js';
import type { Lease } from '../lease/index.js';
import { type Backend, createBackend, HostGwBackend, VxlanBackend } from './index.js';

function ping(ns: string, target: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, 'ping', '-c', '2', '-i', '0.2', '-W', '2', target],
      { timeout: 15_000 },
      (err) => resolve(err === null),
    );
  });
}

interface Node {
  ns: ScratchNamespace;
  backend: Backend;
  lease: Lease;
}

async function startNode(ns: ScratchNamespace, n: number, netConf: Record<string, unknown>): Promise<Node> {
  const config = parseNetworkConfig(netConf);
  const iface = selectInterface(await listInterfaces({ netns: ns.name }), { iface: [ns.ext] });
  const backend =
    config.backend.type === 'vxlan'
      ? new VxlanBackend(config.backend, { netns: ns.name })
      : createBackend(config.backend);
  const { attrs } = await backend.prepare({ config, iface });
  const lease: Lease = {
    key: `10.5.${n}.0-24`,
    subnet: parseCidr(`10.5.${n}.0/24`),
    attrs,
    expiration: null,
  };
  return { ns, backend, lease };
}

async function reconcile(node: Node, all: Lease[]): Promise<number> {
  const { state, skipped } = node.backend.desired(node.lease, all);
  expect(skipped).toEqual([]);
  const scope = node.backend.scope(node.lease);
  const ops = planKernel(state, await dumpKernelState(scope, { netns: node.ns.name }), scope);
  const results = await applyKernelOps(ops, { netns: node.ns.name });
  expect(results.filter((r) => !r.ok)).toEqual([]);
  // Converged: a second pass has nothing to do.
  expect(planKernel(state, await dumpKernelState(scope, { netns: node.ns.name }), scope)).toEqual([]);
  await node.backend.afterReconcile?.(node.lease, all);
  return ops.length;
}

describe.skipIf(process.getuid?.() !== 0)('backends between two namespaces', () => {
  let pair: ScratchNamespace[] = [];
  afterEach(() => {
    for (const ns of pair) ns.destroy();
    pair = [];
  });

  it('vxlan: pings the peer across flannel.1; survives the peer deleting and re-creating its device', async () => {
    pair = await createScratchPair('192.168.0.1/24', '192.168.0.2/24');
    const conf = { Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } };
    const a = await startNode(pair[0]!, 1, conf);
    const b = await startNode(pair[1]!, 2, conf);
    const leases = [a.lease, b.lease];
    expect(await reconcile(a, leases)).toBe(5);
    expect(await reconcile(b, leases)).toBe(5);
    expect(await ping(a.ns.name, '10.5.2.0')).toBe(true);
    // Like flannel: no router advertisements accepted on the VXLAN device (the kernel default is 1).
    expect(await readSysctl('net/ipv6/conf/flannel.1/accept_ra', { netns: a.ns.name })).toBe('0');

    // Someone deletes B's device: B's next pass re-creates it with the same (derived) MAC, so A's
    // neighbour and FDB entries stay valid.
    await b.ns.ip(['link', 'del', 'flannel.1']);
    expect(await ping(a.ns.name, '10.5.2.0')).toBe(false);
    expect(await reconcile(b, leases)).toBe(5);
    expect(await readSysctl('net/ipv6/conf/flannel.1/accept_ra', { netns: b.ns.name })).toBe('0');
    expect(await reconcile(a, leases)).toBe(0);
    expect(await ping(a.ns.name, '10.5.2.0')).toBe(true);
  });

  it('vxlan DirectRouting: an on-link peer is reached by a plain route, no tunnel entries', async () => {
    pair = await createScratchPair('192.168.0.1/24', '192.168.0.2/24');
    const conf = { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } };
    const a = await startNode(pair[0]!, 1, conf);
    const b = await startNode(pair[1]!, 2, conf);
    await reconcile(a, [a.lease, b.lease]);
    await reconcile(b, [a.lease, b.lease]);
    const routes = await a.ns.ip(['-4', '-json', 'route', 'show', '10.5.2.0/24']);
    expect(JSON.parse(routes)).toEqual([expect.objectContaining({ gateway: '192.168.0.2', dev: a.ns.ext })]);
    expect(await a.ns.bridge(['-json', 'fdb', 'show', 'dev', 'flannel.1'])).toMatch(/^\[\]\s*$/);
    expect(await ping(a.ns.name, '10.5.2.0')).toBe(true);
  });

  it('host-gw: routes via the peer PublicIP; a departed peer loses its route', async () => {
    pair = await createScratchPair('192.168.0.1/24', '192.168.0.2/24');
    const conf = { Network: '10.5.0.0/16', Backend: { Type: 'host-gw' } };
    const a = await startNode(pair[0]!, 1, conf);
    const b = await startNode(pair[1]!, 2, conf);
    expect(a.backend).toBeInstanceOf(HostGwBackend);
    // A "pod" address of B's subnet, on B's loopback.
    await b.ns.ip(['addr', 'add', '10.5.2.7/32', 'dev', 'lo']);
    expect(await reconcile(a, [a.lease, b.lease])).toBe(1);
    expect(await reconcile(b, [a.lease, b.lease])).toBe(1);
    expect(await ping(a.ns.name, '10.5.2.7')).toBe(true);
    expect(await reconcile(a, [a.lease])).toBe(1);
    expect(await a.ns.ip(['-4', '-json', 'route', 'show', '10.5.2.0/24'])).toMatch(/^\[\]\s*$/);
  });
});
