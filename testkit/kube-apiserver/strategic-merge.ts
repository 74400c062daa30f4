// Patch semantics of the Kubernetes API server for Node objects, as far as weft and its tests use them:
// strategic merge patch (maps merge, `null` deletes a key, lists with a merge key merge element-wise,
// `$patch: delete|replace` directives) and JSON merge patch (RFC 7386: every list is replaced).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export class PatchError extends Error {
  override name = 'PatchError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** Lists of a Node that Kubernetes declares `patchStrategy: merge` with this key (path without indices). */
const NODE_MERGE_KEYS: Record<string, string> = {
  'status.conditions': 'type',
  'status.addresses': 'type',
  'status.volumesAttached': 'name',
  'metadata.ownerReferences': 'uid',
};

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** RFC 7386 JSON merge patch. */
export function jsonMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = jsonMergePatch(out[key], value);
  }
  return out;
}

/** Strategic merge patch of a Node (or part of one at `path`). Returns undefined when the patch deletes it. */
export function strategicMerge(target: Json | undefined, patch: Json, path = ''): Json | undefined {
  if (!isObject(patch)) return clone(patch);
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return clone(rest);
  }
  if (directive !== undefined) {
    throw new PatchError(
      400,
      'BadRequest',
      `unknown $patch directive ${JSON.stringify(directive)} at ${path || '(root)'}`,
    );
  }
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    // Ordering and retain-keys directives only affect order and pruning, which no caller here relies on.
    if (
      key.startsWith('$setElementOrder/') ||
      key === '$retainKeys' ||
      key.startsWith('$deleteFromPrimitiveList/')
    ) {
      continue;
    }
    const childPath = path ? `${path}.${key}` : key;
    if (value === null) {
      delete out[key];
      continue;
    }
    if (Array.isArray(value)) {
      const mergeKey = NODE_MERGE_KEYS[childPath];
      const current = out[key];
      out[key] = mergeKey
        ? mergeList(Array.isArray(current) ? current : [], value, mergeKey, childPath)
        : clone(value);
      continue;
    }
    const merged = strategicMerge(out[key], value, childPath);
    if (merged === undefined) delete out[key];
    else out[key] = merged;
  }
  return out;
}

function mergeList(current: Json[], patch: Json[], mergeKey: string, path: string): Json[] {
  if (patch.some((e) => isObject(e) && e.$patch === 'replace')) {
    return clone(patch.filter((e) => !(isObject(e) && e.$patch === 'replace')));
  }
  const out = clone(current);
  for (const element of patch) {
    if (!isObject(element)) {
      throw new PatchError(
        400,
        'BadRequest',
        `${path}: expected objects with a "${mergeKey}" field, found ${JSON.stringify(element)}`,
      );
    }
    const keyValue = element[mergeKey];
    if (keyValue === undefined) {
      throw new PatchError(400, 'BadRequest', `${path}: an element has no merge key "${mergeKey}"`);
    }
    const index = out.findIndex((e) => isObject(e) && e[mergeKey] === keyValue);
    if (element.$patch === 'delete') {
      if (index >= 0) out.splice(index, 1);
      continue;
    }
    if (index >= 0) {
      const merged = strategicMerge(out[index], element, path);
      if (merged === undefined) out.splice(index, 1);
      else out[index] = merged;
    } else {
      out.push(clone(element));
    }
  }
  return out;
}
