// The peer prober: a core Task that sends one ICMP echo to every peer's probe address per round, paced so the
// node never sends more than `maxProbesPerSecond` echoes whatever the peer count (with many peers each one is
// probed less often: a round takes at least peers / budget seconds), and feeds the results to the tracker.
// Echoes go only to the addresses the daemon hands in, and (with `overlayNetworks`) only inside the overlay.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Backend } from '../../backend/types.js';
import { errorFields, errorMessage, sleep, type Task, type TaskContext } from '../../core/index.js';
import { type Cidr, canonicalIp, containsIp, type Family, formatCidr, parseIp } from '../../ip/index.js';
import type { Lease } from '../../lease/types.js';
import { IcmpPinger, ProbeSocketError } from './icmp.js';
import {
  type HealthTransition,
  PeerHealthTracker,
  type PeerHealthTrackerOptions,
  type PeerProbeState,
  type ProbeTarget,
} from './tracker.js';

/** Default echo budget: ≤ 100 echoes per second per node, however many peers (see docs/metrics.md). */
export const DEFAULT_MAX_PROBES_PER_SECOND = 100;

/** Granularity of the pacing: at most one timer per this many ms while a round runs. */
const PACING_MS = 50;

/** The probe address of every peer lease the backend can probe (`Backend.probeAddress`), keyed by lease key. */
export function probeTargetsForLeases(
  leases: readonly Lease[],
  backend: Pick<Backend, 'probeAddress'>,
): ProbeTarget[] {
  const targets: ProbeTarget[] = [];
  for (const lease of leases) {
    const address = backend.probeAddress(lease);
    if (address !== undefined) targets.push({ key: lease.key, address });
  }
  return targets;
}

/** `interval` scaled by a random factor in [1 - jitter, 1 + jitter]. */
export function jittered(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  const j = Math.min(Math.max(jitter, 0), 1);
  return Math.max(0, intervalMs * (1 + j * (2 * random() - 1)));
}

/** Fisher–Yates shuffle (a copy): each round probes peers in a new order. */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * How long one round takes at least: the interval, or the time the budget needs to send one echo to every
 * target, whichever is longer. Each peer is probed once per round.
 */
export function roundPeriodMs(targets: number, intervalMs: number, maxProbesPerSecond: number): number {
  return Math.max(intervalMs, Math.ceil((targets * 1000) / maxProbesPerSecond));
}

export interface PeerProberOptions extends PeerHealthTrackerOptions {
  logger: Logger;
  /** Time between the starts of two rounds when the budget allows (ms); 0 turns probes off. */
  intervalMs: number;
  /** How long to wait for each reply (default 1 s; never more than the interval). */
  timeoutMs?: number;
  /** Echoes in flight at once (default: what the budget sends within one timeout, at least 16). */
  concurrency?: number;
  /** Echoes sent per second at most, across all peers (default `DEFAULT_MAX_PROBES_PER_SECOND`). */
  maxProbesPerSecond?: number;
  /** Interval jitter as a fraction (default 0.1: ±10 %). */
  jitter?: number;
  /**
   * When given, targets must lie inside one of these networks (the flannel Network): a guard so echoes
   * never leave the overlay. Targets outside are rejected by `setTargets`.
   */
  overlayNetworks?: readonly Cidr[];
  /** Install the kernel ICMP filter on the sockets (default true; off only for the flood benchmark). */
  kernelFilter?: boolean;
  /** Called after every echo with the target's updated state (metrics). */
  onResult?: (target: ProbeTarget, rttMs: number | null, state: PeerProbeState) => void;
  /** Called on each health transition (after it is logged). */
  onTransition?: (transition: HealthTransition) => void;
  /** Called for each target `setTargets` dropped (metrics: forget its series). */
  onTargetRemoved?: (key: string) => void;
  random?: () => number;
}

/** A target as `setTargets` judged it: its address, canonical when accepted, or why it was rejected. */
interface CheckedTarget {
  address: string;
  canonical: string;
  reason: string | null;
}

export interface RejectedTarget {
  target: ProbeTarget;
  reason: string;
}

/** What one family's socket has seen (the kernel filter keeps `received` to the replies). */
export interface ProbeSocketStats {
  family: Family;
  kernelFilter: boolean;
  received: number;
}

/** Probes every target's address once per round and tracks their health. A Task: it beats once per round. */
export class PeerProber implements Task {
  readonly name = 'peer-prober';
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly maxProbesPerSecond: number;
  private readonly tracker: PeerHealthTracker;
  private readonly logger: Logger;
  private readonly pingers = new Map<Family, IcmpPinger>();
  private readonly options: PeerProberOptions;
  private readonly random: () => number;
  private readonly jitter: number;
  private socketFailureLogged = false;
  /** The last setTargets' verdict per key (see setTargets). */
  private checked = new Map<string, CheckedTarget>();
  /** Set by close(): echoes cut short by it are not losses and must not turn peers unhealthy. */
  private closed = false;
  /** What the sockets closed so far had delivered (`socketStats` adds the open ones). */
  private readonly closedSocketStats = new Map<Family, ProbeSocketStats>();
  /** When the next echo's slot starts (performance.now() time): the budget's pacing. */
  private nextSlotAt = 0;
  /** Echoes sent since the prober was made (for the budget's benchmark and tests). */
  sent = 0;

  constructor(options: PeerProberOptions) {
    this.options = options;
    this.logger = options.logger;
    this.random = options.random ?? Math.random;
    this.intervalMs = Math.max(0, options.intervalMs);
    this.timeoutMs = Math.min(options.timeoutMs ?? 1_000, this.intervalMs || Number.POSITIVE_INFINITY);
    this.maxProbesPerSecond = Math.max(1, options.maxProbesPerSecond ?? DEFAULT_MAX_PROBES_PER_SECOND);
    this.jitter = options.jitter ?? 0.1;
    this.tracker = new PeerHealthTracker(options);
  }

  /**
   * The longest a healthy round may take with the current targets (the Task's beat period): it grows with
   * the target count once the budget, not the interval, sets the pace.
   */
  get periodMs(): number {
    const round = roundPeriodMs(this.tracker.size, this.intervalMs, this.maxProbesPerSecond);
    return Math.ceil(round * (1 + this.jitter)) + this.timeoutMs;
  }

  /**
   * Replaces the targets. Targets with an invalid address, or outside `overlayNetworks`, are rejected
   * (logged and returned), never probed.
   */
  setTargets(targets: readonly ProbeTarget[]): RejectedTarget[] {
    const accepted: ProbeTarget[] = [];
    const rejected: RejectedTarget[] = [];
    // The daemon calls this after every pass with every peer: a target seen before with the same address keeps
    // its verdict, so a rejected one is logged when it appears or changes, not after every pass.
    const checked = new Map<string, CheckedTarget>();
    for (const target of targets) {
      let c = typeof target.key === 'string' ? this.checked.get(target.key) : undefined;
      if (c === undefined || c.address !== target.address) {
        const reason = this.targetProblem(target);
        c =
          reason === null
            ? { address: target.address, canonical: canonicalIp(target.address), reason: null }
            : { address: target.address, canonical: '', reason };
        if (reason !== null) this.logger.warn({ peer: target.key, address: target.address }, reason);
      }
      if (typeof target.key === 'string') checked.set(target.key, c);
      if (c.reason === null) accepted.push({ key: target.key, address: c.canonical });
      else rejected.push({ target, reason: c.reason });
    }
    this.checked = checked;
    const { removed } = this.tracker.setTargets(accepted);
    for (const key of removed) this.options.onTargetRemoved?.(key);
    return rejected;
  }

  private targetProblem(target: ProbeTarget): string | null {
    if (typeof target.key !== 'string' || target.key === '') return 'probe target has no key; not probed';
    let ip: ReturnType<typeof parseIp>;
    try {
      ip = parseIp(target.address);
    } catch (err) {
      return `probe target address is invalid (${errorMessage(err)}); not probed`;
    }
    const networks = this.options.overlayNetworks;
    if (networks !== undefined && !networks.some((n) => containsIp(n, ip))) {
      return `probe target ${target.address} is outside the overlay (${networks.map(formatCidr).join(', ')}); not probed`;
    }
    return null;
  }

  /** Each target's probe state, by key. */
  states(): Map<string, PeerProbeState> {
    return this.tracker.states();
  }

  /** Packets the sockets of each family delivered to JavaScript since the prober was made. */
  socketStats(): ProbeSocketStats[] {
    const stats = new Map([...this.closedSocketStats].map(([f, s]) => [f, { ...s }]));
    for (const p of this.pingers.values()) {
      const s = stats.get(p.family);
      if (s === undefined)
        stats.set(p.family, { family: p.family, kernelFilter: p.kernelFilter, received: p.received });
      else s.received += p.received;
    }
    return [...stats.values()].sort((a, b) => a.family - b.family);
  }

  private pinger(family: Family): IcmpPinger {
    let pinger = this.pingers.get(family);
    if (pinger === undefined) {
      pinger = new IcmpPinger(family, this.logger, { kernelFilter: this.options.kernelFilter });
      this.pingers.set(family, pinger);
    }
    return pinger;
  }

  private async probeOne(target: ProbeTarget): Promise<void> {
    const family = parseIp(target.address).family;
    let rttMs: number | null;
    this.sent++;
    try {
      rttMs = await this.pinger(family).ping(target.address, this.timeoutMs);
    } catch (err) {
      // A socket that failed between rounds: this echo is lost; the next round reopens it.
      this.logger.debug({ peer: target.key, err: errorFields(err) }, 'probe failed');
      rttMs = null;
    }
    if (this.closed) return;
    const transition = this.tracker.record(target.key, rttMs, new Date());
    const state = this.tracker.get(target.key);
    if (state === undefined) return; // removed while in flight
    this.options.onResult?.(target, rttMs, state);
    if (transition !== null) {
      this.logTransition(transition);
      this.options.onTransition?.(transition);
    }
  }

  private logTransition(t: HealthTransition): void {
    const fields = { peer: t.key, address: t.address, from: t.from, to: t.to };
    if (t.to === 'unhealthy') {
      this.logger.warn(
        { ...fields, consecutiveLosses: t.consecutiveLosses },
        `peer ${t.key} unreachable through the overlay: ${t.consecutiveLosses} probes in a row lost`,
      );
    } else if (t.from === 'unhealthy') {
      this.logger.info({ ...fields, rttMs: t.rttMs }, `peer ${t.key} reachable again through the overlay`);
    } else {
      // A new peer answering is the expected case: at 5000 peers an info line each would be a log storm.
      this.logger.debug({ ...fields, rttMs: t.rttMs }, `peer ${t.key} reachable through the overlay`);
    }
  }

  /**
   * One round: every current target once, in a shuffled order, starts paced at `maxProbesPerSecond` with at
   * most `concurrency` echoes in flight. Throws `ProbeSocketError` when a needed socket cannot be opened.
   */
  async probeRound(signal?: AbortSignal): Promise<void> {
    this.closed = false;
    const targets = shuffled(this.tracker.targets(), this.random);
    for (const family of new Set(targets.map((t) => parseIp(t.address).family))) this.pinger(family).open();
    const spacingMs = 1000 / this.maxProbesPerSecond;
    const concurrency = Math.max(
      1,
      Math.floor(
        this.options.concurrency ??
          Math.max(16, Math.ceil((this.maxProbesPerSecond * this.timeoutMs) / 1000)),
      ),
    );
    const inFlight = new Set<Promise<void>>();
    for (const target of targets) {
      // Slots are spaced across rounds too (a new round does not start with a burst); an idle prober earns
      // no credit (a slot is never in the past).
      const slot = Math.max(this.nextSlotAt, performance.now());
      this.nextSlotAt = slot + spacingMs;
      const wait = slot - performance.now();
      // Echoes go out in small bursts, one timer per PACING_MS rather than one per echo: an echo may leave up
      // to PACING_MS before its slot, so the budget holds over any window longer than that.
      if (wait >= PACING_MS) await sleep(wait, signal);
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
      if (signal?.aborted || this.closed) break;
      const echo: Promise<void> = this.probeOne(target).finally(() => inFlight.delete(echo));
      inFlight.add(echo);
    }
    await Promise.all(inFlight);
  }

  /**
   * The Task: rounds until `signal` aborts (then resolves, with the sockets closed), one beat per round.
   * `intervalMs` 0 means probes are off: resolves at once. A socket that cannot be opened is logged once
   * and retried each round; the loop keeps beating (probes are diagnostics: a node without CAP_NET_RAW
   * must not be restarted for it).
   */
  async run({ signal, beat }: TaskContext): Promise<void> {
    if (!(this.intervalMs > 0)) return;
    try {
      // A random first delay spreads the nodes of a cluster that started together.
      await sleep(this.random() * this.intervalMs * Math.max(this.jitter, 0), signal);
      beat();
      while (!signal.aborted) {
        const started = performance.now();
        try {
          await this.probeRound(signal);
          this.socketFailureLogged = false;
        } catch (err) {
          if (!(err instanceof ProbeSocketError)) throw err;
          if (!this.socketFailureLogged) {
            this.logger.error({ err: errorFields(err) }, 'peer probes not running');
            this.socketFailureLogged = true;
          }
        }
        if (signal.aborted) break;
        beat();
        const elapsed = performance.now() - started;
        await sleep(Math.max(0, jittered(this.intervalMs, this.jitter, this.random) - elapsed), signal);
      }
    } finally {
      this.close();
    }
  }

  /** Closes the sockets; echoes in flight are dropped without a result. */
  close(): void {
    this.closed = true;
    this.closedSocketStats.clear();
    for (const s of this.socketStats()) this.closedSocketStats.set(s.family, s);
    for (const pinger of this.pingers.values()) pinger.close();
    this.pingers.clear();
  }
}
