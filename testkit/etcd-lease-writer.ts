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

export type EtcdWriterRequest =
  | { op: 'grant'; count: number; ttl: number }
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

  constructor(netns: string, endpoint: string) {
    this.child = spawnPiped([
      'ip',
      'netns',
      'exec',
      netns,
      process.execPath,
      WRITER_CLI,
      `--endpoint=${endpoint}`,
    ]);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.answers.shift()?.(JSON.parse(line) as EtcdWriterResponse);
    });
    this.child.on('exit', () => {
      for (const a of this.answers.splice(0)) a({ ok: false, error: 'writer exited' });
    });
  }

  async request(req: EtcdWriterRequest): Promise<EtcdWriterResponse> {
    const answer = new Promise<EtcdWriterResponse>((resolve) => this.answers.push(resolve));
    this.child.stdin!.write(`${JSON.stringify(req)}\n`);
    const r = await answer;
    if (!r.ok) throw new Error(`etcd writer: ${req.op} failed: ${r.error}`);
    return r;
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
