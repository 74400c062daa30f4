// HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the frame types and flags weft's client uses, and a reader
// that cuts a TCP byte stream into frames without copying unless a frame spans two reads.

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  /** DATA, HEADERS. */
  END_STREAM: 0x1,
  /** SETTINGS, PING. */
  ACK: 0x1,
  /** HEADERS, CONTINUATION. */
  END_HEADERS: 0x4,
  /** DATA, HEADERS. */
  PADDED: 0x8,
  /** HEADERS. */
  PRIORITY: 0x20,
} as const;

/** Error codes (RFC 9113 §7). */
export const H2Code = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

const CODE_NAMES = new Map<number, string>(Object.entries(H2Code).map(([name, code]) => [code, name]));

/** `PROTOCOL_ERROR`, or `0x2a` for a code RFC 9113 does not name. */
export function h2CodeName(code: number): string {
  return CODE_NAMES.get(code) ?? `0x${code.toString(16)}`;
}

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value: the largest frame either side may send until told otherwise. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const DEFAULT_WINDOW_SIZE = 65_535;
export const MAX_WINDOW_SIZE = 0x7fff_ffff;

/** A connection error: the whole connection is unusable (RFC 9113 §5.4.1). */
export class H2ProtocolError extends Error {
  override name = 'H2ProtocolError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Writes a frame header into `out` at `at`. */
export function writeFrameHeader(
  out: Buffer,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId & 0x7fff_ffff, at + 5);
}

/** One frame: header and payload. */
export function frame(type: number, flags: number, streamId: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  writeFrameHeader(out, 0, length, type, flags, streamId);
  payload?.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** A SETTINGS frame with the given (identifier, value) pairs. */
export function settingsFrame(settings: ReadonlyArray<readonly [number, number]>): Buffer {
  const payload = Buffer.allocUnsafe(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment & 0x7fff_ffff, 0);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(code, 0);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function goawayFrame(lastStreamId: number, code: number): Buffer {
  const payload = Buffer.allocUnsafe(8);
  payload.writeUInt32BE(lastStreamId & 0x7fff_ffff, 0);
  payload.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, 0, payload);
}

/** A frame as read: `payload` is a view into the bytes received (valid until the next read). */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/**
 * Cuts received bytes into frames. `push` returns the frames the bytes complete; a frame larger than
 * `maxFrameSize` is a FRAME_SIZE_ERROR (RFC 9113 §4.2).
 */
export class FrameReader {
  private rest: Buffer | undefined;

  constructor(private readonly maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {}

  push(chunk: Buffer, onFrame: (f: Frame) => void): void {
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = undefined;
    }
    let at = 0;
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      const length = ((buf[at] as number) << 16) | ((buf[at + 1] as number) << 8) | (buf[at + 2] as number);
      if (length > this.maxFrameSize) {
        throw new H2ProtocolError(
          H2Code.FRAME_SIZE_ERROR,
          `frame of ${length} bytes exceeds the ${this.maxFrameSize} bytes allowed`,
        );
      }
      if (buf.length - at < FRAME_HEADER_BYTES + length) break;
      const start = at + FRAME_HEADER_BYTES;
      onFrame({
        type: buf[at + 3] as number,
        flags: buf[at + 4] as number,
        streamId: buf.readUInt32BE(at + 5) & 0x7fff_ffff,
        payload: buf.subarray(start, start + length),
      });
      at = start + length;
    }
    if (at < buf.length) this.rest = buf.subarray(at);
  }
}

/**
 * The payload of a DATA or HEADERS frame without its padding (and, for HEADERS, its priority fields).
 * Throws a PROTOCOL_ERROR when the padding is longer than the payload.
 */
export function unpad(f: Frame): Buffer {
  let body = f.payload;
  let padding = 0;
  if (f.flags & Flag.PADDED) {
    if (body.length < 1)
      throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'padded frame without a pad length');
    padding = body[0] as number;
    body = body.subarray(1);
  }
  if (f.type === FrameType.HEADERS && f.flags & Flag.PRIORITY) {
    if (body.length < 5)
      throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
    body = body.subarray(5);
  }
  if (padding > body.length) {
    throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `padding of ${padding} bytes exceeds the frame`);
  }
  return padding > 0 ? body.subarray(0, body.length - padding) : body;
}

// ---- the payloads of the connection's control frames, checked (each error is a connection error) ----

/** A SETTINGS frame's (identifier, value) pairs; an ACK has none. */
export function parseSettings(f: Frame): { ack: boolean; settings: Array<[id: number, value: number]> } {
  if (f.streamId !== 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'SETTINGS on a stream');
  if (f.flags & Flag.ACK) {
    if (f.payload.length !== 0) {
      throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
    }
    return { ack: true, settings: [] };
  }
  if (f.payload.length % 6 !== 0)
    throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS of wrong size');
  const settings: Array<[number, number]> = [];
  for (let at = 0; at < f.payload.length; at += 6) {
    const id = f.payload.readUInt16BE(at);
    const value = f.payload.readUInt32BE(at + 2);
    if (id === Setting.INITIAL_WINDOW_SIZE && value > MAX_WINDOW_SIZE) {
      throw new H2ProtocolError(H2Code.FLOW_CONTROL_ERROR, `initial window size ${value} too large`);
    }
    if (id === Setting.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_SIZE || value > 0xff_ffff)) {
      throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `max frame size ${value} out of range`);
    }
    settings.push([id, value]);
  }
  return { ack: false, settings };
}

/** A PING's 8 bytes. */
export function checkPing(f: Frame): void {
  if (f.streamId !== 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'PING on a stream');
  if (f.payload.length !== 8) throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'PING of wrong size');
}

export function parseGoaway(f: Frame): { lastStreamId: number; code: number } {
  if (f.streamId !== 0) throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, 'GOAWAY on a stream');
  if (f.payload.length < 8) throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'GOAWAY too short');
  return { lastStreamId: f.payload.readUInt32BE(0) & 0x7fff_ffff, code: f.payload.readUInt32BE(4) };
}

/** The increment (0 is the caller's to judge: a connection error on stream 0, a stream error elsewhere). */
export function parseWindowUpdate(f: Frame): number {
  if (f.payload.length !== 4) {
    throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of wrong size');
  }
  return f.payload.readUInt32BE(0) & 0x7fff_ffff;
}

export function parseRstStream(f: Frame): number {
  if (f.payload.length !== 4) throw new H2ProtocolError(H2Code.FRAME_SIZE_ERROR, 'RST_STREAM of wrong size');
  return f.payload.readUInt32BE(0);
}

/** A header block as one HEADERS frame and as many CONTINUATIONs as `maxFrame` requires, END_STREAM if `end`. */
export function headerFrames(streamId: number, block: Buffer, maxFrame: number, end: boolean): Buffer {
  const parts = Math.max(1, Math.ceil(block.length / maxFrame));
  const out = Buffer.allocUnsafe(parts * FRAME_HEADER_BYTES + block.length);
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const piece = block.subarray(i * maxFrame, Math.min(block.length, (i + 1) * maxFrame));
    const flags = (i === parts - 1 ? Flag.END_HEADERS : 0) | (i === 0 && end ? Flag.END_STREAM : 0);
    writeFrameHeader(
      out,
      at,
      piece.length,
      i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
      flags,
      streamId,
    );
    piece.copy(out, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + piece.length;
  }
  return out;
}

/** A whole header block: its stream, whether its HEADERS ended the stream, and its bytes. */
export interface HeaderBlock {
  streamId: number;
  end: boolean;
  block: Buffer;
}

/**
 * Joins a HEADERS frame and its CONTINUATIONs (RFC 9113 §6.10). While a block is open (`open`), any other frame
 * is a connection error, as is a block over `maxBytes`.
 */
export class HeaderBlockReader {
  private pending: { streamId: number; end: boolean; parts: Buffer[]; bytes: number } | undefined;

  constructor(private readonly maxBytes: number) {}

  get open(): boolean {
    return this.pending !== undefined;
  }

  /** A HEADERS or CONTINUATION frame; the whole block once its END_HEADERS arrived. */
  push(f: Frame): HeaderBlock | undefined {
    if (f.type === FrameType.HEADERS) {
      const piece = unpad(f);
      const end = (f.flags & Flag.END_STREAM) !== 0;
      if (f.flags & Flag.END_HEADERS) return { streamId: f.streamId, end, block: piece };
      // The view into the socket's bytes does not outlive this read: copy.
      this.pending = { streamId: f.streamId, end, parts: [Buffer.from(piece)], bytes: piece.length };
      return undefined;
    }
    const p = this.pending;
    if (!p || p.streamId !== f.streamId) {
      throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `CONTINUATION on stream ${f.streamId} out of place`);
    }
    p.bytes += f.payload.length;
    if (p.bytes > this.maxBytes) {
      throw new H2ProtocolError(H2Code.PROTOCOL_ERROR, `header block over ${this.maxBytes} bytes`);
    }
    p.parts.push(Buffer.from(f.payload));
    if (!(f.flags & Flag.END_HEADERS)) return undefined;
    this.pending = undefined;
    return { streamId: p.streamId, end: p.end, block: Buffer.concat(p.parts, p.bytes) };
  }
}
