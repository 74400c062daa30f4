// gRPC over HTTP/2 (weft's own client, h2/) for one endpoint: length-prefixed messages (1 byte compressed
// flag, 4 bytes length), the status in the `grpc-status`/`grpc-message` trailers (or headers, for a
// trailers-only answer), deadlines sent as `grpc-timeout` and enforced locally, cancellation as RST_STREAM.
// One HTTP/2 connection per endpoint, opened on first use and again after it fails; pings detect a dead peer
// under a quiet stream.
import { EventEmitter } from 'node:events';
import type * as tls from 'node:tls';
import { GrpcError, GrpcStatus } from './errors.js';
import { encodeHeaders, type HeaderList } from './h2/hpack.js';
import { H2Session, type H2Stream, type H2StreamError, type H2StreamHandler } from './h2/session.js';

/** Largest message accepted from etcd (a long lease list is a few MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const PING_INTERVAL_MS = 10_000;
const PING_TIMEOUT_MS = 5_000;

/** A message with its 5-byte gRPC prefix. */
export function frameMessage(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

/** Splits the byte stream of one gRPC response into messages. */
export class MessageDeframer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the message being received needs, prefix included (0 until its prefix is complete). */
  private needed = 0;

  /** Feeds bytes; returns the messages completed by them. Throws a GrpcError on a bad prefix. */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: Buffer[] = [];
    // Chunks are joined only once a whole message is there (a large reply arrives in many chunks).
    while (this.pendingBytes >= Math.max(5, this.needed)) {
      const head = this.pending.length === 1 ? (this.pending[0] as Buffer) : this.flatten();
      const flag = head[0];
      if (flag !== 0) {
        throw new GrpcError(GrpcStatus.INTERNAL, `compressed or malformed gRPC message (flag ${flag})`);
      }
      const len = head.readUInt32BE(1);
      if (len > MAX_MESSAGE_BYTES) {
        throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `gRPC message of ${len} bytes is too large`);
      }
      if (head.length < 5 + len) {
        this.needed = 5 + len;
        break;
      }
      this.needed = 0;
      out.push(head.subarray(5, 5 + len));
      const rest = head.subarray(5 + len);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
    }
    return out;
  }

  /** Bytes received that do not complete a message. */
  get leftover(): number {
    return this.pendingBytes;
  }

  private flatten(): Buffer {
    const all = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [all];
    return all;
  }
}

function decodeGrpcMessage(raw: unknown): string {
  if (typeof raw !== 'string') return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The value of header `name` in a decoded header list. */
function headerValue(headers: HeaderList, name: string): string | undefined {
  for (const [n, v] of headers) if (n === name) return v;
  return undefined;
}

/** The status an answer's headers or trailers carry, or undefined when they carry none. */
function statusOf(headers: HeaderList): GrpcError | null | undefined {
  const raw = headerValue(headers, 'grpc-status');
  if (raw === undefined) return undefined;
  const code = Number(raw);
  if (!/^[0-9]{1,2}$/.test(raw) || code > 16) {
    return new GrpcError(GrpcStatus.UNKNOWN, `invalid grpc-status ${JSON.stringify(raw)}`);
  }
  if (code === GrpcStatus.OK) return null;
  return new GrpcError(
    code,
    decodeGrpcMessage(headerValue(headers, 'grpc-message')) || `gRPC status ${code}`,
  );
}

export interface ChannelOptions {
  /** `http://host:port` or `https://host:port`. */
  endpoint: string;
  /** TLS (CA, client certificate and key), shared by every connection; the server name is the endpoint's host. */
  tls?: { secureContext: tls.SecureContext } | undefined;
}

/** What a call's owner hears: each message, then `end` (status OK) or `error` (exactly one of the two). */
interface CallListener {
  message(m: Buffer): void;
  end(): void;
  error(err: GrpcError): void;
}

/**
 * One gRPC call on an HTTP/2 stream: checks the HTTP status, cuts DATA into messages, and turns the trailers
 * (or a reset, or a failed connection) into OK or a GrpcError.
 */
class GrpcCall implements H2StreamHandler {
  private readonly deframer = new MessageDeframer();
  private status: GrpcError | null | undefined;
  private gotHeaders = false;
  finished = false;
  stream: H2Stream | undefined;

  constructor(
    private readonly peer: string,
    private readonly listener: CallListener,
  ) {}

  onHeaders(headers: HeaderList, end: boolean): void {
    if (this.finished) return;
    if (!this.gotHeaders) {
      this.gotHeaders = true;
      const httpStatus = headerValue(headers, ':status');
      if (httpStatus !== '200') {
        this.fail(new GrpcError(GrpcStatus.UNAVAILABLE, `HTTP status ${httpStatus} from ${this.peer}`));
        return;
      }
    }
    const status = statusOf(headers);
    if (status !== undefined) this.status = status;
    if (end) this.close();
  }

  onData(chunk: Buffer, end: boolean): void {
    if (this.finished) return;
    if (chunk.length > 0) {
      let messages: Buffer[];
      try {
        messages = this.deframer.push(chunk);
      } catch (err) {
        this.fail(err as GrpcError);
        return;
      }
      for (const m of messages) {
        this.listener.message(m);
        if (this.finished) return;
      }
    }
    if (end) this.close();
  }

  onError(err: H2StreamError): void {
    if (this.finished) return;
    this.finished = true;
    this.listener.error(new GrpcError(GrpcStatus.UNAVAILABLE, err.message, { neverSent: err.neverSent }));
  }

  /** The peer ended the stream: OK, its status, or a truncation. */
  private close(): void {
    if (this.finished) return;
    const status = this.status;
    if (status === null && this.deframer.leftover === 0) {
      this.finished = true;
      this.listener.end();
    } else if (status) this.fail(status);
    else if (status === null) this.fail(new GrpcError(GrpcStatus.INTERNAL, 'truncated gRPC message'));
    else this.fail(new GrpcError(GrpcStatus.UNAVAILABLE, `stream to ${this.peer} closed without a status`));
  }

  fail(err: GrpcError): void {
    if (this.finished) return;
    this.finished = true;
    this.stream?.cancel();
    this.listener.error(err);
  }
}

/** A server-streaming or bidi call: `message` for each response, then `end` (status OK) or `error`. */
export class GrpcStream extends EventEmitter {
  private readonly call: GrpcCall;

  constructor(
    readonly peer: string,
    open: (call: GrpcCall) => H2Stream,
  ) {
    super();
    this.call = new GrpcCall(peer, {
      message: (m) => this.emit('message', m),
      end: () => this.emit('end'),
      error: (err) => this.emit('error', err),
    });
    this.call.stream = open(this.call);
  }

  write(body: Buffer): void {
    if (!this.call.finished) this.call.stream?.write(frameMessage(body));
  }

  /** Half-closes the sending side (the server then ends the call), after a last message if given. */
  end(body?: Buffer): void {
    if (this.call.finished) return;
    this.call.stream?.end(body ? frameMessage(body) : undefined);
  }

  /** Cancels the call; emits `error` with CANCELLED unless it already ended. */
  cancel(): void {
    this.call.fail(new GrpcError(GrpcStatus.CANCELLED, 'call cancelled'));
  }
}

/** One endpoint's HTTP/2 connection, opened lazily and again after it fails. */
export class GrpcChannel {
  private session: H2Session | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly host: string;
  private readonly port: number;
  /** The header fields every request carries, encoded once: pseudo-headers (which come first) and the rest. */
  private readonly pseudoHeaders: Buffer;
  private readonly commonHeaders: Buffer;

  constructor(private readonly o: ChannelOptions) {
    const url = new URL(o.endpoint);
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.pseudoHeaders = encodeHeaders([
      [':method', 'POST'],
      [':scheme', url.protocol === 'https:' ? 'https' : 'http'],
      [':authority', url.host],
    ]);
    this.commonHeaders = encodeHeaders([
      ['content-type', 'application/grpc+proto'],
      ['te', 'trailers'],
    ]);
  }

  get endpoint(): string {
    return this.o.endpoint;
  }

  private open(): H2Session {
    if (this.session && !this.session.closed) return this.session;
    const session = new H2Session({
      host: this.host,
      port: this.port,
      tls: this.o.tls,
      endpoint: this.o.endpoint,
      onClose: (s) => {
        if (this.session !== s) return;
        this.session = undefined;
        clearInterval(this.pingTimer);
        this.pingTimer = undefined;
      },
    });
    this.session = session;
    this.pingTimer = setInterval(() => this.ping(session), PING_INTERVAL_MS);
    this.pingTimer.unref();
    return session;
  }

  private ping(session: H2Session): void {
    if (!session.connected || session.closed) return;
    const timer = setTimeout(
      () => session.destroy(new Error(`no ping answer within ${PING_TIMEOUT_MS} ms`)),
      PING_TIMEOUT_MS,
    );
    timer.unref();
    const sent = session.ping((err) => {
      clearTimeout(timer);
      if (err) session.destroy(err);
    });
    if (!sent) clearTimeout(timer);
  }

  /** The header block of one request: the common fields, the path, the metadata, the deadline. */
  private headerBlock(path: string, metadata: Record<string, string>, timeoutMs?: number): Buffer {
    const fields: HeaderList = [];
    for (const [name, value] of Object.entries(metadata)) fields.push([name, value]);
    if (timeoutMs !== undefined) fields.push(['grpc-timeout', `${Math.max(1, Math.ceil(timeoutMs))}m`]);
    return Buffer.concat([
      this.pseudoHeaders,
      encodeHeaders([[':path', path]]),
      this.commonHeaders,
      encodeHeaders(fields),
    ]);
  }

  private start(
    path: string,
    metadata: Record<string, string>,
    timeoutMs: number | undefined,
    call: GrpcCall,
  ): H2Stream {
    if (this.closed) throw new GrpcError(GrpcStatus.CANCELLED, 'client closed');
    const session = this.open();
    try {
      return session.request(this.headerBlock(path, metadata, timeoutMs), call);
    } catch (err) {
      // The session closed between open() and now: nothing was sent.
      throw new GrpcError(
        GrpcStatus.UNAVAILABLE,
        `cannot send to ${this.o.endpoint}: ${(err as Error).message}`,
        {
          neverSent: true,
        },
      );
    }
  }

  /** One request, one response; rejects with a GrpcError (DEADLINE_EXCEEDED after `timeoutMs`). */
  unary(path: string, body: Buffer, metadata: Record<string, string>, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let reply: Buffer | undefined;
      let settled = false;
      const settle = (err: GrpcError | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else if (reply === undefined) reject(new GrpcError(GrpcStatus.INTERNAL, `no reply to ${path}`));
        else resolve(reply);
      };
      const call = new GrpcCall(this.o.endpoint, {
        message: (m) => {
          if (reply !== undefined) {
            call.fail(new GrpcError(GrpcStatus.INTERNAL, `${path}: more than one reply`));
            return;
          }
          reply = m;
        },
        end: () => settle(undefined),
        error: (err) => settle(err),
      });
      const timer = setTimeout(() => {
        call.fail(new GrpcError(GrpcStatus.DEADLINE_EXCEEDED, `${path}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      try {
        call.stream = this.start(path, metadata, timeoutMs, call);
      } catch (err) {
        settle(err as GrpcError);
        return;
      }
      call.stream.end(frameMessage(body));
    });
  }

  /** A bidi stream (no deadline). */
  stream(path: string, metadata: Record<string, string>): GrpcStream {
    return new GrpcStream(this.o.endpoint, (call) => this.start(path, metadata, undefined, call));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.pingTimer);
    this.session?.destroy();
    this.session = undefined;
  }
}
