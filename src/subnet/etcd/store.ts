import type { EtcdRpc, KeyValue } from './grpc/index.js';

/** One key under `<prefix>/subnets/` as stored, before any parsing. */
export interface RawLeaseRecord {
  /** Key suffix after `<prefix>/subnets/` (UTF-8 decoded). */
  key: string;
  value: string;
  /** etcd lease ID as a decimal string; '0' = no lease (a reservation). */
  leaseId: string;
  modRevision: string;
  createRevision: string;
}

export interface RawLeaseList {
  records: RawLeaseRecord[];
  /** Store revision the list was read at; watch from revision + 1. */
  revision: bigint;
}

/** Keys per range request when listing; later pages are read at the first page's revision. */
const LIST_PAGE_SIZE = 500;
/** Concurrent LeaseTimeToLive calls when resolving expiries. */
const TTL_CONCURRENCY = 16;
/** Remembered lease expiries (by lease ID) before the cache is cleared. */
const TTL_CACHE_LIMIT = 20_000;

/** The first key after every key that starts with `prefix` (etcd's "range_end" for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** `/coreos.com/network` + `config` → `/coreos.com/network/config` (flannel's path.Join). */
export function joinKey(prefix: string, name: string): string {
  const base = prefix.replace(/\/+$/, '');
  return `${base}/${name}`;
}

/**
 * flannel's key layout in etcd: `<prefix>/config` and `<prefix>/subnets/<key>`. Thin: raw reads and
 * writes, no parsing of values.
 */
export class EtcdLeaseStore {
  readonly configKey: Buffer;
  readonly subnetsPrefix: Buffer;
  readonly subnetsEnd: Buffer;
  private readonly ttlCache = new Map<string, Date>();
  /** The highest store revision a read of this store has returned (config, ping, lists), if any. */
  private readRevisionSeen: bigint | undefined;

  constructor(
    readonly client: EtcdRpc,
    readonly prefix: string,
  ) {
    this.configKey = Buffer.from(joinKey(prefix, 'config'));
    this.subnetsPrefix = Buffer.from(`${joinKey(prefix, 'subnets')}/`);
    this.subnetsEnd = prefixEnd(this.subnetsPrefix);
  }

  subnetKey(suffix: string): Buffer {
    return Buffer.concat([this.subnetsPrefix, Buffer.from(suffix, 'utf8')]);
  }

  /** The key suffix of a full key under `subnets/`, or undefined for a key outside it. */
  suffixOf(key: Buffer): string | undefined {
    if (
      key.length < this.subnetsPrefix.length ||
      !key.subarray(0, this.subnetsPrefix.length).equals(this.subnetsPrefix)
    ) {
      return undefined;
    }
    return key.subarray(this.subnetsPrefix.length).toString('utf8');
  }

  toRecord(kv: KeyValue): RawLeaseRecord | undefined {
    const key = this.suffixOf(kv.key);
    if (key === undefined) return undefined;
    return {
      key,
      value: kv.value.toString('utf8'),
      leaseId: kv.lease || '0',
      modRevision: kv.mod_revision,
      createRevision: kv.create_revision,
    };
  }

  /**
   * The highest store revision a read of this store has returned so far. Every key created up to it existed
   * before this moment: a lease created later is not one this node's earlier run left behind.
   */
  get readRevision(): bigint | undefined {
    return this.readRevisionSeen;
  }

  private sawRevision(revision: string): void {
    let r: bigint;
    try {
      r = BigInt(revision);
    } catch {
      return;
    }
    if (r > 0n && (this.readRevisionSeen === undefined || r > this.readRevisionSeen))
      this.readRevisionSeen = r;
  }

  /** The config text, or undefined when `<prefix>/config` does not exist. */
  async getConfigText(): Promise<string | undefined> {
    const res = await this.client.kv.range({ key: this.configKey });
    this.sawRevision(res.header.revision);
    const kv = res.kvs[0];
    return kv ? kv.value.toString('utf8') : undefined;
  }

  async putConfigText(text: string): Promise<void> {
    await this.client.kv.put({ key: this.configKey, value: Buffer.from(text, 'utf8') });
  }

  /** A cheap call that tells whether etcd answers (and refreshes an expired auth token). */
  async ping(): Promise<void> {
    const res = await this.client.kv.range({ key: this.configKey, count_only: true });
    this.sawRevision(res.header.revision);
  }

  /**
   * Every key under `subnets/`, read in pages at one revision (a consistent snapshot). `keysOnly` skips the
   * values (their `value` is ''): enough to know which subnets are taken, and far cheaper.
   * `maxCreateRevision` lists only the keys created up to that revision (etcd filters them).
   */
  async list(options: { keysOnly?: boolean; maxCreateRevision?: bigint } = {}): Promise<RawLeaseList> {
    const records: RawLeaseRecord[] = [];
    let start = this.subnetsPrefix;
    let revision: bigint | undefined;
    for (let page = 0; page < 100_000; page++) {
      const res = await this.client.kv.range({
        key: start,
        range_end: this.subnetsEnd,
        limit: LIST_PAGE_SIZE,
        keys_only: options.keysOnly === true,
        ...(options.maxCreateRevision !== undefined
          ? { max_create_revision: options.maxCreateRevision.toString() }
          : {}),
        ...(revision !== undefined ? { revision: revision.toString() } : {}),
      });
      if (revision === undefined) {
        revision = BigInt(res.header.revision);
        this.sawRevision(res.header.revision);
      }
      for (const kv of res.kvs) {
        const record = this.toRecord(kv);
        if (record) records.push(record);
      }
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { records, revision: revision ?? 0n };
  }

  /**
   * Keys (no values) created after `revision`: what a retry needs to update the set of taken subnets
   * without listing everything again. Deleted keys are not reported.
   */
  async listKeysCreatedAfter(revision: bigint): Promise<RawLeaseList> {
    const res = await this.client.kv.range({
      key: this.subnetsPrefix,
      range_end: this.subnetsEnd,
      keys_only: true,
      min_create_revision: (revision + 1n).toString(),
    });
    const records: RawLeaseRecord[] = [];
    for (const kv of res.kvs) {
      const record = this.toRecord(kv);
      if (record) records.push(record);
    }
    return { records, revision: BigInt(res.header.revision) };
  }

  /** One key, or undefined. */
  async get(suffix: string): Promise<{ record: RawLeaseRecord | undefined; revision: bigint }> {
    const res = await this.client.kv.range({ key: this.subnetKey(suffix) });
    const kv = res.kvs[0];
    return { record: kv ? this.toRecord(kv) : undefined, revision: BigInt(res.header.revision) };
  }

  async grant(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const res = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
    if (res.error) throw new Error(`etcd refused a ${ttlSeconds} s lease: ${res.error}`);
    return { id: res.ID, ttlSeconds: Number(res.TTL) };
  }

  /** Best effort: a lease left behind expires on its own anyway. */
  async revokeQuietly(id: string): Promise<void> {
    if (id === '0') return;
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
    } catch {
      // expires by itself
    }
  }

  /**
   * Creates the key only if it does not exist (flannel: txn `version(key) == 0`). With `freePrefix`, only
   * if no key starts with it: `10.5.1.0-24` guards the IPv4-only key and every dual-stack key of that
   * IPv4 subnet in the same transaction. When refused, `current` is the key as it is (if it exists).
   */
  async create(
    suffix: string,
    value: string,
    leaseId: string,
    freePrefix?: string,
  ): Promise<{ created: boolean; revision: bigint; current: RawLeaseRecord | undefined }> {
    const key = this.subnetKey(suffix);
    const guard = freePrefix === undefined ? undefined : this.subnetKey(freePrefix);
    const res = await this.client.kv.txn({
      compare: [
        guard
          ? { key: guard, range_end: prefixEnd(guard), target: 'Version', result: 'Equal', version: 0 }
          : { key, target: 'Version', result: 'Equal', version: 0 },
      ],
      success: [{ request_put: { key, value: Buffer.from(value, 'utf8'), lease: leaseId } }],
      failure: [{ request_range: { key } }],
    });
    let current: RawLeaseRecord | undefined;
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      current = kv ? this.toRecord(kv) : undefined;
    }
    return { created: res.succeeded, revision: BigInt(res.header.revision), current };
  }

  /**
   * Writes the key only if its mod revision is still `modRevision` (the key is still the one we read).
   * `leaseId` '0' writes it without a lease (a reservation stays a reservation).
   */
  async replaceIfUnchanged(
    suffix: string,
    modRevision: string,
    value: string,
    leaseId: string,
  ): Promise<{ replaced: boolean; revision: bigint; current: RawLeaseRecord | undefined }> {
    const key = this.subnetKey(suffix);
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: modRevision }],
      success: [{ request_put: { key, value: Buffer.from(value, 'utf8'), lease: leaseId } }],
      failure: [{ request_range: { key } }],
    });
    let current: RawLeaseRecord | undefined;
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      current = kv ? this.toRecord(kv) : undefined;
    }
    return { replaced: res.succeeded, revision: BigInt(res.header.revision), current };
  }

  /** Reads nothing, writes nothing: succeeds when the key still has `modRevision`. */
  async stillAt(
    suffix: string,
    modRevision: string,
  ): Promise<{ unchanged: boolean; current: RawLeaseRecord | undefined }> {
    const key = this.subnetKey(suffix);
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: modRevision }],
      success: [],
      failure: [{ request_range: { key } }],
    });
    if (res.succeeded) return { unchanged: true, current: undefined };
    const kv = res.responses[0]?.response_range?.kvs?.[0];
    return { unchanged: false, current: kv ? this.toRecord(kv) : undefined };
  }

  async deleteIfUnchanged(suffix: string, modRevision: string): Promise<boolean> {
    const key = this.subnetKey(suffix);
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: modRevision }],
      success: [{ request_delete_range: { key } }],
      failure: [],
    });
    return res.succeeded;
  }

  /**
   * When each lease expires: `null` for lease '0' (a reservation), now for a lease etcd no longer knows
   * (its keys are being deleted). Cached by lease ID: an etcd lease's deadline only moves by keepalive,
   * which flannel and weft never use (a renewal attaches a new lease).
   */
  async expirations(leaseIds: Iterable<string>): Promise<Map<string, Date | null>> {
    const out = new Map<string, Date | null>();
    const todo: string[] = [];
    for (const id of new Set(leaseIds)) {
      if (id === '0') out.set(id, null);
      else {
        const cached = this.ttlCache.get(id);
        if (cached) out.set(id, cached);
        else todo.push(id);
      }
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length) {
        const id = todo[next++] as string;
        const res = await this.client.leaseClient.leaseTimeToLive({ ID: id });
        const ttl = Number(res.TTL);
        const at = new Date(Date.now() + Math.max(0, ttl) * 1000);
        out.set(id, at);
        if (ttl > 0) {
          if (this.ttlCache.size >= TTL_CACHE_LIMIT) this.ttlCache.clear();
          this.ttlCache.set(id, at);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(TTL_CONCURRENCY, todo.length) }, worker));
    return out;
  }

  /** Expiries known without asking etcd: reservations (`null`) and cached TTLs; others stay undefined. */
  knownExpirations(leaseIds: Iterable<string>): Map<string, Date | null | undefined> {
    const out = new Map<string, Date | null | undefined>();
    for (const id of leaseIds) out.set(id, id === '0' ? null : this.ttlCache.get(id));
    return out;
  }

  rememberExpiration(leaseId: string, at: Date): void {
    if (leaseId === '0') return;
    if (this.ttlCache.size >= TTL_CACHE_LIMIT) this.ttlCache.clear();
    this.ttlCache.set(leaseId, at);
  }
}
