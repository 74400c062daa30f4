// Dual stack and IPv6-only in Kubernetes mode (issue 9), against the test API server (testkit/kube-apiserver)
// through the real @kubernetes/client-node: a node whose spec.podCIDRs holds one IPv4 and one IPv6 CIDR
// leases both and publishes `public-ipv6` / `backend-v6-data`; dual-stack peers become leases with an
// ipv6Subnet; pod CIDRs of the wrong family or outside IPv6Network fail at once, naming what is wrong.
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeApiServer, makeNode } from '../../../testkit/kube-apiserver/server.js';
import { Collector, eventually, KubeManagerFixture } from '../../../testkit/kube-manager.js';
import { parseCidr } from '../../ip/index.js';
import type { LeaseAttrs, LeaseWatchBatch } from '../../lease/types.js';
import type { OwnLeaseChange } from '../types.js';
import { kubeAnnotationNames } from './annotations.js';
import type { KubeSubnetManager } from './manager.js';
import { NodePodCidrError, PodCidrFamilyMissingError, PodCidrOutsideNetworkError } from './node-lease.js';

const A = kubeAnnotationNames();
const DUAL_STACK_CONF = {
  Network: '10.244.0.0/16',
  EnableIPv6: true,
  IPv6Network: 'fd00:10:244::/56',
  Backend: { Type: 'vxlan' },
};
const IPV6_ONLY_CONF = {
  EnableIPv4: false,
  EnableIPv6: true,
  IPv6Network: 'fd00:10:244::/56',
  Backend: { Type: 'vxlan' },
};

/** What the daemon passes for a dual-stack vxlan node: one VTEP (and MAC) per family. */
const DUAL_ATTRS: LeaseAttrs = {
  publicIP: '198.51.100.1',
  publicIPv6: 'fd77::11',
  backendType: 'vxlan',
  backendData: { VNI: 1, VtepMAC: '0e:00:00:00:04:01' },
  backendV6Data: { VNI: 1, VtepMAC: '0e:00:00:00:06:01' },
};

const IPV6_ONLY_ATTRS: LeaseAttrs = {
  publicIP: '',
  publicIPv6: 'fd77::11',
  backendType: 'vxlan',
  backendV6Data: { VNI: 1, VtepMAC: '0e:00:00:00:06:01' },
};

/** The annotations a running dual-stack flannel/weft node carries. */
function dualStackAnnotations(i: number): Record<string, string> {
  return {
    [A.kubeSubnetManager]: 'true',
    [A.backendType]: 'vxlan',
    [A.backendData]: JSON.stringify({ VNI: 1, VtepMAC: `0e:00:00:00:04:0${i}` }),
    [A.backendV6Data]: JSON.stringify({ VNI: 1, VtepMAC: `0e:00:00:00:06:0${i}` }),
    [A.publicIP]: `198.51.100.${i}`,
    [A.publicIPv6]: `fd77::1${i}`,
  };
}

const dualPodCidrs = (i: number): string[] => [`10.244.${i}.0/24`, `fd00:10:244:${i}::/64`];

describe('KubeSubnetManager with dual-stack and IPv6-only pod CIDRs', () => {
  let fixture: KubeManagerFixture;
  let server: FakeApiServer;
  let netConfPath: string;

  beforeEach(async () => {
    fixture = await KubeManagerFixture.start({
      tempDirName: 'kube6',
      netConf: JSON.stringify(DUAL_STACK_CONF),
      attrs: DUAL_ATTRS,
    });
    ({ server, netConfPath } = fixture);
  });

  afterEach(() => fixture.close());

  const manager = () => fixture.manager();
  const signal = () => fixture.signal();
  const acquire = (m: KubeSubnetManager, attrs?: LeaseAttrs) => fixture.acquire(m, attrs);

  const annotationsOf = (name: string): Record<string, string> =>
    server.nodes.get(name)?.metadata.annotations ?? {};
  const patches = () => server.requests.filter((r) => r.method === 'PATCH');

  it('leases both pod CIDRs and publishes public-ipv6 and backend-v6-data beside the IPv4 annotations', async () => {
    server.nodes.add(makeNode('n1', { podCIDRs: dualPodCidrs(1) }));
    const m = manager();
    const lease = await acquire(m);
    expect(lease.key).toBe('10.244.1.0-24&fd00:10:244:1::-64');
    expect(lease.subnet).toEqual(parseCidr('10.244.1.0/24'));
    expect(lease.ipv6Subnet).toEqual(parseCidr('fd00:10:244:1::/64'));
    expect(lease.attrs).toEqual(DUAL_ATTRS);
    expect(lease.expiration).toBeNull();

    expect(annotationsOf('n1')).toEqual({
      [A.backendType]: 'vxlan',
      [A.backendData]: '{"VNI":1,"VtepMAC":"0e:00:00:00:04:01"}',
      [A.backendV6Data]: '{"VNI":1,"VtepMAC":"0e:00:00:00:06:01"}',
      [A.publicIP]: '198.51.100.1',
      [A.publicIPv6]: 'fd77::11',
      [A.kubeSubnetManager]: 'true',
    });
    expect(patches().map((p) => p.path)).toEqual(['/api/v1/nodes/n1/status']);

    // keepLease puts removed IPv6 annotations back too.
    const changes: OwnLeaseChange[] = [];
    void m.keepLease(lease, (c) => changes.push(c), signal());
    server.nodes.annotate('n1', { [A.publicIPv6]: null, [A.backendV6Data]: null });
    await eventually(
      () =>
        annotationsOf('n1')[A.publicIPv6] === 'fd77::11' &&
        annotationsOf('n1')[A.backendV6Data] === '{"VNI":1,"VtepMAC":"0e:00:00:00:06:01"}',
      'the IPv6 annotations restored',
    );
    expect(changes).toEqual([]);
  });

  it('turns dual-stack peers into leases with ipv6Subnet, PublicIPv6 and BackendV6Data', async () => {
    server.nodes.add(makeNode('n1', { podCIDRs: dualPodCidrs(1), annotations: dualStackAnnotations(1) }));
    server.nodes.add(makeNode('n2', { podCIDRs: dualPodCidrs(2), annotations: dualStackAnnotations(2) }));
    const m = manager();
    await m.getNetworkConfig();
    const batches = new Collector<LeaseWatchBatch>(m.watchLeases(signal()));

    const snapshot = await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    const leases = snapshot.type === 'snapshot' ? snapshot.leases : [];
    expect(leases.map((l) => l.key).sort()).toEqual([
      '10.244.1.0-24&fd00:10:244:1::-64',
      '10.244.2.0-24&fd00:10:244:2::-64',
    ]);
    const n2 = leases.find((l) => l.key.startsWith('10.244.2.'));
    expect(n2?.subnet).toEqual(parseCidr('10.244.2.0/24'));
    expect(n2?.ipv6Subnet).toEqual(parseCidr('fd00:10:244:2::/64'));
    expect(n2?.attrs).toEqual({
      publicIP: '198.51.100.2',
      publicIPv6: 'fd77::12',
      backendType: 'vxlan',
      backendData: { VNI: 1, VtepMAC: '0e:00:00:00:04:02' },
      backendV6Data: { VNI: 1, VtepMAC: '0e:00:00:00:06:02' },
    });

    // A new IPv6 VTEP MAC or public IPv6 is a changed lease: peers must re-point their v6 FDB entries.
    server.nodes.annotate('n2', { [A.backendV6Data]: '{"VNI":1,"VtepMAC":"0e:00:00:00:06:22"}' });
    const mac = await batches.next((b) => b.events.some((e) => e.type === 'changed'), 'n2 v6 MAC changed');
    expect(mac.events.map((e) => `${e.type} ${e.lease.key}`)).toEqual([
      'changed 10.244.2.0-24&fd00:10:244:2::-64',
    ]);
    expect(mac.events[0]?.lease.attrs.backendV6Data).toEqual({ VNI: 1, VtepMAC: '0e:00:00:00:06:22' });
    server.nodes.annotate('n2', { [A.publicIPv6]: 'fd77::22' });
    const ip = await batches.next(
      (b) => b.events.some((e) => e.type === 'changed'),
      'n2 public IPv6 changed',
    );
    expect(ip.events[0]?.lease.attrs.publicIPv6).toBe('fd77::22');

    // A node with only an IPv4 pod CIDR, or no public-ipv6, cannot be routed to over IPv6: skipped until fixed.
    server.nodes.add(
      makeNode('n3', { podCIDRs: ['10.244.3.0/24'], annotations: { ...dualStackAnnotations(3) } }),
    );
    server.nodes.add(
      makeNode('n4', {
        podCIDRs: dualPodCidrs(4),
        annotations: { ...dualStackAnnotations(4), [A.publicIPv6]: '198.51.100.4' },
      }),
    );
    server.nodes.annotate('n4', { [A.publicIPv6]: 'fd77::14' });
    const n4 = await batches.next(
      (b) => b.events.some((e) => e.lease.key.startsWith('10.244.4.')),
      'n4 added once its public-ipv6 is an IPv6 address',
    );
    expect(n4.events.map((e) => `${e.type} ${e.lease.key} ${e.lease.attrs.publicIPv6}`)).toEqual([
      'added 10.244.4.0-24&fd00:10:244:4::-64 fd77::14',
    ]);
    expect(batches.items.flatMap((b) => b.events).some((e) => e.lease.key.startsWith('10.244.3.'))).toBe(
      false,
    );
  });

  it('fails at once, naming the entries, on a podCIDRs entry of the wrong family', async () => {
    server.nodes.add(makeNode('n1', { podCIDRs: ['10.244.1.0/24', '10.244.101.0/24'] }));
    const err = await acquire(manager()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodePodCidrError);
    expect((err as Error).message).toBe(
      'node "n1": spec.podCIDRs ["10.244.1.0/24","10.244.101.0/24"] has two IPv4 CIDRs; expected at most one ' +
        'IPv4 and one IPv6 CIDR (dual stack: the second entry must be IPv6)',
    );
    // Not retried: one read, no patch.
    expect(server.requests.filter((r) => r.path === '/api/v1/nodes/n1')).toHaveLength(1);
    expect(patches()).toHaveLength(0);
  });

  it('fails at once when the pod CIDRs lack the IPv6 family the net-conf enables', async () => {
    server.nodes.add(makeNode('n1', { podCIDRs: ['10.244.1.0/24'] }));
    const err = await acquire(manager()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PodCidrFamilyMissingError);
    expect((err as Error).message).toContain('spec.podCIDRs ["10.244.1.0/24"] with no IPv6 CIDR');
    expect((err as Error).message).toContain(netConfPath);
    expect(server.requests.filter((r) => r.path === '/api/v1/nodes/n1')).toHaveLength(1);
    expect(patches()).toHaveLength(0);
  });

  it('rejects an IPv6 pod CIDR outside IPv6Network, naming both and the file', async () => {
    server.nodes.add(makeNode('n1', { podCIDRs: ['10.244.1.0/24', 'fd00:99:0:1::/64'] }));
    const err = await acquire(manager()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PodCidrOutsideNetworkError);
    expect((err as Error).message).toBe(
      `node "n1" has the IPv6 spec.podCIDRs entry fd00:99:0:1::/64, which is outside the IPv6Network ` +
        `fd00:10:244::/56 from ${netConfPath}: make the IPv6 range of the controller manager's --cluster-cidr ` +
        'and the net-conf IPv6Network the same range',
    );
    expect(patches()).toHaveLength(0);
  });

  it('IPv6 only (EnableIPv4: false): leases the one IPv6 pod CIDR, publishes only IPv6 addresses, sees IPv6-only peers', async () => {
    writeFileSync(netConfPath, JSON.stringify(IPV6_ONLY_CONF));
    server.nodes.add(makeNode('n1', { podCIDRs: ['fd00:10:244:1::/64'] }));
    server.nodes.add(
      makeNode('n2', {
        podCIDRs: ['fd00:10:244:2::/64'],
        annotations: {
          [A.kubeSubnetManager]: 'true',
          [A.backendType]: 'vxlan',
          [A.backendV6Data]: '{"VNI":1,"VtepMAC":"0e:00:00:00:06:02"}',
          [A.publicIPv6]: 'fd77::12',
        },
      }),
    );
    const m = manager();
    const lease = await acquire(m, IPV6_ONLY_ATTRS);
    expect(lease.key).toBe('fd00:10:244:1::-64');
    expect(lease.subnet).toBeUndefined();
    expect(lease.ipv6Subnet).toEqual(parseCidr('fd00:10:244:1::/64'));
    expect(annotationsOf('n1')).toEqual({
      [A.backendType]: 'vxlan',
      [A.backendV6Data]: '{"VNI":1,"VtepMAC":"0e:00:00:00:06:01"}',
      [A.publicIPv6]: 'fd77::11',
      [A.kubeSubnetManager]: 'true',
    });

    const batches = new Collector<LeaseWatchBatch>(m.watchLeases(signal()));
    const snapshot = await batches.next((b) => b.type === 'snapshot', 'the snapshot');
    const leases = snapshot.type === 'snapshot' ? snapshot.leases : [];
    expect(leases.map((l) => l.key).sort()).toEqual(['fd00:10:244:1::-64', 'fd00:10:244:2::-64']);
    const n2 = leases.find((l) => l.key === 'fd00:10:244:2::-64');
    expect(n2?.subnet).toBeUndefined();
    expect(n2?.attrs).toEqual({
      publicIP: '',
      publicIPv6: 'fd77::12',
      backendType: 'vxlan',
      backendV6Data: { VNI: 1, VtepMAC: '0e:00:00:00:06:02' },
    });

    // An IPv6-only config and a node given only an IPv4 pod CIDR disagree: a clear error, not a wait.
    server.nodes.add(makeNode('n9', { podCIDRs: ['10.244.9.0/24'] }));
    const other = fixture.manager({ nodeName: 'n9', requestTimeoutMs: undefined });
    const err = await acquire(other, IPV6_ONLY_ATTRS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PodCidrFamilyMissingError);
    expect((err as Error).message).toContain('spec.podCIDRs ["10.244.9.0/24"] with no IPv6 CIDR');
  });
});
