// Nodes → lease batches. Every node update passes through here (kubelet heartbeats included: at 5000 nodes that
// is thousands a minute), so an update that leaves weft's fields alone is recognised by comparing those few
// fields with what was seen last and costs no parsing and no event. Everything else goes through the lease
// index, which keeps one lease per pod CIDR for lists and single events alike.
import type { LeaseEvent, LeaseWatchBatch } from '../../lease/index.js';
import type { Lease } from '../../lease/types.js';
import type { Logger } from '../../log/index.js';
import type { KubeAnnotationNames } from './annotations.js';
import { type LeaseConflict, NodeLeaseIndex } from './lease-index.js';
import type { KubeWatchEvent, NodeStreamItem } from './list-watch.js';
import { type KubeNetworks, type KubeNode, nodeNameOf, nodeToLease } from './node-lease.js';

/** The node fields `nodeToLease` reads, as one comparable string. */
export function leaseFieldsOf(node: KubeNode, names: KubeAnnotationNames): string {
  const a = node.metadata?.annotations ?? {};
  const cidrs = node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : []);
  return [
    a[names.kubeSubnetManager],
    a[names.backendType],
    a[names.backendData],
    a[names.backendV6Data],
    a[names.publicIP],
    a[names.publicIPv6],
    cidrs.join(','),
  ].join('\u0000');
}

export interface NodeLeaseTrackerOptions {
  names: KubeAnnotationNames;
  networks: KubeNetworks;
  logger: Logger;
  onWatchEvent?: ((event: KubeWatchEvent) => void) | undefined;
}

/** Turns list and watch items into lease batches; one instance per watch. */
export class NodeLeaseTracker {
  private readonly index = new NodeLeaseIndex();
  /** Last seen lease fields per node (nodes that are not leases too, so their heartbeats are cheap as well). */
  private readonly seen = new Map<string, string>();
  /** The reason each skipped node was skipped (warned once per reason). */
  private readonly warned = new Map<string, string>();
  /** Updates that did not touch weft's fields (for the scale bench and tests). */
  unchangedUpdates = 0;

  constructor(private readonly options: NodeLeaseTrackerOptions) {}

  private leaseOf(node: KubeNode, name: string): Lease | undefined {
    const result = nodeToLease(node, this.options.names, this.options.networks);
    if (result.kind === 'invalid') {
      if (this.warned.get(name) !== result.reason) {
        this.options.logger.warn({ node: name }, `node skipped: ${result.reason}`);
        this.options.onWatchEvent?.({ type: 'skipped', key: name, reason: result.reason });
      }
      this.warned.set(name, result.reason);
      return undefined;
    }
    this.warned.delete(name);
    return result.kind === 'lease' ? result.lease : undefined;
  }

  private warnConflicts(conflicts: LeaseConflict[]): void {
    for (const c of conflicts) {
      this.options.logger.warn(
        { node: c.node, key: c.key, holder: c.holder },
        `node ${c.node} claims pod CIDR ${c.key}, which node ${c.holder} holds; ignoring it until ${c.holder} goes`,
      );
    }
  }

  /** The batch for one item of the node stream, or undefined when nothing weft uses changed. */
  apply(item: NodeStreamItem): LeaseWatchBatch | undefined {
    if (item.type === 'list') {
      this.seen.clear();
      const entries: Array<[string, Lease]> = [];
      for (const node of item.nodes) {
        const name = nodeNameOf(node);
        this.seen.set(name, leaseFieldsOf(node, this.options.names));
        const lease = this.leaseOf(node, name);
        if (lease) entries.push([name, lease]);
      }
      const change = this.index.replaceAll(entries);
      this.warnConflicts(change.conflicts);
      return { type: 'snapshot', leases: change.leases, events: change.events };
    }
    const name = nodeNameOf(item.node);
    let events: LeaseEvent[];
    if (item.event === 'DELETED') {
      this.seen.delete(name);
      this.warned.delete(name);
      events = this.index.set(name, undefined).events;
    } else {
      const fields = leaseFieldsOf(item.node, this.options.names);
      if (this.seen.get(name) === fields) {
        this.unchangedUpdates++;
        return undefined;
      }
      this.seen.set(name, fields);
      const change = this.index.set(name, this.leaseOf(item.node, name));
      this.warnConflicts(change.conflicts);
      events = change.events;
    }
    return events.length > 0 ? { type: 'events', events } : undefined;
  }
}
