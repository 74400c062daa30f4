// weft's etcd client on the wire. Against a scripted HTTP/2 server on loopback (what a real etcd never sends:
// garbage, hangs, statuses on cue) for the transport, error classes and retry rules; against a real etcd with
// auth for re-authentication when the token stops being valid.
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { etcdctl, startEtcd } from '../../../../testkit/etcd.js';
import { createEtcdClient } from '../client.js';
import {
  EtcdAuthenticationFailedError,
  EtcdEndpointSkippedError,
  EtcdPermissionDeniedError,
  EtcdProtocolError,
  type EtcdRpcClient,
  GrpcError,
  GrpcStatus,
} from './index.js';
import { frameMessage } from './transport.js';
import { ProtoWriter } from './wire.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A ResponseHeader at `revision`, as an embedded message body. */
const headerBody = (revision: number) => new ProtoWriter().int64(3, revision).finish();
/** A RangeResponse with one key-value. */
function rangeReply(key: string, value: string, revision = 5): Buffer {
  const kv = new ProtoWriter()
    .bytes(1, Buffer.from(key))
    .int64(2, 3)
    .int64(3, 4)
    .int64(4, 1)
    .bytes(5, Buffer.from(value))
    .finish();
  return new ProtoWriter().message(1, headerBody(revision)).message(2, kv).finish();
}
const txnReply = (succeeded: boolean) =>
  new ProtoWriter().message(1, headerBody(6)).bool(2, succeeded).finish();
const authReply = (token: string) => new ProtoWriter().message(1, headerBody(1)).string(2, token).finish();

interface Seen {
  path: string;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}
/** Answers a call; one that answers nothing leaves the call hanging. */
type Answer = (stream: http2.ServerHttp2Stream, seen: Seen) => void;

/** Answers with a message and status OK in trailers (how grpc-go answers). */
function ok(stream: http2.ServerHttp2Stream, body: Buffer): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(frameMessage(body));
}
/** A trailers-only answer: the status in the headers, no body. */
function status(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(code),
      'grpc-message': encodeURIComponent(message),
    },
    { endStream: true },
  );
}

/** A scripted gRPC server on 127.0.0.1; `answer` decides each call. */
async function fakeEtcd(answer: Answer): Promise<{ endpoint: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('end', () => {
      const raw = Buffer.concat(chunks);
      const call = { path: String(headers[':path']), headers, body: raw.subarray(5) };
      seen.push(call);
      answer(stream, call);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** A loopback port nothing listens on. */
async function refusedEndpoint(): Promise<string> {
  const server = http2.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function client(endpoints: string[], extra: { username?: string; password?: string } = {}): EtcdRpcClient {
  const c = createEtcdClient({ endpoints, callTimeoutMs: 500, ...extra });
  cleanups.push(() => c.close());
  return c;
}

const createTxn = () => ({
  compare: [{ key: Buffer.from('/k'), target: 'Version' as const, result: 'Equal' as const, version: 0 }],
  success: [{ request_put: { key: Buffer.from('/k'), value: Buffer.from('v'), lease: '0' } }],
  failure: [{ request_range: { key: Buffer.from('/k') } }],
});

describe('etcd client against a scripted gRPC server', () => {
  it('sends a framed request with gRPC headers and a deadline, and decodes the reply', async () => {
    const fake = await fakeEtcd((s) => ok(s, rangeReply('/a', 'hello')));
    const res = await client([fake.endpoint]).kv.range({ key: Buffer.from('/a') });
    expect(res.header.revision).toBe('5');
    expect(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.mod_revision])).toEqual([
      ['/a', 'hello', '4'],
    ]);
    const call = fake.seen[0];
    expect(call?.path).toBe('/etcdserverpb.KV/Range');
    expect(call?.headers['content-type']).toBe('application/grpc+proto');
    expect(call?.headers.te).toBe('trailers');
    expect(call?.headers['grpc-timeout']).toMatch(/^\d+m$/);
    expect(call?.body.toString('hex')).toBe('0a022f61');
  });

  it("maps etcd's statuses to the error classes weft decides on; those are not retried", async () => {
    let reply: [number, string] = [GrpcStatus.PERMISSION_DENIED, 'etcdserver: permission denied'];
    const fake = await fakeEtcd((s) => status(s, ...reply));
    const c = client([fake.endpoint]);
    await expect(c.kv.range({ key: Buffer.from('/a') })).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
    expect(fake.seen).toHaveLength(1);
    reply = [GrpcStatus.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'];
    await expect(c.kv.range({ key: Buffer.from('/a') })).rejects.toBeInstanceOf(
      EtcdAuthenticationFailedError,
    );
    reply = [GrpcStatus.FAILED_PRECONDITION, 'etcdserver: mvcc: required revision has been compacted'];
    const err = await c.kv.range({ key: Buffer.from('/a') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(GrpcStatus.FAILED_PRECONDITION);
    expect((err as GrpcError).message).toBe('etcdserver: mvcc: required revision has been compacted');
    expect(fake.seen).toHaveLength(3);
  });

  it('garbage answers are errors, and the client keeps working afterwards', async () => {
    const garbage: ((s: http2.ServerHttp2Stream) => void)[] = [
      // not protobuf
      (s) => ok(s, Buffer.from('ffffffff', 'hex')),
      // a compressed message (never negotiated)
      (s) => {
        s.respond({ ':status': 200 }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.from('0100000000', 'hex'));
      },
      // a length prefix of 2 GiB
      (s) => {
        s.respond({ ':status': 200 }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.from('0080000000', 'hex'));
      },
      // a message cut short, then status OK
      (s) => {
        s.respond({ ':status': 200 }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.from('000000000a0a', 'hex'));
      },
      // two replies to a unary call
      (s) => {
        s.respond({ ':status': 200 }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.concat([frameMessage(rangeReply('/a', '1')), frameMessage(rangeReply('/a', '2'))]));
      },
      // OK without a reply
      (s) => status(s, 0, ''),
      // not gRPC at all
      (s) => s.respond({ ':status': 500 }, { endStream: true }),
      // an invalid status
      (s) => status(s, 99, 'what'),
      // the stream reset
      (s) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    ];
    let next = 0;
    const fake = await fakeEtcd((s) => {
      const answer = garbage[next];
      if (answer) answer(s);
      else ok(s, rangeReply('/a', 'fine'));
    });
    for (let i = 0; i < garbage.length; i++) {
      next = i;
      fake.seen.length = 0;
      // A write is sent once: its failure is the error.
      const err = await client([fake.endpoint])
        .kv.txn(createTxn())
        .catch((e: unknown) => e);
      expect(err, `garbage #${i}`).toBeInstanceOf(GrpcError);
      expect(fake.seen, `garbage #${i}`).toHaveLength(1);
    }
    // Three transport failures in a row (resets): the endpoint is skipped for a second (nothing sent).
    next = garbage.length - 1;
    const c = client([fake.endpoint]);
    for (let i = 0; i < 3; i++) await c.kv.txn(createTxn()).catch(() => undefined);
    fake.seen.length = 0;
    await expect(c.kv.txn(createTxn())).rejects.toBeInstanceOf(EtcdEndpointSkippedError);
    expect(fake.seen).toHaveLength(0);
    next = garbage.length;
    const fresh = client([fake.endpoint]);
    expect((await fresh.kv.range({ key: Buffer.from('/a') })).kvs[0]?.value.toString()).toBe('fine');
    // A reply that is not the message: a protocol error naming the call.
    next = 0;
    const bad = await fresh.kv.range({ key: Buffer.from('/a') }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(EtcdProtocolError);
    expect(String(bad)).toMatch(/range: malformed reply from etcd/);
  });

  it('a call without a reply fails at its deadline; only an idempotent one is sent again', async () => {
    const fake = await fakeEtcd(() => undefined);
    const c = client([fake.endpoint]);
    const err = await c.kv.range({ key: Buffer.from('/a') }).catch((e: unknown) => e);
    expect((err as GrpcError).code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(fake.seen.map((s) => s.path)).toEqual(['/etcdserverpb.KV/Range', '/etcdserverpb.KV/Range']);
    fake.seen.length = 0;
    const txnErr = await c.kv.txn(createTxn()).catch((e: unknown) => e);
    expect((txnErr as GrpcError).code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(fake.seen.map((s) => s.path)).toEqual(['/etcdserverpb.KV/Txn']);
  });

  it('a write that never left (connection refused) goes to the next endpoint; a reset write does not', async () => {
    const fake = await fakeEtcd((s, seen) =>
      seen.path.endsWith('/Txn') ? ok(s, txnReply(true)) : undefined,
    );
    const res = await client([await refusedEndpoint(), fake.endpoint]).kv.txn(createTxn());
    expect(res.succeeded).toBe(true);
    expect(fake.seen).toHaveLength(1);

    const resets = await fakeEtcd((s) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    const c = client([resets.endpoint, fake.endpoint]);
    await expect(c.kv.txn(createTxn())).rejects.toBeInstanceOf(GrpcError);
    expect(resets.seen).toHaveLength(1);
    expect(fake.seen).toHaveLength(1);
    // A read after a reset is sent again, to the next endpoint.
    fake.seen.length = 0;
    const fine = await fakeEtcd((s) => ok(s, rangeReply('/a', 'elsewhere')));
    const c2 = client([resets.endpoint, fine.endpoint]);
    expect((await c2.kv.range({ key: Buffer.from('/a') })).kvs[0]?.value.toString()).toBe('elsewhere');
  });

  it('authenticates once, sends the token, and authenticates again when etcd says it is invalid', async () => {
    let tokens = 0;
    let valid = '';
    const fake = await fakeEtcd((s, seen) => {
      if (seen.path === '/etcdserverpb.Auth/Authenticate') {
        tokens += 1;
        valid = `tok-${tokens}`;
        return ok(s, authReply(valid));
      }
      if (seen.headers.token !== valid) {
        return status(s, GrpcStatus.UNAUTHENTICATED, 'etcdserver: invalid auth token');
      }
      return seen.path.endsWith('/Txn') ? ok(s, txnReply(true)) : ok(s, rangeReply('/a', 'ok'));
    });
    const c = client([fake.endpoint], { username: 'root', password: 'S3cret-pa55' });
    await c.kv.range({ key: Buffer.from('/a') });
    await c.kv.range({ key: Buffer.from('/a') });
    expect(fake.seen.map((s) => s.path.split('/').pop())).toEqual(['Authenticate', 'Range', 'Range']);
    expect(fake.seen[0]?.body.toString()).toContain('S3cret-pa55');
    expect(fake.seen[1]?.headers.token).toBe('tok-1');
    // The token expires: the refused write did nothing, so it is sent again with a new token.
    valid = 'expired';
    fake.seen.length = 0;
    expect((await c.kv.txn(createTxn())).succeeded).toBe(true);
    expect(fake.seen.map((s) => `${s.path.split('/').pop()} ${s.headers.token ?? ''}`)).toEqual([
      'Txn tok-1',
      'Authenticate ',
      'Txn tok-2',
    ]);
  });

  it('a wrong password is an authentication error without the password in it', async () => {
    const fake = await fakeEtcd((s) =>
      status(
        s,
        GrpcStatus.INVALID_ARGUMENT,
        'etcdserver: authentication failed, invalid user ID or password',
      ),
    );
    const err = await client([fake.endpoint], { username: 'root', password: 'wrong-S3cret' })
      .kv.range({ key: Buffer.from('/a') })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdAuthenticationFailedError);
    expect(JSON.stringify({ message: String(err), stack: (err as Error).stack })).not.toContain(
      'wrong-S3cret',
    );
  });
});

describe('etcd client against a real etcd with auth', () => {
  it('authenticates again after etcd dropped every token (auth disabled and enabled again)', async () => {
    const etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
    await etcdctl(etcd.endpoint, ['user', 'add', 'root:S3cret-pa55']);
    await etcdctl(etcd.endpoint, ['auth', 'enable']);
    const c = client([etcd.endpoint], { username: 'root', password: 'S3cret-pa55' });
    await c.kv.put({ key: Buffer.from('/re-auth/a'), value: Buffer.from('1') });
    expect((await c.kv.range({ key: Buffer.from('/re-auth/a') })).kvs[0]?.value.toString()).toBe('1');

    await etcdctl(etcd.endpoint, ['--user', 'root:S3cret-pa55', 'auth', 'disable']);
    await etcdctl(etcd.endpoint, ['auth', 'enable']);
    // The old token is gone: a write (not retried blindly) still goes through, after a new Authenticate.
    await c.kv.put({ key: Buffer.from('/re-auth/a'), value: Buffer.from('2') });
    expect((await c.kv.range({ key: Buffer.from('/re-auth/a') })).kvs[0]?.value.toString()).toBe('2');

    const stranger = client([etcd.endpoint]);
    const err = await stranger.kv.range({ key: Buffer.from('/re-auth/a') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcError);
    expect(String(err)).toMatch(/user name is empty|permission denied/);
  });
});
