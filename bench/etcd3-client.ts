// The etcd3-package client weft used before its own (src/subnet/etcd/grpc/), kept for the benches to measure
// against (bench/etcd-clients.ts, bench/leases.ts --client): the same deadlines, endpoint breaker and
// idempotent-only retry, on grpc-js + protobufjs.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Etcd3, type IOptions, isRecoverableError } from 'etcd3';
import { sleep } from '../src/core/index.js';
import {
  checkEndpoints,
  DEFAULT_CALL_TIMEOUT_MS,
  EtcdClientConfigError,
  type EtcdClientOptions,
  EtcdEndpointSkippedError,
  IDEMPOTENT_ETCD_METHODS,
  readTlsMaterial,
} from '../src/subnet/etcd/client.js';

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * etcd3 only calls `execute` on its fault-handling policies; these two small ones replace cockatiel's
 * (which weft does not depend on directly) with the behaviour weft wants.
 */
interface ExecutePolicy {
  execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T>;
}

function asPolicy(policy: ExecutePolicy): Policy {
  return policy as unknown as Policy;
}

const NEVER_ABORTED = new AbortController().signal;

/** Skips an endpoint for `openMs` after `threshold` consecutive transport failures. */
class EndpointBreaker implements ExecutePolicy {
  private failures = 0;
  private openUntil = 0;
  constructor(
    private readonly threshold: number,
    private readonly openMs: number,
  ) {}

  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    if (Date.now() < this.openUntil)
      throw new EtcdEndpointSkippedError('etcd endpoint failed recently; skipped');
    try {
      const result = await fn({ signal: NEVER_ABORTED });
      this.failures = 0;
      return result;
    } catch (err) {
      if (err instanceof Error && isRecoverableError(err)) {
        this.failures += 1;
        if (this.failures >= this.threshold) {
          this.failures = 0;
          this.openUntil = Date.now() + this.openMs;
        }
      }
      throw err;
    }
  }
}

/**
 * The transport failed before the request left this process (no connection to that member): sending it
 * to another member cannot write twice. A dropped connection or a deadline is not this: the request may
 * have reached etcd.
 */
function neverSent(err: Error): boolean {
  return /No connection established|ECONNREFUSED|Name resolution failed/.test(err.message);
}

/** The method of the call in flight, set by `defaultCallOptions` inside the policy's async context. */
const callInFlight = new AsyncLocalStorage<{ method?: string }>();

/**
 * Retries a call that failed on the transport (etcd3 picks another endpoint for each attempt), but only an
 * idempotent one: a write is never sent twice blindly.
 */
class RetryIdempotentOnAnotherEndpoint implements ExecutePolicy {
  constructor(
    private readonly attempts: number,
    private readonly delayMs: number,
  ) {}

  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const call: { method?: string } = {};
      try {
        return await callInFlight.run(call, () => fn({ signal: NEVER_ABORTED }));
      } catch (err) {
        const retryable =
          err instanceof Error &&
          isRecoverableError(err) &&
          ((call.method !== undefined && IDEMPOTENT_ETCD_METHODS.has(call.method)) || neverSent(err));
        if (attempt >= this.attempts || !retryable) throw err;
        await sleep(this.delayMs * attempt);
      }
    }
  }
}

/**
 * Builds the etcd3 client. Every unary call gets a deadline; idempotent calls that fail on the transport
 * retry on another endpoint (two attempts) and a failing endpoint is skipped for one second; gRPC keepalives detect a dead server
 * under a long-lived watch; reconnect backoff is capped at 2 s so a restarted etcd is found quickly.
 */
export function createEtcd3Client(options: EtcdClientOptions): Etcd3 {
  const hosts = checkEndpoints(options.endpoints);
  const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const config: IOptions = {
    hosts,
    dialTimeout: callTimeoutMs,
    defaultCallOptions: (ctx) => {
      const call = callInFlight.getStore();
      if (call) call.method = ctx.method;
      return ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs };
    },
    grpcOptions: {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // grpc-js shares connections between channels to the same target (a process-wide subchannel pool): the
      // 1000 clients of a bench would share ~3 connections, not the 1000 that 1000 nodes open. Each its own.
      'grpc.use_local_subchannel_pool': 1,
    },
    faultHandling: {
      host: () => asPolicy(new EndpointBreaker(3, 1_000)),
      global: asPolicy(new RetryIdempotentOnAnotherEndpoint(2, 50)),
    },
  };
  const tls = options.tls;
  if (tls && (tls.ca || tls.cert || tls.key)) {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new EtcdClientConfigError(
        tls.cert ? 'etcd-keyfile' : 'etcd-certfile',
        'a client certificate needs both --etcd-certfile and --etcd-keyfile',
      );
    }
    const credentials: NonNullable<IOptions['credentials']> = {
      // grpc-js falls back to the system roots when no CA is given.
      rootCertificate: tls.ca ? readTlsMaterial('etcd-cafile', tls.ca) : (null as unknown as Buffer),
    };
    if (tls.cert && tls.key) {
      credentials.certChain = readTlsMaterial('etcd-certfile', tls.cert);
      credentials.privateKey = readTlsMaterial('etcd-keyfile', tls.key);
    }
    config.credentials = credentials;
  }
  if (options.username !== undefined && options.username !== '') {
    config.auth = { username: options.username, password: options.password ?? '' };
  } else if (options.password) {
    throw new EtcdClientConfigError('etcd-password', 'given without --etcd-username');
  }
  return new Etcd3(config);
}
