// Protocol buffers wire format (proto3), only what etcd's messages use: varints (int64, uint64, bool, enum) and
// length-delimited fields (bytes, string, embedded messages). int64 values travel as decimal strings, as etcd3
// gave them, so revisions and lease IDs keep all 64 bits.

/** Bytes from the wire that are not the message they should be. */
export class ProtoDecodeError extends Error {
  override name = 'ProtoDecodeError';
}

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** An int64 as the caller may give it. */
export type Int64 = string | number | bigint;

const TWO_64 = 1n << 64n;

function toBigInt64(value: Int64, field: number): bigint {
  let v: bigint;
  try {
    v = typeof value === 'bigint' ? value : BigInt(value);
  } catch {
    throw new RangeError(`field ${field}: ${JSON.stringify(String(value))} is not an integer`);
  }
  if (v < -(1n << 63n) || v >= TWO_64) throw new RangeError(`field ${field}: ${v} does not fit 64 bits`);
  return v < 0n ? v + TWO_64 : v;
}

/** Appends fields to a growing buffer. Zero/empty values are left out (proto3 defaults). */
export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(size = 64) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private varint(n: number): void {
    this.room(10);
    while (n > 0x7f) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  private bigVarint(n: bigint): void {
    this.room(10);
    while (n > 0x7fn) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** int64/uint64 (negative int64 as its 64-bit two's complement, ten bytes). */
  int64(field: number, value: Int64 | undefined): this {
    if (value === undefined || value === 0 || value === '0' || value === '' || value === 0n) return this;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) {
      this.tag(field, WIRE_VARINT);
      this.varint(value);
      return this;
    }
    const v = toBigInt64(value, field);
    if (v === 0n) return this;
    this.tag(field, WIRE_VARINT);
    this.bigVarint(v);
    return this;
  }

  /** An int64 written even when 0 (a oneof member's presence is its tag). */
  int64Present(field: number, value: Int64): this {
    this.tag(field, WIRE_VARINT);
    this.bigVarint(toBigInt64(value, field));
    return this;
  }

  bool(field: number, value: boolean | undefined): this {
    if (!value) return this;
    this.tag(field, WIRE_VARINT);
    this.varint(1);
    return this;
  }

  enumValue(field: number, value: number): this {
    if (value === 0) return this;
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  bytes(field: number, value: Uint8Array | undefined): this {
    if (value === undefined || value.length === 0) return this;
    this.tag(field, WIRE_LEN);
    this.varint(value.length);
    this.room(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
    return this;
  }

  string(field: number, value: string | undefined): this {
    if (value === undefined || value === '') return this;
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  /** An embedded message, written even when empty (presence matters for oneof members). */
  message(field: number, body: Buffer): this {
    this.tag(field, WIRE_LEN);
    this.varint(body.length);
    this.room(body.length);
    body.copy(this.buf, this.pos);
    this.pos += body.length;
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Reads the fields of one message; every read is bounds-checked. */
export class ProtoReader {
  private pos = 0;
  wireType = 0;

  constructor(
    private readonly buf: Buffer,
    readonly what: string,
  ) {}

  private fail(reason: string): never {
    throw new ProtoDecodeError(`${this.what}: ${reason} at byte ${this.pos}`);
  }

  /** The next field number, or 0 at the end of the message. */
  next(): number {
    if (this.pos >= this.buf.length) return 0;
    const key = this.varintNumber();
    const field = Math.floor(key / 8);
    this.wireType = key & 7;
    if (field === 0) this.fail('field number 0');
    return field;
  }

  private varintRaw(): { lo: number; hi: number } {
    // Up to ten bytes; lo holds bits 0..27, hi bits 28..63.
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++] as number;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >> 4;
      } else hi += (b & 0x7f) * 2 ** (7 * i - 32);
      if ((b & 0x80) === 0) {
        if (i === 9 && b > 1) this.fail('varint longer than 64 bits');
        return { lo: lo >>> 0, hi };
      }
    }
    return this.fail('varint longer than ten bytes');
  }

  private varintNumber(): number {
    const { lo, hi } = this.varintRaw();
    const n = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(n)) this.fail('value too large');
    return n;
  }

  private expect(wireType: number, kind: string): void {
    if (this.wireType !== wireType) this.fail(`${kind} field with wire type ${this.wireType}`);
  }

  /** A signed int64 as a decimal string. */
  int64(): string {
    this.expect(WIRE_VARINT, 'integer');
    const { lo, hi } = this.varintRaw();
    if (hi < 2 ** 21) return String(hi * 2 ** 32 + lo);
    return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
  }

  /** An unsigned uint64 as a decimal string. */
  uint64(): string {
    this.expect(WIRE_VARINT, 'integer');
    const { lo, hi } = this.varintRaw();
    if (hi < 2 ** 21) return String(hi * 2 ** 32 + lo);
    return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
  }

  bool(): boolean {
    this.expect(WIRE_VARINT, 'bool');
    const n = this.varintNumber();
    if (n > 1) this.fail(`bool value ${n}`);
    return n === 1;
  }

  enumValue(max: number): number {
    this.expect(WIRE_VARINT, 'enum');
    const n = this.varintNumber();
    if (n > max) this.fail(`enum value ${n} out of range`);
    return n;
  }

  bytes(): Buffer {
    this.expect(WIRE_LEN, 'bytes');
    const len = this.varintNumber();
    if (len > this.buf.length - this.pos) this.fail(`length ${len} past the end`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    const raw = this.bytes();
    const text = raw.toString('utf8');
    if (text.includes('\ufffd') && !Buffer.from(text, 'utf8').equals(raw)) this.fail('string is not UTF-8');
    return text;
  }

  /** Skips a field this decoder does not use (proto3: unknown fields are allowed). */
  skip(): void {
    switch (this.wireType) {
      case WIRE_VARINT:
        this.varintRaw();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.bytes();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        this.fail(`unsupported wire type ${this.wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.buf.length - this.pos) this.fail('truncated field');
    this.pos += n;
  }
}
