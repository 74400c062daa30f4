import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { redactTlsSetting, redactUrlCredentials } from '../../config/redact.js';
import { EtcdRpcClient, type EtcdRpcClientOptions } from './grpc/index.js';

export { EtcdEndpointSkippedError, IDEMPOTENT_ETCD_METHODS } from './grpc/index.js';

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

/**
 * The CA bundle, each of its certificates parsed. Node's `createSecureContext` accepts a bundle whose
 * certificates it cannot read (it skips them), and every TLS handshake would then fail, retried forever: a
 * bundle without a readable certificate fails here, at start, saying which one.
 */
export function checkCaCertificates(bundle: Buffer): Buffer {
  const blocks =
    bundle.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw new EtcdClientConfigError('etcd-cafile', 'holds no "-----BEGIN CERTIFICATE-----" block');
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new EtcdClientConfigError(
        'etcd-cafile',
        `certificate ${i + 1} of ${blocks.length} is not a readable X.509 certificate (${(err as Error).message})`,
      );
    }
  });
  return bundle;
}

/** Validates endpoints and turns them into `http(s)://host:port` URLs. */
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
 * The TLS context every connection shares, built once: material that OpenSSL cannot use fails here, at
 * start, naming the setting (OpenSSL's reason never quotes the material).
 */
function secureContextFor(
  ca: Buffer | undefined,
  pair: { cert: Buffer; key: Buffer } | undefined,
): { secureContext: tls.SecureContext } {
  try {
    return { secureContext: tls.createSecureContext({ ...(ca ? { ca } : {}), ...(pair ?? {}) }) };
  } catch (err) {
    const reason = (err as Error).message;
    if (!pair) throw new EtcdClientConfigError('etcd-cafile', `not a usable CA certificate (${reason})`);
    throw new EtcdClientConfigError(
      'etcd-keyfile',
      `the client key and certificate (--etcd-certfile) are not a usable pair (${reason})`,
    );
  }
}

/**
 * Builds weft's etcd client (grpc/): every unary call gets a deadline; idempotent calls that fail on the
 * transport retry on another endpoint (two attempts) and a failing endpoint is skipped for one second;
 * HTTP/2 pings detect a dead server under a long-lived watch; a broken connection is opened again on the
 * next call.
 */
export function createEtcdClient(options: EtcdClientOptions): EtcdRpcClient {
  const endpoints = checkEndpoints(options.endpoints);
  const config: EtcdRpcClientOptions = {
    endpoints,
    callTimeoutMs: options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
  };
  const tls = options.tls;
  if (tls && (tls.ca || tls.cert || tls.key)) {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new EtcdClientConfigError(
        tls.cert ? 'etcd-keyfile' : 'etcd-certfile',
        'a client certificate needs both --etcd-certfile and --etcd-keyfile',
      );
    }
    // Without a CA, Node's own roots verify the server.
    config.tls = secureContextFor(
      tls.ca ? checkCaCertificates(readTlsMaterial('etcd-cafile', tls.ca)) : undefined,
      tls.cert && tls.key
        ? { cert: readTlsMaterial('etcd-certfile', tls.cert), key: readTlsMaterial('etcd-keyfile', tls.key) }
        : undefined,
    );
  } else if (endpoints.some((e) => e.startsWith('https:'))) {
    config.tls = secureContextFor(undefined, undefined);
  }
  if (options.username !== undefined && options.username !== '') {
    config.auth = { username: options.username, password: options.password ?? '' };
  } else if (options.password) {
    throw new EtcdClientConfigError('etcd-password', 'given without --etcd-username');
  }
  // TLS material means TLS, whatever the scheme says (as etcd3 and flannel do).
  if (config.tls) config.endpoints = endpoints.map((e) => e.replace(/^http:/, 'https:'));
  return new EtcdRpcClient(config);
}
