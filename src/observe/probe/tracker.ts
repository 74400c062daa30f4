// The per-peer health state machine of the peer prober: N consecutive lost echoes → unhealthy, one reply →
// healthy. Pure: no timers, no I/O; the caller passes the results and the time.

/** One peer to send echoes to: `key` names it (the peer's lease key), `address` is the address it answers on. */
export interface ProbeTarget {
  key: string;
  address: string;
}

export type PeerHealth = 'healthy' | 'unhealthy' | 'unknown';

/** What the prober knows about one peer, as `/status` shows it. */
export interface PeerProbeView {
  health: PeerHealth;
  lastRttMs: number | null;
  lossRatio: number | null;
  lastReplyAt: Date | null;
}

export interface PeerProbeState extends PeerProbeView {
  key: string;
  address: string;
  consecutiveLosses: number;
  /** Echoes sent and lost since the target was added. */
  sent: number;
  lost: number;
}

export interface HealthTransition {
  key: string;
  address: string;
  from: PeerHealth;
  to: PeerHealth;
  /** Losses in a row when it became unhealthy (0 when it became healthy). */
  consecutiveLosses: number;
  rttMs: number | null;
}

export interface PeerHealthTrackerOptions {
  /** Consecutive lost echoes after which a peer is unhealthy (default 3). */
  unhealthyAfter?: number;
  /** How many recent echoes `lossRatio` covers (default 20). */
  lossWindow?: number;
}

interface TrackedTarget {
  state: PeerProbeState;
  /** Recent results, true = lost; at most `lossWindow` long. */
  window: boolean[];
}

/** Per-target health from echo results. */
export class PeerHealthTracker {
  readonly unhealthyAfter: number;
  readonly lossWindow: number;
  private readonly tracked = new Map<string, TrackedTarget>();

  constructor(options: PeerHealthTrackerOptions = {}) {
    this.unhealthyAfter = Math.max(1, Math.floor(options.unhealthyAfter ?? 3));
    this.lossWindow = Math.max(1, Math.floor(options.lossWindow ?? 20));
  }

  /**
   * Replaces the set of targets. New ones start `unknown`; a target whose address changed starts over; those
   * not listed are forgotten. Returns the keys that were added and removed.
   */
  setTargets(targets: readonly ProbeTarget[]): { added: string[]; removed: string[] } {
    const wanted = new Map(targets.map((t) => [t.key, t]));
    const added: string[] = [];
    const removed: string[] = [];
    for (const [key, entry] of this.tracked) {
      const target = wanted.get(key);
      if (target === undefined) {
        this.tracked.delete(key);
        removed.push(key);
      } else if (target.address !== entry.state.address) {
        this.tracked.set(key, fresh(target));
      }
    }
    for (const target of targets) {
      if (!this.tracked.has(target.key)) {
        this.tracked.set(target.key, fresh(target));
        added.push(target.key);
      }
    }
    return { added, removed };
  }

  /**
   * Records one echo result (`rttMs` null: lost) and returns the health transition it caused, if any.
   * Results for unknown keys (a target removed while its echo was in flight) are ignored.
   */
  record(key: string, rttMs: number | null, now: Date): HealthTransition | null {
    const entry = this.tracked.get(key);
    if (entry === undefined) return null;
    const s = entry.state;
    const lost = rttMs === null;
    s.sent++;
    entry.window.push(lost);
    if (entry.window.length > this.lossWindow) entry.window.shift();
    s.lossRatio = entry.window.filter((l) => l).length / entry.window.length;
    const from = s.health;
    if (lost) {
      s.lost++;
      s.consecutiveLosses++;
      if (s.consecutiveLosses >= this.unhealthyAfter) s.health = 'unhealthy';
    } else {
      s.consecutiveLosses = 0;
      s.lastRttMs = rttMs;
      s.lastReplyAt = now;
      s.health = 'healthy';
    }
    if (s.health === from) return null;
    return {
      key,
      address: s.address,
      from,
      to: s.health,
      consecutiveLosses: lost ? s.consecutiveLosses : 0,
      rttMs,
    };
  }

  get(key: string): PeerProbeState | undefined {
    const s = this.tracked.get(key)?.state;
    return s === undefined ? undefined : { ...s };
  }

  /** A copy of every target's state, by key. */
  states(): Map<string, PeerProbeState> {
    return new Map([...this.tracked].map(([k, t]) => [k, { ...t.state }]));
  }

  targets(): ProbeTarget[] {
    return [...this.tracked.values()].map((t) => ({ key: t.state.key, address: t.state.address }));
  }

  get size(): number {
    return this.tracked.size;
  }
}

function fresh(target: ProbeTarget): TrackedTarget {
  return {
    state: {
      key: target.key,
      address: target.address,
      health: 'unknown',
      consecutiveLosses: 0,
      lastRttMs: null,
      lossRatio: null,
      lastReplyAt: null,
      sent: 0,
      lost: 0,
    },
    window: [],
  };
}
