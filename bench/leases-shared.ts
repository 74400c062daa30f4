// What bench/leases.ts and its worker processes (bench/leases-worker.ts) share: the network, each simulated
// node's lease attributes, the connection warm-up, and the messages between them.
import type { NetworkConfig } from '../src/config/index.js';
import { sleep } from '../src/core/index.js';
import type { Lease } from '../src/lease/index.js';
import type { EtcdSubnetManager } from '../src/subnet/index.js';

/** The network every round leases from: 65536 /24 subnets. */
export const LEASES_CONFIG = '{"Network":"10.0.0.0/8","Backend":{"Type":"vxlan"}}';

/** Node `i`'s attributes: its own public address and VTEP MAC. */
export function leaseAttrs(i: number) {
  const hex = (n: number) => (n & 255).toString(16).padStart(2, '0');
  return {
    publicIP: `192.${168 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: `02:00:00:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}` },
  };
}

/** Parent → worker, first message: the worker's share of the nodes (`first` … `first + count - 1`). */
export interface WorkerRequest {
  endpoint: string;
  prefix: string;
  first: number;
  count: number;
  /** See RoundShape. */
  shape: RoundShape;
}

/** How a round's nodes start. */
export interface RoundShape {
  /** Each node starts at a random moment in [0, staggerMs) (a boot storm spread over time); 0 = all at once. */
  staggerMs: number;
  /**
   * Whether each node read etcd before acquiring (as weftd reads the network config first). A node that has read
   * nothing lists every lease with its value, as flannel does; one that has, only the values of older leases.
   */
  priorRead: boolean;
}

/** Waits a node's random start offset, then acquires; the latency counts from the node's own start. */
export async function acquireAt(
  m: EtcdSubnetManager,
  config: NetworkConfig,
  i: number,
  shape: RoundShape,
): Promise<{ lease: Lease; ms: number }> {
  if (shape.staggerMs > 0) await sleep(Math.random() * shape.staggerMs);
  const t0 = performance.now();
  const lease = await m.acquireLease({ config, attrs: leaseAttrs(i) });
  return { lease, ms: performance.now() - t0 };
}

/** Worker → parent. After `ready` the parent's next message (any) is "go". */
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'done'; latencies: number[]; subnets: string[]; cpuMs: number }
  | { type: 'error'; message: string };

/**
 * Warms each node's connection so a round times etcd work, not TCP/HTTP2 setup: the KV service and the Lease
 * service (etcd3 makes one gRPC client per service; the first Lease call sets its channel up). `priorRead`: the
 * KV call is a read of the config key (what weftd does first), else only the Lease calls warm the connection.
 */
export async function warmConnections(
  managers: readonly EtcdSubnetManager[],
  priorRead = true,
): Promise<void> {
  await Promise.all(
    managers.map(async (m) => {
      if (priorRead) await m.store.ping();
      await m.store.revokeQuietly((await m.store.grant(60)).id);
    }),
  );
}

/** etcd's count of bytes sent to gRPC clients, from its own /metrics (loopback). */
export async function etcdSentBytes(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const m = /^etcd_network_client_grpc_sent_bytes_total ([0-9.e+]+)$/m.exec(text);
  if (!m?.[1]) throw new Error('etcd /metrics has no etcd_network_client_grpc_sent_bytes_total');
  return Number(m[1]);
}
