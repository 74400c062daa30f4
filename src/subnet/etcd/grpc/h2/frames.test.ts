// The HTTP/2 frame layer's pure parts: the reader, header blocks split and joined, the control frames' checks
// and the receive window's accounting.
import { describe, expect, it } from 'vitest';
import {
  Flag,
  type Frame,
  FrameReader,
  FrameType,
  frame,
  H2Code,
  H2ProtocolError,
  HeaderBlockReader,
  headerFrames,
  parseGoaway,
  parseSettings,
  parseWindowUpdate,
  Setting,
  settingsFrame,
} from './frames.js';
import { ReceiveWindow } from './stream.js';

function frames(bytes: Buffer, max?: number): Frame[] {
  const out: Frame[] = [];
  new FrameReader(max).push(bytes, (f) => out.push({ ...f, payload: Buffer.from(f.payload) }));
  return out;
}

const codeOf = (fn: () => unknown): number | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof H2ProtocolError) return err.code;
    throw err;
  }
  return undefined;
};

describe('HTTP/2 frames', () => {
  it('splits a header block over HEADERS and CONTINUATIONs and joins it back', () => {
    const block = Buffer.from(Array.from({ length: 40_000 }, (_, i) => i & 255));
    const split = frames(headerFrames(5, block, 16_384, true));
    expect(split.map((f) => [f.type, f.flags, f.streamId, f.payload.length])).toEqual([
      [FrameType.HEADERS, Flag.END_STREAM, 5, 16_384],
      [FrameType.CONTINUATION, 0, 5, 16_384],
      [FrameType.CONTINUATION, Flag.END_HEADERS, 5, 40_000 - 2 * 16_384],
    ]);
    const reader = new HeaderBlockReader(256 * 1024);
    expect(reader.push(split[0] as Frame)).toBeUndefined();
    expect(reader.open).toBe(true);
    expect(reader.push(split[1] as Frame)).toBeUndefined();
    expect(reader.push(split[2] as Frame)).toEqual({ streamId: 5, end: true, block });
    expect(reader.open).toBe(false);
  });

  it('refuses a CONTINUATION out of place, a block over its limit and a frame over the maximum size', () => {
    const [first, second] = frames(headerFrames(1, Buffer.alloc(20_000), 16_384, false)) as Frame[];
    expect(codeOf(() => new HeaderBlockReader(1 << 20).push(second as Frame))).toBe(H2Code.PROTOCOL_ERROR);
    const small = new HeaderBlockReader(18_000);
    small.push(first as Frame);
    expect(codeOf(() => small.push(second as Frame))).toBe(H2Code.PROTOCOL_ERROR);
    expect(codeOf(() => frames(frame(FrameType.DATA, 0, 1, Buffer.alloc(20_000))))).toBe(
      H2Code.FRAME_SIZE_ERROR,
    );
  });

  it('checks SETTINGS, GOAWAY and WINDOW_UPDATE payloads', () => {
    const settings = frames(settingsFrame([[Setting.MAX_CONCURRENT_STREAMS, 7]]))[0] as Frame;
    expect(parseSettings(settings)).toEqual({ ack: false, settings: [[Setting.MAX_CONCURRENT_STREAMS, 7]] });
    const bad = (id: number, value: number) => frames(settingsFrame([[id, value]]))[0] as Frame;
    expect(codeOf(() => parseSettings(bad(Setting.INITIAL_WINDOW_SIZE, 2 ** 31)))).toBe(
      H2Code.FLOW_CONTROL_ERROR,
    );
    expect(codeOf(() => parseSettings(bad(Setting.MAX_FRAME_SIZE, 100)))).toBe(H2Code.PROTOCOL_ERROR);
    const ackWithPayload = {
      type: FrameType.SETTINGS,
      flags: Flag.ACK,
      streamId: 0,
      payload: Buffer.alloc(6),
    };
    expect(codeOf(() => parseSettings(ackWithPayload))).toBe(H2Code.FRAME_SIZE_ERROR);
    const goaway = {
      type: FrameType.GOAWAY,
      flags: 0,
      streamId: 0,
      payload: Buffer.from('800000070000000b', 'hex'),
    };
    expect(parseGoaway(goaway)).toEqual({ lastStreamId: 7, code: H2Code.ENHANCE_YOUR_CALM });
    const update = { type: FrameType.WINDOW_UPDATE, flags: 0, streamId: 3, payload: Buffer.alloc(3) };
    expect(codeOf(() => parseWindowUpdate(update))).toBe(H2Code.FRAME_SIZE_ERROR);
  });

  it('gives the receive window back from half of it on, and refuses data beyond it', () => {
    const w = new ReceiveWindow(100);
    expect(w.receive(30)).toBe(true);
    expect(w.take()).toBe(0);
    expect(w.receive(30)).toBe(true);
    expect(w.take()).toBe(60);
    expect(w.receive(100)).toBe(true);
    expect(w.receive(1)).toBe(false);
  });
});
