import { Backoff, errorFields, errorMessage } from '../../core/index.js';
import type { Logger } from '../../log/index.js';
import type { EtcdRpc, WatchEvent, WatchRequest, WatchResponse, WatchStream } from './grpc/index.js';

/** What a range watch delivers, in order. `revision`: everything up to it has been delivered. */
export type RangeWatchItem =
  | { type: 'connected'; endpoint: string | undefined }
  | { type: 'events'; events: WatchEvent[]; revision: bigint }
  | { type: 'progress'; revision: bigint }
  /** The stream answered a progress request: it is alive (the revision is not a safe resume point on etcd 3.4). */
  | { type: 'alive' }
  /** History before `startRevision` was compacted away: list again and watch from the list's revision. */
  | { type: 'compacted'; compactRevision: bigint };

export interface RangeWatchOptions {
  key: Buffer;
  rangeEnd?: Buffer | undefined;
  /** First revision to deliver (last seen + 1). */
  startRevision: bigint;
  signal: AbortSignal;
  logger: Logger;
  /** Called before each reconnect attempt after a failure (for metrics). */
  onReconnect?: ((reason: string) => void) | undefined;
  /** Called before reconnecting: a cheap unary call that refreshes an expired auth token. */
  probe?: (() => Promise<unknown>) | undefined;
  /** Give up on a stream whose watch is not created within this long (default 10 s). */
  createTimeoutMs?: number | undefined;
  /** Reconnect backoff bounds (default 100 ms → 5 s). */
  minBackoffMs?: number | undefined;
  maxBackoffMs?: number | undefined;
  /** Ask etcd for a progress report this often on an idle stream (default: never); answers yield `alive`. */
  progressRequestMs?: number | undefined;
}

type StreamSignal =
  | { kind: 'data'; res: WatchResponse }
  | { kind: 'error'; error: Error }
  | { kind: 'abort' };

class WatchStreamEndedError extends Error {
  override name = 'WatchStreamEndedError';
}

/**
 * Watches a key range from `startRevision`, resuming after any disconnect from the last revision
 * delivered + 1 (never from a "created" header, which may be ahead of the events still to come).
 * Built on the raw gRPC watch stream (as it was with the etcd3 package, whose Watcher advanced its resume
 * revision to the header revision of the create response, so events between the requested start and that
 * header were lost if the stream broke before they arrived, and turned compaction into an error event).
 * Ends (returns) after yielding `compacted`, or when `signal` aborts.
 */
export async function* watchRange(client: EtcdRpc, opts: RangeWatchOptions): AsyncGenerator<RangeWatchItem> {
  const backoff = new Backoff({ initialMs: opts.minBackoffMs ?? 100, maxMs: opts.maxBackoffMs ?? 5_000 });
  const createTimeoutMs = opts.createTimeoutMs ?? 10_000;
  let next = opts.startRevision;
  let failure: string | undefined;
  let failures = 0;

  while (!opts.signal.aborted) {
    if (failure !== undefined) {
      failures += 1;
      // First failure and then every tenth: an outage is visible without flooding the log.
      if (failures === 1 || failures % 10 === 0) {
        opts.logger.warn(
          { reason: failure, resumeFrom: next.toString(), attempt: failures },
          'etcd watch disconnected; reconnecting',
        );
      }
      opts.onReconnect?.(failure);
      await backoff.wait(opts.signal);
      if (opts.signal.aborted) return;
      if (opts.probe) {
        try {
          await opts.probe();
        } catch (err) {
          failure = `etcd unreachable: ${errorMessage(err)}`;
          opts.logger.debug({ err: errorFields(err) }, 'etcd watch: probe before reconnect failed');
          continue;
        }
      }
    }

    // One stream: a queue fed by stream events, drained below.
    const queue: StreamSignal[] = [];
    let wake: (() => void) | undefined;
    const push = (item: StreamSignal): void => {
      queue.push(item);
      wake?.();
    };
    const onAbort = (): void => push({ kind: 'abort' });
    opts.signal.addEventListener('abort', onAbort, { once: true });
    let stream: WatchStream | undefined;
    let createTimer: NodeJS.Timeout | undefined;
    let progressTimer: NodeJS.Timeout | undefined;
    try {
      try {
        stream = await client.watchClient.watch();
      } catch (err) {
        failure = `cannot open watch stream: ${errorMessage(err)}`;
        continue;
      }
      stream.on('data', (res: WatchResponse) => push({ kind: 'data', res }));
      stream.on('error', (error: Error) => push({ kind: 'error', error }));
      stream.on('end', () => push({ kind: 'error', error: new WatchStreamEndedError('watch stream ended') }));
      const request: WatchRequest = {
        create_request: {
          key: opts.key,
          range_end: opts.rangeEnd,
          start_revision: next.toString(),
          progress_notify: true,
        },
      };
      stream.write(request);
      createTimer = setTimeout(
        () => push({ kind: 'error', error: new Error(`watch not created within ${createTimeoutMs} ms`) }),
        createTimeoutMs,
      );

      let created = false;
      for (;;) {
        if (queue.length === 0) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        const item = queue.shift() as StreamSignal;
        if (item.kind === 'abort') return;
        if (item.kind === 'error') {
          failure = errorMessage(item.error);
          break;
        }
        const res = item.res;
        if (res.compact_revision && res.compact_revision !== '0') {
          yield { type: 'compacted', compactRevision: BigInt(res.compact_revision) };
          return;
        }
        if (res.canceled) {
          failure = `watch canceled by etcd: ${res.cancel_reason || 'no reason given'}`;
          break;
        }
        if (res.created) {
          created = true;
          clearTimeout(createTimer);
          backoff.reset();
          if (opts.progressRequestMs !== undefined) {
            const s = stream;
            progressTimer = setInterval(() => s.write({ progress_request: {} }), opts.progressRequestMs);
          }
          if (failures > 0) {
            opts.logger.info({ resumeFrom: next.toString(), attempts: failures }, 'etcd watch resumed');
          }
          failures = 0;
          const peer = (stream as unknown as { getPeer?: () => string }).getPeer?.();
          yield { type: 'connected', endpoint: peer };
          continue;
        }
        if (!created) continue;
        // The answer to a progress request (etcd 3.4 sends it even to a watcher still catching up, so its
        // revision is not used): proof that the stream is alive.
        if (res.events.length === 0 && String(res.watch_id) === '-1') {
          yield { type: 'alive' };
          continue;
        }
        if (res.events.length > 0) {
          const last = res.events[res.events.length - 1];
          const revision = BigInt(last?.kv.mod_revision ?? next - 1n);
          next = revision + 1n;
          yield { type: 'events', events: res.events, revision };
        } else if (res.header) {
          // Progress notification: only sent to a watcher that has caught up, so the header is safe.
          const revision = BigInt(res.header.revision);
          if (revision + 1n > next) {
            next = revision + 1n;
            yield { type: 'progress', revision };
          }
        }
      }
    } finally {
      clearTimeout(createTimer);
      clearInterval(progressTimer);
      opts.signal.removeEventListener('abort', onAbort);
      if (stream) {
        // Keep an error listener: cancel() makes the stream emit a CANCELLED error.
        stream.on('error', () => undefined);
        try {
          stream.cancel();
        } catch {
          // already closed
        }
      }
    }
  }
}
