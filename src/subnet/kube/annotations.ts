/** flannel's default `--kube-annotation-prefix`. */
export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';

/** The node annotation keys weft reads and writes (flannel's names under the configured prefix). */
export interface KubeAnnotationNames {
  /** `"true"` on every node whose lease weft (or flannel) manages; only such nodes become leases. */
  kubeSubnetManager: string;
  backendType: string;
  /** JSON text of the IPv4 backend data, e.g. `{"VNI":1,"VtepMAC":"…"}`. */
  backendData: string;
  backendV6Data: string;
  publicIP: string;
  publicIPv6: string;
  /** Set by the operator: published as `public-ip` instead of the detected address (NAT). Read only. */
  publicIPOverwrite: string;
  publicIPv6Overwrite: string;
  /** Set by the operator: acts like `--public-ip` for this node. Read only. */
  nodePublicIP: string;
  nodePublicIPv6: string;
}

export class InvalidAnnotationPrefixError extends Error {
  override name = 'InvalidAnnotationPrefixError';
  constructor(
    readonly prefix: string,
    reason: string,
  ) {
    super(`--kube-annotation-prefix=${JSON.stringify(prefix)}: ${reason}`);
  }
}

/** An annotation key prefix: a DNS subdomain, then `/`, then optionally a name ending in `-`. */
const PREFIX_PATTERN = /^(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/;

/**
 * Annotation names for a prefix, normalised as flannel does: `example.com` → `example.com/backend-type`,
 * `example.com/weft` → `example.com/weft-backend-type`, `example.com/weft-` is kept.
 */
export function kubeAnnotationNames(prefix: string = DEFAULT_ANNOTATION_PREFIX): KubeAnnotationNames {
  let p = prefix;
  const slashes = p.split('/').length - 1;
  if (slashes > 1) throw new InvalidAnnotationPrefixError(prefix, 'may contain at most one "/"');
  if (slashes === 0) p += '/';
  if (!p.endsWith('/') && !p.endsWith('-')) p += '-';
  if (!PREFIX_PATTERN.test(p)) {
    throw new InvalidAnnotationPrefixError(
      prefix,
      'expected a lower-case DNS name, optionally followed by "/" and a name (e.g. flannel.alpha.coreos.com or example.com/weft)',
    );
  }
  return {
    kubeSubnetManager: `${p}kube-subnet-manager`,
    backendType: `${p}backend-type`,
    backendData: `${p}backend-data`,
    backendV6Data: `${p}backend-v6-data`,
    publicIP: `${p}public-ip`,
    publicIPv6: `${p}public-ipv6`,
    publicIPOverwrite: `${p}public-ip-overwrite`,
    publicIPv6Overwrite: `${p}public-ipv6-overwrite`,
    nodePublicIP: `${p}node-public-ip`,
    nodePublicIPv6: `${p}node-public-ipv6`,
  };
}
