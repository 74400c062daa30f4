// gRPC over node:http2 for one endpoint: length-prefixed messages (1 byte compressed flag, 4 bytes length),
// the status in the `grpc-status`/`grpc-message` trailers (or headers, for a trailers-only answer), deadlines
// sent as `grpc-timeout` and enforced locally, cancellation as RST_STREAM. One HTTP/2 connection per
// endpoint, opened on first use and again after it fails; pings detect a dead peer under a quiet stream.
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { GrpcError, GrpcStatus } from './errors.js';

/** Largest message accepted from etcd (a long lease list is a few MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const PING_INTERVAL_MS = 10_000;
/** HTTP/2 flow-control windows: per stream, and for the whole connection. */
const STREAM_WINDOW_BYTES = 1024 * 1024;
const SESSION_WINDOW_BYTES = 4 * 1024 * 1024;
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

/** The status an answer's headers or trailers carry, or undefined when they carry none. */
function statusOf(headers: http2.IncomingHttpHeaders): GrpcError | null | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  if (!Number.isInteger(code) || code < 0 || code > 16) {
    return new GrpcError(GrpcStatus.UNKNOWN, `invalid grpc-status ${JSON.stringify(raw)}`);
  }
  if (code === GrpcStatus.OK) return null;
  return new GrpcError(code, decodeGrpcMessage(headers['grpc-message']) || `gRPC status ${code}`);
}

export interface ChannelOptions {
  /** `http://host:port` or `https://host:port`. */
  endpoint: string;
  /** TLS (CA, client certificate and key), shared by every connection; the server name is the endpoint's host. */
  tls?: { secureContext: tls.SecureContext } | undefined;
}

/** A server-streaming or bidi call: `message` for each response, then `end` (status OK) or `error`. */
export class GrpcStream extends EventEmitter {
  private finished = false;

  constructor(
    private readonly req: http2.ClientHttp2Stream,
    readonly peer: string,
    private readonly wasConnected: () => boolean,
  ) {
    super();
    const deframer = new MessageDeframer();
    let status: GrpcError | null | undefined;
    req.on('response', (headers) => {
      const httpStatus = headers[':status'];
      if (httpStatus !== 200) {
        this.fail(new GrpcError(GrpcStatus.UNAVAILABLE, `HTTP status ${httpStatus} from ${peer}`));
        return;
      }
      status = statusOf(headers);
    });
    req.on('data', (chunk: Buffer) => {
      if (this.finished) return;
      let messages: Buffer[];
      try {
        messages = deframer.push(chunk);
      } catch (err) {
        this.fail(err as GrpcError);
        return;
      }
      for (const m of messages) this.emit('message', m);
    });
    req.on('trailers', (trailers) => {
      status = statusOf(trailers);
    });
    req.on('error', (err: Error) => {
      const neverSent = !this.wasConnected();
      this.fail(
        new GrpcError(GrpcStatus.UNAVAILABLE, `connection to ${peer} failed: ${err.message}`, { neverSent }),
      );
    });
    req.on('close', () => {
      if (this.finished) return;
      if (status === null && deframer.leftover === 0) {
        this.finished = true;
        this.emit('end');
      } else if (status) this.fail(status);
      else if (status === null) this.fail(new GrpcError(GrpcStatus.INTERNAL, 'truncated gRPC message'));
      else {
        const neverSent = !this.wasConnected();
        this.fail(
          new GrpcError(GrpcStatus.UNAVAILABLE, `stream to ${peer} closed without a status`, { neverSent }),
        );
      }
    });
  }

  private fail(err: GrpcError): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.req.closed) this.req.close(http2.constants.NGHTTP2_CANCEL);
    this.emit('error', err);
  }

  write(body: Buffer): void {
    if (this.finished || this.req.closed || this.req.writableEnded) return;
    this.req.write(frameMessage(body));
  }

  /** Half-closes the sending side (the server then ends the call), after a last message if given. */
  end(body?: Buffer): void {
    if (this.req.writableEnded) return;
    if (body && !this.finished && !this.req.closed) this.req.end(frameMessage(body));
    else this.req.end();
  }

  /** Cancels the call; emits `error` with CANCELLED unless it already ended. */
  cancel(): void {
    this.fail(new GrpcError(GrpcStatus.CANCELLED, 'call cancelled'));
  }
}

/** One endpoint's HTTP/2 connection, opened lazily and again after it fails. */
export class GrpcChannel {
  private session: http2.ClientHttp2Session | undefined;
  private connected = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: ChannelOptions) {}

  get endpoint(): string {
    return this.o.endpoint;
  }

  private open(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect(this.o.endpoint, {
      // A lease list of a few hundred KiB arrives without waiting for window updates.
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW_BYTES },
      maxSessionMemory: 64,
      createConnection: (authority: URL) => this.connectSocket(authority),
    });
    this.session = session;
    this.connected = false;
    session.on('connect', () => {
      if (this.session === session) this.connected = true;
      try {
        session.setLocalWindowSize(SESSION_WINDOW_BYTES);
      } catch {
        // closed at once: its calls fail on their own
      }
    });
    const drop = (): void => {
      if (this.session !== session) return;
      this.session = undefined;
      this.connected = false;
      clearInterval(this.pingTimer);
      this.pingTimer = undefined;
    };
    // Every failure surfaces on the calls in flight; the session is only forgotten here.
    session.on('error', drop);
    session.on('goaway', drop);
    session.on('close', drop);
    session.on('timeout', () => session.destroy());
    this.pingTimer = setInterval(() => this.ping(session), PING_INTERVAL_MS);
    this.pingTimer.unref();
    return session;
  }

  /**
   * The TCP (or TLS, ALPN h2) connection under a session, with Nagle off as grpc-js has it: a request is a
   * HEADERS and a DATA frame, and the second must not wait for the first one's ACK.
   */
  private connectSocket(authority: URL): net.Socket {
    const host = authority.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(authority.port);
    const socket = this.o.tls
      ? tls.connect({
          host,
          port,
          secureContext: this.o.tls.secureContext,
          ALPNProtocols: ['h2'],
          ...(net.isIP(host) === 0 ? { servername: host } : {}),
        })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    return socket;
  }

  private ping(session: http2.ClientHttp2Session): void {
    if (!this.connected || session.destroyed) return;
    const timer = setTimeout(
      () => session.destroy(new Error(`no ping answer within ${PING_TIMEOUT_MS} ms`)),
      PING_TIMEOUT_MS,
    );
    timer.unref();
    let sent = false;
    try {
      sent = session.ping((err) => {
        clearTimeout(timer);
        if (err && !session.destroyed) session.destroy(err);
      });
    } catch {
      // closing meanwhile: its calls fail on their own
    }
    if (!sent) clearTimeout(timer);
  }

  private request(path: string, metadata: Record<string, string>, timeoutMs?: number): GrpcStream {
    if (this.closed) throw new GrpcError(GrpcStatus.CANCELLED, 'client closed');
    const session = this.open();
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      ...metadata,
    };
    if (timeoutMs !== undefined) headers['grpc-timeout'] = `${Math.max(1, Math.ceil(timeoutMs))}m`;
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers);
    } catch (err) {
      // The session closed between open() and now: nothing was sent.
      session.destroy();
      throw new GrpcError(
        GrpcStatus.UNAVAILABLE,
        `cannot send to ${this.o.endpoint}: ${(err as Error).message}`,
        {
          neverSent: true,
        },
      );
    }
    return new GrpcStream(req, this.o.endpoint, () => this.connected && this.session === session);
  }

  /** One request, one response; rejects with a GrpcError (DEADLINE_EXCEEDED after `timeoutMs`). */
  unary(path: string, body: Buffer, metadata: Record<string, string>, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let stream: GrpcStream;
      try {
        stream = this.request(path, metadata, timeoutMs);
      } catch (err) {
        reject(err);
        return;
      }
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
      const timer = setTimeout(() => {
        settle(new GrpcError(GrpcStatus.DEADLINE_EXCEEDED, `${path}: no reply within ${timeoutMs} ms`));
        stream.cancel();
      }, timeoutMs);
      stream.on('message', (m: Buffer) => {
        if (reply !== undefined) {
          settle(new GrpcError(GrpcStatus.INTERNAL, `${path}: more than one reply`));
          stream.cancel();
          return;
        }
        reply = m;
      });
      stream.on('error', (err: GrpcError) => settle(err));
      stream.on('end', () => settle(undefined));
      stream.end(body);
    });
  }

  /** A bidi stream (no deadline). */
  stream(path: string, metadata: Record<string, string>): GrpcStream {
    return this.request(path, metadata);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.pingTimer);
    this.session?.destroy();
    this.session = undefined;
  }
}
