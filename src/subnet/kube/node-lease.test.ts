import { describe, expect, it } from 'vitest';
import { Backoff } from '../../core/index.js';
import { parseCidr } from '../../ip/index.js';
import { InvalidAnnotationPrefixError, kubeAnnotationNames } from './annotations.js';
import {
  type KubeNode,
  NodePodCidrError,
  networkReadyCondition,
  nodePodCidrs,
  nodeToLease,
  ownNodeSubnets,
  PodCidrFamilyMissingError,
  PodCidrNotAssignedError,
  PodCidrOutsideNetworkError,
  planOwnAnnotations,
} from './node-lease.js';

const A = kubeAnnotationNames();
const V4 = { ipv4: { network: parseCidr('10.5.0.0/16') } };
const DUAL = { ipv4: { network: parseCidr('10.5.0.0/16') }, ipv6: { network: parseCidr('fd00:5::/48') } };

function node(name: string, podCIDRs: string[], annotations: Record<string, string> = {}): KubeNode {
  return { metadata: { name, resourceVersion: '42', annotations }, spec: { podCIDR: podCIDRs[0], podCIDRs } };
}

const MANAGED = {
  [A.kubeSubnetManager]: 'true',
  [A.backendType]: 'vxlan',
  [A.backendData]: '{"VNI":1,"VtepMAC":"0E:00:00:00:00:01"}',
  [A.publicIP]: '192.0.2.1',
};

describe('kubeAnnotationNames', () => {
  it('uses flannel names under the default prefix', () => {
    expect(A.backendData).toBe('flannel.alpha.coreos.com/backend-data');
    expect(A.kubeSubnetManager).toBe('flannel.alpha.coreos.com/kube-subnet-manager');
    expect(A.publicIPOverwrite).toBe('flannel.alpha.coreos.com/public-ip-overwrite');
    expect(A.nodePublicIP).toBe('flannel.alpha.coreos.com/node-public-ip');
  });

  it('normalises a prefix with a name part as flannel does', () => {
    expect(kubeAnnotationNames('example.com/weft').backendType).toBe('example.com/weft-backend-type');
    expect(kubeAnnotationNames('example.com/weft-').backendType).toBe('example.com/weft-backend-type');
    expect(kubeAnnotationNames('example.com/').backendType).toBe('example.com/backend-type');
  });

  it('rejects prefixes Kubernetes would reject, naming the flag', () => {
    expect(() => kubeAnnotationNames('a/b/c')).toThrow(InvalidAnnotationPrefixError);
    expect(() => kubeAnnotationNames('Upper.Case')).toThrow(/--kube-annotation-prefix="Upper.Case"/);
    expect(() => kubeAnnotationNames('nodots')).toThrow(InvalidAnnotationPrefixError);
  });
});

describe('nodePodCidrs', () => {
  it('reads podCIDRs by family, falling back to podCIDR', () => {
    const dual = nodePodCidrs(node('n', ['10.5.1.0/24', 'fd00:5:0:1::/64']));
    expect(dual.subnet).toEqual(parseCidr('10.5.1.0/24'));
    expect(dual.ipv6Subnet).toEqual(parseCidr('fd00:5:0:1::/64'));
    expect(nodePodCidrs({ metadata: { name: 'old' }, spec: { podCIDR: '10.5.2.0/24' } }).subnet).toEqual(
      parseCidr('10.5.2.0/24'),
    );
    expect(nodePodCidrs({ metadata: { name: 'none' }, spec: {} })).toEqual({});
  });

  it('rejects garbage and two CIDRs of one family, naming the node', () => {
    expect(() => nodePodCidrs(node('bad', ['10.5.1.0/33']))).toThrow(NodePodCidrError);
    expect(() => nodePodCidrs(node('bad', ['10.5.1.0/24', '10.5.2.0/24']))).toThrow(
      /"bad": spec.podCIDRs \["10.5.1.0\/24","10.5.2.0\/24"\] has two IPv4 CIDRs; .*the second entry must be IPv6/,
    );
  });
});

describe('nodeToLease', () => {
  it('turns a managed node into a lease keyed like flannel etcd keys, never expiring', () => {
    const result = nodeToLease(node('n1', ['10.5.1.0/24'], MANAGED), A, V4);
    expect(result.kind).toBe('lease');
    if (result.kind !== 'lease') return;
    expect(result.lease).toEqual({
      key: '10.5.1.0-24',
      subnet: parseCidr('10.5.1.0/24'),
      attrs: {
        publicIP: '192.0.2.1',
        backendType: 'vxlan',
        backendData: { VNI: 1, VtepMAC: '0e:00:00:00:00:01' },
      },
      expiration: null,
      revision: '42',
    });
  });

  it('ignores nodes without kube-subnet-manager=true', () => {
    expect(
      nodeToLease(node('n1', ['10.5.1.0/24'], { ...MANAGED, [A.kubeSubnetManager]: 'false' }), A, V4),
    ).toEqual({
      kind: 'unmanaged',
    });
    expect(nodeToLease(node('n1', ['10.5.1.0/24']), A, V4)).toEqual({ kind: 'unmanaged' });
  });

  it('reports why a managed node is unusable', () => {
    const reason = (n: KubeNode, nets = V4): string => {
      const r = nodeToLease(n, A, nets);
      return r.kind === 'invalid' ? r.reason : `not invalid: ${r.kind}`;
    };
    expect(reason(node('n', ['10.6.1.0/24'], MANAGED))).toMatch(/outside the Network 10.5.0.0\/16/);
    expect(reason(node('n', [], MANAGED))).toMatch(/no IPv4 pod CIDR/);
    expect(reason(node('n', ['10.5.1.0/24'], { ...MANAGED, [A.publicIP]: 'nope' }))).toMatch(
      /public-ip="nope"/,
    );
    expect(reason(node('n', ['10.5.1.0/24'], { ...MANAGED, [A.backendData]: '{x' }))).toMatch(
      /backend-data.*JSON/,
    );
    expect(reason(node('n', ['10.5.1.0/24'], { ...MANAGED, [A.backendData]: '{"VtepMAC":"zz"}' }))).toMatch(
      /VtepMAC/,
    );
    expect(reason(node('n', ['10.5.1.0/24'], MANAGED), DUAL)).toMatch(/no IPv6 pod CIDR/);
  });

  it('builds dual-stack leases from both families', () => {
    const annotations = {
      ...MANAGED,
      [A.publicIPv6]: '2001:db8::1',
      [A.backendV6Data]: '{"VNI":1,"VtepMAC":"0e:00:00:00:00:02"}',
    };
    const result = nodeToLease(node('n', ['10.5.1.0/24', 'fd00:5:0:1::/64'], annotations), A, DUAL);
    expect(result.kind === 'lease' && result.lease.key).toBe('10.5.1.0-24&fd00:5:0:1::-64');
    expect(result.kind === 'lease' && result.lease.attrs.publicIPv6).toBe('2001:db8::1');
  });
});

describe('ownNodeSubnets', () => {
  it('takes the pod CIDR inside the Network', () => {
    expect(ownNodeSubnets(node('n', ['10.5.3.0/24']), V4, '/x.json')).toEqual({
      subnet: parseCidr('10.5.3.0/24'),
    });
  });
  it('refuses pod CIDRs that lack a family the net-conf enables, and an IPv6 one outside IPv6Network', () => {
    const thrown = (n: KubeNode, nets: Parameters<typeof ownNodeSubnets>[1]): Error | undefined => {
      try {
        ownNodeSubnets(n, nets, '/x.json');
      } catch (e) {
        return e as Error;
      }
      return undefined;
    };
    const v4Only = thrown(node('n', ['10.5.3.0/24']), DUAL);
    expect(v4Only).toBeInstanceOf(PodCidrFamilyMissingError);
    expect(v4Only?.message).toMatch(
      /spec.podCIDRs \["10.5.3.0\/24"\] with no IPv6 CIDR, but \/x.json asks for IPv6/,
    );
    const v6Only = thrown(node('n', ['fd00:5:0:3::/64']), V4);
    expect(v6Only).toBeInstanceOf(PodCidrFamilyMissingError);
    expect(v6Only?.message).toMatch(/no IPv4 CIDR/);
    const outside = thrown(node('n', ['10.5.3.0/24', 'fd00:99::/64']), DUAL);
    expect(outside).toBeInstanceOf(PodCidrOutsideNetworkError);
    expect(outside?.message).toMatch(
      /IPv6 spec.podCIDRs entry fd00:99::\/64, which is outside the IPv6Network fd00:5::\/48 from \/x.json/,
    );
    expect(ownNodeSubnets(node('n', ['10.5.3.0/24', 'fd00:5:0:3::/64']), DUAL, '/x.json')).toEqual({
      subnet: parseCidr('10.5.3.0/24'),
      ipv6Subnet: parseCidr('fd00:5:0:3::/64'),
    });
  });

  it('asks to wait when no pod CIDR is assigned, and refuses one outside the Network', () => {
    expect(() => ownNodeSubnets(node('n', []), V4, '/x.json')).toThrow(PodCidrNotAssignedError);
    const err = (() => {
      try {
        ownNodeSubnets(node('n', ['10.9.0.0/24']), V4, '/etc/kube-flannel/net-conf.json');
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(PodCidrOutsideNetworkError);
    expect(err?.message).toBe(
      'node "n" has spec.podCIDR 10.9.0.0/24, which is outside the Network 10.5.0.0/16 from ' +
        "/etc/kube-flannel/net-conf.json: make the controller manager's --cluster-cidr and the net-conf Network the same range",
    );
  });
});

describe('planOwnAnnotations', () => {
  const attrs = {
    publicIP: '192.0.2.1',
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: '0e:00:00:00:00:01' },
  };
  const subnets = { subnet: parseCidr('10.5.3.0/24') };

  it('patches everything on a fresh node and nothing on an up-to-date one', () => {
    const fresh = planOwnAnnotations(node('n', ['10.5.3.0/24']), A, attrs, subnets);
    expect(fresh.patch).toEqual({
      [A.backendType]: 'vxlan',
      [A.backendData]: '{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}',
      [A.publicIP]: '192.0.2.1',
      [A.kubeSubnetManager]: 'true',
    });
    const upToDate = planOwnAnnotations(node('n', ['10.5.3.0/24'], fresh.desired), A, attrs, subnets);
    expect(upToDate.patch).toBeNull();
  });

  it('patches only what differs', () => {
    const current = planOwnAnnotations(node('n', ['10.5.3.0/24']), A, attrs, subnets).desired;
    const plan = planOwnAnnotations(
      node('n', ['10.5.3.0/24'], { ...current, [A.publicIP]: '192.0.2.99' }),
      A,
      attrs,
      subnets,
    );
    expect(plan.patch).toEqual({ [A.publicIP]: '192.0.2.1' });
  });

  it('publishes public-ip-overwrite first, then node-public-ip, and ignores invalid ones with a warning', () => {
    const both = { [A.publicIPOverwrite]: '203.0.113.1', [A.nodePublicIP]: '192.0.2.50' };
    expect(planOwnAnnotations(node('n', ['10.5.3.0/24'], both), A, attrs, subnets).desired[A.publicIP]).toBe(
      '203.0.113.1',
    );
    const nodeIp = planOwnAnnotations(
      node('n', ['10.5.3.0/24'], { [A.nodePublicIP]: '192.0.2.50' }),
      A,
      attrs,
      subnets,
    );
    expect(nodeIp.desired[A.publicIP]).toBe('192.0.2.50');
    expect(nodeIp.warnings[0]).toMatch(/differs from the address in use/);
    const bad = planOwnAnnotations(
      node('n', ['10.5.3.0/24'], { [A.publicIPOverwrite]: 'x' }),
      A,
      attrs,
      subnets,
    );
    expect(bad.desired[A.publicIP]).toBe('192.0.2.1');
    expect(bad.warnings[0]).toMatch(/public-ip-overwrite="x" is not an IPv4 address; ignored/);
  });

  it('writes the v6 annotations for a dual-stack lease', () => {
    const plan = planOwnAnnotations(
      node('n', ['10.5.3.0/24', 'fd00:5:0:3::/64']),
      A,
      { ...attrs, publicIPv6: '2001:db8::3', backendV6Data: { VNI: 1, VtepMAC: '0e:00:00:00:00:03' } },
      { ...subnets, ipv6Subnet: parseCidr('fd00:5:0:3::/64') },
    );
    expect(plan.desired[A.publicIPv6]).toBe('2001:db8::3');
    expect(plan.desired[A.backendV6Data]).toBe('{"VNI":1,"VtepMAC":"0e:00:00:00:00:03"}');
  });
});

describe('networkReadyCondition', () => {
  it('is flannel condition with second-precision RFC 3339 times', () => {
    expect(networkReadyCondition(new Date('2025-01-02T03:04:05.678Z'))).toEqual({
      type: 'NetworkUnavailable',
      status: 'False',
      reason: 'FlannelIsUp',
      message: 'weft (flannel-compatible) is running on this node',
      lastTransitionTime: '2025-01-02T03:04:05Z',
      lastHeartbeatTime: '2025-01-02T03:04:05Z',
    });
  });
});

describe('Backoff', () => {
  it('doubles from initial to max, scaled by jitter in [0.5, 1]', () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4, 5].map(() => top.nextDelayMs())).toEqual([100, 200, 400, 800, 1000]);
    const bottom = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect([1, 2, 3, 4, 5].map(() => bottom.nextDelayMs())).toEqual([50, 100, 200, 400, 500]);
    bottom.reset();
    expect(bottom.attempts).toBe(0);
    expect(bottom.nextDelayMs()).toBe(50);
  });

  it('never decreases between consecutive failures whatever the jitter', () => {
    const values = [0.99, 0, 0.99, 0, 0.5, 0.99];
    const b = new Backoff({ initialMs: 10, maxMs: 10_000, random: () => values.shift() ?? 0 });
    const delays = [1, 2, 3, 4, 5, 6].map(() => b.nextDelayMs());
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1] as number);
  });
});
