// flannel's extension backend: the user's own commands from the network config, run through `sh -c` (the one
// shell in weft: the commands are the user's). PreStartupCommand's stdout becomes the lease's BackendData,
// PostStartupCommand runs once the lease is held (env SUBNET), SubnetAddCommand / SubnetRemoveCommand run per
// peer (env SUBNET, IPV6SUBNET, PUBLIC_IP, PUBLIC_IPV6; stdin = the peer's BackendData).
//
// Better than flannel: every run is bounded in time, a failure is logged with its exit code and stderr tail and
// retried on the next pass, and the per-peer commands run in the background, so a hanging one never holds up
// the reconcile loop or any other task.
import type { Logger } from 'pino';
import type { ExtensionBackendConfig } from '../../config/index.js';
import { CommandTimeoutError, errorFields, runCommand } from '../../core/index.js';
import { formatCidr } from '../../ip/index.js';
import type { Lease, LeaseAttrs } from '../../lease/index.js';
import { dataField } from '../lease-fields.js';
import { NoDataPathBackend } from '../no-data-path.js';
import { sortedPeers } from '../peer-check.js';
import { type BackendContext, BackendPrepareError, type PreparedBackend } from '../types.js';

const DEFAULT_TIMEOUT_MS = 30_000;
/** How much of a failed command's stderr the log keeps. */
const STDERR_TAIL = 500;

/** The command for one peer: environment and stdin, and a fingerprint to notice a changed lease. */
export interface ExtensionPeerRun {
  key: string;
  env: Record<string, string>;
  stdin: string;
  fingerprint: string;
}

/**
 * BackendData as the command's stdin: a string stored under `Output` (see `extensionBackendData`) goes back
 * out raw; an object as its JSON.
 */
function backendDataText(data: Record<string, unknown> | undefined): string {
  if (data === undefined) return '';
  const output = dataField(data, 'Output');
  if (typeof output === 'string' && Object.keys(data).length === 1) return output;
  return JSON.stringify(data);
}

/** The per-peer runs for the current leases (the own lease and other backend types left out). Pure. */
export function planExtensionPeers(own: Lease, peers: readonly Lease[]): ExtensionPeerRun[] {
  const out: ExtensionPeerRun[] = [];
  for (const peer of sortedPeers(peers)) {
    if (peer.key === own.key || peer.attrs.backendType !== 'extension') continue;
    const env: Record<string, string> = {
      SUBNET: peer.subnet === undefined ? '' : formatCidr(peer.subnet),
      IPV6SUBNET: peer.ipv6Subnet === undefined ? '' : formatCidr(peer.ipv6Subnet),
      PUBLIC_IP: peer.attrs.publicIP,
      PUBLIC_IPV6: peer.attrs.publicIPv6 ?? '',
    };
    const stdin = backendDataText(peer.attrs.backendData);
    out.push({ key: peer.key, env, stdin, fingerprint: JSON.stringify([env, stdin]) });
  }
  return out;
}

/**
 * The lease's BackendData from PreStartupCommand's stdout: a JSON object as it is; anything else (flannel
 * stores the text as a JSON string, which weft's lease codec does not take) under `Output`.
 */
export function extensionBackendData(stdout: string): Record<string, unknown> | undefined {
  const text = stdout.trim();
  if (text === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // plain text
  }
  return { Output: text };
}

export class ExtensionBackend extends NoDataPathBackend {
  readonly name = 'extension';
  private logger: Logger | undefined;
  private timeoutMs = DEFAULT_TIMEOUT_MS;
  private postStartupDone = false;
  /** Peers whose SubnetAddCommand succeeded, by lease key → fingerprint of what it ran with. */
  private readonly added = new Map<string, ExtensionPeerRun>();
  private wanted: ExtensionPeerRun[] = [];
  private ownSubnet = '';
  private running: Promise<void> | undefined;
  private again = false;

  constructor(readonly cfg: ExtensionBackendConfig) {
    super();
  }

  async prepare(ctx: BackendContext): Promise<PreparedBackend> {
    const { iface } = ctx;
    this.logger = ctx.logger;
    this.timeoutMs = ctx.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (iface.publicIp === undefined && iface.publicIpv6 === undefined) {
      throw new BackendPrepareError(`extension: ${iface.name} has no address to publish`);
    }
    const attrs: LeaseAttrs = { publicIP: iface.publicIp ?? '', backendType: 'extension' };
    if (iface.publicIpv6 !== undefined) attrs.publicIPv6 = iface.publicIpv6;
    if (this.cfg.preStartupCommand !== '') {
      const result = await this.run('PreStartupCommand', this.cfg.preStartupCommand, {}, '');
      if (result === undefined) {
        throw new BackendPrepareError('extension: PreStartupCommand failed (see the log line above)');
      }
      const data = extensionBackendData(result);
      if (data !== undefined) attrs.backendData = data;
    }
    this.preparedMtu = iface.mtu;
    return { attrs, mtu: iface.mtu };
  }

  /** Hands the commands the current peers; they run in the background (never awaited by the pass). */
  afterReconcile(own: Lease, peers: readonly Lease[]): void {
    this.ownSubnet = own.subnet === undefined ? '' : formatCidr(own.subnet);
    this.wanted = planExtensionPeers(own, peers);
    this.kick();
  }

  /** Resolves when the background commands queued so far have run (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private kick(): void {
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.work().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async work(): Promise<void> {
    if (!this.postStartupDone && this.cfg.postStartupCommand !== '') {
      const out = await this.run(
        'PostStartupCommand',
        this.cfg.postStartupCommand,
        { SUBNET: this.ownSubnet },
        '',
      );
      if (out !== undefined) this.postStartupDone = true;
    } else this.postStartupDone = true;
    const wanted = new Map(this.wanted.map((r) => [r.key, r]));
    for (const [key, done] of [...this.added]) {
      if (wanted.has(key)) continue;
      if (this.cfg.subnetRemoveCommand === '') {
        this.added.delete(key);
        continue;
      }
      const out = await this.run('SubnetRemoveCommand', this.cfg.subnetRemoveCommand, done.env, done.stdin);
      if (out !== undefined) this.added.delete(key);
    }
    for (const run of wanted.values()) {
      if (this.added.get(run.key)?.fingerprint === run.fingerprint) continue;
      if (this.cfg.subnetAddCommand === '') {
        this.added.set(run.key, run);
        continue;
      }
      const out = await this.run('SubnetAddCommand', this.cfg.subnetAddCommand, run.env, run.stdin);
      if (out !== undefined) this.added.set(run.key, run);
    }
  }

  /** Runs one command through `sh -c`; its stdout, or undefined after logging why it failed. */
  private async run(
    what: string,
    command: string,
    env: Record<string, string>,
    stdin: string,
  ): Promise<string | undefined> {
    try {
      const result = await runCommand('sh', ['-c', command], {
        env: { ...process.env, ...env },
        input: stdin,
        timeoutMs: this.timeoutMs,
      });
      if (result.code === 0) {
        this.logger?.info({ command: what, env }, 'extension: command succeeded');
        return result.stdout;
      }
      this.logger?.error(
        { command: what, env, exitCode: result.code, stderr: result.stderr.slice(-STDERR_TAIL) },
        'extension: command failed; retried on the next pass',
      );
    } catch (err) {
      const timedOut = err instanceof CommandTimeoutError;
      this.logger?.error(
        { command: what, env, timedOut, timeoutMs: this.timeoutMs, err: errorFields(err) },
        timedOut
          ? `extension: command killed after ${this.timeoutMs} ms; retried on the next pass`
          : 'extension: command could not run; retried on the next pass',
      );
    }
    return undefined;
  }
}
