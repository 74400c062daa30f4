/**
 * The peer prober's rounds as a Task (beat per round). The "observe" helper's PeerProber is a Task itself and
 * replaces this adapter at merge time.
 */
import { errorFields, sleep, type Task } from '../core/index.js';
import type { Cidr } from '../ip/index.js';
import type { Logger } from '../log/index.js';
import type { WeftMetrics } from './metrics.js';
import { PeerProber } from './probe.js';

/** The daemon's prober: echoes only inside the overlay networks, results into the metrics. */
export function createPeerProber(
  logger: Logger,
  networks: readonly Cidr[],
  metrics: WeftMetrics,
): PeerProber {
  return new PeerProber({
    logger,
    overlayNetworks: networks,
    onResult: (target, rttMs, state) => metrics.probeResult(target.key, rttMs, state.lossRatio ?? undefined),
    onTransition: (t) => metrics.peerHealth(t.key, t.to),
    onPeerRemoved: (key) => metrics.forgetPeer(key),
  });
}

export function proberTask(prober: PeerProber, intervalMs: number, logger: Logger): Task {
  return {
    name: 'peer-prober',
    periodMs: intervalMs + 1_000,
    run: async ({ signal, beat }) => {
      let logged = false;
      try {
        while (!signal.aborted) {
          await prober.probeOnce(Math.min(1_000, intervalMs)).then(
            () => {
              logged = false;
            },
            (err: unknown) => {
              if (!logged) logger.error({ err: errorFields(err) }, 'peer probes not running');
              logged = true;
            },
          );
          beat();
          await sleep(intervalMs, signal);
        }
      } finally {
        prober.close();
      }
    },
  };
}
