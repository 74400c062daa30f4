// weft's HTTP/2 client connection against node:http2's server (nghttp2, an independent implementation) on
// loopback: flow control both ways, CONTINUATION, the peer's stream limit, GOAWAY, resets, pings, a closed
// socket, and a peer that sends garbage (which must fail calls cleanly, never throw).
import { createHash } from 'node:crypto';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { prng } from '../../../../../testkit/prng.js';
import { GrpcError, GrpcStatus } from '../errors.js';
import { frameMessage, GrpcChannel } from '../transport.js';
import { FrameType, frame, settingsFrame } from './frames.js';
import { encodeHeaders, type HeaderList } from './hpack.js';
import { H2Session } from './session.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => void;

/** node:http2 server on 127.0.0.1; `handle` answers each stream once its request body has ended. */
async function server(
  handle: Handler,
  settings: http2.Settings = {},
): Promise<{ endpoint: string; port: number; sessions: http2.ServerHttp2Session[]; open: () => number }> {
  const srv = http2.createServer({ settings });
  const sessions: http2.ServerHttp2Session[] = [];
  let openNow = 0;
  let maxOpen = 0;
  srv.on('session', (s) => sessions.push(s));
  srv.on('stream', (stream, headers) => {
    openNow += 1;
    maxOpen = Math.max(maxOpen, openNow);
    stream.on('close', () => {
      openNow -= 1;
    });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('end', () => handle(stream, headers, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        srv.close(() => resolve());
      }),
  );
  return { endpoint: `http://127.0.0.1:${port}`, port, sessions, open: () => maxOpen };
}

function channel(endpoint: string): GrpcChannel {
  const c = new GrpcChannel({ endpoint });
  cleanups.push(() => c.close());
  return c;
}

/** A gRPC answer: one message and status OK in trailers. */
function ok(
  stream: http2.ServerHttp2Stream,
  body: Buffer,
  extraHeaders: http2.OutgoingHttpHeaders = {},
): void {
  if (stream.destroyed) return;
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', ...extraHeaders },
    { waitForTrailers: true },
  );
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(frameMessage(body));
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const call = (c: GrpcChannel, body = Buffer.from('q')) => c.unary('/t.S/M', body, {}, 10_000);

describe('HTTP/2 client connection against node:http2', () => {
  it('receives answers far larger than its stream and connection windows (window updates)', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 255;
    const s = await server((stream) => ok(stream, big));
    const c = channel(s.endpoint);
    // Three at once: 9 MiB through a 4 MiB connection window.
    const replies = await Promise.all([call(c), call(c), call(c)]);
    for (const r of replies) expect(sha(r)).toBe(sha(big));
  });

  it('sends a request larger than the peer allows in flight, as its windows open', async () => {
    const s = await server((stream, _h, body) => ok(stream, Buffer.from(sha(body.subarray(5)))), {
      initialWindowSize: 1000,
    });
    const c = channel(s.endpoint);
    await call(c); // the server's SETTINGS are known from here on
    const body = Buffer.alloc(300_000, 0x5a);
    body.write('first', 0);
    body.write('last', body.length - 4);
    expect((await call(c, body)).toString()).toBe(sha(body));
  });

  it("keeps to the peer's limit of concurrent streams; the others wait their turn", async () => {
    const s = await server((stream) => setTimeout(() => ok(stream, Buffer.from('done')), 5), {
      maxConcurrentStreams: 2,
    });
    const c = channel(s.endpoint);
    await call(c);
    const replies = await Promise.all(Array.from({ length: 8 }, () => call(c)));
    expect(replies.map(String)).toEqual(Array(8).fill('done'));
    expect(s.open()).toBeLessThanOrEqual(2);
    expect(s.sessions).toHaveLength(1);
  });

  it('reads header blocks spread over HEADERS and CONTINUATION frames, with a dynamic table', async () => {
    const long = 'x'.repeat(40_000);
    const s = await server((stream, headers) =>
      ok(stream, Buffer.from('ok'), { 'x-long': long, 'x-echo': String(headers['x-echo']) }),
    );
    const session = new H2Session({ host: '127.0.0.1', port: s.port, endpoint: s.endpoint });
    cleanups.push(() => session.destroy());
    for (const echo of ['one', 'two', 'two']) {
      const got = await new Promise<HeaderList>((resolve, reject) => {
        let headers: HeaderList = [];
        const st = session.request(
          encodeHeaders([
            [':method', 'POST'],
            [':scheme', 'http'],
            [':authority', 'x'],
            [':path', '/t.S/M'],
            ['x-echo', echo],
          ]),
          {
            onHeaders: (h, end) => {
              if (headers.length === 0) headers = h;
              if (end) resolve(headers);
            },
            onData: () => undefined,
            onError: (err) => reject(err),
          },
        );
        st.end(frameMessage(Buffer.from('q')));
      });
      expect(Object.fromEntries(got)).toMatchObject({ ':status': '200', 'x-long': long, 'x-echo': echo });
    }
  });

  it('after GOAWAY: the calls it covers finish, the others fail as never sent, new calls reconnect', async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const s = await server((stream) => {
      held.push(stream);
      if (held.length === 3) {
        // Of the three streams, only the first will be processed.
        stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, held[0]?.id ?? 0);
        ok(held[0] as http2.ServerHttp2Stream, Buffer.from('first'));
      } else if (held.length > 3) ok(stream, Buffer.from('after'));
    });
    const c = channel(s.endpoint);
    const results = await Promise.allSettled([call(c), call(c), call(c)]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: Buffer.from('first') });
    for (const r of results.slice(1)) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as GrpcError;
      expect(err).toBeInstanceOf(GrpcError);
      expect(err.neverSent).toBe(true);
      expect(err.message).toMatch(/going away \(NO_ERROR\)/);
    }
    // The same channel opens a new connection for the next call.
    expect(String(await call(c))).toBe('after');
    expect(s.sessions).toHaveLength(2);
  });

  it('a reset fails only its own call; a dropped connection fails the calls in flight, then reconnects', async () => {
    let n = 0;
    const s = await server((stream) => {
      n += 1;
      if (n === 1) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      else if (n === 2) ok(stream, Buffer.from('fine'));
      else if (n === 3) stream.session?.destroy();
      else ok(stream, Buffer.from('back'));
    });
    const c = channel(s.endpoint);
    const refused = (await call(c).catch((e: unknown) => e)) as GrpcError;
    expect(refused).toBeInstanceOf(GrpcError);
    expect(refused.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(refused.neverSent).toBe(true); // REFUSED_STREAM: not processed
    expect(String(await call(c))).toBe('fine');
    const dropped = (await call(c).catch((e: unknown) => e)) as GrpcError;
    expect(dropped).toBeInstanceOf(GrpcError);
    expect(dropped.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(dropped.neverSent).toBe(false);
    expect(String(await call(c))).toBe('back');
  });

  it('answers pings and gets its own answered', async () => {
    const s = await server((stream) => ok(stream, Buffer.from('x')));
    const session = new H2Session({ host: '127.0.0.1', port: s.port, endpoint: s.endpoint });
    cleanups.push(() => session.destroy());
    await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
    const rtt = await new Promise<number>((resolve, reject) => {
      const server0 = s.sessions[0];
      if (!server0) return reject(new Error('no server session'));
      server0.ping((err, duration) => (err ? reject(err) : resolve(duration)));
    });
    expect(rtt).toBeGreaterThanOrEqual(0);
  });
});

/** A TCP server that answers every connection with `bytes`, then closes it. */
async function rawServer(bytes: () => Buffer): Promise<string> {
  const srv = net.createServer((sock) => {
    sock.on('error', () => undefined);
    sock.once('data', () => sock.end(bytes()));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
}

describe('HTTP/2 client connection against a peer sending garbage', () => {
  it('fails each call with a GrpcError and never throws, whatever the bytes (seeded)', async () => {
    const random = prng(0x16_2025);
    const byte = () => Math.floor(random() * 256);
    const cases: Buffer[] = [];
    for (let i = 0; i < 60; i++) {
      const noise = Buffer.from(Array.from({ length: Math.floor(random() * 64) }, byte));
      if (i % 3 === 0)
        cases.push(noise); // not even a frame
      else {
        // A valid SETTINGS, then frames of random types/flags/streams with random payloads.
        const frames = [settingsFrame([])];
        for (let f = 0; f < 1 + Math.floor(random() * 4); f++) {
          frames.push(frame(Math.floor(random() * 11), byte(), i % 2 === 0 ? 1 : byte(), noise));
        }
        if (i % 5 === 0) frames.push(frame(FrameType.HEADERS, 0x5, 1, noise)); // a garbage header block
        cases.push(Buffer.concat(frames));
      }
    }
    for (const bytes of cases) {
      const endpoint = await rawServer(() => bytes);
      const c = new GrpcChannel({ endpoint });
      try {
        const err = await c.unary('/t.S/M', Buffer.from('q'), {}, 5_000).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, bytes.toString('hex')).toBeInstanceOf(GrpcError);
      } finally {
        c.close();
      }
    }
  });

  it('a valid answer with bytes flipped, cut short or frames slipped in: a reply or a GrpcError, never a throw', async () => {
    const random = prng(0x16_2026);
    const byte = () => Math.floor(random() * 256);
    const answer = [
      frame(
        FrameType.HEADERS,
        0x4,
        1,
        encodeHeaders([
          [':status', '200'],
          ['content-type', 'application/grpc'],
        ]),
      ),
      frame(FrameType.DATA, 0, 1, frameMessage(Buffer.from('ok'))),
      frame(FrameType.HEADERS, 0x5, 1, encodeHeaders([['grpc-status', '0']])),
    ];
    let bytes = Buffer.alloc(0);
    const endpoint = await rawServer(() => bytes);
    const outcomes = { reply: 0, error: 0 };
    for (let i = 0; i < 300; i++) {
      const frames = [settingsFrame([]), ...answer.map((f) => Buffer.from(f))];
      for (const f of frames.slice(1)) {
        if (random() < 0.3)
          for (let k = 0; k < 1 + Math.floor(random() * 3); k++) f[Math.floor(random() * f.length)] = byte();
      }
      if (random() < 0.5) {
        const noise = Buffer.from(Array.from({ length: Math.floor(random() * 40) }, byte));
        frames.splice(
          1 + Math.floor(random() * 3),
          0,
          frame(Math.floor(random() * 12), byte(), byte() & 7, noise),
        );
      }
      const all = Buffer.concat(frames);
      bytes = random() < 0.2 ? all.subarray(0, Math.floor(random() * all.length)) : all;
      const c = new GrpcChannel({ endpoint });
      try {
        const got = await c.unary('/t.S/M', Buffer.from('q'), {}, 5_000).then(
          (reply) => reply,
          (e: unknown) => e,
        );
        if (got instanceof GrpcError) outcomes.error++;
        else {
          expect(got, bytes.toString('hex')).toBeInstanceOf(Buffer);
          outcomes.reply++;
        }
      } finally {
        c.close();
      }
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(outcomes.reply).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
  });

  it('a peer that is not HTTP/2 at all: a clear error', async () => {
    const endpoint = await rawServer(() => Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const c = channel(endpoint);
    const err = (await call(c).catch((e: unknown) => e)) as GrpcError;
    expect(err).toBeInstanceOf(GrpcError);
    expect(err.message).toMatch(/connection to http:\/\/127\.0\.0\.1:\d+ failed/);
  });
});
