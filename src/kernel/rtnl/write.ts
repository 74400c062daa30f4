// writeEntries: the effect of entry ops over rtnetlink. Devices are resolved to indexes once per call, the
// requests are encoded (encode.ts) and sent in chunks through the native primitive; every few milliseconds the
// event loop runs, so a first pass of 15000 entries never holds the JavaScript thread for long. A failing request never
// stops the others (the kernel answers each one), and its message reads as iproute2 would print it.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { errorMessage } from '../../core/index.js';
import { netnsPath } from '../exec.js';
import type { KernelCallOptions } from '../types.js';
import { type EntryOp, encodeEntryOp, entryDevice } from './encode.js';
import type { RtnlAddon, RtnlAnswer } from './native.js';

/**
 * Requests per native call: 64 routes take the kernel ~1 ms (up to ~6 ms on a loaded node with 5000 routes);
 * 512 took up to 120 ms there, all of it with the JavaScript thread blocked.
 */
export const RTNL_CHUNK_OPS = 64;
/** The event loop runs once at least this long has passed since it last ran. */
export const RTNL_YIELD_MS = 4;

/** The kernel's answer as iproute2 prints it: `Error: <extended ack>.` or `RTNETLINK answers: <strerror>`. */
export function describeRtnlAnswer(answer: Exclude<RtnlAnswer, 0>): string {
  if (answer.message !== '') return `Error: ${answer.message}${answer.message.endsWith('.') ? '' : '.'}`;
  return `RTNETLINK answers: ${answer.text}`;
}

/** Writes the ops in order; returns per op undefined (done) or its error. Never throws. */
export async function writeEntries(
  ops: readonly EntryOp[],
  rtnl: RtnlAddon,
  opts: KernelCallOptions & { chunkOps?: number } = {},
): Promise<Array<string | undefined>> {
  const errors: Array<string | undefined> = ops.map(() => undefined);
  let ns: string | undefined;
  const devices: Array<string | undefined> = ops.map((op, i) => {
    try {
      return entryDevice(op);
    } catch (err) {
      errors[i] = errorMessage(err);
      return undefined;
    }
  });
  const names = [...new Set(devices.filter((d): d is string => d !== undefined))];
  const indexOf = new Map<string, number>();
  try {
    ns = netnsPath(opts);
    const indexes = names.length > 0 ? rtnl.rtnlIfindexes(names, ns) : [];
    names.forEach((name, i) => {
      indexOf.set(name, indexes[i] ?? 0);
    });
  } catch (err) {
    const message = errorMessage(err);
    return ops.map((_, i) => errors[i] ?? message);
  }
  // Encoded a chunk at a time, so encoding a first pass is spread between the yields too.
  const chunk = Math.max(1, opts.chunkOps ?? RTNL_CHUNK_OPS);
  let next = 0;
  let since = performance.now();
  while (next < ops.length) {
    if (performance.now() - since >= RTNL_YIELD_MS) {
      await nextTurn();
      since = performance.now();
    }
    const requests: Buffer[] = [];
    const opOfRequest: number[] = [];
    for (; next < ops.length && requests.length < chunk; next++) {
      const device = devices[next];
      if (device === undefined) continue;
      const index = indexOf.get(device) ?? 0;
      if (index === 0) {
        errors[next] = `Cannot find device "${device}"`;
        continue;
      }
      try {
        requests.push(encodeEntryOp(ops[next]!, index));
        opOfRequest.push(next);
      } catch (err) {
        errors[next] = errorMessage(err);
      }
    }
    if (requests.length === 0) continue;
    let answers: RtnlAnswer[];
    try {
      answers = rtnl.rtnlTransact(Buffer.concat(requests), ns);
    } catch (err) {
      const message = errorMessage(err);
      for (const i of opOfRequest) errors[i] = message;
      continue;
    }
    opOfRequest.forEach((i, k) => {
      const answer = answers[k];
      if (answer === undefined) errors[i] = 'no answer from the kernel';
      else if (answer !== 0) errors[i] = describeRtnlAnswer(answer);
    });
  }
  return errors;
}
