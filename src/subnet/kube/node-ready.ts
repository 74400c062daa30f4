// The node condition `NetworkUnavailable=False` (reason `FlannelIsUp`) as a Task that runs beside the lease
// watch: the scheduler keeps pods off a node with the network-unavailable taint, so weft sets the condition,
// and sets it again when the node comes back without it (re-registered, or someone set it True). It never
// blocks anything else: peers keep being programmed while it retries. A 4xx answer (RBAC missing, admission
// refusing) will not fix itself soon: it is logged as an error and retried slowly, not in a tight loop;
// 5xx and network errors are retried with the core backoff. It beats after every successful check.
import {
  Backoff,
  type BackoffOptions,
  errorFields,
  sleep,
  type Task,
  type TaskContext,
} from '../../core/index.js';
import type { Logger } from '../../log/index.js';
import { KubeApiError } from './client.js';
import { type KubeNode, networkReadyCondition } from './node-lease.js';

export interface NodeReadyTaskOptions {
  patchNodeStatus(name: string, patch: object, signal?: AbortSignal): Promise<unknown>;
  nodeName(signal: AbortSignal): Promise<string>;
  logger: Logger;
  /** Retry delays for 5xx and network errors (core defaults). */
  backoff?: BackoffOptions;
  /** Delay before retrying after a 4xx answer (default 60 s). */
  clientErrorRetryMs?: number;
  /** How often the task confirms the condition is still set, from the own node the lease keeper watches (default 30 s). */
  periodMs?: number;
}

/** 4xx answers that a retry will not fix soon (408 timeout, 409 conflict and 429 throttling are transient). */
export function isLastingClientError(err: unknown): err is KubeApiError {
  return (
    err instanceof KubeApiError &&
    err.status !== undefined &&
    err.status >= 400 &&
    err.status < 500 &&
    err.status !== 408 &&
    err.status !== 409 &&
    err.status !== 429
  );
}

/** True when the node carries `NetworkUnavailable=False`. */
export function networkMarkedReady(node: KubeNode): boolean {
  const condition = node.status?.conditions?.find((c) => c.type === 'NetworkUnavailable');
  return condition?.status === 'False';
}

export class NodeReadyTask implements Task {
  readonly name = 'kube-node-ready';
  readonly periodMs: number;
  private readonly clientErrorRetryMs: number;
  private marked = false;
  private markAgain = false;
  private wake: (() => void) | undefined;
  private running = false;
  private firstAttempt: Promise<void>;
  private settleFirstAttempt: () => void = () => undefined;

  constructor(private readonly options: NodeReadyTaskOptions) {
    this.periodMs = options.periodMs ?? 30_000;
    this.clientErrorRetryMs = options.clientErrorRetryMs ?? 60_000;
    this.firstAttempt = new Promise((resolve) => {
      this.settleFirstAttempt = resolve;
    });
  }

  /** True once the condition was set (and not seen lost since). */
  get isMarked(): boolean {
    return this.marked && !this.markAgain;
  }

  /** Resolves after the first attempt to set the condition, successful or not. */
  attempted(): Promise<void> {
    return this.firstAttempt;
  }

  /** The own node as the lease keeper's watch last saw it: without the condition, it is set again at once. */
  observe(node: KubeNode): void {
    if (!this.marked || networkMarkedReady(node)) return;
    this.markAgain = true;
    this.wake?.();
  }

  private async pause(ms: number, signal: AbortSignal): Promise<void> {
    const woken = new AbortController();
    this.wake = () => woken.abort();
    await sleep(ms, AbortSignal.any([signal, woken.signal]));
    this.wake = undefined;
  }

  async run({ signal, beat }: TaskContext): Promise<void> {
    if (this.running) throw new Error('the kube-node-ready task is already running');
    this.running = true;
    const log = this.options.logger;
    const backoff = new Backoff(this.options.backoff);
    try {
      while (!signal.aborted) {
        if (this.marked && !this.markAgain) {
          beat();
          await this.pause(this.periodMs, signal);
          continue;
        }
        let node = '(unknown)';
        try {
          node = await this.options.nodeName(signal);
          const again = this.markAgain;
          this.markAgain = false;
          await this.options.patchNodeStatus(
            node,
            { status: { conditions: [networkReadyCondition(new Date())] } },
            signal,
          );
          this.marked = true;
          backoff.reset();
          log.info({ node, again }, 'node condition NetworkUnavailable=False set');
          beat();
          this.settleFirstAttempt();
          await this.pause(this.periodMs, signal);
        } catch (err) {
          this.settleFirstAttempt();
          if (signal.aborted) return;
          // Only API answers are retried; anything else (no node name) is a configuration error for the daemon.
          if (!(err instanceof KubeApiError)) throw err;
          if (this.marked) this.markAgain = true;
          const lasting = isLastingClientError(err);
          const delay = lasting ? this.clientErrorRetryMs : backoff.nextDelayMs();
          log[lasting ? 'error' : 'warn'](
            { node, err: errorFields(err), retryInMs: delay },
            'cannot set the node condition NetworkUnavailable=False; peers are programmed meanwhile; retrying',
          );
          await this.pause(delay, signal);
        }
      }
    } finally {
      this.running = false;
      this.settleFirstAttempt();
    }
  }
}
