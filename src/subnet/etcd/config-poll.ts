// `<prefix>/config`: read it, waiting until it exists and parses. The daemon logs the config's unknown keys
// (once per start, for either lease source); this only says why it is still waiting.
import { type NetworkConfig, NetworkConfigError, parseNetworkConfigText } from '../../config/index.js';
import { errorMessage, sleep } from '../../core/index.js';
import type { Logger } from '../../log/index.js';
import { SubnetManagerClosedError } from './errors.js';
import type { EtcdLeaseStore } from './store.js';

/** The same waiting reason is logged at most this often. */
const CONFIG_LOG_EVERY_MS = 30_000;

export function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new SubnetManagerClosedError();
}

/** Reads `<prefix>/config` every `pollMs` until it exists and is valid; logs why it waits (every 30 s). */
export async function pollNetworkConfig(
  store: EtcdLeaseStore,
  logger: Logger,
  pollMs: number,
  signal: AbortSignal,
): Promise<NetworkConfig> {
  const key = store.configKey.toString();
  let lastLog = -Infinity;
  let lastReason = '';
  for (;;) {
    if (signal.aborted) throw abortError(signal);
    let reason: string;
    try {
      const text = await store.getConfigText();
      if (text !== undefined) return parseNetworkConfigText(text, key);
      reason = `network config ${key} not found in etcd; waiting for it (write it with: etcdctl put ${key} '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}')`;
    } catch (err) {
      reason =
        err instanceof NetworkConfigError
          ? `network config ${key} is invalid; waiting for a fix: ${err.message}`
          : `cannot read the network config from etcd; retrying: ${errorMessage(err)}`;
    }
    if (Date.now() - lastLog >= CONFIG_LOG_EVERY_MS || reason !== lastReason) {
      logger.warn(reason);
      lastLog = Date.now();
      lastReason = reason;
    }
    await sleep(pollMs, signal);
  }
}
