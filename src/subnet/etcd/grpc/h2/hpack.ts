// HPACK (RFC 7541) for weft's HTTP/2 gRPC client: a decoder for the header blocks etcd's Go server sends
// (golang.org/x/net/http2/hpack: dynamic table, Huffman when shorter) and a stateless encoder for our requests.
//
// Strings are bytes: names and values are decoded and encoded as 'latin1', one byte per char. gRPC metadata is
// ASCII and the peer percent-encodes grpc-message, so no header we read or write needs UTF-8; a char above 0xff
// cannot be encoded and encodeHeaders rejects it.
import { HuffmanError, huffmanDecode } from './huffman.js';

/** A header block that is not valid HPACK; the message says what and at which byte offset of the block. */
export class HpackError extends Error {
  override name = 'HpackError';
}

export type HeaderList = Array<[name: string, value: string]>;

/** RFC 7541 Appendix A. Index 1 is STATIC_TABLE[0]. */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61

/** Name -> its first (lowest) static index, for the encoder. */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

/** RFC 7541 section 4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;
/** Integers above this are rejected: nothing in a header block legitimately needs more (and it keeps int math). */
const MAX_INT = 0x7fffffff;

/**
 * The decoding context of one connection's header blocks (the peer's encoder's dynamic table mirrored). Blocks must
 * be decoded in the order they arrive on the connection. After an HpackError the table may hold part of the failed
 * block's insertions: the connection must end (HTTP/2 COMPRESSION_ERROR, RFC 9113 section 4.3).
 */
export class HpackDecoder {
  private readonly maxTableSize: number;
  /** The table's current maximum, set by dynamic table size updates (never above maxTableSize). */
  private capacity: number;
  private size = 0;
  // The dynamic table as a ring: the newest entry at `head - 1`, `count` entries back from there.
  private names: string[];
  private values: string[];
  private head = 0;
  private count = 0;
  // Decoding position, a field so the helpers can advance it without allocating result objects.
  private pos = 0;

  constructor(maxTableSize = 4096) {
    if (!Number.isInteger(maxTableSize) || maxTableSize < 0 || maxTableSize > MAX_INT) {
      throw new RangeError(`HpackDecoder: maxTableSize ${maxTableSize} is not an integer in 0..${MAX_INT}`);
    }
    this.maxTableSize = maxTableSize;
    this.capacity = maxTableSize;
    // The most entries the table can hold: each takes at least 32 octets.
    const slots = Math.floor(maxTableSize / ENTRY_OVERHEAD) + 1;
    this.names = new Array<string>(slots).fill('');
    this.values = new Array<string>(slots).fill('');
  }

  /** The dynamic table's size in octets (RFC 7541 section 4.1). */
  get tableSize(): number {
    return this.size;
  }

  /** The dynamic table's current maximum size (the last size update, else the constructor's maximum). */
  get tableCapacity(): number {
    return this.capacity;
  }

  /** A copy of the dynamic table, newest entry first (dynamic index 62 first). */
  tableEntries(): HeaderList {
    const out: HeaderList = [];
    for (let i = 0; i < this.count; i++) {
      const slot = this.slot(i);
      out.push([this.names[slot] as string, this.values[slot] as string]);
    }
    return out;
  }

  /** Decodes one complete header block (HEADERS + CONTINUATION payloads joined). Throws HpackError. */
  decode(block: Buffer): HeaderList {
    const out: HeaderList = [];
    const end = block.length;
    this.pos = 0;
    let fieldSeen = false;
    while (this.pos < end) {
      const start = this.pos;
      const b = block[start] as number;
      if (b & 0x80) {
        // Indexed header field (section 6.1).
        const index = this.integer(block, 7);
        if (index === 0) throw new HpackError(`indexed header field with index 0 at byte ${start}`);
        if (index <= STATIC_COUNT) {
          const entry = STATIC_TABLE[index - 1] as readonly [string, string];
          out.push([entry[0], entry[1]]);
        } else {
          const slot = this.dynamicSlot(index, start);
          out.push([this.names[slot] as string, this.values[slot] as string]);
        }
        fieldSeen = true;
      } else if (b & 0x40) {
        // Literal with incremental indexing (section 6.2.1).
        const name = this.fieldName(block, 6, start);
        const value = this.string(block);
        this.insert(name, value);
        out.push([name, value]);
        fieldSeen = true;
      } else if (b & 0x20) {
        // Dynamic table size update (section 6.3): only at the start of a block.
        if (fieldSeen)
          throw new HpackError(`dynamic table size update after a header field at byte ${start}`);
        const size = this.integer(block, 5);
        if (size > this.maxTableSize) {
          throw new HpackError(
            `dynamic table size update to ${size} above the maximum ${this.maxTableSize} at byte ${start}`,
          );
        }
        this.capacity = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000xxxx) or never indexed (0001xxxx) (sections 6.2.2, 6.2.3).
        const name = this.fieldName(block, 4, start);
        const value = this.string(block);
        out.push([name, value]);
        fieldSeen = true;
      }
    }
    return out;
  }

  /** Reads an integer with an N-bit prefix at this.pos (section 5.1), advancing past it. */
  private integer(block: Buffer, prefixBits: number): number {
    const start = this.pos;
    const max = (1 << prefixBits) - 1;
    let value = (block[this.pos++] as number) & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.pos >= block.length) throw new HpackError(`truncated integer at byte ${start}`);
      const b = block[this.pos++] as number;
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INT) throw new HpackError(`integer above ${MAX_INT} at byte ${start}`);
      if ((b & 0x80) === 0) return value;
      shift += 7;
    }
  }

  /** The name of a literal field: an index into the tables (the N-bit prefix), or 0 and a literal string. */
  private fieldName(block: Buffer, prefixBits: number, start: number): string {
    const index = this.integer(block, prefixBits);
    if (index === 0) return this.string(block);
    if (index <= STATIC_COUNT) return (STATIC_TABLE[index - 1] as readonly [string, string])[0];
    return this.names[this.dynamicSlot(index, start)] as string;
  }

  /** Reads a string literal (section 5.2) at this.pos, raw or Huffman-coded, advancing past it. */
  private string(block: Buffer): string {
    const start = this.pos;
    if (start >= block.length) throw new HpackError(`truncated block: string expected at byte ${start}`);
    const huffman = ((block[start] as number) & 0x80) !== 0;
    const length = this.integer(block, 7);
    const from = this.pos;
    const to = from + length;
    if (to > block.length) {
      throw new HpackError(
        `truncated string at byte ${start}: length ${length} but ${block.length - from} bytes left in the block`,
      );
    }
    this.pos = to;
    if (!huffman) return block.toString('latin1', from, to);
    try {
      return huffmanDecode(block, from, to);
    } catch (err) {
      if (err instanceof HuffmanError)
        throw new HpackError(`bad Huffman string at byte ${start}: ${err.message}`);
      throw err;
    }
  }

  /** The ring slot of dynamic entry i (0 = newest). */
  private slot(i: number): number {
    const n = this.names.length;
    return (this.head - 1 - i + n) % n;
  }

  /** The ring slot for a field index above the static table, or HpackError when there is no such entry. */
  private dynamicSlot(index: number, at: number): number {
    const i = index - STATIC_COUNT - 1;
    if (i >= this.count) {
      throw new HpackError(
        `index ${index} at byte ${at} is beyond the tables (${STATIC_COUNT} static + ${this.count} dynamic entries)`,
      );
    }
    return this.slot(i);
  }

  /** Evicts the oldest entries until `room` more octets fit under the capacity (section 4.4). */
  private evict(room: number): void {
    while (this.count > 0 && this.size + room > this.capacity) {
      const oldest = this.slot(this.count - 1);
      this.size -=
        (this.names[oldest] as string).length + (this.values[oldest] as string).length + ENTRY_OVERHEAD;
      this.names[oldest] = '';
      this.values[oldest] = '';
      this.count--;
    }
  }

  /** Adds an entry (section 4.4): evicts to make room; an entry larger than the table just empties it. */
  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(entrySize);
    if (entrySize > this.capacity) return; // evict() has emptied the table
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.head = (this.head + 1) % this.names.length;
    this.count++;
    this.size += entrySize;
  }
}

/** Chars a latin1 string may not hold: anything above one byte would be silently truncated. */
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

/**
 * Encodes a request's headers: each field as "literal without indexing" (section 6.2.2) with the name as a
 * static table index when the name is in it, else a literal name; strings raw (no Huffman), written as latin1.
 * Stateless, so it needs no dynamic table and no acknowledgement of ours from the peer.
 * Throws RangeError on a name or value with a char above 0xff.
 */
export function encodeHeaders(headers: HeaderList): Buffer {
  let total = 0;
  for (const [name, value] of headers) {
    if (NOT_LATIN1.test(name) || NOT_LATIN1.test(value)) {
      throw new RangeError(`encodeHeaders: header ${JSON.stringify(name)} has a char above 0xff`);
    }
    const index = STATIC_NAME_INDEX.get(name);
    total += index === undefined ? 1 + integerLength(name.length, 7) + name.length : integerLength(index, 4);
    total += integerLength(value.length, 7) + value.length;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const [name, value] of headers) {
    const index = STATIC_NAME_INDEX.get(name);
    if (index === undefined) {
      out[pos++] = 0x00;
      pos = writeInteger(out, pos, 0x00, 7, name.length);
      pos += out.write(name, pos, 'latin1');
    } else {
      pos = writeInteger(out, pos, 0x00, 4, index);
    }
    pos = writeInteger(out, pos, 0x00, 7, value.length);
    pos += out.write(value, pos, 'latin1');
  }
  return out;
}

/** Bytes an integer takes with an N-bit prefix (section 5.1). */
function integerLength(value: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) return 1;
  let n = 2;
  for (let rest = value - max; rest >= 0x80; rest = Math.floor(rest / 0x80)) n++;
  return n;
}

/** Writes an integer with an N-bit prefix, `flags` in the first byte's high bits; returns the new position. */
function writeInteger(out: Buffer, pos: number, flags: number, prefixBits: number, value: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[pos++] = flags | value;
    return pos;
  }
  out[pos++] = flags | max;
  let rest = value - max;
  while (rest >= 0x80) {
    out[pos++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[pos++] = rest;
  return pos;
}
