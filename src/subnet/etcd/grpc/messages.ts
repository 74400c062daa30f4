// The etcd v3 messages weft sends and receives, encoded and decoded by hand. Field numbers from etcd's
// api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto. Field names follow the .proto (as the etcd3 package did);
// int64 fields are decimal strings. Decoders validate wire types, enums and required parts.
import { type Int64, ProtoDecodeError, ProtoReader, ProtoWriter } from './wire.js';

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

export interface KeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  /** Lease ID, '0' when none. */
  lease: string;
}

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer | undefined;
  limit?: Int64 | undefined;
  revision?: Int64 | undefined;
  serializable?: boolean | undefined;
  keys_only?: boolean | undefined;
  count_only?: boolean | undefined;
  min_mod_revision?: Int64 | undefined;
  max_mod_revision?: Int64 | undefined;
  min_create_revision?: Int64 | undefined;
  max_create_revision?: Int64 | undefined;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: string;
}

export interface PutRequest {
  key: Buffer;
  value?: Buffer | undefined;
  lease?: Int64 | undefined;
  prev_kv?: boolean | undefined;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv?: KeyValue | undefined;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end?: Buffer | undefined;
  prev_kv?: boolean | undefined;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: string;
  prev_kvs: KeyValue[];
}

export const COMPARE_RESULTS = ['Equal', 'Greater', 'Less', 'NotEqual'] as const;
export const COMPARE_TARGETS = ['Version', 'Create', 'Mod', 'Value', 'Lease'] as const;

export interface Compare {
  result: (typeof COMPARE_RESULTS)[number];
  target: (typeof COMPARE_TARGETS)[number];
  key: Buffer;
  range_end?: Buffer | undefined;
  /** The operand named by `target` (Version → version, Create → create_revision, …). */
  version?: Int64 | undefined;
  create_revision?: Int64 | undefined;
  mod_revision?: Int64 | undefined;
  value?: Buffer | undefined;
  lease?: Int64 | undefined;
}

export interface RequestOp {
  request_range?: RangeRequest | undefined;
  request_put?: PutRequest | undefined;
  request_delete_range?: DeleteRangeRequest | undefined;
}

export interface ResponseOp {
  response_range?: RangeResponse | undefined;
  response_put?: PutResponse | undefined;
  response_delete_range?: DeleteRangeResponse | undefined;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface LeaseGrantRequest {
  TTL: Int64;
  ID?: Int64 | undefined;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  ID: string;
  TTL: string;
  error: string;
}

export interface LeaseIdRequest {
  ID: Int64;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  ID: string;
  /** Seconds left; -1 when the lease is unknown (expired or revoked). */
  TTL: string;
  grantedTTL: string;
}

export interface WatchCreateRequest {
  key: Buffer;
  range_end?: Buffer | undefined;
  start_revision?: Int64 | undefined;
  progress_notify?: boolean | undefined;
  prev_kv?: boolean | undefined;
  watch_id?: Int64 | undefined;
}

export type WatchRequest =
  | { create_request: WatchCreateRequest }
  | { cancel_request: { watch_id: Int64 } }
  | { progress_request: Record<string, never> };

export interface WatchEvent {
  type: 'Put' | 'Delete';
  kv: KeyValue;
  prev_kv?: KeyValue | undefined;
}

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: WatchEvent[];
}

export interface AuthenticateRequest {
  name: string;
  password: string;
}

export interface AuthenticateResponse {
  header: ResponseHeader;
  token: string;
}

// ---- encoders ----

export function encodeRangeRequest(r: RangeRequest): Buffer {
  return new ProtoWriter()
    .bytes(1, r.key)
    .bytes(2, r.range_end)
    .int64(3, r.limit)
    .int64(4, r.revision)
    .bool(7, r.serializable)
    .bool(8, r.keys_only)
    .bool(9, r.count_only)
    .int64(10, r.min_mod_revision)
    .int64(11, r.max_mod_revision)
    .int64(12, r.min_create_revision)
    .int64(13, r.max_create_revision)
    .finish();
}

export function encodePutRequest(r: PutRequest): Buffer {
  return new ProtoWriter().bytes(1, r.key).bytes(2, r.value).int64(3, r.lease).bool(4, r.prev_kv).finish();
}

export function encodeDeleteRangeRequest(r: DeleteRangeRequest): Buffer {
  return new ProtoWriter().bytes(1, r.key).bytes(2, r.range_end).bool(3, r.prev_kv).finish();
}

/** The operand of a compare: exactly the one field its target names, written even when zero (a oneof). */
function encodeCompare(c: Compare): Buffer {
  const w = new ProtoWriter()
    .enumValue(1, COMPARE_RESULTS.indexOf(c.result))
    .enumValue(2, COMPARE_TARGETS.indexOf(c.target))
    .bytes(3, c.key);
  const operand = (field: number, value: Int64 | undefined): void => {
    w.int64Present(field, value ?? 0);
  };
  switch (c.target) {
    case 'Version':
      operand(4, c.version);
      break;
    case 'Create':
      operand(5, c.create_revision);
      break;
    case 'Mod':
      operand(6, c.mod_revision);
      break;
    case 'Value':
      w.message(7, c.value ?? Buffer.alloc(0));
      break;
    case 'Lease':
      operand(8, c.lease);
      break;
  }
  return w.bytes(64, c.range_end).finish();
}

function encodeRequestOp(op: RequestOp): Buffer {
  const w = new ProtoWriter();
  if (op.request_range) w.message(1, encodeRangeRequest(op.request_range));
  else if (op.request_put) w.message(2, encodePutRequest(op.request_put));
  else if (op.request_delete_range) w.message(3, encodeDeleteRangeRequest(op.request_delete_range));
  else throw new RangeError('a txn operation needs request_range, request_put or request_delete_range');
  return w.finish();
}

export function encodeTxnRequest(r: TxnRequest): Buffer {
  const w = new ProtoWriter(128);
  for (const c of r.compare) w.message(1, encodeCompare(c));
  for (const op of r.success) w.message(2, encodeRequestOp(op));
  for (const op of r.failure) w.message(3, encodeRequestOp(op));
  return w.finish();
}

export function encodeLeaseGrantRequest(r: LeaseGrantRequest): Buffer {
  return new ProtoWriter().int64(1, r.TTL).int64(2, r.ID).finish();
}

/** LeaseRevokeRequest and LeaseTimeToLiveRequest (without keys): `ID = 1`. */
export function encodeLeaseIdRequest(r: LeaseIdRequest): Buffer {
  return new ProtoWriter().int64(1, r.ID).finish();
}

export function encodeWatchRequest(r: WatchRequest): Buffer {
  const w = new ProtoWriter();
  if ('create_request' in r) {
    const c = r.create_request;
    w.message(
      1,
      new ProtoWriter()
        .bytes(1, c.key)
        .bytes(2, c.range_end)
        .int64(3, c.start_revision)
        .bool(4, c.progress_notify)
        .bool(6, c.prev_kv)
        .int64(7, c.watch_id)
        .finish(),
    );
  } else if ('cancel_request' in r) {
    w.message(2, new ProtoWriter().int64(1, r.cancel_request.watch_id).finish());
  } else {
    w.message(3, Buffer.alloc(0));
  }
  return w.finish();
}

export function encodeAuthenticateRequest(r: AuthenticateRequest): Buffer {
  return new ProtoWriter().string(1, r.name).string(2, r.password).finish();
}

// ---- decoders ----

function decodeHeader(buf: Buffer): ResponseHeader {
  const h: ResponseHeader = { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' };
  const r = new ProtoReader(buf, 'ResponseHeader');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) h.cluster_id = r.uint64();
    else if (f === 2) h.member_id = r.uint64();
    else if (f === 3) h.revision = r.int64();
    else if (f === 4) h.raft_term = r.uint64();
    else r.skip();
  }
  return h;
}

function requireHeader(h: ResponseHeader | undefined, what: string): ResponseHeader {
  if (!h) throw new ProtoDecodeError(`${what}: no response header`);
  return h;
}

/** The value of an absent bytes field (shared: decoded messages are read, never written to). */
const EMPTY = Buffer.alloc(0);

export function decodeKeyValue(buf: Buffer): KeyValue {
  const kv: KeyValue = {
    key: EMPTY,
    create_revision: '0',
    mod_revision: '0',
    version: '0',
    value: EMPTY,
    lease: '0',
  };
  const r = new ProtoReader(buf, 'KeyValue');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) kv.key = r.bytes();
    else if (f === 2) kv.create_revision = r.int64();
    else if (f === 3) kv.mod_revision = r.int64();
    else if (f === 4) kv.version = r.int64();
    else if (f === 5) kv.value = r.bytes();
    else if (f === 6) kv.lease = r.int64();
    else r.skip();
  }
  if (kv.key.length === 0) throw new ProtoDecodeError('KeyValue: empty key');
  return kv;
}

export function decodeRangeResponse(buf: Buffer): RangeResponse {
  let header: ResponseHeader | undefined;
  const out = { kvs: [] as KeyValue[], more: false, count: '0' };
  const r = new ProtoReader(buf, 'RangeResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) out.kvs.push(decodeKeyValue(r.bytes()));
    else if (f === 3) out.more = r.bool();
    else if (f === 4) out.count = r.int64();
    else r.skip();
  }
  return { header: requireHeader(header, 'RangeResponse'), ...out };
}

export function decodePutResponse(buf: Buffer): PutResponse {
  let header: ResponseHeader | undefined;
  let prev: KeyValue | undefined;
  const r = new ProtoReader(buf, 'PutResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) prev = decodeKeyValue(r.bytes());
    else r.skip();
  }
  return { header: requireHeader(header, 'PutResponse'), ...(prev ? { prev_kv: prev } : {}) };
}

export function decodeDeleteRangeResponse(buf: Buffer): DeleteRangeResponse {
  let header: ResponseHeader | undefined;
  const out = { deleted: '0', prev_kvs: [] as KeyValue[] };
  const r = new ProtoReader(buf, 'DeleteRangeResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) out.deleted = r.int64();
    else if (f === 3) out.prev_kvs.push(decodeKeyValue(r.bytes()));
    else r.skip();
  }
  return { header: requireHeader(header, 'DeleteRangeResponse'), ...out };
}

function decodeResponseOp(buf: Buffer): ResponseOp {
  const r = new ProtoReader(buf, 'ResponseOp');
  let op: ResponseOp | undefined;
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) op = { response_range: decodeRangeResponse(r.bytes()) };
    else if (f === 2) op = { response_put: decodePutResponse(r.bytes()) };
    else if (f === 3) op = { response_delete_range: decodeDeleteRangeResponse(r.bytes()) };
    else r.skip(); // response_txn (nested txns are never sent)
  }
  if (!op) throw new ProtoDecodeError('ResponseOp: no response');
  return op;
}

export function decodeTxnResponse(buf: Buffer): TxnResponse {
  let header: ResponseHeader | undefined;
  const out = { succeeded: false, responses: [] as ResponseOp[] };
  const r = new ProtoReader(buf, 'TxnResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) out.succeeded = r.bool();
    else if (f === 3) out.responses.push(decodeResponseOp(r.bytes()));
    else r.skip();
  }
  return { header: requireHeader(header, 'TxnResponse'), ...out };
}

export function decodeLeaseGrantResponse(buf: Buffer): LeaseGrantResponse {
  let header: ResponseHeader | undefined;
  const out = { ID: '0', TTL: '0', error: '' };
  const r = new ProtoReader(buf, 'LeaseGrantResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) out.ID = r.int64();
    else if (f === 3) out.TTL = r.int64();
    else if (f === 4) out.error = r.string();
    else r.skip();
  }
  if (out.error === '' && (out.ID === '0' || out.ID.startsWith('-'))) {
    throw new ProtoDecodeError(`LeaseGrantResponse: lease ID ${out.ID}`);
  }
  return { header: requireHeader(header, 'LeaseGrantResponse'), ...out };
}

export function decodeLeaseRevokeResponse(buf: Buffer): LeaseRevokeResponse {
  let header: ResponseHeader | undefined;
  const r = new ProtoReader(buf, 'LeaseRevokeResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else r.skip();
  }
  return { header: requireHeader(header, 'LeaseRevokeResponse') };
}

export function decodeLeaseTimeToLiveResponse(buf: Buffer): LeaseTimeToLiveResponse {
  let header: ResponseHeader | undefined;
  const out = { ID: '0', TTL: '0', grantedTTL: '0' };
  const r = new ProtoReader(buf, 'LeaseTimeToLiveResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) out.ID = r.int64();
    else if (f === 3) out.TTL = r.int64();
    else if (f === 4) out.grantedTTL = r.int64();
    else r.skip(); // keys (never asked for)
  }
  return { header: requireHeader(header, 'LeaseTimeToLiveResponse'), ...out };
}

function decodeEvent(buf: Buffer): WatchEvent {
  let type: WatchEvent['type'] = 'Put';
  let kv: KeyValue | undefined;
  let prev: KeyValue | undefined;
  const r = new ProtoReader(buf, 'Event');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) type = r.enumValue(1) === 0 ? 'Put' : 'Delete';
    else if (f === 2) kv = decodeKeyValue(r.bytes());
    else if (f === 3) prev = decodeKeyValue(r.bytes());
    else r.skip();
  }
  if (!kv) throw new ProtoDecodeError('Event: no key-value');
  return prev ? { type, kv, prev_kv: prev } : { type, kv };
}

export function decodeWatchResponse(buf: Buffer): WatchResponse {
  let header: ResponseHeader | undefined;
  const out = {
    watch_id: '0',
    created: false,
    canceled: false,
    compact_revision: '0',
    cancel_reason: '',
    fragment: false,
    events: [] as WatchEvent[],
  };
  const r = new ProtoReader(buf, 'WatchResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) out.watch_id = r.int64();
    else if (f === 3) out.created = r.bool();
    else if (f === 4) out.canceled = r.bool();
    else if (f === 5) out.compact_revision = r.int64();
    else if (f === 6) out.cancel_reason = r.string();
    else if (f === 7) out.fragment = r.bool();
    else if (f === 11) out.events.push(decodeEvent(r.bytes()));
    else r.skip();
  }
  return { header: requireHeader(header, 'WatchResponse'), ...out };
}

export function decodeAuthenticateResponse(buf: Buffer): AuthenticateResponse {
  let header: ResponseHeader | undefined;
  let token = '';
  const r = new ProtoReader(buf, 'AuthenticateResponse');
  for (let f = r.next(); f !== 0; f = r.next()) {
    if (f === 1) header = decodeHeader(r.bytes());
    else if (f === 2) token = r.string();
    else r.skip();
  }
  if (token === '' || /[\r\n\0]/.test(token)) {
    throw new ProtoDecodeError('AuthenticateResponse: no usable token');
  }
  return { header: requireHeader(header, 'AuthenticateResponse'), token };
}
