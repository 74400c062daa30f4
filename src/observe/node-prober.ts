// The daemon's peer prober: echoes only inside the overlay networks, every result and transition into the
// metrics (per-peer series, forgotten when a peer leaves).
import type { Cidr } from '../ip/index.js';
import type { Logger } from '../log/index.js';
import type { WeftMetrics } from './metrics.js';
import { PeerProber } from './probe/index.js';

export function nodePeerProber(o: {
  logger: Logger;
  intervalMs: number;
  overlayNetworks: readonly Cidr[];
  metrics: Pick<WeftMetrics, 'probeResult' | 'peerHealth' | 'forgetPeer'>;
}): PeerProber {
  const { metrics } = o;
  return new PeerProber({
    logger: o.logger,
    intervalMs: o.intervalMs,
    overlayNetworks: o.overlayNetworks,
    onResult: (t, rttMs, state) => metrics.probeResult(t.key, rttMs, state.lossRatio ?? undefined),
    onTransition: (t) => metrics.peerHealth(t.key, t.to),
    onTargetRemoved: (key) => metrics.forgetPeer(key),
  });
}
