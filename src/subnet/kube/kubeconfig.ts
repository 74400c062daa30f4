// The client configuration, as flannel builds it: `--kubeconfig-file`, else the in-cluster ServiceAccount,
// else `--kube-api-url` alone. Read here with a YAML parser rather than @kubernetes/client-node: importing that
// library costs ~65 MiB and seconds of start-up on every node (issue 16), while what weft needs of a
// kubeconfig — server, CA, client certificate, bearer token or token file — is a few fields. Users whose
// credentials come from an `exec` plugin or an `auth-provider` get the library, loaded only then.
import * as fs from 'node:fs';
import type * as https from 'node:https';
import * as path from 'node:path';
import { load as loadYaml } from 'js-yaml';

export class KubeConfigError extends Error {
  override name = 'KubeConfigError';
}

export interface KubeConnectionOptions {
  /** `--kubeconfig-file`. */
  kubeconfigFile?: string;
  /** `--kube-api-url`: overrides the server of the kubeconfig or in-cluster config, or is used alone. */
  apiUrl?: string;
  /** Environment to read `KUBERNETES_SERVICE_HOST/PORT` from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Where the in-cluster ServiceAccount files are (default `/var/run/secrets/kubernetes.io/serviceaccount`). */
  serviceAccountDir?: string;
}

export interface KubeCluster {
  name: string;
  server: string;
  skipTLSVerify: boolean;
  ca?: string | Buffer;
  tlsServerName?: string;
}

export interface KubeUser {
  name: string;
  token?: string;
  tokenFile?: string;
  cert?: string | Buffer;
  key?: string | Buffer;
  username?: string;
  password?: string;
  /** Credentials from an exec plugin or auth-provider: handled by @kubernetes/client-node (lazy import). */
  plugin?: 'exec' | 'auth-provider';
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Bound ServiceAccount tokens rotate; the kubelet rewrites the file. Re-read it this often (client-go: 1 min). */
const TOKEN_FILE_TTL_MS = 60_000;

function checkApiUrl(apiUrl: string): URL {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    throw new KubeConfigError(
      `--kube-api-url=${JSON.stringify(apiUrl)} is not a URL (expected e.g. https://10.0.0.1:6443)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new KubeConfigError(
      `--kube-api-url=${JSON.stringify(apiUrl)}: expected an http:// or https:// URL`,
    );
  }
  return url;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Obj, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new KubeConfigError(`${where}: ${key} must be a string`);
  return v;
}

/** A named entry of `clusters`, `users` or `contexts`: its inner object. */
function named(doc: Obj, list: string, inner: string, name: string, file: string): Obj {
  const entries = Array.isArray(doc[list]) ? (doc[list] as unknown[]) : [];
  const entry = entries.find((e) => isObj(e) && e.name === name) as Obj | undefined;
  if (!entry)
    throw new KubeConfigError(`--kubeconfig-file ${file}: no ${list} entry named ${JSON.stringify(name)}`);
  const value = entry[inner];
  if (!isObj(value))
    throw new KubeConfigError(`--kubeconfig-file ${file}: ${list} ${JSON.stringify(name)} has no ${inner}`);
  return value;
}

/** `*-data` (base64) or a file path relative to the kubeconfig's directory. */
function material(o: Obj, key: string, dir: string, where: string): Buffer | undefined {
  const data = str(o, `${key}-data`, where);
  if (data) return Buffer.from(data, 'base64');
  const file = str(o, key, where);
  if (!file) return undefined;
  const full = path.resolve(dir, file);
  try {
    return fs.readFileSync(full);
  } catch (err) {
    throw new KubeConfigError(
      `${where}: cannot read ${key} ${full}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/** What weft talks to and how it authenticates; applies TLS options and credentials to each request. */
export class KubeConnectionConfig {
  private tokenCache: { value: string; readAt: number } | undefined;
  private delegate: Promise<(options: https.RequestOptions) => Promise<void>> | undefined;

  constructor(
    readonly cluster: KubeCluster,
    readonly user: KubeUser,
    /** Where the configuration came from, to hand an exec/auth-provider user to the library. */
    private readonly source: { kind: 'file'; file: string } | { kind: 'in-cluster' } | { kind: 'url' },
  ) {}

  getCurrentCluster(): KubeCluster {
    return this.cluster;
  }

  getCurrentUser(): KubeUser {
    return this.user;
  }

  private bearerToken(): string | undefined {
    if (this.user.token) return this.user.token;
    const file = this.user.tokenFile;
    if (!file) return undefined;
    const now = Date.now();
    if (!this.tokenCache || now - this.tokenCache.readAt > TOKEN_FILE_TTL_MS) {
      try {
        this.tokenCache = { value: fs.readFileSync(file, 'utf8').trim(), readAt: now };
      } catch (err) {
        // A token that could not be re-read: keep the last one (it may still be valid) rather than none.
        if (!this.tokenCache) {
          throw new KubeConfigError(
            `cannot read the token file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
          );
        }
      }
    }
    return this.tokenCache?.value;
  }

  /** Adds the CA, client certificate and Authorization header to `options` (as the library's method of that name). */
  async applyToHTTPSOptions(options: https.RequestOptions): Promise<void> {
    if (this.user.plugin) {
      this.delegate ??= this.loadLibrary();
      await (await this.delegate)(options);
      return;
    }
    if (this.cluster.ca) options.ca = this.cluster.ca;
    if (this.cluster.skipTLSVerify) options.rejectUnauthorized = false;
    if (this.cluster.tlsServerName) options.servername = this.cluster.tlsServerName;
    if (this.user.cert) options.cert = this.user.cert;
    if (this.user.key) options.key = this.user.key;
    const headers = { ...(options.headers as Record<string, string> | undefined) };
    const token = this.bearerToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (this.user.username !== undefined) {
      headers.Authorization = `Basic ${Buffer.from(`${this.user.username}:${this.user.password ?? ''}`).toString('base64')}`;
    }
    options.headers = headers;
  }

  /** The library, for exec plugins and auth-providers only (imported on first use). */
  private async loadLibrary(): Promise<(options: https.RequestOptions) => Promise<void>> {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    try {
      if (this.source.kind === 'file') kc.loadFromFile(this.source.file);
      else kc.loadFromCluster();
    } catch (err) {
      throw new KubeConfigError(
        `cannot load the kubeconfig for its ${this.user.plugin} credentials: ${(err as Error).message}`,
      );
    }
    return (options) => kc.applyToHTTPSOptions(options);
  }
}

function fromFile(file: string): KubeConnectionConfig {
  let doc: unknown;
  try {
    doc = loadYaml(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KubeConfigError(`cannot load --kubeconfig-file ${file}: ${(err as Error).message}`);
  }
  if (!isObj(doc)) throw new KubeConfigError(`cannot load --kubeconfig-file ${file}: not a YAML mapping`);
  const contextName = typeof doc['current-context'] === 'string' ? doc['current-context'] : '';
  if (!contextName) {
    throw new KubeConfigError(
      `--kubeconfig-file ${file} has no current context with a cluster (set current-context)`,
    );
  }
  const context = named(doc, 'contexts', 'context', contextName, file);
  const clusterName = str(context, 'cluster', `context ${contextName}`);
  if (!clusterName) {
    throw new KubeConfigError(
      `--kubeconfig-file ${file} has no current context with a cluster (set current-context)`,
    );
  }
  const dir = path.dirname(path.resolve(file));
  const c = named(doc, 'clusters', 'cluster', clusterName, file);
  const where = `--kubeconfig-file ${file}, cluster ${clusterName}`;
  const server = str(c, 'server', where);
  if (!server) throw new KubeConfigError(`${where}: no server`);
  const cluster: KubeCluster = {
    name: clusterName,
    server,
    skipTLSVerify: c['insecure-skip-tls-verify'] === true,
  };
  const ca = material(c, 'certificate-authority', dir, where);
  if (ca) cluster.ca = ca;
  const serverName = str(c, 'tls-server-name', where);
  if (serverName) cluster.tlsServerName = serverName;

  const userName = str(context, 'user', `context ${contextName}`) ?? '';
  const user: KubeUser = { name: userName };
  if (userName) {
    const u = named(doc, 'users', 'user', userName, file);
    const uw = `--kubeconfig-file ${file}, user ${userName}`;
    if (isObj(u.exec)) user.plugin = 'exec';
    else if (isObj(u['auth-provider'])) user.plugin = 'auth-provider';
    const token = str(u, 'token', uw);
    if (token) user.token = token;
    const tokenFile = str(u, 'tokenFile', uw);
    if (tokenFile) user.tokenFile = path.resolve(dir, tokenFile);
    const cert = material(u, 'client-certificate', dir, uw);
    if (cert) user.cert = cert;
    const key = material(u, 'client-key', dir, uw);
    if (key) user.key = key;
    const username = str(u, 'username', uw);
    if (username !== undefined) user.username = username;
    const password = str(u, 'password', uw);
    if (password !== undefined) user.password = password;
  }
  return new KubeConnectionConfig(cluster, user, { kind: 'file', file });
}

function inCluster(env: NodeJS.ProcessEnv, dir: string): KubeConnectionConfig {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '';
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let ca: Buffer;
  try {
    ca = fs.readFileSync(path.join(dir, 'ca.crt'));
  } catch (err) {
    throw new KubeConfigError(
      `cannot load the in-cluster config: ${path.join(dir, 'ca.crt')}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (is a ServiceAccount token mounted?)`,
    );
  }
  return new KubeConnectionConfig(
    { name: 'in-cluster', server, skipTLSVerify: false, ca },
    { name: 'in-cluster', tokenFile: path.join(dir, 'token') },
    { kind: 'in-cluster' },
  );
}

/**
 * The client config, as flannel builds it: `--kubeconfig-file` if given, else the in-cluster ServiceAccount
 * (KUBERNETES_SERVICE_HOST/PORT), else `--kube-api-url` alone (no credentials, e.g. `kubectl proxy`).
 * `--kube-api-url` replaces the server address in the first two cases.
 */
export function loadKubeConfig(options: KubeConnectionOptions): KubeConnectionConfig {
  const env = options.env ?? process.env;
  const apiUrl = options.apiUrl ? checkApiUrl(options.apiUrl) : undefined;
  let config: KubeConnectionConfig;
  if (options.kubeconfigFile) {
    config = fromFile(options.kubeconfigFile);
  } else if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
    config = inCluster(env, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
  } else if (apiUrl) {
    config = new KubeConnectionConfig(
      { name: 'kube-api-url', server: apiUrl.href, skipTLSVerify: false },
      { name: 'anonymous' },
      { kind: 'url' },
    );
  } else {
    throw new KubeConfigError(
      'no Kubernetes API to talk to: run in a pod (KUBERNETES_SERVICE_HOST/PORT set), or give --kubeconfig-file or --kube-api-url',
    );
  }
  const cluster = config.cluster;
  cluster.server = (apiUrl ? apiUrl.href : cluster.server).replace(/\/+$/, '');
  // Plain http has no TLS to verify.
  if (cluster.server.startsWith('http:')) cluster.skipTLSVerify = true;
  return config;
}
