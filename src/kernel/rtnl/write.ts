// writeEntries: the effect of entry ops over rtnetlink. Devices are resolved to indexes once per call, the
// requests are encoded (encode.ts) and sent in chunks through the native primitive; between chunks the event
// loop runs, so a first pass of 15000 entries never holds the JavaScript thread for long. A failing request never
// stops the others (the kernel answers each one), and its message reads as iproute2 would print it.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { netnsPath } from '../exec.js';
import type { KernelCallOptions } from '../types.js';
import { type EntryOp, encodeEntryOp, entryDevice } from './encode.js';
import type { RtnlAddon, RtnlAnswer } from './native.js';

/** Requests per native call; a chunk of routes takes the kernel a few milliseconds. */
export const RTNL_CHUNK_OPS = 512;

/** The kernel's answer as iproute2 prints it: `Error: <extended ack>.` or `RTNETLINK answers: <strerror>`. */
export function describeRtnlAnswer(answer: Exclude<RtnlAnswer, 0>): string {
  if (answer.message !== '') return `Error: ${answer.message}${answer.message.endsWith('.') ? '' : '.'}`;
  return `RTNETLINK answers: ${answer.text}`;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

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
      errors[i] = messageOf(err);
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
    const message = messageOf(err);
    return ops.map((_, i) => errors[i] ?? message);
  }
  // Encoded requests and, for each, the op it came from.
  const requests: Buffer[] = [];
  const opOfRequest: number[] = [];
  ops.forEach((op, i) => {
    const device = devices[i];
    if (device === undefined) return;
    const index = indexOf.get(device) ?? 0;
    if (index === 0) {
      errors[i] = `Cannot find device "${device}"`;
      return;
    }
    try {
      requests.push(encodeEntryOp(op, index));
      opOfRequest.push(i);
    } catch (err) {
      errors[i] = messageOf(err);
    }
  });
  const chunk = Math.max(1, opts.chunkOps ?? RTNL_CHUNK_OPS);
  for (let start = 0; start < requests.length; start += chunk) {
    if (start > 0) await nextTurn();
    const end = Math.min(requests.length, start + chunk);
    let answers: RtnlAnswer[];
    try {
      answers = rtnl.rtnlTransact(Buffer.concat(requests.slice(start, end)), ns);
    } catch (err) {
      const message = messageOf(err);
      for (let k = start; k < end; k++) errors[opOfRequest[k]!] = message;
      continue;
    }
    for (let k = start; k < end; k++) {
      const answer = answers[k - start];
      if (answer === undefined) errors[opOfRequest[k]!] = 'no answer from the kernel';
      else if (answer !== 0) errors[opOfRequest[k]!] = describeRtnlAnswer(answer);
    }
  }
  return errors;
}
