// weft's etcd v3 client: the KV, Lease, Watch and Auth calls weft makes, over gRPC on weft's own HTTP/2
// connection (h2/), across several endpoints. Every unary call has a deadline. A call that failed on the transport is sent again to
// the next endpoint only when that cannot write twice (an idempotent method, or a request that never left
// this process); an endpoint that failed three times in a row is skipped for a second. With a username, each
// endpoint's connection authenticates once and again when etcd says the token is invalid.
import { EventEmitter } from 'node:events';
import { sleep } from '../../../core/index.js';
import {
  classifyEtcdError,
  EtcdInvalidAuthTokenError,
  EtcdProtocolError,
  GrpcError,
  GrpcStatus,
} from './errors.js';
import * as m from './messages.js';
import { type ChannelOptions, GrpcChannel, type GrpcStream } from './transport.js';
import { ProtoDecodeError } from './wire.js';

/** Thrown instead of calling an endpoint that failed repeatedly in the last second. */
export class EtcdEndpointSkippedError extends Error {
  override name = 'EtcdEndpointSkippedError';
}

/**
 * Calls that read only (or whose repetition changes nothing) and may be sent again after a transport error.
 * `Txn`, `Put`, `DeleteRange` and `LeaseGrant` are not here: a write whose reply was lost may have
 * committed, and sending it again either fails its compare (and the caller would act on a false "lost") or
 * writes twice (an orphan lease). Their callers read back and decide (see acquire.ts and keep.ts).
 */
export const IDEMPOTENT_ETCD_METHODS: ReadonlySet<string> = new Set([
  'range',
  'leaseTimeToLive',
  'leaseRevoke',
  'authenticate',
]);

export interface EtcdRpcClientOptions {
  /** Checked `http(s)://host:port` URLs, one scheme. */
  endpoints: string[];
  tls?: ChannelOptions['tls'];
  auth?: { username: string; password: string } | undefined;
  callTimeoutMs: number;
}

const ATTEMPTS = 2;
const RETRY_DELAY_MS = 50;
const BREAKER_THRESHOLD = 3;
const BREAKER_OPEN_MS = 1_000;

class Endpoint {
  failures = 0;
  openUntil = 0;
  token: Promise<string> | undefined;
  constructor(readonly channel: GrpcChannel) {}
}

/** A watch stream: `data` (WatchResponse), `error`, `end`; requests by `write`, stopped by `cancel`. */
export class WatchStream extends EventEmitter {
  constructor(private readonly stream: GrpcStream) {
    super();
    stream.on('message', (buf: Buffer) => {
      let res: m.WatchResponse;
      try {
        res = m.decodeWatchResponse(buf);
      } catch (err) {
        this.emit('error', protocolError('Watch', err));
        stream.cancel();
        return;
      }
      this.emit('data', res);
    });
    stream.on('error', (err: GrpcError) => this.emit('error', classifyEtcdError(err)));
    stream.on('end', () => this.emit('end'));
  }

  write(req: m.WatchRequest): void {
    this.stream.write(m.encodeWatchRequest(req));
  }

  cancel(): void {
    this.stream.cancel();
  }

  /** The endpoint this stream talks to. */
  getPeer(): string {
    return this.stream.peer;
  }
}

function protocolError(method: string, err: unknown): EtcdProtocolError {
  const reason = err instanceof ProtoDecodeError ? err.message : String(err);
  return new EtcdProtocolError(GrpcStatus.INTERNAL, `${method}: malformed reply from etcd: ${reason}`);
}

/** What the rest of weft uses of a client (an etcd3 `Etcd3` has the same shape: bench/ compares the two). */
export type EtcdRpc = Pick<EtcdRpcClient, 'kv' | 'leaseClient' | 'watchClient' | 'close'>;

export class EtcdRpcClient {
  private readonly endpoints: Endpoint[];
  private current = 0;

  constructor(private readonly o: EtcdRpcClientOptions) {
    if (o.endpoints.length === 0) throw new RangeError('at least one endpoint is required');
    this.endpoints = o.endpoints.map((endpoint) => new Endpoint(new GrpcChannel({ endpoint, tls: o.tls })));
  }

  readonly kv = {
    range: (req: m.RangeRequest): Promise<m.RangeResponse> =>
      this.call('range', '/etcdserverpb.KV/Range', m.encodeRangeRequest(req), m.decodeRangeResponse),
    put: (req: m.PutRequest): Promise<m.PutResponse> =>
      this.call('put', '/etcdserverpb.KV/Put', m.encodePutRequest(req), m.decodePutResponse),
    txn: (req: m.TxnRequest): Promise<m.TxnResponse> =>
      this.call('txn', '/etcdserverpb.KV/Txn', m.encodeTxnRequest(req), m.decodeTxnResponse),
  };

  readonly leaseClient = {
    leaseGrant: (req: m.LeaseGrantRequest): Promise<m.LeaseGrantResponse> =>
      this.call(
        'leaseGrant',
        '/etcdserverpb.Lease/LeaseGrant',
        m.encodeLeaseGrantRequest(req),
        m.decodeLeaseGrantResponse,
      ),
    leaseRevoke: (req: m.LeaseIdRequest): Promise<m.LeaseRevokeResponse> =>
      this.call(
        'leaseRevoke',
        '/etcdserverpb.Lease/LeaseRevoke',
        m.encodeLeaseIdRequest(req),
        m.decodeLeaseRevokeResponse,
      ),
    leaseTimeToLive: (req: m.LeaseIdRequest): Promise<m.LeaseTimeToLiveResponse> =>
      this.call(
        'leaseTimeToLive',
        '/etcdserverpb.Lease/LeaseTimeToLive',
        m.encodeLeaseIdRequest(req),
        m.decodeLeaseTimeToLiveResponse,
      ),
  };

  readonly watchClient = {
    /** Opens a watch stream on the endpoint in use (after authenticating there). */
    watch: async (): Promise<WatchStream> => {
      const ep = this.pick();
      const metadata = await this.metadata(ep);
      return new WatchStream(ep.channel.stream('/etcdserverpb.Watch/Watch', metadata));
    },
  };

  close(): void {
    for (const ep of this.endpoints) ep.channel.close();
  }

  /** The endpoint in use, or the next one not being skipped. */
  private pick(): Endpoint {
    const now = Date.now();
    for (let i = 0; i < this.endpoints.length; i++) {
      const index = (this.current + i) % this.endpoints.length;
      const ep = this.endpoints[index] as Endpoint;
      if (now >= ep.openUntil) {
        this.current = index;
        return ep;
      }
    }
    throw new EtcdEndpointSkippedError('every etcd endpoint failed recently; skipped');
  }

  private failed(ep: Endpoint, err: unknown): void {
    if (!(err instanceof GrpcError) || !err.recoverable) return;
    ep.failures += 1;
    if (ep.failures >= BREAKER_THRESHOLD) {
      ep.failures = 0;
      ep.openUntil = Date.now() + BREAKER_OPEN_MS;
    }
    // The next call goes to the next endpoint.
    if (this.endpoints[this.current] === ep) this.current = (this.current + 1) % this.endpoints.length;
  }

  private async metadata(ep: Endpoint): Promise<Record<string, string>> {
    if (!this.o.auth) return {};
    ep.token ??= this.authenticate(ep);
    try {
      return { token: await ep.token };
    } catch (err) {
      ep.token = undefined;
      throw err;
    }
  }

  private async authenticate(ep: Endpoint): Promise<string> {
    const auth = this.o.auth as { username: string; password: string };
    const body = m.encodeAuthenticateRequest({ name: auth.username, password: auth.password });
    const reply = await this.unaryOn(ep, '/etcdserverpb.Auth/Authenticate', body, {});
    try {
      return m.decodeAuthenticateResponse(reply).token;
    } catch (err) {
      throw protocolError('Authenticate', err);
    }
  }

  private async unaryOn(
    ep: Endpoint,
    path: string,
    body: Buffer,
    metadata: Record<string, string>,
  ): Promise<Buffer> {
    try {
      return await ep.channel.unary(path, body, metadata, this.o.callTimeoutMs);
    } catch (err) {
      throw err instanceof GrpcError ? classifyEtcdError(err) : err;
    }
  }

  private async call<T>(method: string, path: string, body: Buffer, decode: (buf: Buffer) => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const ep = this.pick();
      try {
        let reply: Buffer;
        try {
          reply = await this.unaryOn(ep, path, body, await this.metadata(ep));
        } catch (err) {
          // A refused token: etcd did nothing. Authenticate again and send once more.
          if (!(err instanceof EtcdInvalidAuthTokenError)) throw err;
          ep.token = undefined;
          reply = await this.unaryOn(ep, path, body, await this.metadata(ep));
        }
        ep.failures = 0;
        try {
          return decode(reply);
        } catch (err) {
          throw protocolError(method, err);
        }
      } catch (err) {
        this.failed(ep, err);
        const retryable =
          err instanceof GrpcError &&
          err.recoverable &&
          (IDEMPOTENT_ETCD_METHODS.has(method) || err.neverSent);
        if (attempt >= ATTEMPTS || !retryable) throw err;
        await sleep(RETRY_DELAY_MS * attempt);
      }
    }
  }
}
