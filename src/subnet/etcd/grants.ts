/**
 * The etcd leases ("grants") this manager attached to its own keys, and those it may have attached: a write
 * whose reply was lost may have committed, so its grant is remembered as possibly ours. A key found carrying
 * one of these grants was written by this node; such a grant is never revoked while it may hold the key
 * (revoking it would delete the key), it simply expires.
 */
export class OwnGrants {
  private readonly attachedTo = new Map<string, string>();
  private readonly uncertain = new Map<string, Set<string>>();

  /** The grant now on `key` (learned from a reply or a read-back). Returns grants that can be revoked. */
  attached(key: string, id: string): string[] {
    const stale: string[] = [];
    const previous = this.attachedTo.get(key);
    if (previous !== undefined && previous !== id && previous !== '0') stale.push(previous);
    // A later write succeeded: writes still in flight compare an older revision and can no longer commit.
    for (const u of this.uncertain.get(key) ?? []) if (u !== id) stale.push(u);
    this.uncertain.delete(key);
    if (id === '0') this.attachedTo.delete(key);
    else this.attachedTo.set(key, id);
    return stale;
  }

  /** A write of `key` with grant `id` got no reply: it may still commit. */
  maybe(key: string, id: string): void {
    let set = this.uncertain.get(key);
    if (!set) {
      set = new Set();
      this.uncertain.set(key, set);
    }
    set.add(id);
  }

  /** Whether `key` carrying grant `id` was written by this manager. */
  isOurs(key: string, id: string): boolean {
    if (id === '0') return false;
    return this.attachedTo.get(key) === id || (this.uncertain.get(key)?.has(id) ?? false);
  }

  forget(key: string): void {
    this.attachedTo.delete(key);
    this.uncertain.delete(key);
  }
}
