import { AsyncLocalStorage } from 'node:async_hooks';
import * as fs from 'node:fs';
import { Etcd3, type IOptions, isRecoverableError } from 'etcd3';
import { redactTlsSetting, redactUrlCredentials } from '../../config/redact.js';
import { sleep } from '../../core/index.js';

/** TLS material: each entry is a file path or the PEM text itself. */
export interface EtcdTlsOptions {
  /** CA bundle that signs the etcd server certificate (`--etcd-cafile`); default: the system roots. */
  ca?: string;
  /** Client certificate (`--etcd-certfile`); needs `key`. */
  cert?: string;
  /** Client private key (`--etcd-keyfile`); needs `cert`. */
  key?: string;
}

/** How to reach etcd: what `--etcd-endpoints`, `--etcd-*file`, `--etcd-username/password` say. */
export interface EtcdClientOptions {
  /** e.g. `['http://127.0.0.1:2379']`; all http:// or all https://. */
  endpoints: string[];
  tls?: EtcdTlsOptions | undefined;
  username?: string | undefined;
  /** Never logged. */
  password?: string | undefined;
  /** Deadline of every unary call, in ms (default 5000). A down etcd makes calls fail, not hang. */
  callTimeoutMs?: number | undefined;
}

/** A bad `--etcd-*` setting: names the setting and what is wrong. */
export class EtcdClientConfigError extends Error {
  override name = 'EtcdClientConfigError';
  constructor(
    readonly setting: string,
    reason: string,
  ) {
    super(`${setting}: ${reason}`);
  }
}

export const DEFAULT_CALL_TIMEOUT_MS = 5_000;

/** Thrown instead of calling an endpoint that failed repeatedly in the last second. */
export class EtcdEndpointSkippedError extends Error {
  override name = 'EtcdEndpointSkippedError';
}

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
 * Calls that read only (or whose repetition changes nothing) and may be sent again after a transport error.
 * `Txn`, `Put`, `DeleteRange` and `LeaseGrant` are not here: a write whose reply was lost may have
 * committed, and sending it again either fails its compare (and the caller would act on a false "lost") or
 * writes twice (an orphan lease). Their callers read back and decide (see acquire.ts and keep.ts).
 */
export const IDEMPOTENT_ETCD_METHODS: ReadonlySet<string> = new Set([
  'range',
  'leaseTimeToLive',
  'leaseRevoke',
  'leaseLeases',
  'status',
  'memberList',
  'authenticate',
]);

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

function looksLikePem(text: string): boolean {
  return text.includes('-----BEGIN ');
}

/**
 * Reads a TLS entry: PEM text as given, else the file at that path. Errors name the path only when it may be
 * shown (`redactTlsSetting`): the key setting may hold key material that is not recognisable as PEM.
 */
export function readTlsMaterial(setting: string, pathOrPem: string): Buffer {
  if (looksLikePem(pathOrPem)) return Buffer.from(pathOrPem, 'utf8');
  const secret = setting === 'etcd-keyfile';
  const shown = secret ? 'the file it names' : redactTlsSetting(pathOrPem, false);
  let data: Buffer;
  try {
    data = fs.readFileSync(pathOrPem);
  } catch (err) {
    // The errno text repeats the path: only its code is shown.
    const code = (err as NodeJS.ErrnoException).code ?? 'read error';
    throw new EtcdClientConfigError(
      setting,
      `cannot read ${shown} (${code}); give a readable PEM file or the PEM text itself`,
    );
  }
  if (!looksLikePem(data.toString('utf8'))) {
    throw new EtcdClientConfigError(setting, `${shown} is not a PEM file (no "-----BEGIN" line)`);
  }
  return data;
}

/** Validates endpoints and turns them into `host:port` URLs etcd3 accepts. */
export function checkEndpoints(endpoints: readonly string[]): string[] {
  if (endpoints.length === 0)
    throw new EtcdClientConfigError('etcd-endpoints', 'at least one endpoint is required');
  const out: string[] = [];
  for (const ep of endpoints) {
    let url: URL;
    try {
      url = new URL(ep);
    } catch {
      throw new EtcdClientConfigError(
        'etcd-endpoints',
        `${JSON.stringify(redactUrlCredentials(ep))} is not a URL (expected http(s)://host:port)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new EtcdClientConfigError(
        'etcd-endpoints',
        `${JSON.stringify(redactUrlCredentials(ep))} must use http:// or https://`,
      );
    }
    if (url.port === '') {
      throw new EtcdClientConfigError(
        'etcd-endpoints',
        `${JSON.stringify(redactUrlCredentials(ep))} has no port (etcd listens on 2379)`,
      );
    }
    out.push(`${url.protocol}//${url.host}`);
  }
  const secure = out.filter((e) => e.startsWith('https:')).length;
  if (secure !== 0 && secure !== out.length) {
    throw new EtcdClientConfigError('etcd-endpoints', 'mixes http:// and https:// endpoints; use one scheme');
  }
  return out;
}

/**
 * Builds the etcd3 client. Every unary call gets a deadline; idempotent calls that fail on the transport
 * retry on another endpoint (two attempts) and a failing endpoint is skipped for one second; gRPC keepalives detect a dead server
 * under a long-lived watch; reconnect backoff is capped at 2 s so a restarted etcd is found quickly.
 */
export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
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
