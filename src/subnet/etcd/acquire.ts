// Acquiring the own lease: reuse the lease of this public IP, else the previous subnet, else a free subnet
// picked uniformly at random over the whole range, created with flannel's create-only transaction. The lease
// list's values are read only for keys created before this run's last read: when many nodes boot together,
// nobody downloads everybody's values (flannel lists them all on every node, O(nodes²) bytes from etcd).

import type { FamilyNetwork } from '../../config/index.js';
import { Backoff, errorFields } from '../../core/index.js';
import { type Cidr, type Family, formatCidr, overlaps, parseCidr } from '../../ip/index.js';
import {
  encodeLeaseAttrs,
  formatLeaseKey,
  type Lease,
  type LeaseKeySubnets,
  leaseFitsOwnAllocation,
  parseLeaseKey,
} from '../../lease/index.js';
import type { Logger } from '../../log/index.js';
import type { AcquireRequest } from '../types.js';
import { EtcdClientConfigError } from './client.js';
import { abortError } from './config-poll.js';
import { OutOfSubnetsError } from './errors.js';
import type { OwnGrants } from './grants.js';
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError } from './grpc/index.js';
import { pickFreeSubnet } from './pick.js';
import {
  blocking,
  type ParsedRecord,
  parseRecord,
  samePublicAddress,
  subnetsOverlap,
  toLease,
} from './records.js';
import type { EtcdLeaseStore } from './store.js';

function parseCidrQuietly(text: string | undefined, family: Family): Cidr | undefined {
  if (!text) return undefined;
  try {
    const c = parseCidr(text);
    return c.family === family ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Errors no retry can fix: they go back to the caller. */
function isPermanent(err: unknown): boolean {
  return (
    err instanceof OutOfSubnetsError ||
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdClientConfigError
  );
}

interface Grant {
  id: string;
  ttlSeconds: number;
  /** When it was granted (epoch ms): the key's expiry counts from here. */
  at: number;
}

/** A write that carried `grant` and got no reply: it may have committed. Read back before anything else. */
interface UnresolvedWrite {
  key: string;
  grant: Grant;
  subnets: LeaseKeySubnets;
  /** A creation's grant holds nothing else: revoking it removes a late-committed orphan with it. */
  kind: 'create' | 'replace';
}

/** What one acquire call carries across its attempts. */
interface AcquireState {
  grant: Grant | undefined;
  lostRaces: number;
  /** Read values (to find the own public IP's lease) on the next attempt. */
  needValues: boolean;
  /** Keys seen by earlier attempts and the revision they were read at (retries only fetch newer keys). */
  seen: { keys: Map<string, LeaseKeySubnets | undefined>; revision: bigint } | undefined;
  unresolved: UnresolvedWrite | undefined;
}

export interface LeaseAcquirerOptions {
  store: EtcdLeaseStore;
  grants: OwnGrants;
  logger: Logger;
  ttlSeconds: number;
  random: () => number;
}

/**
 * flannel's acquisition with its defects fixed: a lost creation race retries at once with another subnet,
 * and a write whose reply is lost is read back (by its grant) instead of being retried blindly or undone.
 */
export class LeaseAcquirer {
  constructor(private readonly o: LeaseAcquirerOptions) {}

  /**
   * Acquires this node's lease: the one holding its public IP (if it still fits), else the previous subnet
   * (if free), else a random free one. Retries etcd failures with backoff (logged). Throws
   * `OutOfSubnetsError` when the network is full, and on bad credentials.
   */
  async acquire(request: AcquireRequest, stop: AbortSignal): Promise<Lease> {
    const state: AcquireState = {
      grant: undefined,
      lostRaces: 0,
      needValues: true,
      seen: undefined,
      unresolved: undefined,
    };
    const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 });
    try {
      for (;;) {
        if (stop.aborted) throw abortError(stop);
        try {
          const lease = (await this.resolve(request, state)) ?? (await this.attempt(request, state));
          if (lease) return lease;
          state.lostRaces += 1;
          if (state.lostRaces % 20 === 0) {
            this.o.logger.info(
              { lostRaces: state.lostRaces },
              'lease acquisition keeps losing creation races; still trying',
            );
          }
        } catch (err) {
          // The etcd lease may be gone (e.g. expired during an outage): grant a fresh one next time.
          await this.dropGrant(state);
          state.needValues = true;
          state.seen = undefined;
          if (isPermanent(err)) throw err;
          if (backoff.attempts === 0 || (backoff.attempts + 1) % 10 === 0) {
            this.o.logger.warn(
              { err: errorFields(err), attempt: backoff.attempts + 1 },
              'cannot acquire a lease from etcd; retrying',
            );
          }
          await backoff.wait(stop);
        }
      }
    } finally {
      await this.dropGrant(state);
      const u = state.unresolved;
      // Still unknown when giving up: a creation's grant holds only that key, so revoking it removes any orphan.
      if (u?.kind === 'create') await this.o.store.revokeQuietly(u.grant.id);
    }
  }

  private async dropGrant(state: AcquireState): Promise<void> {
    const grant = state.grant;
    state.grant = undefined;
    if (grant) await this.o.store.revokeQuietly(grant.id);
  }

  /** The etcd lease for a new key: one per acquisition, reused across lost races while it is fresh. */
  private async grantFor(state: AcquireState): Promise<Grant> {
    if (state.grant && Date.now() - state.grant.at < (this.o.ttlSeconds * 1000) / 4) return state.grant;
    await this.dropGrant(state);
    const at = Date.now();
    const granted = await this.o.store.grant(this.o.ttlSeconds);
    state.grant = { ...granted, at };
    return state.grant;
  }

  /** The grant now belongs to `key`. Returns the key's expiry. */
  private useGrant(state: AcquireState, key: string, grant: Grant): Date {
    if (state.grant === grant) state.grant = undefined;
    const expiration = new Date(grant.at + grant.ttlSeconds * 1000);
    for (const stale of this.o.grants.attached(key, grant.id)) void this.o.store.revokeQuietly(stale);
    this.o.store.rememberExpiration(grant.id, expiration);
    return expiration;
  }

  /** Runs a write that carries `grant`; if it throws, its outcome is unknown and is read back next attempt. */
  private async write<T>(state: AcquireState, u: UnresolvedWrite, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (state.grant === u.grant) state.grant = undefined; // never reused: it may hold the key now
      state.unresolved = u;
      throw err;
    }
  }

  /** Settles a write that got no reply: if the key carries its grant, it committed and the lease is ours. */
  private async resolve(request: AcquireRequest, state: AcquireState): Promise<Lease | undefined> {
    const u = state.unresolved;
    if (!u) return undefined;
    const read = await this.o.store.get(u.key);
    state.unresolved = undefined;
    const record = read.record;
    if (record?.leaseId === u.grant.id) {
      this.o.logger.info(
        { leaseKey: u.key },
        'a lease write whose reply was lost had committed; keeping the lease it wrote',
      );
      return toLease(record, u.subnets, request.attrs, this.useGrant(state, u.key, u.grant));
    }
    if (u.kind === 'create') await this.o.store.revokeQuietly(u.grant.id);
    else this.o.grants.maybe(u.key, u.grant.id);
    return undefined;
  }

  /** One attempt. Undefined = lost a race (someone else changed what we read): try again. */
  private async attempt(request: AcquireRequest, state: AcquireState): Promise<Lease | undefined> {
    const { config, attrs } = request;
    const { store, logger } = this.o;
    const value = encodeLeaseAttrs(attrs);
    // Values are needed to find the lease of this public IP. After a lost creation race only the keys
    // matter (no lease of ours can have appeared meanwhile), and only the keys created since the last
    // read: listing everything on every retry is what makes hundreds of nodes starting together slow.
    const withValues = state.needValues;
    let parsed: ParsedRecord[];
    let partial = false;
    if (withValues || !state.seen) {
      // A lease this node's earlier run left behind was created before anything this run has read: the
      // values of keys created since (a thousand nodes booting together) are not fetched, only their keys
      // when a creation race says they matter. Without such a revision, everything is listed.
      const before = withValues ? store.readRevision : undefined;
      // The grant is needed in most cases: ask for it while listing.
      const [list] = await Promise.all([
        store.list({ keysOnly: !withValues, ...(before !== undefined ? { maxCreateRevision: before } : {}) }),
        this.grantFor(state).catch(() => undefined),
      ]);
      // Only values that mention the own public address can be the own lease: the others are not decoded
      // (with a thousand nodes starting, decoding every value on every node is most of the work).
      // (An IPv6-only node decodes all: an IPv6 address has several spellings.)
      const own = attrs.publicIP;
      parsed = list.records.map((r) => parseRecord(r, !withValues || (!!own && !r.value.includes(own))));
      state.seen = {
        keys: new Map(parsed.map((p) => [p.record.key, p.subnets])),
        // Keys created after `before` are not in this list: a retry fetches them.
        revision: before !== undefined && before < list.revision ? before : list.revision,
      };
      partial = before !== undefined && before < list.revision;
    } else {
      // Keys are parsed once per acquisition, not once per retry.
      const added = await store.listKeysCreatedAfter(state.seen.revision);
      for (const r of added.records) state.seen.keys.set(r.key, parseRecord(r, true).subnets);
      state.seen.revision = added.revision;
      parsed = [...state.seen.keys].map(([key, subnets]) => ({
        record: { key, value: '', leaseId: '0', modRevision: '0', createRevision: '0' },
        subnets,
        attrs: undefined,
        reason: undefined,
      }));
      partial = true;
    }
    const deleted = new Set<string>();

    // 1. A lease that already carries this node's public address.
    for (const p of withValues ? parsed : []) {
      if (!p.subnets || !p.attrs || !samePublicAddress(p.attrs, attrs)) continue;
      if (leaseFitsOwnAllocation(p.subnets, config)) {
        const reservation = p.record.leaseId === '0';
        const grant = reservation ? undefined : await this.grantFor(state);
        const replace = (): ReturnType<EtcdLeaseStore['replaceIfUnchanged']> =>
          store.replaceIfUnchanged(p.record.key, p.record.modRevision, value, grant?.id ?? '0');
        const put = grant
          ? await this.write(
              state,
              { key: p.record.key, grant, subnets: p.subnets, kind: 'replace' },
              replace,
            )
          : await replace();
        if (!put.replaced) return undefined;
        const expiration = grant ? this.useGrant(state, p.record.key, grant) : null;
        if (reservation) this.o.grants.attached(p.record.key, '0');
        logger.info(
          { leaseKey: p.record.key, publicIP: attrs.publicIP || attrs.publicIPv6, reservation },
          reservation ? 'reusing the reservation for this public IP' : 'reusing the lease for this public IP',
        );
        return toLease({ ...p.record, modRevision: put.revision.toString() }, p.subnets, attrs, expiration);
      }
      logger.info(
        { leaseKey: p.record.key },
        'found a lease for this public IP that no longer fits the network config; deleting it',
      );
      if (!(await store.deleteIfUnchanged(p.record.key, p.record.modRevision))) return undefined;
      deleted.add(p.record.key);
    }
    state.needValues = false;

    const live = parsed.filter((p) => p.subnets !== undefined && !deleted.has(p.record.key));
    const taken4 = live.map((p) => p.subnets?.subnet).filter((s): s is Cidr => blocking(s, config.ipv4));
    const taken6 = live.map((p) => p.subnets?.ipv6Subnet).filter((s): s is Cidr => blocking(s, config.ipv6));

    // 2. The subnet from the previous subnet file, if nobody holds it.
    let chosen: LeaseKeySubnets | undefined;
    const previous: LeaseKeySubnets = {};
    const prev4 = parseCidrQuietly(request.previousSubnet, 4);
    const prev6 = parseCidrQuietly(request.previousIPv6Subnet, 6);
    if (prev4) previous.subnet = prev4;
    if (prev6) previous.ipv6Subnet = prev6;
    if ((prev4 || prev6) && leaseFitsOwnAllocation(previous, config)) {
      const busy =
        (prev4 && taken4.some((t) => overlaps(t, prev4))) ||
        (prev6 && taken6.some((t) => overlaps(t, prev6)));
      if (!busy) chosen = previous;
    }

    // 3. A free subnet picked uniformly over the whole range.
    if (!chosen) {
      chosen = {};
      const full = (net: FamilyNetwork, count: number): undefined => {
        // The incremental view never forgets deleted keys: confirm "full" with a fresh list first.
        if (partial) {
          state.seen = undefined;
          return undefined;
        }
        throw new OutOfSubnetsError(net, count);
      };
      if (config.ipv4) {
        const pick = pickFreeSubnet(config.ipv4, taken4, this.o.random);
        if (!pick) return full(config.ipv4, taken4.length);
        chosen.subnet = pick;
      }
      if (config.ipv6) {
        const pick = pickFreeSubnet(config.ipv6, taken6, this.o.random);
        if (!pick) return full(config.ipv6, taken6.length);
        chosen.ipv6Subnet = pick;
      }
    }

    const key = formatLeaseKey(chosen);
    const grant = await this.grantFor(state);
    // The IPv4 part as a key prefix guards the IPv4-only and every dual-stack key of that subnet at once.
    const guard = chosen.subnet ? formatLeaseKey({ subnet: chosen.subnet }) : undefined;
    const subnets = chosen;
    const created = await this.write(state, { key, grant, subnets, kind: 'create' }, () =>
      store.create(key, value, grant.id, guard),
    );
    let revision = created.revision;
    if (!created.created) {
      // Only a write of ours can carry this grant (a creation sent twice, should anything replay it).
      if (!created.current || created.current.leaseId !== grant.id) return undefined;
      revision = BigInt(created.current.modRevision);
    }
    if (chosen.ipv6Subnet && (await this.olderOverlap(key, chosen, revision, config))) {
      // An IPv6 subnet is the key's suffix, so no prefix guards it: of two keys created concurrently with
      // the same IPv6 subnet, the older wins and the newer steps back.
      await store.deleteIfUnchanged(key, revision.toString());
      return undefined;
    }
    const expiration = this.useGrant(state, key, grant);
    logger.info(
      {
        leaseKey: key,
        subnet: chosen.subnet && formatCidr(chosen.subnet),
        ipv6Subnet: chosen.ipv6Subnet && formatCidr(chosen.ipv6Subnet),
        publicIP: attrs.publicIP || attrs.publicIPv6,
        previous: chosen === previous,
      },
      'allocated a new lease',
    );
    const lease: Lease = { key, attrs, expiration, revision: revision.toString() };
    if (chosen.subnet) lease.subnet = chosen.subnet;
    if (chosen.ipv6Subnet) lease.ipv6Subnet = chosen.ipv6Subnet;
    return lease;
  }

  /** Whether a key created before `revision` overlaps `chosen` (the IPv6 part no prefix guard covers). */
  private async olderOverlap(
    key: string,
    chosen: LeaseKeySubnets,
    revision: bigint,
    config: AcquireRequest['config'],
  ): Promise<boolean> {
    const check = await this.o.store.list({ keysOnly: true });
    for (const r of check.records) {
      if (r.key === key) continue;
      let other: LeaseKeySubnets;
      try {
        other = parseLeaseKey(r.key);
      } catch {
        continue;
      }
      const relevant: LeaseKeySubnets = {};
      if (blocking(other.subnet, config.ipv4)) relevant.subnet = other.subnet;
      if (blocking(other.ipv6Subnet, config.ipv6)) relevant.ipv6Subnet = other.ipv6Subnet;
      if (subnetsOverlap(relevant, chosen) && BigInt(r.createRevision) < revision) {
        this.o.logger.debug(
          { leaseKey: key, overlapping: r.key },
          'created lease overlaps an older one; stepping back',
        );
        return true;
      }
    }
    return false;
  }
}
