// What bench/leases.ts and its worker processes (bench/leases-worker.ts) share: the network, each simulated
// node's lease attributes, the connection warm-up, and the messages between them.
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
}

/** Worker → parent. After `ready` the parent's next message (any) is "go". */
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'done'; latencies: number[]; subnets: string[]; cpuMs: number }
  | { type: 'error'; message: string };

/**
 * Warms each node's connection so a round times etcd work, not TCP/HTTP2 setup: the KV service and the Lease
 * service (etcd3 makes one gRPC client per service; the first Lease call sets its channel up).
 */
export async function warmConnections(managers: readonly EtcdSubnetManager[]): Promise<void> {
  await Promise.all(
    managers.map(async (m) => {
      await m.store.ping();
      await m.store.revokeQuietly((await m.store.grant(60)).id);
    }),
  );
}
