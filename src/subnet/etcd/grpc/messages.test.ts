// The hand-written codec against bytes worked out from the protobuf encoding rules, and against protobufjs
// reading etcd's own .proto files (the ones the etcd3 package ships) as an independent encoder/decoder.
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import * as m from './messages.js';
import { ProtoDecodeError, ProtoReader, ProtoWriter } from './wire.js';

const root = new protobuf.Root();
root.loadSync(createRequire(import.meta.url).resolve('etcd3/proto/rpc.proto'), { keepCase: true });
const type = (name: string) => root.lookupType(name);
/** protobufjs's view of our bytes, int64 as strings, enums as names. */
const asProto = (name: string, bytes: Buffer) =>
  type(name).toObject(type(name).decode(bytes), { longs: String, enums: String, bytes: Buffer });
/** Bytes protobufjs writes for `obj`. */
const fromProto = (name: string, obj: Record<string, unknown>) =>
  Buffer.from(type(name).encode(type(name).fromObject(obj)).finish());
const hex = (b: Buffer) => b.toString('hex');
const B = (s: string) => Buffer.from(s);

const header = {
  cluster_id: '14841639068965178418',
  member_id: '10276657743932975437',
  revision: '42',
  raft_term: '3',
};

describe('encoders: golden bytes', () => {
  it('RangeRequest: key, range_end, limit 500, keys_only; zero values left out', () => {
    const bytes = m.encodeRangeRequest({
      key: B('a'),
      range_end: B('b'),
      limit: 500,
      keys_only: true,
      revision: '0',
    });
    // 0a 01 'a' | 12 01 'b' | 18 f4 03 (500) | 40 01 (field 8 true)
    expect(hex(bytes)).toBe('0a0161120162' + '18f403' + '4001');
  });

  it('a compare on version 0 writes the oneof operand even though it is zero', () => {
    const bytes = m.encodeTxnRequest({
      compare: [{ key: B('k'), target: 'Version', result: 'Equal', version: 0 }],
      success: [{ request_put: { key: B('k'), value: B('v'), lease: '7' } }],
      failure: [{ request_range: { key: B('k') } }],
    });
    // compare: 0a 05 [1a 01 'k' 20 00]; success: 12 0a [12 08 [0a 01 'k' 12 01 'v' 18 07]];
    // failure: 1a 05 [0a 03 [0a 01 'k']]
    expect(hex(bytes)).toBe('0a051a016b2000' + '120a12080a016b1201761807' + '1a050a030a016b');
  });

  it('a compare on mod revision, NotEqual, with range_end (field 64)', () => {
    const bytes = m.encodeTxnRequest({
      compare: [{ key: B('k'), range_end: B('l'), target: 'Mod', result: 'NotEqual', mod_revision: '300' }],
      success: [],
      failure: [],
    });
    // 08 03 (NotEqual) 10 02 (Mod) 1a 01 'k' 30 ac 02 (300) 82 04 01 'l'
    expect(hex(bytes)).toBe('0a0e' + '0803' + '1002' + '1a016b' + '30ac02' + '820401' + '6c');
  });

  it('lease requests, a negative int64 and the watch requests', () => {
    expect(hex(m.encodeLeaseGrantRequest({ TTL: 60, ID: 0 }))).toBe('083c');
    expect(hex(m.encodeLeaseIdRequest({ ID: '7587862068245853957' }))).toBe(
      hex(fromProto('etcdserverpb.LeaseRevokeRequest', { ID: '7587862068245853957' })),
    );
    expect(hex(m.encodeWatchRequest({ cancel_request: { watch_id: -1 } }))).toBe(
      '120b08ffffffffffffffffff01',
    );
    expect(hex(m.encodeWatchRequest({ progress_request: {} }))).toBe('1a00');
    expect(
      hex(
        m.encodeWatchRequest({ create_request: { key: B('a'), start_revision: '5', progress_notify: true } }),
      ),
    ).toBe('0a07' + '0a0161' + '1805' + '2001');
    expect(hex(m.encodeAuthenticateRequest({ name: 'root', password: 'pw' }))).toBe(
      '0a04726f6f74' + '12027077',
    );
  });

  it('refuses an int64 that does not fit or is not a number', () => {
    expect(() => m.encodeLeaseIdRequest({ ID: '18446744073709551616' })).toThrow(RangeError);
    expect(() => m.encodeLeaseIdRequest({ ID: '12ab' })).toThrow(/not an integer/);
  });
});

describe('encoders: what protobufjs reads from them', () => {
  it('RangeRequest with every field weft sets', () => {
    const req = {
      key: B('/coreos.com/network/subnets/'),
      range_end: B('/coreos.com/network/subnets0'),
      limit: 500,
      revision: '9007199254740993', // above 2^53
      keys_only: true,
      count_only: true,
      min_create_revision: '12',
    };
    expect(asProto('etcdserverpb.RangeRequest', m.encodeRangeRequest(req))).toEqual({
      ...req,
      limit: '500',
    });
  });

  it('TxnRequest with compares of every target and every operation kind', () => {
    const txn: m.TxnRequest = {
      compare: [
        { key: B('a'), target: 'Version', result: 'Equal', version: 0 },
        { key: B('b'), target: 'Create', result: 'Greater', create_revision: '5' },
        { key: B('c'), target: 'Mod', result: 'Less', mod_revision: '6', range_end: B('d') },
        { key: B('e'), target: 'Value', result: 'NotEqual', value: B('x') },
        { key: B('f'), target: 'Lease', result: 'Equal', lease: '-3' },
      ],
      success: [{ request_put: { key: B('a'), value: B('{"PublicIP":"10.0.0.1"}'), lease: '123' } }],
      failure: [
        { request_range: { key: B('a') } },
        { request_delete_range: { key: B('b'), range_end: B('c') } },
      ],
    };
    const decoded = asProto('etcdserverpb.TxnRequest', m.encodeTxnRequest(txn));
    // Zero enums (EQUAL, VERSION) are not on the wire, so protobufjs leaves them out.
    expect(decoded.compare).toEqual([
      { key: B('a'), version: '0' },
      { result: 'Greater', target: 'Create', key: B('b'), create_revision: '5' },
      { result: 'Less', target: 'Mod', key: B('c'), mod_revision: '6', range_end: B('d') },
      { result: 'NotEqual', target: 'Value', key: B('e'), value: B('x') },
      { target: 'Lease', key: B('f'), lease: '-3' },
    ]);
    expect(decoded.success).toEqual([
      { request_put: { key: B('a'), value: B('{"PublicIP":"10.0.0.1"}'), lease: '123' } },
    ]);
    expect(decoded.failure).toEqual([
      { request_range: { key: B('a') } },
      { request_delete_range: { key: B('b'), range_end: B('c') } },
    ]);
  });

  it('WatchCreateRequest', () => {
    const bytes = m.encodeWatchRequest({
      create_request: {
        key: B('/p/'),
        range_end: B('/p0'),
        start_revision: '77',
        progress_notify: true,
        prev_kv: true,
      },
    });
    expect(asProto('etcdserverpb.WatchRequest', bytes)).toEqual({
      create_request: {
        key: B('/p/'),
        range_end: B('/p0'),
        start_revision: '77',
        progress_notify: true,
        prev_kv: true,
      },
    });
  });
});

describe('decoders: bytes protobufjs wrote', () => {
  const kv = (key: string, value: string, lease = '0') => ({
    key: B(key),
    create_revision: '10',
    mod_revision: '12',
    version: '2',
    value: B(value),
    lease,
  });

  it('RangeResponse with several key-values, more and count', () => {
    const obj = { header, kvs: [kv('/a', '1', '7587862068245853957'), kv('/b', '')], more: true, count: '5' };
    expect(m.decodeRangeResponse(fromProto('etcdserverpb.RangeResponse', obj))).toEqual(obj);
  });

  it('TxnResponse with a range response (the key as it is after a refused create)', () => {
    const obj = {
      header,
      succeeded: false,
      responses: [{ response_range: { header, kvs: [kv('/a', 'x')], more: false, count: '1' } }],
    };
    expect(m.decodeTxnResponse(fromProto('etcdserverpb.TxnResponse', obj))).toEqual(obj);
    const ok = { header, succeeded: true, responses: [{ response_put: { header } }] };
    expect(m.decodeTxnResponse(fromProto('etcdserverpb.TxnResponse', ok))).toEqual(ok);
  });

  it('lease responses', () => {
    const grant = { header, ID: '7587862068245853957', TTL: '60', error: '' };
    expect(m.decodeLeaseGrantResponse(fromProto('etcdserverpb.LeaseGrantResponse', grant))).toEqual(grant);
    const ttl = { header, ID: '5', TTL: '-1', grantedTTL: '0' };
    expect(m.decodeLeaseTimeToLiveResponse(fromProto('etcdserverpb.LeaseTimeToLiveResponse', ttl))).toEqual(
      ttl,
    );
    expect(m.decodeLeaseRevokeResponse(fromProto('etcdserverpb.LeaseRevokeResponse', { header }))).toEqual({
      header,
    });
  });

  it('WatchResponse: events, compaction, cancel reason and the -1 watch id of a progress answer', () => {
    const obj = {
      header,
      watch_id: '-1',
      created: true,
      canceled: true,
      compact_revision: '99',
      cancel_reason: 'mvcc: required revision has been compacted',
      fragment: false,
      events: [
        { type: 'Put', kv: kv('/a', 'v') },
        {
          type: 'Delete',
          kv: { ...kv('/b', ''), create_revision: '0', version: '0' },
          prev_kv: kv('/b', 'old'),
        },
      ],
    };
    const decoded = m.decodeWatchResponse(fromProto('etcdserverpb.WatchResponse', obj));
    expect(decoded).toEqual({
      ...obj,
      events: [
        { type: 'Put', kv: kv('/a', 'v') },
        {
          type: 'Delete',
          kv: { ...kv('/b', ''), create_revision: '0', version: '0' },
          prev_kv: kv('/b', 'old'),
        },
      ],
    });
  });

  it('AuthenticateResponse', () => {
    const obj = { header, token: 'XyZ.123' };
    expect(m.decodeAuthenticateResponse(fromProto('etcdserverpb.AuthenticateResponse', obj))).toEqual(obj);
  });

  it('skips fields it does not know (a newer etcd may send more)', () => {
    const bytes = Buffer.concat([
      fromProto('etcdserverpb.RangeResponse', { header, count: '1' }),
      Buffer.from('f80701', 'hex'), // field 127 varint
      Buffer.from('fa070100', 'hex'), // field 127 bytes
      Buffer.from('fd0701020304', 'hex'), // field 127 fixed32
      Buffer.from('f9070102030405060708', 'hex'), // field 127 fixed64
    ]);
    expect(m.decodeRangeResponse(bytes).count).toBe('1');
  });
});

describe('decoders: garbage is an error, never a crash', () => {
  const ok = fromProto('etcdserverpb.RangeResponse', { header, kvs: [{ key: B('/a'), value: B('v') }] });

  it('names what is wrong', () => {
    expect(() => m.decodeRangeResponse(Buffer.alloc(0))).toThrow(/RangeResponse: no response header/);
    expect(() => m.decodeRangeResponse(ok.subarray(0, ok.length - 1))).toThrow(ProtoDecodeError);
    // `more` (field 3) as a length-delimited field.
    expect(() => m.decodeRangeResponse(Buffer.from('1a0100', 'hex'))).toThrow(/bool field with wire type 2/);
    // bool 2, enum out of range, a varint of eleven bytes, field 0, a group.
    expect(() => m.decodeRangeResponse(Buffer.from('1802', 'hex'))).toThrow(/bool value 2/);
    const event = (bytes: string) =>
      Buffer.concat([fromProto('etcdserverpb.WatchResponse', { header }), Buffer.from(bytes, 'hex')]);
    expect(() => m.decodeWatchResponse(event('5a020802'))).toThrow(/enum value 2 out of range/);
    expect(() => m.decodeWatchResponse(event('5a020800'))).toThrow(/Event: no key-value/);
    expect(() => m.decodeRangeResponse(Buffer.from('20ffffffffffffffffffff01', 'hex'))).toThrow(
      /longer than/,
    );
    expect(() => m.decodeRangeResponse(Buffer.from('0008', 'hex'))).toThrow(/field number 0/);
    expect(() => m.decodeRangeResponse(Buffer.from('0b', 'hex'))).toThrow(/wire type 3/);
    expect(() => m.decodeRangeResponse(Buffer.from('12ffffff0f', 'hex'))).toThrow(/past the end/);
    // A key-value without a key, a lease grant without an ID, an unusable token.
    expect(() => m.decodeRangeResponse(Buffer.concat([ok, Buffer.from('12021001', 'hex')]))).toThrow(
      /empty key/,
    );
    expect(() =>
      m.decodeLeaseGrantResponse(fromProto('etcdserverpb.LeaseGrantResponse', { header, TTL: 5 })),
    ).toThrow(/lease ID 0/);
    expect(() =>
      m.decodeAuthenticateResponse(fromProto('etcdserverpb.AuthenticateResponse', { header, token: 'a\nb' })),
    ).toThrow(/no usable token/);
  });

  it('random bytes and every truncation of a valid message: a value or a ProtoDecodeError', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const inputs: Buffer[] = [];
    for (let i = 0; i < ok.length; i++) inputs.push(ok.subarray(0, i));
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(ok);
      b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      inputs.push(b);
      inputs.push(
        Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256))),
      );
    }
    let rejected = 0;
    for (const input of inputs) {
      for (const decode of [m.decodeRangeResponse, m.decodeWatchResponse, m.decodeTxnResponse]) {
        try {
          decode(input);
        } catch (err) {
          expect(err).toBeInstanceOf(ProtoDecodeError);
          rejected += 1;
        }
      }
    }
    expect(rejected).toBeGreaterThan(inputs.length);
  });
});

describe('wire primitives', () => {
  it('round-trips int64 across the 32- and 53-bit boundaries and negatives', () => {
    for (const v of [
      '1',
      '127',
      '128',
      '4294967295',
      '4294967296',
      '9007199254740991',
      '9007199254740993',
      '9223372036854775807',
      '-1',
      '-9223372036854775808',
    ]) {
      const bytes = new ProtoWriter().int64(1, v).finish();
      const r = new ProtoReader(bytes, 'test');
      expect(r.next()).toBe(1);
      expect(r.int64()).toBe(v);
      expect(r.next()).toBe(0);
    }
  });
});
