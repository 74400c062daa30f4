// A real oracle for HPACK: a node:http2 (nghttp2) server on loopback, and a plain `net` client written here that
// speaks just enough HTTP/2 to send requests encoded by encodeHeaders and capture the server's raw header blocks.
// nghttp2 uses its dynamic table and Huffman-codes strings when shorter, as etcd's Go server does.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeHeaders, type HeaderList, HpackDecoder } from './hpack.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0;
const HEADERS = 1;
const SETTINGS = 4;
const GOAWAY = 7;
const CONTINUATION = 9;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
const SETTINGS_HEADER_TABLE_SIZE = 1;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

type Frame = { type: number; flags: number; stream: number; payload: Buffer };

/** The client side of one connection: frames in arrival order, header blocks decoded in that order. */
class RawClient {
  private buf = Buffer.alloc(0);
  private frames: Frame[] = [];
  private wake: (() => void) | undefined;
  private error: Error | undefined;
  /** CONTINUATION frames seen: the big header block must have needed some. */
  continuations = 0;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f = {
          type: this.buf[3] as number,
          flags: this.buf[4] as number,
          stream: this.buf.readUInt32BE(5) & 0x7fffffff,
          payload: this.buf.subarray(9, 9 + len),
        };
        this.buf = this.buf.subarray(9 + len);
        if (f.type === SETTINGS && !(f.flags & ACK))
          this.sock.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        this.frames.push(f);
      }
      this.wake?.();
    });
    const fail = (err: Error) => {
      this.error = err;
      this.wake?.();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }

  static async connect(port: number, settings: Buffer): Promise<RawClient> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const client = new RawClient(sock);
    sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings)]));
    return client;
  }

  private async next(): Promise<Frame> {
    const deadline = Date.now() + 5000;
    while (this.frames.length === 0) {
      if (this.error) throw this.error;
      if (Date.now() > deadline) throw new Error('no frame from the server within 5 s');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.frames.shift() as Frame;
  }

  /** Sends a request on `stream`, and returns the header lists the server answered with on it, decoded. */
  async request(
    stream: number,
    decoder: HpackDecoder,
    headers: HeaderList,
    body?: Buffer,
  ): Promise<{ lists: HeaderList[]; blocks: Buffer[] }> {
    const block = encodeHeaders(headers);
    if (body === undefined) {
      this.sock.write(frame(HEADERS, END_HEADERS | END_STREAM, stream, block));
    } else {
      this.sock.write(frame(HEADERS, END_HEADERS, stream, block));
      this.sock.write(frame(DATA, END_STREAM, stream, body));
    }
    const lists: HeaderList[] = [];
    const blocks: Buffer[] = [];
    for (let n = 0; n < 1000; n++) {
      const f = await this.next();
      if (f.type === GOAWAY) throw new Error(`GOAWAY from the server: ${f.payload.subarray(8).toString()}`);
      if (f.type !== HEADERS) {
        if (f.type === DATA && f.stream === stream && f.flags & END_STREAM) return { lists, blocks };
        continue;
      }
      let payload = f.payload;
      if (f.flags & PADDED) payload = payload.subarray(1, payload.length - (payload[0] as number));
      if (f.flags & PRIORITY) payload = payload.subarray(5);
      const parts = [payload];
      let last = f;
      while (!(last.flags & END_HEADERS)) {
        last = await this.next();
        expect(last.type).toBe(CONTINUATION);
        this.continuations++;
        parts.push(last.payload);
      }
      expect(f.stream).toBe(stream);
      blocks.push(Buffer.concat(parts));
      lists.push(decoder.decode(blocks[blocks.length - 1] as Buffer));
      if (f.flags & END_STREAM) return { lists, blocks };
    }
    throw new Error('no END_STREAM within 1000 frames');
  }

  close(): void {
    this.sock.destroy();
  }
}

/** What the server received and sent, per request, in order. */
type Exchange = { received: HeaderList; sent: HeaderList[] };

/** Flattens node's outgoing headers object the way it goes on the wire: pseudo-headers first, arrays expanded. */
function flatten(headers: http2.OutgoingHttpHeaders): HeaderList {
  const out: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, String(v)]);
  }
  return out.sort((a, b) => Number(b[0].startsWith(':')) - Number(a[0].startsWith(':')));
}

/** The response headers and trailers for request i: many, long, Huffman-friendly, and repeated across requests. */
function responseFor(i: number): { headers: http2.OutgoingHttpHeaders; trailers: http2.OutgoingHttpHeaders } {
  const headers: http2.OutgoingHttpHeaders = {
    ':status': 200,
    'content-type': 'application/grpc',
    date: 'Fri, 04 Dec 2026 15:00:00 GMT',
    'x-repeated': 'the same value on every response, indexed after the first',
    'x-request': `request number ${i}`,
    'set-cookie': ['a=1', `b=${i}`, 'a=1'],
    'x-huffman-friendly': 'aeiou'.repeat(40 + i),
  };
  // Every byte node lets through a header value, each behind a Huffman-friendly run so the encoder picks Huffman.
  if (i === 1) {
    for (let c = 0; c < 256; c++) {
      if (c === 9 || (c >= 0x20 && c !== 0x7f))
        headers[`x-sym-${c}`] = `eeeeeeeeeeeeeeeeeeeeeeeeeeee${String.fromCharCode(c)}`;
    }
  }
  if (i === 2) headers['x-big'] = 'grpc '.repeat(8000); // 40000 bytes: above the table size, split in CONTINUATIONs
  const trailers = { 'grpc-status': '0', 'grpc-message': i % 2 ? 'OK%20then' : '' };
  return { headers, trailers };
}

const servers: http2.Http2Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

async function startServer(exchanges: Exchange[]): Promise<number> {
  const server = http2.createServer();
  servers.push(server);
  server.on('session', (session) => session.on('error', () => {})); // our client just drops the socket at the end
  // Node passes the request's fields as received, in order, as a 4th argument @types/node does not declare.
  server.on('stream', (stream: http2.ServerHttp2Stream, ...rest: unknown[]) => {
    const rawHeaders = rest[2] as string[];
    const received: HeaderList = [];
    for (let k = 0; k < rawHeaders.length; k += 2)
      received.push([rawHeaders[k] as string, rawHeaders[k + 1] as string]);
    const i = exchanges.length;
    const { headers, trailers } = responseFor(i);
    exchanges.push({ received, sent: [flatten(headers), flatten(trailers)] });
    stream.resume();
    stream.on('end', () => {
      stream.respond(headers, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end(Buffer.from('body'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

async function run(settings: Buffer, tableSize: number): Promise<Buffer[]> {
  const exchanges: Exchange[] = [];
  const port = await startServer(exchanges);
  const client = await RawClient.connect(port, settings);
  try {
    const decoder = new HpackDecoder(tableSize);
    const requests: HeaderList[] = [];
    const firstBlocks: Buffer[] = [];
    for (let i = 0; i < 6; i++) {
      const post = i % 2 === 1;
      const request: HeaderList = [
        [':method', post ? 'POST' : 'GET'],
        [':scheme', 'http'],
        [':path', post ? '/etcdserverpb.Lease/LeaseGrant' : `/get/${i}`],
        [':authority', `127.0.0.1:${port}`],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
        ['user-agent', 'weft-hpack-test'],
        ['x-latin1', 'caf\u00e9 \u00ff'],
      ];
      requests.push(request);
      const { lists, blocks } = await client.request(
        2 * i + 1,
        decoder,
        request,
        post ? Buffer.alloc(5) : undefined,
      );
      const exchange = exchanges[i] as Exchange;
      expect(lists, `response ${i}`).toEqual(exchange.sent);
      firstBlocks.push(blocks[0] as Buffer);
      expect(decoder.tableSize).toBeLessThanOrEqual(tableSize);
    }
    expect(exchanges.map((e) => e.received)).toEqual(requests);
    // The representations this test is meant to exercise were on the wire: nghttp2 filled the dynamic table, and
    // the first response block (nothing of it in the dynamic table yet) is shorter than its values: Huffman.
    expect(decoder.tableEntries().length).toBeGreaterThan(0);
    const first = exchanges[0]?.sent[0] as HeaderList;
    expect(firstBlocks[0]?.length).toBeLessThan(first.reduce((n, [, v]) => n + v.length, 0));
    expect(client.continuations).toBeGreaterThan(0);
    return firstBlocks;
  } finally {
    client.close();
  }
}

describe('HPACK against node:http2 (nghttp2) on loopback', () => {
  it('decodes responses and trailers over one connection; the server accepts encodeHeaders requests', async () => {
    const blocks = await run(Buffer.alloc(0), 4096);
    // Later responses reuse the dynamic table: the repeated header, date and content-type are 1-byte indexes.
    expect(blocks[5]?.length).toBeLessThan((blocks[0]?.length as number) - 60);
  });

  it('with SETTINGS_HEADER_TABLE_SIZE 256 the server sends a size update and stays within 256 octets', async () => {
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(SETTINGS_HEADER_TABLE_SIZE, 0);
    settings.writeUInt32BE(256, 2);
    const blocks = await run(settings, 256);
    expect((blocks[0]?.[0] as number) & 0xe0).toBe(0x20); // the first response block opens with a size update
  });
});
