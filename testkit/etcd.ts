// Real etcd servers for tests: Debian's /usr/bin/etcd on free loopback ports (or inside a namespace),
// single or a 3-member cluster, plain or TLS. Every process and data dir is registered for cleanup.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  CommandFailedError,
  type ProcessHandle,
  type RunResult,
  run,
  runChecked,
  sleep,
  spawnIn,
  tailFile,
} from './exec.js';
import { makeRunTempDir, removeRunTempDir, runPrefix } from './run.js';

export const ETCD_BINARY = '/usr/bin/etcd';
export const ETCDCTL_BINARY = '/usr/bin/etcdctl';

/** Fast elections so failover tests take well under a second of etcd time. */
const TIMING_ARGS = ['--heartbeat-interval=10', '--election-timeout=100'];
const DEFAULT_HEALTH_TIMEOUT_MS = 20_000;
const MAX_PORT_ATTEMPTS = 5;

export interface EtcdTlsOptions {
  /** Server certificate and key (`--cert-file`, `--key-file`). */
  certFile: string;
  keyFile: string;
  /** CA that signs client certificates (`--trusted-ca-file`); also used to verify the server. */
  trustedCaFile: string;
  /** `--client-cert-auth` (default true). */
  clientCertAuth?: boolean;
  /** A client certificate the harness uses for its own health checks (needed with client-cert-auth). */
  clientCertFile?: string;
  clientKeyFile?: string;
}

export interface StartEtcdOptions {
  /** Run inside this namespace (`ip netns exec`), listening on `host`. */
  netns?: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Client and peer ports; default: free loopback ports (in a namespace: 2379/2380). */
  clientPort?: number;
  peerPort?: number;
  /** Data dir to use instead of a fresh temp dir (left in place by stop()). */
  dataDir?: string;
  extraArgs?: string[];
  tls?: EtcdTlsOptions;
  /** Member name (default `<prefix>-etcd`). */
  name?: string;
  /** How long to wait for /health (default 20 s). */
  healthTimeoutMs?: number;
}

export interface EtcdServer {
  readonly name: string;
  /** The client URL, e.g. `http://127.0.0.1:23791` (https with TLS). */
  readonly endpoint: string;
  readonly clientUrls: string[];
  readonly peerUrl: string;
  /** PID of the current etcd process (changes on restart). */
  readonly pid: number;
  readonly dataDir: string;
  readonly logFile: string;
  readonly netns: string | undefined;
  readonly tls: EtcdTlsOptions | undefined;
  readonly running: boolean;
  /** SIGTERM, wait for exit, remove the data dir (unless it was given). Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit; the data dir stays for restart(). */
  kill(): Promise<void>;
  /** Stops if running, starts again with the same ports and data dir, waits for health. */
  restart(): Promise<void>;
  logTail(lines?: number): string;
}

export class EtcdStartError extends Error {
  constructor(message: string, logTail: string) {
    super(`${message}${logTail ? `\n--- etcd log tail ---\n${logTail}` : ''}`);
    this.name = 'EtcdStartError';
  }
}

/** Free TCP ports on `host`, found by binding port 0 and closing; all held open together so they differ. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
    }
    return servers.map((s) => {
      const addr = s.address();
      if (addr === null || typeof addr === 'string') throw new Error('listening socket has no port');
      return addr.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

interface MemberSpec {
  name: string;
  host: string;
  clientPort: number;
  peerPort: number;
  netns: string | undefined;
  tls: EtcdTlsOptions | undefined;
  initialCluster: string;
  clusterToken: string;
  extraArgs: string[];
}

function clientUrl(spec: Pick<MemberSpec, 'host' | 'clientPort' | 'tls'>): string {
  return `${spec.tls ? 'https' : 'http'}://${urlHost(spec.host)}:${spec.clientPort}`;
}

function peerUrl(spec: Pick<MemberSpec, 'host' | 'peerPort'>): string {
  return `http://${urlHost(spec.host)}:${spec.peerPort}`;
}

function etcdArgs(spec: MemberSpec, dataDir: string): string[] {
  const client = clientUrl(spec);
  const peer = peerUrl(spec);
  const args = [
    `--name=${spec.name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${spec.initialCluster}`,
    `--initial-cluster-token=${spec.clusterToken}`,
    '--initial-cluster-state=new',
    '--logger=zap',
    '--log-outputs=stderr',
    ...TIMING_ARGS,
  ];
  if (spec.tls) {
    args.push(
      `--cert-file=${spec.tls.certFile}`,
      `--key-file=${spec.tls.keyFile}`,
      `--trusted-ca-file=${spec.tls.trustedCaFile}`,
    );
    if (spec.tls.clientCertAuth ?? true) args.push('--client-cert-auth');
  }
  args.push(...spec.extraArgs);
  return args;
}

/** One GET /health over http(s) from this process: true when etcd answers {"health":"true"}. */
function probeHealthHttp(endpoint: string, tls: EtcdTlsOptions | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL('/health', endpoint);
    const options: https.RequestOptions = { timeout: 1_000 };
    if (tls) {
      options.ca = fs.readFileSync(tls.trustedCaFile);
      if (tls.clientCertFile && tls.clientKeyFile) {
        options.cert = fs.readFileSync(tls.clientCertFile);
        options.key = fs.readFileSync(tls.clientKeyFile);
      }
    }
    const req = (url.protocol === 'https:' ? https : http).get(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as { health?: unknown };
          resolve(res.statusCode === 200 && parsed.health === 'true');
        } catch {
          resolve(false);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Health from inside a namespace, where this process cannot connect: etcdctl endpoint health. */
async function probeHealthInNetns(netns: string, endpoint: string, tls: EtcdTlsOptions | undefined) {
  const result = await etcdctl(endpoint, ['endpoint', 'health'], {
    netns,
    tls: tlsClientOf(tls),
    allowFailure: true,
    timeoutMs: 5_000,
  });
  return result.code === 0;
}

function tlsClientOf(tls: EtcdTlsOptions | undefined): EtcdctlTls | undefined {
  if (!tls) return undefined;
  return { caFile: tls.trustedCaFile, certFile: tls.clientCertFile, keyFile: tls.clientKeyFile };
}

/** One etcd member: a spec, a data dir, and the current process (if any). */
class EtcdMemberProcess implements EtcdServer {
  private handle: ProcessHandle | undefined;
  private removed = false;

  constructor(
    private spec: MemberSpec,
    readonly dataDir: string,
    /** The run temp dir holding the log (and the data dir unless one was given). */
    private readonly tempDir: string,
    private readonly ownsDataDir: boolean,
    private readonly healthTimeoutMs: number,
  ) {}

  get name(): string {
    return this.spec.name;
  }
  get endpoint(): string {
    return clientUrl(this.spec);
  }
  get clientUrls(): string[] {
    return [this.endpoint];
  }
  get peerUrl(): string {
    return peerUrl(this.spec);
  }
  get pid(): number {
    return this.handle?.pid ?? -1;
  }
  get logFile(): string {
    return path.join(this.tempDir, 'etcd.log');
  }
  get netns(): string | undefined {
    return this.spec.netns;
  }
  get tls(): EtcdTlsOptions | undefined {
    return this.spec.tls;
  }
  get running(): boolean {
    return this.handle !== undefined && !this.handle.exited;
  }

  /** Re-points the member at new ports (before its first successful start only). */
  setPorts(clientPort: number, peerPort: number, initialCluster: string): void {
    this.spec = { ...this.spec, clientPort, peerPort, initialCluster };
  }

  logTail(lines = 40): string {
    return tailFile(this.logFile, lines);
  }

  /** Starts the process (not waiting for health). */
  async launch(): Promise<void> {
    if (this.removed) throw new EtcdStartError(`etcd ${this.name} was stopped and its data removed`, '');
    if (this.running) return;
    fs.appendFileSync(
      this.logFile,
      `--- weft harness: starting etcd ${this.name} at ${new Date().toISOString()}\n`,
    );
    this.handle = await spawnIn(this.spec.netns, ETCD_BINARY, etcdArgs(this.spec, this.dataDir), {
      logFile: this.logFile,
    });
  }

  /** Polls health until it answers, the process dies, or the timeout passes. */
  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + this.healthTimeoutMs;
    for (let attempt = 0; attempt < 10_000; attempt++) {
      if (!this.running) {
        throw new EtcdStartError(
          `etcd ${this.name} exited before becoming healthy at ${this.endpoint}`,
          this.logTail(),
        );
      }
      const healthy = this.spec.netns
        ? await probeHealthInNetns(this.spec.netns, this.endpoint, this.spec.tls)
        : await probeHealthHttp(this.endpoint, this.spec.tls);
      if (healthy) return;
      if (Date.now() >= deadline) break;
      await sleep(50);
    }
    throw new EtcdStartError(
      `etcd ${this.name} did not report healthy at ${this.endpoint}/health within ${this.healthTimeoutMs} ms`,
      this.logTail(),
    );
  }

  /** True when the last exit was a failed bind (the port was taken between probing and starting). */
  exitedOnPortConflict(): boolean {
    return !this.running && /address already in use/.test(this.logTail(20));
  }

  async kill(): Promise<void> {
    await this.handle?.kill();
  }

  async halt(): Promise<void> {
    await this.handle?.stop('SIGTERM', 5_000);
  }

  async stop(): Promise<void> {
    await this.halt();
    this.removeFiles();
  }

  /** SIGKILL and remove the files: for tearing down a whole cluster, where a graceful stop of each
   * member only waits on a leader transfer to members that are stopping too. */
  async destroy(): Promise<void> {
    await this.kill();
    this.removeFiles();
  }

  private removeFiles(): void {
    if (!this.removed) {
      this.removed = true;
      if (this.ownsDataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
      removeRunTempDir(this.tempDir);
    }
  }

  async restart(): Promise<void> {
    await this.halt();
    await this.launch();
    await this.waitHealthy();
  }
}

let memberCounter = 0;

function newMember(spec: MemberSpec, givenDataDir: string | undefined, healthTimeoutMs: number) {
  memberCounter += 1;
  const tempDir = makeRunTempDir(`etcd${memberCounter}`);
  const dataDir = givenDataDir ?? path.join(tempDir, 'data');
  return new EtcdMemberProcess(spec, dataDir, tempDir, givenDataDir === undefined, healthTimeoutMs);
}

/**
 * Starts one etcd and waits until /health answers. Ports are free loopback ports unless given; a port
 * taken between probing and binding is retried with new ports.
 */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const host = opts.host ?? '127.0.0.1';
  const name = opts.name ?? `${runPrefix()}-etcd`;
  const fixedPorts = opts.clientPort !== undefined || opts.peerPort !== undefined || opts.netns !== undefined;
  const pickPorts = async (): Promise<[number, number]> => {
    if (fixedPorts) return [opts.clientPort ?? 2379, opts.peerPort ?? 2380];
    const [c, p] = await freePorts(2, host);
    return [c ?? 0, p ?? 0];
  };
  const [clientPort, peerPort] = await pickPorts();
  const spec: MemberSpec = {
    name,
    host,
    clientPort,
    peerPort,
    netns: opts.netns,
    tls: opts.tls,
    initialCluster: `${name}=${peerUrl({ host, peerPort })}`,
    clusterToken: `${name}-${memberCounter + 1}`,
    extraArgs: opts.extraArgs ?? [],
  };
  const member = newMember(spec, opts.dataDir, opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS);
  try {
    for (let attempt = 1; ; attempt++) {
      await member.launch();
      try {
        await member.waitHealthy();
        return member;
      } catch (err) {
        if (fixedPorts || attempt >= MAX_PORT_ATTEMPTS || !member.exitedOnPortConflict()) throw err;
        const [c, p] = await pickPorts();
        member.setPorts(c, p, `${name}=${peerUrl({ host, peerPort: p })}`);
      }
    }
  } catch (err) {
    await member.stop();
    throw err;
  }
}

export interface EtcdClusterMember {
  readonly name: string;
  readonly endpoint: string;
  readonly pid: number;
  readonly dataDir: string;
  readonly running: boolean;
  /** SIGKILL; the data dir stays. */
  kill(): Promise<void>;
  /** Start again with the same ports and data dir; waits until it serves /health again. */
  restart(): Promise<void>;
  /** SIGTERM; the data dir stays (cluster.stop() removes it). */
  stop(): Promise<void>;
  logTail(lines?: number): string;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: EtcdClusterMember[];
  /** Index into `members` of the current leader, asked of the running members. */
  leaderIndex(): Promise<number>;
  /** Kills every member and removes all data dirs. Idempotent. */
  stop(): Promise<void>;
}

export interface StartEtcdClusterOptions {
  extraArgs?: string[];
  healthTimeoutMs?: number;
}

/** Starts `size` etcd members on loopback as one cluster (static initial-cluster) and waits for all. */
export async function startEtcdCluster(size = 3, opts: StartEtcdClusterOptions = {}): Promise<EtcdCluster> {
  if (!Number.isInteger(size) || size < 1 || size > 7) {
    throw new RangeError(`etcd cluster size must be an integer 1..7, got ${size}`);
  }
  const host = '127.0.0.1';
  const token = `${runPrefix()}-cluster-${memberCounter + 1}`;
  const names = Array.from({ length: size }, (_, i) => `${runPrefix()}-m${i + 1}`);
  const healthTimeoutMs = opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;

  let members: EtcdMemberProcess[] = [];
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(size * 2, host);
    const peerPorts = names.map((_, i) => ports[size + i] ?? 0);
    const initialCluster = names
      .map((n, i) => `${n}=${peerUrl({ host, peerPort: peerPorts[i] ?? 0 })}`)
      .join(',');
    members = names.map((name, i) =>
      newMember(
        {
          name,
          host,
          clientPort: ports[i] ?? 0,
          peerPort: peerPorts[i] ?? 0,
          netns: undefined,
          tls: undefined,
          initialCluster,
          clusterToken: `${token}-${attempt}`,
          extraArgs: opts.extraArgs ?? [],
        },
        undefined,
        healthTimeoutMs,
      ),
    );
    try {
      await Promise.all(members.map((m) => m.launch()));
      await Promise.all(members.map((m) => m.waitHealthy()));
      break;
    } catch (err) {
      const portConflict = members.some((m) => m.exitedOnPortConflict());
      await Promise.all(members.map((m) => m.destroy()));
      if (!portConflict || attempt >= MAX_PORT_ATTEMPTS) throw err;
    }
  }

  let stopped = false;
  const live = members;
  return {
    endpoints: live.map((m) => m.endpoint),
    members: live.map((m) => ({
      get name() {
        return m.name;
      },
      get endpoint() {
        return m.endpoint;
      },
      get pid() {
        return m.pid;
      },
      get dataDir() {
        return m.dataDir;
      },
      get running() {
        return m.running;
      },
      kill: () => m.kill(),
      restart: () => m.restart(),
      stop: () => m.halt(),
      logTail: (lines?: number) => m.logTail(lines),
    })),
    async leaderIndex() {
      for (let attempt = 0; attempt < 100; attempt++) {
        for (const [i, m] of live.entries()) {
          if (!m.running) continue;
          const status = await etcdctl(m.endpoint, ['endpoint', 'status', '-w', 'json'], {
            allowFailure: true,
            timeoutMs: 5_000,
          });
          // member_id and leader are uint64: compare them as digit strings, never as JS numbers.
          const memberId = /"member_id":(\d+)/.exec(status.stdout)?.[1];
          const leader = /"leader":(\d+)/.exec(status.stdout)?.[1];
          if (status.code === 0 && memberId !== undefined && memberId === leader) return i;
        }
        await sleep(50);
      }
      throw new Error(
        `no running etcd member reports itself as leader (${live.map((m) => m.endpoint).join(', ')})`,
      );
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(live.map((m) => m.destroy()));
    },
  };
}

export interface EtcdctlTls {
  caFile: string;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

export interface EtcdctlOptions {
  /** Run etcdctl inside this namespace. */
  netns?: string;
  tls?: EtcdctlTls | undefined;
  timeoutMs?: number;
  /** Resolve with a non-zero code instead of rejecting. */
  allowFailure?: boolean;
  /** Written to etcdctl's stdin. */
  input?: string;
  /** `--dial-timeout` (default 3000 ms) and `--command-timeout` (default 5000 ms). */
  dialTimeoutMs?: number;
  commandTimeoutMs?: number;
}

/**
 * Runs `/usr/bin/etcdctl --endpoints=<endpoint> args…` with ETCDCTL_API=3. Rejects with
 * `CommandFailedError` on a non-zero exit unless `allowFailure`.
 */
export async function etcdctl(
  endpoint: string | string[],
  args: readonly string[],
  opts: EtcdctlOptions = {},
): Promise<RunResult> {
  const endpoints = Array.isArray(endpoint) ? endpoint.join(',') : endpoint;
  const flags = [
    `--endpoints=${endpoints}`,
    `--dial-timeout=${opts.dialTimeoutMs ?? 3_000}ms`,
    `--command-timeout=${opts.commandTimeoutMs ?? 5_000}ms`,
  ];
  if (opts.tls) {
    flags.push(`--cacert=${opts.tls.caFile}`);
    if (opts.tls.certFile) flags.push(`--cert=${opts.tls.certFile}`);
    if (opts.tls.keyFile) flags.push(`--key=${opts.tls.keyFile}`);
  }
  const argv = opts.netns
    ? ['netns', 'exec', opts.netns, ETCDCTL_BINARY, ...flags, ...args]
    : [...flags, ...args];
  const runOpts = {
    env: { ...process.env, ETCDCTL_API: '3' },
    timeoutMs: opts.timeoutMs ?? 15_000,
    input: opts.input,
  };
  const cmd = opts.netns ? 'ip' : ETCDCTL_BINARY;
  return opts.allowFailure ? run(cmd, argv, runOpts) : runChecked(cmd, argv, runOpts);
}

export interface TestCerts {
  dir: string;
  caFile: string;
  caKeyFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

export interface MakeTestCertsOptions {
  /** Extra server SANs besides 127.0.0.1 and localhost (IP addresses or DNS names). */
  serverSans?: string[];
}

/** `EtcdTlsOptions` for a server made from `makeTestCerts` output (client-cert-auth on). */
export function etcdTlsFromCerts(certs: TestCerts, clientCertAuth = true): EtcdTlsOptions {
  return {
    certFile: certs.serverCertFile,
    keyFile: certs.serverKeyFile,
    trustedCaFile: certs.caFile,
    clientCertAuth,
    clientCertFile: certs.clientCertFile,
    clientKeyFile: certs.clientKeyFile,
  };
}

/** `EtcdctlTls` with the client certificate from `makeTestCerts`. */
export function etcdctlTlsFromCerts(certs: TestCerts): EtcdctlTls {
  return { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile };
}

function san(entry: string): string {
  return net.isIP(entry) ? `IP:${entry}` : `DNS:${entry}`;
}

/**
 * Writes a throwaway CA, a server certificate (SAN 127.0.0.1, localhost, plus `serverSans`) and a client
 * certificate into `dir`, with openssl (P-256 keys, 2 days).
 */
export async function makeTestCerts(dir: string, opts: MakeTestCertsOptions = {}): Promise<TestCerts> {
  fs.mkdirSync(dir, { recursive: true });
  const f = (name: string) => path.join(dir, name);
  const sans = ['127.0.0.1', 'localhost', ...(opts.serverSans ?? [])].map(san).join(',');
  fs.writeFileSync(
    f('openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = weft-test',
      '[v3_ca]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      '[v3_server]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth,clientAuth',
      `subjectAltName = ${sans}`,
      '[v3_client]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  );
  const openssl = async (args: string[]) => {
    try {
      await runChecked('openssl', args, { timeoutMs: 30_000 });
    } catch (err) {
      if (err instanceof CommandFailedError) throw new Error(`makeTestCerts: ${err.message}`);
      throw err;
    }
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const cfg = ['-config', f('openssl.cnf')];
  await openssl([
    'req',
    '-x509',
    ...newKey,
    ...cfg,
    '-extensions',
    'v3_ca',
    '-subj',
    '/CN=weft-test-ca',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
  ]);
  for (const [who, ext, cn] of [
    ['server', 'v3_server', 'weft-test-server'],
    ['client', 'v3_client', 'weft-test-client'],
  ] as const) {
    await openssl([
      'req',
      '-new',
      ...newKey,
      ...cfg,
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      f(`${who}.key`),
      '-out',
      f(`${who}.csr`),
    ]);
    await openssl([
      'x509',
      '-req',
      '-in',
      f(`${who}.csr`),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f(`${who}.crt`),
      '-days',
      '2',
      '-extfile',
      f('openssl.cnf'),
      '-extensions',
      ext,
    ]);
  }
  return {
    dir,
    caFile: f('ca.crt'),
    caKeyFile: f('ca.key'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
  };
}
