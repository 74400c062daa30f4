// One HTTP/2 client connection (RFC 9113) over a TCP or TLS socket: what a gRPC client needs and nothing else.
// Streams are opened with a pre-encoded header block, send DATA within the peer's flow-control windows, and
// hand HEADERS/DATA/resets to a handler. The receive windows are replenished as data arrives (weft consumes
// every byte at once). SETTINGS, PING, GOAWAY and WINDOW_UPDATE are handled here; server push is refused.
// Replaces node:http2, whose per-request cost (a Duplex stream, an AsyncResource, header objects and several
// C++ → JS calls) was most of weft's CPU per etcd call when a thousand nodes acquire leases at once.
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW_SIZE,
  Flag,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameReader,
  FrameType,
  frame,
  goawayFrame,
  H2Code,
  H2ProtocolError,
  h2CodeName,
  MAX_WINDOW_SIZE,
  rstStreamFrame,
  Setting,
  settingsFrame,
  unpad,
  windowUpdateFrame,
  writeFrameHeader,
} from './frames.js';
import { type HeaderList, HpackDecoder, HpackError } from './hpack.js';

/** What a stream's owner hears. After `onError`, or `onData`/`onHeaders` with `end`, nothing more comes. */
export interface H2StreamHandler {
  /** The response headers (first block) or the trailers (a later one); `end`: the peer finished the stream. */
  onHeaders(headers: HeaderList, end: boolean): void;
  onData(chunk: Buffer, end: boolean): void;
  /** Reset by the peer, refused, or the connection failed. */
  onError(err: H2StreamError): void;
}

/** A stream that ended without its END_STREAM. */
export class H2StreamError extends Error {
  override name = 'H2StreamError';
  constructor(
    message: string,
    /** The RST_STREAM/GOAWAY code, or INTERNAL_ERROR / CONNECT_ERROR for a failed connection. */
    readonly code: number,
    /** True when the peer cannot have processed the request (refused, or never connected). */
    readonly neverSent: boolean,
  ) {
    super(message);
  }
}

/** The receive windows weft advertises: per stream (a long lease list needs no window update) and per connection. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
export const SESSION_WINDOW_BYTES = 4 * 1024 * 1024;
/** How long the ACK of a peer's PING may wait for a frame to ride with (see H2Session.ackPing). */
export const PING_ACK_DELAY_MS = 500;
const MAX_HELD_PING_ACKS = 8;
/** A header block (HEADERS and its CONTINUATIONs) larger than this is a connection error. */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;
/**
 * Advertised as SETTINGS_MAX_HEADER_LIST_SIZE (advisory). What is enforced is MAX_HEADER_BLOCK_BYTES: a decoded
 * list holds at most one field per byte of its block, its strings shared with the decoder's table.
 */
export const MAX_HEADER_LIST_BYTES = 1024 * 1024;

export interface H2SessionOptions {
  host: string;
  port: number;
  /** TLS (ALPN h2); the server name is `host` unless it is an IP address. */
  tls?: { secureContext: tls.SecureContext } | undefined;
  /** Names the peer in errors. */
  endpoint: string;
  /** Called once when the session takes no more streams (GOAWAY, error or close). */
  onClose?: ((session: H2Session) => void) | undefined;
}

export class H2Stream {
  id = 0;
  sendWindow = 0;
  /** Bytes received since the last WINDOW_UPDATE for this stream. */
  recvUnacked = 0;
  /** Bytes received in all (checked against the window advertised). */
  recvOutstanding = 0;
  out: Buffer[] = [];
  outBytes = 0;
  endQueued = false;
  localClosed = false;
  remoteClosed = false;
  done = false;

  constructor(
    private readonly session: H2Session,
    public headerBlock: Buffer | undefined,
    readonly handler: H2StreamHandler,
  ) {}

  /** Sends `data` (queued while the flow-control windows are closed). */
  write(data: Buffer): void {
    this.session.send(this, data, false);
  }

  /** Half-closes the sending side, after `data` if given. */
  end(data?: Buffer): void {
    this.session.send(this, data, true);
  }

  /** Resets the stream (RST_STREAM CANCEL); the handler hears nothing more. */
  cancel(): void {
    this.session.reset(this, H2Code.CANCEL);
  }
}

export class H2Session {
  private readonly socket: net.Socket;
  private readonly reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE);
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, H2Stream>();
  private readonly queued: H2Stream[] = [];
  private readonly pings: ((err?: Error) => void)[] = [];
  private nextId = 1;
  private peerMaxConcurrent = Number.POSITIVE_INFINITY;
  private peerInitialWindow = DEFAULT_WINDOW_SIZE;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  private connSendWindow = DEFAULT_WINDOW_SIZE;
  private connRecvUnacked = 0;
  private connRecvOutstanding = 0;
  private continuation: { streamId: number; end: boolean; parts: Buffer[]; bytes: number } | undefined;
  private sentTableSizeUpdate = false;
  /** The peer's SETTINGS arrived: it speaks HTTP/2 and has seen (or will see) every stream sent since. */
  connected = false;
  /** Takes no more streams (GOAWAY received, failed or closed). */
  closed = false;
  private destroyed = false;
  /** PING ACKs not sent yet (see ackPing). */
  private pingAcks: Buffer[] = [];
  private pingAckTimer: NodeJS.Timeout | undefined;
  /** Streams with DATA waiting for a window. */
  private readonly blocked = new Set<H2Stream>();

  constructor(private readonly o: H2SessionOptions) {
    const { host, port } = o;
    if (o.tls) {
      const socket = tls.connect({
        host,
        port,
        secureContext: o.tls.secureContext,
        ALPNProtocols: ['h2'],
        ...(net.isIP(host) === 0 ? { servername: host } : {}),
      });
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol !== 'h2') {
          this.destroy(new Error(`${o.endpoint} did not agree to HTTP/2 in the TLS handshake (ALPN)`));
        }
      });
      this.socket = socket;
    } else {
      this.socket = net.connect({ host, port });
    }
    // A request is a HEADERS and a DATA frame: the second must not wait for the first one's ACK.
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    this.socket.on('error', (err) => this.destroy(err));
    this.socket.on('end', () => this.destroy(new Error(`${o.endpoint} closed the connection`)));
    this.socket.on('close', () => this.destroy(new Error(`connection to ${o.endpoint} closed`)));
    this.socket.write(
      Buffer.concat([
        CLIENT_PREFACE,
        settingsFrame([
          [Setting.ENABLE_PUSH, 0],
          [Setting.INITIAL_WINDOW_SIZE, STREAM_WINDOW_BYTES],
          [Setting.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES],
        ]),
        windowUpdateFrame(0, SESSION_WINDOW_BYTES - DEFAULT_WINDOW_SIZE),
      ]),
    );
  }

  /** Streams open or waiting to open. */
  get activeStreams(): number {
    return this.streams.size + this.queued.length;
  }

  /** Opens a stream with an HPACK header block (from `encodeHeaders`; no dynamic table). */
  request(headerBlock: Buffer, handler: H2StreamHandler): H2Stream {
    if (this.closed) {
      throw new H2StreamError(`connection to ${this.o.endpoint} is closing`, H2Code.REFUSED_STREAM, true);
    }
    const s = new H2Stream(this, headerBlock, handler);
    if (this.streams.size >= this.peerMaxConcurrent) this.queued.push(s);
    else this.open(s);
    return s;
  }

  /** Sends a PING; `done` gets its answer (or the connection's failure). False when the session is gone. */
  ping(done: (err?: Error) => void): boolean {
    if (this.destroyed) return false;
    this.pings.push(done);
    this.enqueue(frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    return true;
  }

  /** Closes the connection; streams in flight fail with `err` (or "closed"). */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.markClosed();
    const reason = err?.message ?? 'closed';
    const neverSent = !this.connected;
    const failure = (): H2StreamError =>
      new H2StreamError(
        `connection to ${this.o.endpoint} failed: ${reason}`,
        H2Code.CONNECT_ERROR,
        neverSent,
      );
    const streams = [...this.streams.values(), ...this.queued];
    this.streams.clear();
    this.queued.length = 0;
    for (const s of streams) this.fail(s, failure());
    for (const p of this.pings.splice(0)) p(new Error(reason));
    clearTimeout(this.pingAckTimer);
    this.pingAckTimer = undefined;
    this.socket.destroy();
  }

  // ---- sending ----

  /**
   * Writes at once, with the PING ACKs held back so far. (Holding every frame back to the end of the tick, so
   * that calls started together share one write, cost more CPU in bench/leases — client and etcd alike, three
   * runs against three — and was dropped.)
   */
  private enqueue(bytes: Buffer): void {
    if (this.pingAcks.length > 0) {
      const acks = this.takePingAcks();
      this.socket.write(Buffer.concat([acks, bytes]));
    } else this.socket.write(bytes);
  }

  /**
   * ACKs the peer's PING with the next frame sent, or after PING_ACK_DELAY_MS at the latest. A grpc-go server
   * (etcd) sends a BDP-estimation PING (with a WINDOW_UPDATE) after each request that arrives while none is
   * outstanding: ACKing at once costs both sides a write and a read per request, and more than a third of the
   * lease acquisition's CPU in bench/leases. Held back, there is at most one such PING per connection every
   * PING_ACK_DELAY_MS. RFC 9113 §6.7 requires the ACK and asks (SHOULD) for priority; etcd's keepalive
   * allows 20 s. A peer sending many PINGs gets its ACKs at once.
   */
  private ackPing(payload: Buffer): void {
    this.pingAcks.push(frame(FrameType.PING, Flag.ACK, 0, payload));
    if (this.pingAcks.length >= MAX_HELD_PING_ACKS) {
      this.socket.write(this.takePingAcks());
      return;
    }
    if (this.pingAckTimer) return;
    this.pingAckTimer = setTimeout(() => {
      this.pingAckTimer = undefined;
      if (!this.destroyed && this.pingAcks.length > 0) this.socket.write(this.takePingAcks());
    }, PING_ACK_DELAY_MS);
    this.pingAckTimer.unref();
  }

  private takePingAcks(): Buffer {
    const acks = this.pingAcks;
    this.pingAcks = [];
    clearTimeout(this.pingAckTimer);
    this.pingAckTimer = undefined;
    return acks.length === 1 ? (acks[0] as Buffer) : Buffer.concat(acks);
  }

  private open(s: H2Stream): void {
    if (this.nextId > 0x7fff_ffff) {
      // Stream IDs exhausted: this connection is done; a new one takes the call.
      this.markClosed();
      this.fail(
        s,
        new H2StreamError(`no stream IDs left on ${this.o.endpoint}`, H2Code.REFUSED_STREAM, true),
      );
      return;
    }
    s.id = this.nextId;
    this.nextId += 2;
    s.sendWindow = this.peerInitialWindow;
    this.streams.set(s.id, s);
    let block = s.headerBlock ?? Buffer.alloc(0);
    s.headerBlock = undefined;
    if (!this.sentTableSizeUpdate) {
      // Our encoder never indexes: its dynamic table is 0 bytes whatever SETTINGS_HEADER_TABLE_SIZE says.
      block = Buffer.concat([Buffer.from([0x20]), block]);
      this.sentTableSizeUpdate = true;
    }
    const endNow = s.endQueued && s.outBytes === 0;
    const max = this.peerMaxFrame;
    const parts = Math.max(1, Math.ceil(block.length / max));
    const out = Buffer.allocUnsafe(parts * FRAME_HEADER_BYTES + block.length);
    let at = 0;
    for (let i = 0; i < parts; i++) {
      const piece = block.subarray(i * max, Math.min(block.length, (i + 1) * max));
      const last = i === parts - 1;
      const flags = (last ? Flag.END_HEADERS : 0) | (i === 0 && endNow ? Flag.END_STREAM : 0);
      writeFrameHeader(
        out,
        at,
        piece.length,
        i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
        flags,
        s.id,
      );
      piece.copy(out, at + FRAME_HEADER_BYTES);
      at += FRAME_HEADER_BYTES + piece.length;
    }
    if (endNow) s.localClosed = true;
    const data = this.dataFrames(s);
    this.enqueue(data ? Buffer.concat([out, data]) : out);
  }

  /** Called by H2Stream.write/end. */
  send(s: H2Stream, data: Buffer | undefined, end: boolean): void {
    if (s.done || s.localClosed || s.endQueued) return;
    if (data && data.length > 0) {
      s.out.push(data);
      s.outBytes += data.length;
    }
    if (end) s.endQueued = true;
    if (s.id === 0 || this.destroyed) return; // opens (and sends) later
    const frames = this.dataFrames(s);
    if (frames) this.enqueue(frames);
  }

  /** DATA frames for what `s` has queued, as far as the windows allow; the END_STREAM flag on the last. */
  private dataFrames(s: H2Stream): Buffer | undefined {
    const frames: Buffer[] = [];
    while (s.outBytes > 0) {
      const n = Math.min(s.outBytes, s.sendWindow, this.connSendWindow, this.peerMaxFrame);
      if (n <= 0) break;
      const payload = takeBytes(s, n);
      s.sendWindow -= n;
      this.connSendWindow -= n;
      const last = s.outBytes === 0 && s.endQueued;
      frames.push(frame(FrameType.DATA, last ? Flag.END_STREAM : 0, s.id, payload));
      if (last) s.localClosed = true;
    }
    if (s.outBytes === 0 && s.endQueued && !s.localClosed) {
      frames.push(frame(FrameType.DATA, Flag.END_STREAM, s.id));
      s.localClosed = true;
    }
    if (s.outBytes > 0) this.blocked.add(s);
    else this.blocked.delete(s);
    this.settle(s);
    if (frames.length === 0) return undefined;
    return frames.length === 1 ? frames[0] : Buffer.concat(frames);
  }

  /** Called by H2Stream.cancel. */
  reset(s: H2Stream, code: number): void {
    if (s.done) return;
    s.done = true;
    if (s.id === 0) {
      const i = this.queued.indexOf(s);
      if (i >= 0) this.queued.splice(i, 1);
      return;
    }
    this.streams.delete(s.id);
    if (!this.destroyed) this.enqueue(rstStreamFrame(s.id, code));
    this.openQueued();
    this.closeIfDrained();
  }

  private openQueued(): void {
    while (this.queued.length > 0 && !this.closed && this.streams.size < this.peerMaxConcurrent) {
      this.open(this.queued.shift() as H2Stream);
    }
  }

  /** Forgets a stream both sides have finished. */
  private settle(s: H2Stream): void {
    if (s.done || !s.localClosed || !s.remoteClosed) return;
    s.done = true;
    this.streams.delete(s.id);
    this.openQueued();
    this.closeIfDrained();
  }

  private fail(s: H2Stream, err: H2StreamError): void {
    if (s.done) return;
    s.done = true;
    s.handler.onError(err);
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.o.onClose?.(this);
  }

  /** After a GOAWAY, the connection ends once its last stream has. */
  private closeIfDrained(): void {
    if (this.closed && !this.destroyed && this.streams.size === 0 && this.queued.length === 0) {
      this.destroyed = true;
      this.socket.end();
    }
  }

  // ---- receiving ----

  private onBytes(chunk: Buffer): void {
    if (this.destroyed) return;
    // The frames answered while reading (ACKs, window updates) leave in one write.
    this.socket.cork();
    try {
      this.reader.push(chunk, (f) => this.onFrame(f));
    } catch (err) {
      if (err instanceof H2ProtocolError) this.connectionError(err.code, err.message);
      else if (err instanceof HpackError) this.connectionError(H2Code.COMPRESSION_ERROR, err.message);
      else this.connectionError(H2Code.INTERNAL_ERROR, err instanceof Error ? err.message : String(err));
    } finally {
      this.socket.uncork();
    }
  }

  private connectionError(code: number, message: string): void {
    if (this.destroyed) return;
    this.enqueue(goawayFrame(0, code));
    this.destroy(new Error(`HTTP/2 ${h2CodeName(code)}: ${message}`));
  }

  private onFrame(f: Frame): void {
    if (this.destroyed) return;
    if (this.continuation && f.type !== FrameType.CONTINUATION) {
      throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `frame type ${f.type} inside a header block`);
    }
    switch (f.type) {
      case FrameType.DATA:
        this.onData(f);
        return;
      case FrameType.HEADERS:
      case FrameType.CONTINUATION:
        this.onHeaderFrame(f);
        return;
      case FrameType.RST_STREAM:
        this.onReset(f);
        return;
      case FrameType.SETTINGS:
        this.onSettings(f);
        return;
      case FrameType.PING:
        this.onPing(f);
        return;
      case FrameType.GOAWAY:
        this.onGoaway(f);
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(f);
        return;
      case FrameType.PUSH_PROMISE:
        throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'PUSH_PROMISE although push is disabled');
      case FrameType.PRIORITY:
        if (f.payload.length !== 5)
          throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'PRIORITY of wrong size');
        return;
      default:
        return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  private requireStream(f: Frame, what: string): void {
    if (f.streamId === 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `${what} on stream 0`);
    if (f.streamId % 2 === 0 || f.streamId >= this.nextId) {
      throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `${what} on stream ${f.streamId}, never opened`);
    }
  }

  private onData(f: Frame): void {
    this.requireStream(f, 'DATA');
    const size = f.payload.length;
    this.connRecvOutstanding += size;
    if (this.connRecvOutstanding > SESSION_WINDOW_BYTES) {
      throw new H2ProtocolError(H2Code.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    }
    this.connRecvUnacked += size;
    if (this.connRecvUnacked >= SESSION_WINDOW_BYTES / 2) {
      this.enqueue(windowUpdateFrame(0, this.connRecvUnacked));
      this.connRecvOutstanding -= this.connRecvUnacked;
      this.connRecvUnacked = 0;
    }
    const body = unpad(f);
    const s = this.streams.get(f.streamId);
    if (!s || s.remoteClosed) return; // a stream reset meanwhile: its bytes only count for the connection
    const end = (f.flags & Flag.END_STREAM) !== 0;
    s.recvOutstanding += size;
    if (s.recvOutstanding > STREAM_WINDOW_BYTES) {
      this.reset(s, H2Code.FLOW_CONTROL_ERROR);
      s.handler.onError(
        new H2StreamError(
          `${this.o.endpoint} sent beyond the stream window`,
          H2Code.FLOW_CONTROL_ERROR,
          false,
        ),
      );
      return;
    }
    s.recvUnacked += size;
    if (!end && s.recvUnacked >= STREAM_WINDOW_BYTES / 2) {
      this.enqueue(windowUpdateFrame(s.id, s.recvUnacked));
      s.recvOutstanding -= s.recvUnacked;
      s.recvUnacked = 0;
    }
    if (end) this.remoteEnd(s);
    s.handler.onData(body, end);
  }

  private onHeaderFrame(f: Frame): void {
    let block: Buffer;
    let streamId: number;
    let end: boolean;
    if (f.type === FrameType.HEADERS) {
      this.requireStream(f, 'HEADERS');
      const piece = unpad(f);
      end = (f.flags & Flag.END_STREAM) !== 0;
      if (!(f.flags & Flag.END_HEADERS)) {
        // The view into the socket's bytes does not outlive this read: copy.
        this.continuation = { streamId: f.streamId, end, parts: [Buffer.from(piece)], bytes: piece.length };
        return;
      }
      block = piece;
      streamId = f.streamId;
    } else {
      const c = this.continuation;
      if (!c || c.streamId !== f.streamId) {
        throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `CONTINUATION on stream ${f.streamId} out of place`);
      }
      c.bytes += f.payload.length;
      if (c.bytes > MAX_HEADER_BLOCK_BYTES) {
        throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `header block over ${MAX_HEADER_BLOCK_BYTES} bytes`);
      }
      c.parts.push(Buffer.from(f.payload));
      if (!(f.flags & Flag.END_HEADERS)) return;
      this.continuation = undefined;
      block = Buffer.concat(c.parts, c.bytes);
      streamId = c.streamId;
      end = c.end;
    }
    // Every block is decoded, also for a stream reset meanwhile: the dynamic table must follow the peer's.
    const headers = this.decoder.decode(block);
    const s = this.streams.get(streamId);
    if (!s || s.remoteClosed) return;
    if (end) this.remoteEnd(s);
    s.handler.onHeaders(headers, end);
  }

  /** The peer finished `s`; ours is finished too, or is reset (a server may answer before the request ends). */
  private remoteEnd(s: H2Stream): void {
    s.remoteClosed = true;
    if (!s.localClosed) {
      s.localClosed = true;
      s.out = [];
      s.outBytes = 0;
      this.enqueue(rstStreamFrame(s.id, H2Code.NO_ERROR));
    }
    this.settle(s);
  }

  private onReset(f: Frame): void {
    this.requireStream(f, 'RST_STREAM');
    if (f.payload.length !== 4)
      throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'RST_STREAM of wrong size');
    const s = this.streams.get(f.streamId);
    if (!s) return;
    const code = f.payload.readUInt32BE(0);
    s.done = true;
    this.streams.delete(s.id);
    s.handler.onError(
      new H2StreamError(
        `stream reset by ${this.o.endpoint}: ${h2CodeName(code)}`,
        code,
        code === H2Code.REFUSED_STREAM,
      ),
    );
    this.openQueued();
    this.closeIfDrained();
  }

  private onSettings(f: Frame): void {
    if (f.streamId !== 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (f.flags & Flag.ACK) {
      if (f.payload.length !== 0)
        throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (f.payload.length % 6 !== 0)
      throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS of wrong size');
    for (let at = 0; at < f.payload.length; at += 6) {
      const id = f.payload.readUInt16BE(at);
      const value = f.payload.readUInt32BE(at + 2);
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW_SIZE) {
          throw new H2ProtocolError(H2Code.FLOW_CONTROL_ERROR, `initial window size ${value} too large`);
        }
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) s.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME_SIZE || value > 0xff_ffff) {
          throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `max frame size ${value} out of range`);
        }
        this.peerMaxFrame = value;
      } else if (id === Setting.MAX_CONCURRENT_STREAMS) {
        this.peerMaxConcurrent = value;
      }
      // HEADER_TABLE_SIZE: our encoder keeps no table. ENABLE_PUSH and the rest do not concern a client.
    }
    this.enqueue(frame(FrameType.SETTINGS, Flag.ACK, 0));
    this.connected = true;
    this.flushAll();
    this.openQueued();
  }

  private onPing(f: Frame): void {
    if (f.streamId !== 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'PING on a stream');
    if (f.payload.length !== 8) throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'PING of wrong size');
    if (f.flags & Flag.ACK) this.pings.shift()?.();
    else this.ackPing(Buffer.from(f.payload));
  }

  private onGoaway(f: Frame): void {
    if (f.streamId !== 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (f.payload.length < 8) throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'GOAWAY too short');
    const last = f.payload.readUInt32BE(0) & 0x7fff_ffff;
    const code = f.payload.readUInt32BE(4);
    this.markClosed();
    const refused = (): H2StreamError =>
      new H2StreamError(
        `${this.o.endpoint} is going away (${h2CodeName(code)})`,
        H2Code.REFUSED_STREAM,
        true,
      );
    for (const s of [...this.streams.values()]) {
      if (s.id <= last) continue;
      this.streams.delete(s.id);
      this.fail(s, refused());
    }
    for (const s of this.queued.splice(0)) this.fail(s, refused());
    this.closeIfDrained();
  }

  private onWindowUpdate(f: Frame): void {
    if (f.payload.length !== 4)
      throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of wrong size');
    const increment = f.payload.readUInt32BE(0) & 0x7fff_ffff;
    if (f.streamId === 0) {
      if (increment === 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW_SIZE) {
        throw new H2ProtocolError(H2Code.FLOW_CONTROL_ERROR, 'connection window over 2^31-1');
      }
      this.flushAll();
      return;
    }
    const s = this.streams.get(f.streamId);
    if (!s) return;
    s.sendWindow += increment;
    if (increment === 0 || s.sendWindow > MAX_WINDOW_SIZE) {
      this.reset(s, increment === 0 ? H2Code.PROTOCOL_ERROR : H2Code.FLOW_CONTROL_ERROR);
      s.handler.onError(
        new H2StreamError(`bad WINDOW_UPDATE from ${this.o.endpoint}`, H2Code.FLOW_CONTROL_ERROR, false),
      );
      return;
    }
    const frames = this.dataFrames(s);
    if (frames) this.enqueue(frames);
  }

  private flushAll(): void {
    if (this.blocked.size === 0) return;
    for (const s of [...this.blocked]) {
      if (s.done) {
        this.blocked.delete(s);
        continue;
      }
      const frames = this.dataFrames(s);
      if (frames) this.enqueue(frames);
    }
  }
}

/** The first `n` queued bytes of `s` (copied only when they span several buffers). */
function takeBytes(s: H2Stream, n: number): Buffer {
  s.outBytes -= n;
  const first = s.out[0] as Buffer;
  if (first.length === n) {
    s.out.shift();
    return first;
  }
  if (first.length > n) {
    s.out[0] = first.subarray(n);
    return first.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  while (at < n) {
    const b = s.out[0] as Buffer;
    const take = Math.min(b.length, n - at);
    b.copy(out, at, 0, take);
    at += take;
    if (take === b.length) s.out.shift();
    else s.out[0] = b.subarray(take);
  }
  return out;
}
