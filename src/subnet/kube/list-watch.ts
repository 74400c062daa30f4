// List then watch nodes, the way client-go's reflector does: remember the list's resourceVersion, watch from
// it, advance it with every event and bookmark, resume from it after a dropped connection, and list again
// when the server answers 410 Gone (the version fell out of its history). Errors are retried with backoff.

import { Backoff, type BackoffOptions, errorFields, errorMessage, sleep } from '../../core/index.js';
import type { Logger } from '../../log/index.js';
import type { WatchHealthEvent } from '../types.js';
import { isGone, KubeApiError, type NodeListResult, type NodeSource, watchErrorStatus } from './client.js';
import type { KubeNode } from './node-lease.js';

export type NodeStreamItem =
  /** A full list: the complete set of nodes (after start, and after every 410). */
  | { type: 'list'; nodes: KubeNode[]; resourceVersion: string }
  | { type: 'event'; event: 'ADDED' | 'MODIFIED' | 'DELETED'; node: KubeNode };

/** Health of the stream, for metrics and /status (same shape as the etcd manager's events). */
/** The lease watch's health events: the one shape both lease sources use. */
export type KubeWatchEvent = WatchHealthEvent;

export interface ListWatchOptions {
  /** e.g. `metadata.name=node-1` to follow one node. */
  fieldSelector?: string;
  /** List page size (default 500, as client-go). */
  pageSize?: number;
  backoff?: BackoffOptions;
  /** Asks the server to end each watch after this long; it is then resumed (default 300 s). */
  watchTimeoutSeconds?: number;
  /** A watch that sends nothing for this long is dropped and resumed (default: watch timeout + 60 s). */
  idleTimeoutMs?: number;
  logger: Logger;
  /** Told about (re)connections, failures and re-lists. */
  onEvent?: ((event: KubeWatchEvent) => void) | undefined;
  /** Named in `connected` events. */
  endpoint?: string | undefined;
}

/**
 * A node reduced to the fields weft reads (name, resourceVersion, annotations, pod CIDRs, conditions): a
 * kubelet's node carries images, capacity and addresses too, and 5000 of those held at once are the peak
 * of a start-up.
 */
export function nodeFieldsWeftReads(node: KubeNode): KubeNode {
  const m = node.metadata;
  const out: KubeNode = {
    metadata: {
      ...(m?.name !== undefined ? { name: m.name } : {}),
      ...(m?.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
      ...(m?.annotations ? { annotations: m.annotations } : {}),
    },
  };
  if (node.spec) {
    out.spec = {
      ...(node.spec.podCIDR !== undefined ? { podCIDR: node.spec.podCIDR } : {}),
      ...(node.spec.podCIDRs !== undefined ? { podCIDRs: node.spec.podCIDRs } : {}),
    };
  }
  if (node.status?.conditions) out.status = { conditions: node.status.conditions };
  return out;
}

/** Lists and watches nodes until `signal` aborts. Never throws: every failure is logged and retried. */
export async function* listWatchNodes(
  source: NodeSource,
  options: ListWatchOptions,
  signal: AbortSignal,
): AsyncGenerator<NodeStreamItem> {
  const log = options.logger;
  const backoff = new Backoff(options.backoff);
  const timeoutSeconds = options.watchTimeoutSeconds ?? 300;
  const idleTimeoutMs = options.idleTimeoutMs ?? (timeoutSeconds + 60) * 1000;
  const what = options.fieldSelector ? `nodes (${options.fieldSelector})` : 'nodes';
  let resourceVersion: string | undefined;
  const emit = options.onEvent ?? (() => undefined);
  let healthy = false;
  const connected = (): void => {
    if (!healthy) emit({ type: 'connected', endpoint: options.endpoint });
    healthy = true;
  };
  const failed = (err: unknown): void => {
    healthy = false;
    emit({ type: 'reconnect', reason: errorMessage(err) });
  };

  const pause = async (message: string, err: unknown): Promise<void> => {
    const delay = backoff.nextDelayMs();
    const level =
      err instanceof KubeApiError && (err.status === 401 || err.status === 403) ? 'error' : 'warn';
    log[level]({ err: errorFields(err), retryInMs: delay, attempt: backoff.attempts }, message);
    await sleep(delay, signal);
  };

  while (!signal.aborted) {
    if (resourceVersion === undefined) {
      let list: NodeListResult;
      try {
        list = await source.listNodes(
          {
            ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
            ...(options.pageSize !== undefined ? { pageSize: options.pageSize } : {}),
            project: nodeFieldsWeftReads,
          },
          signal,
        );
      } catch (err) {
        if (signal.aborted) return;
        failed(err);
        await pause(`listing ${what} failed; retrying`, err);
        continue;
      }
      backoff.reset();
      connected();
      resourceVersion = list.resourceVersion;
      log.debug({ resourceVersion, count: list.items.length, pages: list.pages }, `listed ${what}`);
      yield { type: 'list', nodes: list.items, resourceVersion };
      if (signal.aborted) return;
    }

    let received = false;
    try {
      const stream = source.watchNodes(
        {
          resourceVersion,
          idleTimeoutMs,
          timeoutSeconds,
          ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
        },
        signal,
      );
      for await (const event of stream) {
        received = true;
        if (event.type === 'ERROR') {
          const status = watchErrorStatus(event.object);
          throw new KubeApiError(
            `WATCH ${what} from resourceVersion ${resourceVersion}`,
            status.code,
            status.reason,
            status.message ?? 'error event',
          );
        }
        const object = event.object as KubeNode | undefined;
        const rv = object?.metadata?.resourceVersion;
        if (rv) resourceVersion = rv;
        backoff.reset();
        connected();
        if (event.type === 'BOOKMARK') continue;
        if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED') {
          if (object?.metadata?.name === undefined) {
            log.warn({ type: event.type }, `watch of ${what} sent an event without a node name; ignored`);
            continue;
          }
          yield { type: 'event', event: event.type, node: object };
        } else {
          log.warn({ type: event.type }, `watch of ${what} sent an unknown event type; ignored`);
        }
      }
      // The server ended the watch (its timeout, or a restart that closed cleanly): resume from where we are.
      log.debug({ resourceVersion }, `watch of ${what} ended; resuming`);
      if (!received) await sleep(backoff.nextDelayMs(), signal);
    } catch (err) {
      if (signal.aborted) return;
      if (isGone(err)) {
        log.info(
          { resourceVersion },
          `resourceVersion ${resourceVersion} of ${what} is no longer in the API server's history (410 Gone); listing again`,
        );
        emit({ type: 'relist', reason: errorMessage(err) });
        healthy = false;
        resourceVersion = undefined;
        continue;
      }
      failed(err);
      await pause(`watch of ${what} failed; resuming from resourceVersion ${resourceVersion}`, err);
    }
  }
}
