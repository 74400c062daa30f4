// The Kubernetes subnet manager (`--kube-subnet-mgr`) and the pieces the daemon and weftctl may need.
export {
  DEFAULT_ANNOTATION_PREFIX,
  InvalidAnnotationPrefixError,
  type KubeAnnotationNames,
  kubeAnnotationNames,
} from './annotations.js';
export {
  KubeApiError,
  KubeClient,
  KubeConfigError,
  type KubeConnectionOptions,
  loadKubeConfig,
} from './client.js';
export { KubeConnectionConfig } from './kubeconfig.js';
export type { KubeWatchEvent } from './list-watch.js';
export {
  DEFAULT_NET_CONFIG_PATH,
  KubeSubnetManager,
  type KubeSubnetManagerOptions,
  NetConfigReadError,
  NodeNameUnknownError,
} from './manager.js';
export {
  type KubeNode,
  NodePodCidrError,
  type NodePublicIPOverride,
  nodeToLease,
  PodCidrFamilyMissingError,
  PodCidrNotAssignedError,
  PodCidrOutsideNetworkError,
} from './node-lease.js';
export { NodeReadyTask } from './node-ready.js';
