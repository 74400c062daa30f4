// The etcd client process behind `EtcdLeaseWriter`, started inside a node namespace:
//   ip netns exec NS node dist-dev/testkit/etcd-lease-writer-cli.js --endpoint=http://192.168.77.2:2379
// Reads one JSON request per stdin line (etcd-lease-writer.ts), answers one JSON line each.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import type { EtcdWriterRequest, EtcdWriterResponse } from './etcd-lease-writer.js';

async function inChunks<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** `p`, or a rejection once `timeoutMs` passed (no limit when undefined). */
function bounded<T>(p: Promise<T>, what: string, timeoutMs: number | undefined): Promise<T> {
  if (timeoutMs === undefined) return p;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function runWriter(endpoint: string, callTimeoutMs: number | undefined): Promise<void> {
  const client = new Etcd3({ hosts: endpoint });
  const call = <T>(p: Promise<T>, what: string) => bounded(p, what, callTimeoutMs);
  const answer = (r: EtcdWriterResponse) => process.stdout.write(`${JSON.stringify(r)}\n`);
  try {
    for await (const line of createInterface({ input: process.stdin })) {
      const req = JSON.parse(line) as EtcdWriterRequest;
      if (req.op === 'exit') break;
      let done = 0;
      try {
        if (req.op === 'grant') {
          const ids = await inChunks(Array.from({ length: req.count }), 50, async () => {
            const res = await call(client.leaseClient.leaseGrant({ TTL: req.ttl }), 'grant');
            return String(res.ID);
          });
          answer({ ok: true, ids });
        } else if (req.op === 'list') {
          answer({ ok: true, kvs: await call(client.getAll().prefix(req.prefix).strings(), 'list') });
        } else if (req.op === 'steps') {
          for (const step of req.steps) {
            if ('put' in step) {
              const put = { key: Buffer.from(step.put), value: Buffer.from(step.value), lease: req.lease };
              await call(client.kv.put(put), 'put');
            } else {
              await call(client.delete().key(step.del).exec(), 'delete');
            }
            done++;
          }
          answer({ ok: true, done });
        } else if (req.op === 'heap') {
          // weftd's metrics listen on the node namespace's loopback, which only this process can reach.
          const text = await (await fetch(`http://127.0.0.1:${req.port}/metrics`)).text();
          const m = /^nodejs_heap_size_used_bytes\s+(\S+)/m.exec(text);
          answer({ ok: true, heapMiB: m ? Number(m[1]) / 2 ** 20 : Number.NaN });
        } else if (req.op === 'revoke') {
          await inChunks(req.ids, 50, (id) => client.leaseClient.leaseRevoke({ ID: id }));
          answer({ ok: true });
        } else {
          const sent = process.hrtime.bigint();
          if (req.op === 'put' && req.entries.length === 1) {
            const e = req.entries[0]!;
            await client.kv.put({ key: Buffer.from(e.key), value: Buffer.from(e.value), lease: e.lease });
          } else {
            const success =
              req.op === 'put'
                ? req.entries.map((e) => ({
                    request_put: { key: Buffer.from(e.key), value: Buffer.from(e.value), lease: e.lease },
                  }))
                : req.keys.map((k) => ({ request_delete_range: { key: Buffer.from(k) } }));
            await client.kv.txn({ compare: [], success, failure: [] });
          }
          const ack = process.hrtime.bigint();
          answer({ ok: true, sentNs: String(sent), ackNs: String(ack) });
        }
      } catch (err) {
        answer({ ok: false, done, error: err instanceof Error ? err.message : String(err) });
      }
    }
  } finally {
    client.close();
  }
}

const { values } = parseArgs({
  options: { endpoint: { type: 'string' }, 'call-timeout-ms': { type: 'string' } },
});
const callTimeoutMs =
  values['call-timeout-ms'] === undefined ? undefined : Number.parseInt(values['call-timeout-ms'], 10);
if (callTimeoutMs !== undefined && !(callTimeoutMs > 0)) {
  process.stderr.write('etcd-lease-writer-cli: --call-timeout-ms must be a positive number of ms\n');
  process.exit(2);
}
if (!values.endpoint) {
  process.stderr.write('etcd-lease-writer-cli: --endpoint is required\n');
  process.exit(2);
}
runWriter(values.endpoint, callTimeoutMs).catch((err: unknown) => {
  process.stderr.write(`etcd-lease-writer-cli: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
