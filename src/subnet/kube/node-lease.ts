// Pure translation between Kubernetes Node objects and weft leases: which nodes are leases, what this node's
// lease is, which annotations must be patched. No I/O here; the manager does the API calls.
import {
  type Cidr,
  containsCidr,
  type Family,
  formatCidr,
  type InvalidAddressError,
  isIp,
  parseCidr,
} from '../../ip/index.js';
import { decodeLeaseAttrs, formatLeaseKey, InvalidLeaseValueError } from '../../lease/index.js';
import type { Lease, LeaseAttrs } from '../../lease/types.js';
import type { KubeAnnotationNames } from './annotations.js';

/** The parts of a Node weft reads. Both `V1Node` from the client and raw watch JSON fit this shape. */
export interface KubeNode {
  metadata?: {
    name?: string;
    resourceVersion?: string;
    annotations?: Record<string, string> | undefined;
  };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { conditions?: Array<{ type?: string; status?: string }> };
}

/** The networks of the net-conf (structurally `NetworkConfig` from src/config). */
export interface KubeNetworks {
  ipv4?: { network: Cidr } | undefined;
  ipv6?: { network: Cidr } | undefined;
}

/** The pod CIDRs a node was given by the controller manager, one per family. */
export interface NodeSubnets {
  subnet?: Cidr;
  ipv6Subnet?: Cidr;
}

export class NodePodCidrError extends Error {
  override name = 'NodePodCidrError';
  constructor(
    readonly nodeName: string,
    readonly reason: string,
  ) {
    super(`node ${JSON.stringify(nodeName)}: ${reason}`);
  }
}

/** The node has no pod CIDR of a family weft needs yet (the controller manager assigns it). Worth waiting. */
export class PodCidrNotAssignedError extends Error {
  override name = 'PodCidrNotAssignedError';
  constructor(
    readonly nodeName: string,
    readonly family: Family,
  ) {
    super(
      `node ${JSON.stringify(nodeName)} has no IPv${family} spec.podCIDR yet: the controller manager assigns it ` +
        `when it runs with --allocate-node-cidrs=true and a --cluster-cidr${family === 6 ? ' that includes an IPv6 range' : ''}`,
    );
  }
}

/** The node's pod CIDR does not lie inside the net-conf Network: the two configs disagree. Not worth retrying. */
export class PodCidrOutsideNetworkError extends Error {
  override name = 'PodCidrOutsideNetworkError';
  constructor(
    readonly nodeName: string,
    readonly podCidr: string,
    readonly network: string,
    readonly netConfigPath: string,
    readonly family: Family = 4,
  ) {
    super(
      family === 4
        ? `node ${JSON.stringify(nodeName)} has spec.podCIDR ${podCidr}, which is outside the Network ${network} ` +
            `from ${netConfigPath}: make the controller manager's --cluster-cidr and the net-conf Network the same range`
        : `node ${JSON.stringify(nodeName)} has the IPv6 spec.podCIDRs entry ${podCidr}, which is outside the ` +
            `IPv6Network ${network} from ${netConfigPath}: make the IPv6 range of the controller manager's ` +
            '--cluster-cidr and the net-conf IPv6Network the same range',
    );
  }
}

/**
 * The node has pod CIDRs, but none of a family the net-conf enables. The controller manager assigns every
 * family at once and never adds one to a node later, so waiting cannot help: the two configs disagree.
 */
export class PodCidrFamilyMissingError extends Error {
  override name = 'PodCidrFamilyMissingError';
  constructor(
    readonly nodeName: string,
    readonly family: Family,
    readonly podCidrs: string[],
    readonly netConfigPath: string,
  ) {
    const setting = family === 6 ? 'EnableIPv6 with IPv6Network' : 'Network (EnableIPv4 is on by default)';
    const off = family === 6 ? 'turn EnableIPv6 off' : 'set EnableIPv4 to false';
    super(
      `node ${JSON.stringify(nodeName)} has spec.podCIDRs ${JSON.stringify(podCidrs)} with no IPv${family} CIDR, ` +
        `but ${netConfigPath} asks for IPv${family} (${setting}): give the controller manager a --cluster-cidr ` +
        `with an IPv${family} range (the node must then register again to get one), or ${off} in the net-conf`,
    );
  }
}

export function nodeNameOf(node: KubeNode): string {
  return node.metadata?.name ?? '(unnamed node)';
}

/** `spec.podCIDRs`, or the older single `spec.podCIDR` when the list is empty. */
function podCidrList(node: KubeNode): string[] {
  return node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
}

/** Parses `spec.podCIDRs` (or the older single `spec.podCIDR`): at most one CIDR per family. */
export function nodePodCidrs(node: KubeNode): NodeSubnets {
  const name = nodeNameOf(node);
  const list = podCidrList(node);
  const shown = `spec.podCIDRs ${JSON.stringify(list)}`;
  if (list.length > 2) {
    throw new NodePodCidrError(
      name,
      `${shown} has ${list.length} entries; expected one IPv4 and/or one IPv6 CIDR`,
    );
  }
  const out: NodeSubnets = {};
  for (const text of list) {
    let cidr: Cidr;
    try {
      cidr = parseCidr(text);
    } catch (err) {
      throw new NodePodCidrError(
        name,
        `spec.podCIDRs entry ${JSON.stringify(text)}: ${(err as InvalidAddressError).message}`,
      );
    }
    // Dual stack is one CIDR of each family; a second of one family is an entry of the wrong family.
    const other = cidr.family === 4 ? 'IPv6' : 'IPv4';
    const twice = `${shown} has two IPv${cidr.family} CIDRs; expected at most one IPv4 and one IPv6 CIDR (dual stack: the second entry must be ${other})`;
    if (cidr.family === 4) {
      if (out.subnet) throw new NodePodCidrError(name, twice);
      out.subnet = cidr;
    } else {
      if (out.ipv6Subnet) throw new NodePodCidrError(name, twice);
      out.ipv6Subnet = cidr;
    }
  }
  return out;
}

/** What a node is to the lease watch. */
export type NodeLeaseResult =
  | { kind: 'lease'; lease: Lease }
  /** Not annotated `kube-subnet-manager: "true"`: not ours to route to (yet). */
  | { kind: 'unmanaged' }
  /** Managed but unusable (bad annotation, pod CIDR outside the Network): skipped with a warning. */
  | { kind: 'invalid'; reason: string };

function parseJsonAnnotation(annotations: Record<string, string>, key: string): unknown {
  const text = annotations[key];
  if (text === undefined || text === '' || text === 'null') return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidLeaseValueError(key, `not valid JSON: ${(err as Error).message}`);
  }
}

function noPodCidrReason(node: KubeNode, family: Family): string {
  return `has no IPv${family} pod CIDR (spec.podCIDRs ${JSON.stringify(podCidrList(node))}) but the net-conf enables IPv${family}`;
}

/**
 * Turns a node into a lease the way flannel's `nodeToLease` does: the node must carry
 * `kube-subnet-manager: "true"`; for each family enabled in the net-conf it needs a pod CIDR inside that
 * family's Network and a public address annotation. The lease key is flannel's etcd key for the subnet(s),
 * so leases from both managers compare alike. Kube leases never expire.
 */
export function nodeToLease(
  node: KubeNode,
  names: KubeAnnotationNames,
  networks: KubeNetworks,
): NodeLeaseResult {
  const annotations = node.metadata?.annotations ?? {};
  if (annotations[names.kubeSubnetManager] !== 'true') return { kind: 'unmanaged' };
  let subnets: NodeSubnets;
  try {
    subnets = nodePodCidrs(node);
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message };
  }
  const useV4 = networks.ipv4 !== undefined;
  const useV6 = networks.ipv6 !== undefined;
  const used: NodeSubnets = {};
  const value: Record<string, unknown> = { PublicIP: null, PublicIPv6: null };
  if (useV4) {
    if (!subnets.subnet) return { kind: 'invalid', reason: noPodCidrReason(node, 4) };
    if (networks.ipv4 && !containsCidr(networks.ipv4.network, subnets.subnet)) {
      return {
        kind: 'invalid',
        reason: `pod CIDR ${formatCidr(subnets.subnet)} is outside the Network ${formatCidr(networks.ipv4.network)}`,
      };
    }
    const ip = annotations[names.publicIP];
    if (!isIp(ip, 4)) {
      return {
        kind: 'invalid',
        reason: `annotation ${names.publicIP}=${JSON.stringify(ip ?? null)} is not an IPv4 address`,
      };
    }
    value.PublicIP = ip;
    used.subnet = subnets.subnet;
  }
  if (useV6) {
    if (!subnets.ipv6Subnet) return { kind: 'invalid', reason: noPodCidrReason(node, 6) };
    if (networks.ipv6 && !containsCidr(networks.ipv6.network, subnets.ipv6Subnet)) {
      return {
        kind: 'invalid',
        reason: `IPv6 pod CIDR ${formatCidr(subnets.ipv6Subnet)} is outside the IPv6Network ${formatCidr(networks.ipv6.network)}`,
      };
    }
    const ip = annotations[names.publicIPv6];
    if (!isIp(ip, 6)) {
      return {
        kind: 'invalid',
        reason: `annotation ${names.publicIPv6}=${JSON.stringify(ip ?? null)} is not an IPv6 address`,
      };
    }
    value.PublicIPv6 = ip;
    used.ipv6Subnet = subnets.ipv6Subnet;
  }
  if (!useV4 && !useV6) return { kind: 'invalid', reason: 'the net-conf enables no address family' };
  let attrs: LeaseAttrs;
  try {
    const backendType = annotations[names.backendType];
    if (backendType) value.BackendType = backendType;
    if (useV4) value.BackendData = parseJsonAnnotation(annotations, names.backendData);
    if (useV6) value.BackendV6Data = parseJsonAnnotation(annotations, names.backendV6Data);
    // The etcd codec's strict checks (VtepMAC, VNI, backend name) apply to kube leases too.
    attrs = decodeLeaseAttrs(JSON.stringify(value));
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message };
  }
  const full = ownLease(used, attrs, node.metadata?.resourceVersion);
  return { kind: 'lease', lease: full };
}

/**
 * This node's subnets from its pod CIDRs, checked against the net-conf. Throws `PodCidrNotAssignedError`
 * (none at all yet: wait and retry) or `PodCidrFamilyMissingError` / `PodCidrOutsideNetworkError` /
 * `NodePodCidrError` (configuration errors).
 */
export function ownNodeSubnets(node: KubeNode, networks: KubeNetworks, netConfigPath: string): NodeSubnets {
  const name = nodeNameOf(node);
  const subnets = nodePodCidrs(node);
  const list = podCidrList(node);
  // No pod CIDR at all: not assigned yet (wait). Some, but not of a needed family: the configs disagree.
  const missing = (family: Family): Error =>
    list.length === 0
      ? new PodCidrNotAssignedError(name, family)
      : new PodCidrFamilyMissingError(name, family, list, netConfigPath);
  const out: NodeSubnets = {};
  if (networks.ipv4) {
    if (!subnets.subnet) throw missing(4);
    if (!containsCidr(networks.ipv4.network, subnets.subnet)) {
      throw new PodCidrOutsideNetworkError(
        name,
        formatCidr(subnets.subnet),
        formatCidr(networks.ipv4.network),
        netConfigPath,
      );
    }
    out.subnet = subnets.subnet;
  }
  if (networks.ipv6) {
    if (!subnets.ipv6Subnet) throw missing(6);
    if (!containsCidr(networks.ipv6.network, subnets.ipv6Subnet)) {
      throw new PodCidrOutsideNetworkError(
        name,
        formatCidr(subnets.ipv6Subnet),
        formatCidr(networks.ipv6.network),
        netConfigPath,
        6,
      );
    }
    out.ipv6Subnet = subnets.ipv6Subnet;
  }
  return out;
}

/** The operator's per-node public address (`node-public-ip[v6]`), which acts like `--public-ip[v6]`. */
export interface NodePublicIPOverride {
  publicIP?: string;
  publicIPv6?: string;
  /** Annotations that were set but are not addresses of their family (ignored). */
  warnings: string[];
}

function addressAnnotation(
  annotations: Record<string, string>,
  key: string,
  family: Family,
  warnings: string[],
): string | undefined {
  const value = annotations[key];
  if (value === undefined || value === '') return undefined;
  if (!isIp(value, family)) {
    warnings.push(`annotation ${key}=${JSON.stringify(value)} is not an IPv${family} address; ignored`);
    return undefined;
  }
  return value;
}

export function nodePublicIPOverride(node: KubeNode, names: KubeAnnotationNames): NodePublicIPOverride {
  const annotations = node.metadata?.annotations ?? {};
  const out: NodePublicIPOverride = { warnings: [] };
  const v4 = addressAnnotation(annotations, names.nodePublicIP, 4, out.warnings);
  const v6 = addressAnnotation(annotations, names.nodePublicIPv6, 6, out.warnings);
  if (v4 !== undefined) out.publicIP = v4;
  if (v6 !== undefined) out.publicIPv6 = v6;
  return out;
}

/** The annotation values this node must carry, and what is missing or different on the node now. */
export interface OwnAnnotationPlan {
  desired: Record<string, string>;
  /** Only the keys whose value differs; null when the node is up to date. */
  patch: Record<string, string> | null;
  /** Overrides that were ignored, overrides that were applied (for the log). */
  warnings: string[];
  notes: string[];
}

/**
 * The annotations this node publishes: backend type and data, public addresses, `kube-subnet-manager`.
 * The published public address is, in order: `public-ip-overwrite` (NAT: peers must use this address),
 * `node-public-ip` (the operator's choice of address), the detected address in `attrs`.
 */
export function planOwnAnnotations(
  node: KubeNode,
  names: KubeAnnotationNames,
  attrs: LeaseAttrs,
  subnets: NodeSubnets,
): OwnAnnotationPlan {
  const annotations = node.metadata?.annotations ?? {};
  const warnings: string[] = [];
  const notes: string[] = [];
  const desired: Record<string, string> = {};
  desired[names.backendType] = attrs.backendType ?? '';
  const override = nodePublicIPOverride(node, names);
  warnings.push(...override.warnings);
  if (subnets.subnet) {
    desired[names.backendData] = JSON.stringify(attrs.backendData ?? null);
    const overwrite = addressAnnotation(annotations, names.publicIPOverwrite, 4, warnings);
    let ip = attrs.publicIP;
    if (overwrite !== undefined) {
      if (overwrite !== attrs.publicIP)
        notes.push(`publishing ${names.publicIP}=${overwrite} from ${names.publicIPOverwrite}`);
      ip = overwrite;
    } else if (override.publicIP !== undefined) {
      if (override.publicIP !== attrs.publicIP) {
        warnings.push(
          `${names.nodePublicIP}=${override.publicIP} differs from the address in use (${attrs.publicIP || 'none'}); publishing ${override.publicIP}`,
        );
      }
      ip = override.publicIP;
    }
    desired[names.publicIP] = ip;
  }
  if (subnets.ipv6Subnet) {
    desired[names.backendV6Data] = JSON.stringify(attrs.backendV6Data ?? null);
    const overwrite = addressAnnotation(annotations, names.publicIPv6Overwrite, 6, warnings);
    let ip = attrs.publicIPv6 ?? '';
    if (overwrite !== undefined) {
      if (overwrite !== ip)
        notes.push(`publishing ${names.publicIPv6}=${overwrite} from ${names.publicIPv6Overwrite}`);
      ip = overwrite;
    } else if (override.publicIPv6 !== undefined) {
      if (override.publicIPv6 !== ip) {
        warnings.push(
          `${names.nodePublicIPv6}=${override.publicIPv6} differs from the address in use (${ip || 'none'}); publishing ${override.publicIPv6}`,
        );
      }
      ip = override.publicIPv6;
    }
    desired[names.publicIPv6] = ip;
  }
  desired[names.kubeSubnetManager] = 'true';
  const patch: Record<string, string> = {};
  for (const [key, value] of Object.entries(desired)) {
    if (annotations[key] !== value) patch[key] = value;
  }
  return { desired, patch: Object.keys(patch).length > 0 ? patch : null, warnings, notes };
}

/** The lease this node holds, as returned by `acquireLease` (attributes as detected, as flannel returns them). */
export function ownLease(subnets: NodeSubnets, attrs: LeaseAttrs, resourceVersion?: string): Lease {
  const lease: Lease = { key: formatLeaseKey(subnets), attrs: { ...attrs }, expiration: null };
  if (subnets.subnet) lease.subnet = subnets.subnet;
  if (subnets.ipv6Subnet) lease.ipv6Subnet = subnets.ipv6Subnet;
  if (resourceVersion !== undefined) lease.revision = resourceVersion;
  return lease;
}

/** flannel's `NetworkUnavailable=False` condition (reason `FlannelIsUp`, which tools look for). */
export function networkReadyCondition(now: Date): Record<string, string> {
  const time = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    type: 'NetworkUnavailable',
    status: 'False',
    reason: 'FlannelIsUp',
    message: 'weft (flannel-compatible) is running on this node',
    lastTransitionTime: time,
    lastHeartbeatTime: time,
  };
}

export function sameSubnets(a: NodeSubnets, b: NodeSubnets): boolean {
  const eq = (x?: Cidr, y?: Cidr): boolean =>
    x === undefined || y === undefined ? x === y : x.value === y.value && x.prefix === y.prefix;
  return eq(a.subnet, b.subnet) && eq(a.ipv6Subnet, b.ipv6Subnet);
}
