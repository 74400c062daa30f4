// One HTTP/2 client connection (RFC 9113) over a TCP or TLS socket: what a gRPC client needs and nothing else.
// Streams (stream.ts) are opened with a pre-encoded header block, send DATA within the peer's flow-control
// windows, and hand HEADERS/DATA/resets to a handler. The receive windows are replenished as data arrives (weft
// consumes every byte at once). SETTINGS, PING (ACKs held back: ping-acks.ts), GOAWAY and WINDOW_UPDATE are
// handled here; server push is refused. Replaces node:http2, whose per-request cost (a Duplex stream, an
// AsyncResource, header objects and several C++ → JS calls) was most of weft's CPU per etcd call when a
// thousand nodes acquire leases at once.
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import {
  CLIENT_PREFACE,
  checkPing,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW_SIZE,
  Flag,
  type Frame,
  FrameReader,
  FrameType,
  frame,
  goawayFrame,
  H2Code,
  H2ProtocolError,
  HeaderBlockReader,
  h2CodeName,
  headerFrames,
  MAX_WINDOW_SIZE,
  parseGoaway,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  rstStreamFrame,
  Setting,
  settingsFrame,
  unpad,
  windowUpdateFrame,
} from './frames.js';
import { HpackDecoder, HpackError } from './hpack.js';
import { HeldPingAcks } from './ping-acks.js';
import { connectSocket } from './socket.js';
import { H2Stream, H2StreamError, type H2StreamHandler, ReceiveWindow, type StreamOwner } from './stream.js';

export { H2Stream, H2StreamError, type H2StreamHandler } from './stream.js';

/** The receive windows weft advertises: per stream (a long lease list needs no window update) and per connection. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
export const SESSION_WINDOW_BYTES = 4 * 1024 * 1024;
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

export class H2Session implements StreamOwner {
  private readonly socket: net.Socket;
  private readonly reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE);
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, H2Stream>();
  private readonly queued: H2Stream[] = [];
  private readonly pings: ((err?: Error) => void)[] = [];
  private readonly pingAcks: HeldPingAcks;
  private readonly received = new ReceiveWindow(SESSION_WINDOW_BYTES);
  /** Streams with DATA waiting for a window. */
  private readonly blocked = new Set<H2Stream>();
  private nextId = 1;
  private peerMaxConcurrent = Number.POSITIVE_INFINITY;
  private peerInitialWindow = DEFAULT_WINDOW_SIZE;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  private connSendWindow = DEFAULT_WINDOW_SIZE;
  private readonly headerBlocks = new HeaderBlockReader(MAX_HEADER_BLOCK_BYTES);
  private sentTableSizeUpdate = false;
  /** The peer's SETTINGS arrived: it speaks HTTP/2 and has seen (or will see) every stream sent since. */
  connected = false;
  /** Takes no more streams (GOAWAY received, failed or closed). */
  closed = false;
  private destroyed = false;

  constructor(private readonly o: H2SessionOptions) {
    this.socket = connectSocket(o, (err) => this.destroy(err));
    this.pingAcks = new HeldPingAcks((bytes) => {
      if (!this.destroyed) this.socket.write(bytes);
    });
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

  /** Opens a stream with an HPACK header block (from `encodeHeaders`; no dynamic table). */
  request(headerBlock: Buffer, handler: H2StreamHandler): H2Stream {
    if (this.closed) {
      throw new H2StreamError(`connection to ${this.o.endpoint} is closing`, H2Code.REFUSED_STREAM, true);
    }
    const s = new H2Stream(this, headerBlock, handler, STREAM_WINDOW_BYTES);
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
    const streams = [...this.streams.values(), ...this.queued];
    this.streams.clear();
    this.queued.length = 0;
    for (const s of streams) {
      this.fail(
        s,
        new H2StreamError(
          `connection to ${this.o.endpoint} failed: ${reason}`,
          H2Code.CONNECT_ERROR,
          neverSent,
        ),
      );
    }
    for (const p of this.pings.splice(0)) p(new Error(reason));
    this.pingAcks.clear();
    this.socket.destroy();
  }

  // ---- sending ----

  /**
   * Writes at once, with the PING ACKs held back so far. (Holding every frame back to the end of the tick, so
   * that calls started together share one write, cost more CPU in bench/leases — client and etcd alike, three
   * runs against three — and was dropped.)
   */
  private enqueue(bytes: Buffer): void {
    this.socket.write(this.pingAcks.pending ? Buffer.concat([this.pingAcks.take(), bytes]) : bytes);
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
    const headers = headerFrames(s.id, block, this.peerMaxFrame, endNow);
    if (endNow) s.localClosed = true;
    const data = this.dataFrames(s);
    this.enqueue(data ? Buffer.concat([headers, data]) : headers);
  }

  /** Called by H2Stream.write/end. */
  send(s: H2Stream, data: Buffer | undefined, end: boolean): void {
    if (s.done || s.localClosed || s.endQueued) return;
    if (data && data.length > 0) s.queue(data);
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
      const payload = s.take(n);
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

  /** Called by H2Stream.cancel, and for a stream's flow-control error. */
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

  /** A stream-level error (RFC 9113 §5.4.2): the stream is reset and its owner told. */
  private streamError(s: H2Stream, code: number, message: string): void {
    this.reset(s, code);
    s.handler.onError(new H2StreamError(message, code, false));
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
      this.pingAcks.clear();
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
    if (this.headerBlocks.open && f.type !== FrameType.CONTINUATION) {
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
        checkPing(f);
        if (f.flags & Flag.ACK) this.pings.shift()?.();
        else this.pingAcks.add(Buffer.from(f.payload));
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
    if (!this.received.receive(size)) {
      throw new H2ProtocolError(H2Code.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    }
    const connIncrement = this.received.take();
    if (connIncrement > 0) this.enqueue(windowUpdateFrame(0, connIncrement));
    const body = unpad(f);
    const s = this.streams.get(f.streamId);
    if (!s || s.remoteClosed) return; // a stream reset meanwhile: its bytes only count for the connection
    const end = (f.flags & Flag.END_STREAM) !== 0;
    if (!s.received.receive(size)) {
      this.streamError(s, H2Code.FLOW_CONTROL_ERROR, `${this.o.endpoint} sent beyond the stream window`);
      return;
    }
    if (end) this.remoteEnd(s);
    else {
      const increment = s.received.take();
      if (increment > 0) this.enqueue(windowUpdateFrame(s.id, increment));
    }
    s.handler.onData(body, end);
  }

  private onHeaderFrame(f: Frame): void {
    if (f.type === FrameType.HEADERS) this.requireStream(f, 'HEADERS');
    const whole = this.headerBlocks.push(f);
    if (!whole) return;
    // Every block is decoded, also for a stream reset meanwhile: the dynamic table must follow the peer's.
    const headers = this.decoder.decode(whole.block);
    const s = this.streams.get(whole.streamId);
    if (!s || s.remoteClosed) return;
    if (whole.end) this.remoteEnd(s);
    s.handler.onHeaders(headers, whole.end);
  }

  /** The peer finished `s`; ours is finished too, or is reset (a server may answer before the request ends). */
  private remoteEnd(s: H2Stream): void {
    s.remoteClosed = true;
    if (!s.localClosed) {
      s.localClosed = true;
      s.dropQueued();
      this.enqueue(rstStreamFrame(s.id, H2Code.NO_ERROR));
    }
    this.settle(s);
  }

  private onReset(f: Frame): void {
    this.requireStream(f, 'RST_STREAM');
    const code = parseRstStream(f);
    const s = this.streams.get(f.streamId);
    if (!s) return;
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
    const { ack, settings } = parseSettings(f);
    if (ack) return;
    for (const [id, value] of settings) {
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const s of this.streams.values()) s.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) this.peerMaxFrame = value;
      else if (id === Setting.MAX_CONCURRENT_STREAMS) this.peerMaxConcurrent = value;
      // HEADER_TABLE_SIZE: our encoder keeps no table. ENABLE_PUSH and the rest do not concern a client.
    }
    this.enqueue(frame(FrameType.SETTINGS, Flag.ACK, 0));
    this.connected = true;
    this.flushBlocked();
    this.openQueued();
  }

  private onGoaway(f: Frame): void {
    const { lastStreamId, code } = parseGoaway(f);
    this.markClosed();
    const refused = (): H2StreamError =>
      new H2StreamError(
        `${this.o.endpoint} is going away (${h2CodeName(code)})`,
        H2Code.REFUSED_STREAM,
        true,
      );
    for (const s of [...this.streams.values()]) {
      if (s.id <= lastStreamId) continue;
      this.streams.delete(s.id);
      this.fail(s, refused());
    }
    for (const s of this.queued.splice(0)) this.fail(s, refused());
    this.closeIfDrained();
  }

  private onWindowUpdate(f: Frame): void {
    const increment = parseWindowUpdate(f);
    if (f.streamId === 0) {
      if (increment === 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW_SIZE) {
        throw new H2ProtocolError(H2Code.FLOW_CONTROL_ERROR, 'connection window over 2^31-1');
      }
      this.flushBlocked();
      return;
    }
    const s = this.streams.get(f.streamId);
    if (!s) return;
    s.sendWindow += increment;
    if (increment === 0 || s.sendWindow > MAX_WINDOW_SIZE) {
      const code = increment === 0 ? H2Code.PROTOCOL_ERROR : H2Code.FLOW_CONTROL_ERROR;
      this.streamError(s, code, `bad WINDOW_UPDATE from ${this.o.endpoint}`);
      return;
    }
    const frames = this.dataFrames(s);
    if (frames) this.enqueue(frames);
  }

  /** Sends what streams waiting for a window can send now. */
  private flushBlocked(): void {
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
