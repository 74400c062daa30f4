// Nodes as a kubelet registers them at scale: flannel's annotations and a realistic status (~3 KiB of JSON each),
// for benches that fill the test API server with thousands of nodes.
import { makeNode, type NodeObject } from './server.js';

const PREFIX = 'flannel.alpha.coreos.com';

/** Node `i`'s internal (and public) IP: 10.100.0.0 and up. */
export function registeredNodeIp(i: number): string {
  return `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

/**
 * Node `i` (`node-<i>`, podCIDR `10.<i/256>.<i%256>.0/24`) as a kubelet registers it, with flannel's annotations and a realistic status (~3 KiB of JSON). */
export function registeredNode(i: number): NodeObject {
  const node = makeNode(`node-${i}`, {
    podCIDR: `10.${i >> 8}.${i & 255}.0/24`,
    internalIP: registeredNodeIp(i),
    labels: {
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'node.kubernetes.io/instance-type': 'm5.large',
    },
    annotations: {
      [`${PREFIX}/kube-subnet-manager`]: 'true',
      [`${PREFIX}/backend-type`]: 'vxlan',
      [`${PREFIX}/backend-data`]: JSON.stringify({
        VNI: 1,
        VtepMAC: `02:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:01`,
      }),
      [`${PREFIX}/public-ip`]: registeredNodeIp(i),
      'node.alpha.kubernetes.io/ttl': '0',
      'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
    },
  });
  node.status = {
    ...node.status,
    capacity: { cpu: '2', memory: '8009412Ki', pods: '110', 'ephemeral-storage': '101430960Ki' },
    allocatable: { cpu: '2', memory: '7907012Ki', pods: '110', 'ephemeral-storage': '93478772582' },
    conditions: ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((type) => ({
      type,
      status: type === 'Ready' ? 'True' : 'False',
      lastHeartbeatTime: '2026-01-01T00:00:00Z',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      reason: type === 'Ready' ? 'KubeletReady' : `KubeletHasNo${type}`,
      message: type === 'Ready' ? 'kubelet is posting ready status' : `kubelet has no ${type}`,
    })),
    nodeInfo: {
      machineID: 'ec2f0f0c6a2e4b0b9b3f0b2e7f0e0c1a',
      systemUUID: 'ec2f0f0c-6a2e-4b0b-9b3f-0b2e7f0e0c1a',
      bootID: '3c1f0f0c-6a2e-4b0b-9b3f-0b2e7f0e0c1a',
      kernelVersion: '6.1.0-18-cloud-amd64',
      osImage: 'Debian GNU/Linux 12 (bookworm)',
      containerRuntimeVersion: 'containerd://1.7.13',
      kubeletVersion: 'v1.31.0',
      kubeProxyVersion: 'v1.31.0',
      operatingSystem: 'linux',
      architecture: 'amd64',
    },
    images: Array.from({ length: 8 }, (_, k) => ({
      names: [
        `registry.k8s.io/image-${k}@sha256:${'0123456789abcdef'.repeat(4)}`,
        `registry.k8s.io/image-${k}:v1.${k}.0`,
      ],
      sizeBytes: 10_000_000 + k,
    })),
  };
  return node;
}
