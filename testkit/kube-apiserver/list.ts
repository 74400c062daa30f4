// LIST semantics of the real API server for nodes, as documented in "API concepts" (kubernetes.io):
// - `limit` + `continue`: pages in key (name) order, every page from one consistent snapshot, the snapshot's
//   resourceVersion in each page's metadata, `remainingItemCount` while more follow. The continue token
//   names the snapshot's resourceVersion and the last key; once that version is compacted away the token
//   is answered 410 Expired ("The provided continue parameter is too old…").
// - `resourceVersion` × `resourceVersionMatch`: unset → most recent (consistent read, paged); "0" → any
//   (served from the watch cache, which ignores `limit`); N with NotOlderThan (or no match and no limit) →
//   at least N; N with Exact (or no match but a limit: the legacy rule) → exactly N. N newer than the server
//   → 504 "Too large resource version"; Exact N older than the history → 410 Expired.
// - `continue` with a `resourceVersion`, `resourceVersionMatch` without a `resourceVersion`, and Exact with
//   "0" are 400 Bad Request, with the real server's messages.
import { PatchError } from './strategic-merge.js';

export interface ListRequest {
  limit: number;
  /** The snapshot to read and the key after which to start. */
  at:
    | { kind: 'latest' }
    | { kind: 'any' }
    | { kind: 'notOlderThan'; rv: number }
    | { kind: 'exact'; rv: number };
  startAfter?: string;
}

/** What a status error carries beyond code, reason and message. */
export class ListError extends PatchError {
  constructor(
    status: number,
    reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(status, reason, message);
  }
}

interface ContinueToken {
  v: string;
  rv: number;
  start: string;
}

export function encodeContinue(rv: number, lastKey: string): string {
  const token: ContinueToken = { v: 'meta.k8s.io/v1', rv, start: `${lastKey}\u0000` };
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(text: string): ContinueToken {
  let token: unknown;
  try {
    token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new ListError(400, 'BadRequest', `continue key is not valid: ${JSON.stringify(text)}`);
  }
  const t = token as Partial<ContinueToken>;
  if (
    typeof t !== 'object' ||
    t === null ||
    t.v !== 'meta.k8s.io/v1' ||
    typeof t.rv !== 'number' ||
    !Number.isInteger(t.rv) ||
    typeof t.start !== 'string'
  ) {
    throw new ListError(
      400,
      'BadRequest',
      'continue key is not valid: incorrect encoded start resourceVersion',
    );
  }
  return t as ContinueToken;
}

function parseRv(text: string): number {
  const rv = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(rv)) {
    throw new ListError(
      400,
      'BadRequest',
      `resourceVersion: Invalid value: ${JSON.stringify(text)}: must be a number`,
    );
  }
  return rv;
}

/** Parses a LIST query into what to read, or throws the real server's 400. */
export function parseListRequest(query: URLSearchParams): ListRequest {
  const limitText = query.get('limit') ?? '';
  const limit = limitText === '' ? 0 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 0) {
    throw new ListError(400, 'BadRequest', `limit: Invalid value: ${JSON.stringify(limitText)}`);
  }
  const rvText = query.get('resourceVersion') ?? '';
  const match = query.get('resourceVersionMatch') ?? '';
  const continueText = query.get('continue') ?? '';
  if (match !== '' && match !== 'Exact' && match !== 'NotOlderThan') {
    throw new ListError(
      400,
      'BadRequest',
      `resourceVersionMatch: Unsupported value: ${JSON.stringify(match)}: supported values: "Exact", "NotOlderThan"`,
    );
  }
  if (continueText !== '') {
    if (rvText !== '' && rvText !== '0') {
      throw new ListError(
        400,
        'BadRequest',
        'specifying resource version is not allowed when using continue',
      );
    }
    if (match !== '') {
      throw new ListError(400, 'BadRequest', 'resourceVersionMatch is forbidden when continue is provided');
    }
    const token = decodeContinue(continueText);
    return { limit, at: { kind: 'exact', rv: token.rv }, startAfter: token.start.replace(/\u0000$/, '') };
  }
  if (rvText === '') {
    if (match !== '')
      throw new ListError(
        400,
        'BadRequest',
        'resourceVersionMatch is forbidden unless resourceVersion is provided',
      );
    return { limit, at: { kind: 'latest' } };
  }
  const rv = parseRv(rvText);
  if (match === 'Exact') {
    if (rv === 0)
      throw new ListError(
        400,
        'BadRequest',
        'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
      );
    return { limit, at: { kind: 'exact', rv } };
  }
  if (rv === 0) return { limit: 0, at: { kind: 'any' } };
  // The legacy rule: a resourceVersion with a limit and no match means Exact.
  if (match === '' && limit > 0) return { limit, at: { kind: 'exact', rv } };
  return { limit, at: { kind: 'notOlderThan', rv } };
}

export function tooLargeResourceVersion(rv: number, current: number): ListError {
  return new ListError(504, 'Timeout', `Timeout: Too large resource version: ${rv}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });
}

export function tooOldResourceVersion(rv: number, oldest: number): ListError {
  return new ListError(410, 'Expired', `too old resource version: ${rv} (${oldest})`);
}

export const CONTINUE_EXPIRED_MESSAGE =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';

/** A snapshot's keys in order: the index of the first key after `startAfter`. */
export function firstIndexAfter(sortedKeys: readonly string[], startAfter: string | undefined): number {
  if (startAfter === undefined) return 0;
  let lo = 0;
  let hi = sortedKeys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sortedKeys[mid] as string) <= startAfter) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
