// One HTTP/2 stream as weft's client connection (session.ts) keeps it: who hears its frames, its send queue and
// windows, and how it ended. The session does the framing; a stream only queues and hands calls to its session.
import { H2Code } from './frames.js';
import type { HeaderList } from './hpack.js';

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

/** What a stream asks of its connection. */
export interface StreamOwner {
  send(s: H2Stream, data: Buffer | undefined, end: boolean): void;
  reset(s: H2Stream, code: number): void;
}

/**
 * Bytes received and not yet given back by a WINDOW_UPDATE, against the window advertised: more than `limit` is
 * the peer's flow-control error; from half of it on, `take()` returns the increment to send.
 */
export class ReceiveWindow {
  private unacked = 0;

  constructor(private readonly limit: number) {}

  /** Counts `size` bytes; false when they overflow the window. */
  receive(size: number): boolean {
    this.unacked += size;
    return this.unacked <= this.limit;
  }

  /** The WINDOW_UPDATE increment due (0 while less than half the window is used). */
  take(): number {
    if (this.unacked < this.limit / 2) return 0;
    const increment = this.unacked;
    this.unacked = 0;
    return increment;
  }
}

export class H2Stream {
  id = 0;
  sendWindow = 0;
  readonly received: ReceiveWindow;
  private out: Buffer[] = [];
  outBytes = 0;
  endQueued = false;
  localClosed = false;
  remoteClosed = false;
  done = false;

  constructor(
    private readonly owner: StreamOwner,
    public headerBlock: Buffer | undefined,
    readonly handler: H2StreamHandler,
    receiveWindow: number,
  ) {
    this.received = new ReceiveWindow(receiveWindow);
  }

  /** Sends `data` (queued while the flow-control windows are closed). */
  write(data: Buffer): void {
    this.owner.send(this, data, false);
  }

  /** Half-closes the sending side, after `data` if given. */
  end(data?: Buffer): void {
    this.owner.send(this, data, true);
  }

  /** Resets the stream (RST_STREAM CANCEL); the handler hears nothing more. */
  cancel(): void {
    this.owner.reset(this, H2Code.CANCEL);
  }

  /** Queues bytes to send. */
  queue(data: Buffer): void {
    this.out.push(data);
    this.outBytes += data.length;
  }

  /** Drops what was queued (the peer has finished the stream). */
  dropQueued(): void {
    this.out = [];
    this.outBytes = 0;
  }

  /** The first `n` queued bytes (copied only when they span several buffers). */
  take(n: number): Buffer {
    this.outBytes -= n;
    const first = this.out[0] as Buffer;
    if (first.length === n) {
      this.out.shift();
      return first;
    }
    if (first.length > n) {
      this.out[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const b = this.out[0] as Buffer;
      const part = Math.min(b.length, n - at);
      b.copy(out, at, 0, part);
      at += part;
      if (part === b.length) this.out.shift();
      else this.out[0] = b.subarray(part);
    }
    return out;
  }
}
