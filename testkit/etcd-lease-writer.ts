// Writing many flannel leases into an etcd that only a node namespace can reach (etcd on the underlay): a small
// etcd client process (`etcd-lease-writer-cli.ts`) started inside the namespace, one JSON request per line.
// Benches use it to inject thousands of synthetic peers in one txn and to read weftd's metrics on the node's
// loopback. Also: the synthetic peers themselves, in flannel's key and value format.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stableVtepMac } from '../src/ip/index.js';
import { sleep } from './exec.js';
import { spawnPiped, stopChild } from './piped-child.js';

export const FLANNEL_ETCD_PREFIX = '/coreos.com/network';

/** One etcd call of a `steps` request: a put under the request's lease, or a delete. */
export type EtcdWriterStep = { put: string; value: string } | { del: string };

export type EtcdWriterRequest =
  | { op: 'grant'; count: number; ttl: number }
  /** One etcd call per step, in order (each its own watch event); answers how many etcd acknowledged. */
  | { op: 'steps'; steps: EtcdWriterStep[]; lease: string }
  /** Every key and value under `prefix`. */
  | { op: 'list'; prefix: string }
  | { op: 'put'; entries: Array<{ key: string; value: string; lease: string }> }
  | { op: 'del'; keys: string[] }
  | { op: 'revoke'; ids: string[] }
  /** weftd's `nodejs_heap_size_used_bytes` from its metrics on the namespace's loopback at `port`. */
  | { op: 'heap'; port: number }
  | { op: 'exit' };

export interface EtcdWriterResponse {
  ok: boolean;
  error?: string;
  ids?: string[];
  /** weftd's `nodejs_heap_size_used_bytes`, in MiB. */
  heapMiB?: number;
  /** `steps`: how many steps etcd acknowledged (a failed request may have done some). */
  done?: number;
  /** `list`: key → value. */
  kvs?: Record<string, string>;
  /** process.hrtime (CLOCK_MONOTONIC, shared by all processes) before the request, in ns. */
  sentNs?: string;
  /** … and when etcd acknowledged it. */
  ackNs?: string;
}

const WRITER_CLI = fileURLToPath(new URL('./etcd-lease-writer-cli.js', import.meta.url));

/** The etcd writer running inside a namespace, one request at a time. */
export class EtcdLeaseWriter {
  private readonly answers: Array<(r: EtcdWriterResponse) => void> = [];
  private readonly child: ChildProcess;

  /**
   * `callTimeoutMs`: each etcd call of a request gives up after this long (a churn that must not wait for a
   * restarting etcd); default: calls wait as the etcd client does.
   */
  constructor(netns: string, endpoint: string, options: { callTimeoutMs?: number } = {}) {
    this.child = spawnPiped([
      'ip',
      'netns',
      'exec',
      netns,
      process.execPath,
      WRITER_CLI,
      `--endpoint=${endpoint}`,
      ...(options.callTimeoutMs === undefined ? [] : [`--call-timeout-ms=${options.callTimeoutMs}`]),
    ]);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.answers.shift()?.(JSON.parse(line) as EtcdWriterResponse);
    });
    this.child.on('exit', () => {
      for (const a of this.answers.splice(0)) a({ ok: false, error: 'writer exited' });
    });
  }

  async request(req: EtcdWriterRequest): Promise<EtcdWriterResponse> {
    const r = await this.tryRequest(req);
    if (!r.ok) throw new Error(`etcd writer: ${req.op} failed: ${r.error}`);
    return r;
  }

  /** The answer as it came, `ok: false` included (a churn goes on after a failed tick). */
  tryRequest(req: EtcdWriterRequest): Promise<EtcdWriterResponse> {
    const answer = new Promise<EtcdWriterResponse>((resolve) => this.answers.push(resolve));
    this.child.stdin!.write(`${JSON.stringify(req)}\n`);
    return answer;
  }

  async close(): Promise<void> {
    this.child.stdin?.end(`${JSON.stringify({ op: 'exit' })}\n`);
    await sleep(100);
    await stopChild(this.child);
  }
}

export interface SyntheticPeer {
  key: string;
  subnet: string;
  gateway: string;
  publicIp: string;
  mac: string;
}

/**
 * Peer `i` of a family of synthetic vxlan nodes: subnet `10.<base + i/256>.<i%256>.0/24`, PublicIP in
 * 192.168.<ipBase + i/250>.x (up to 250 × (256 − ipBase) peers), the VTEP MAC weft derives from it.
 */
export function syntheticPeer(i: number, subnetBase: number, ipBase: number, vni = 1): SyntheticPeer {
  const gateway = `10.${subnetBase + (i >> 8)}.${i & 255}.0`;
  const publicIp = `192.168.${ipBase + Math.floor(i / 250)}.${1 + (i % 250)}`;
  return {
    key: `${FLANNEL_ETCD_PREFIX}/subnets/${gateway}-24`,
    subnet: `${gateway}/24`,
    gateway,
    publicIp,
    mac: stableVtepMac(publicIp, vni),
  };
}

/** The peer's lease value as flanneld writes it. */
export function syntheticLeaseValue(p: SyntheticPeer, vni = 1): string {
  return JSON.stringify({
    PublicIP: p.publicIp,
    PublicIPv6: null,
    BackendType: 'vxlan',
    BackendData: { VNI: vni, VtepMAC: p.mac },
  });
}
