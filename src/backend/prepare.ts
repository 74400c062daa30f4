/**
 * The node's backend at start-up: the external interface it tunnels over (chosen by the flags, or the kube
 * node's `node-public-ip` annotations which win), then the backend the network config names prepared on it;
 * `auto` tries vxlan and falls back to udp (logged).
 */
import type { NetworkConfig } from '../config/index.js';
import type { DaemonOptions } from '../config/options.js';
import { errorFields } from '../core/index.js';
import { listInterfaces, type SelectedInterface, selectInterface } from '../kernel/index.js';
import type { Logger } from '../log/index.js';
import { createBackend } from './registry.js';
import type { Backend, PreparedBackend } from './types.js';

export interface NodeBackend {
  /** The external interface's name. */
  iface: string;
  backend: Backend;
  prepared: PreparedBackend;
}

type InterfaceFlags = Pick<
  DaemonOptions,
  'iface' | 'ifaceRegex' | 'ifaceCanReach' | 'publicIp' | 'publicIpv6' | 'extensionCommandTimeout'
>;

/** `flags` with the kube annotation's `publicIP`/`publicIPv6` (when there are any) over `--public-ip[v6]`. */
export async function prepareNodeBackend(
  config: NetworkConfig,
  flags: InterfaceFlags & { publicIP?: string; publicIPv6?: string },
  logger: Logger,
): Promise<NodeBackend> {
  if (flags.publicIP !== undefined || flags.publicIPv6 !== undefined)
    logger.info(
      { publicIp: flags.publicIP, publicIpv6: flags.publicIPv6 },
      'using the node-public-ip annotation as --public-ip',
    );
  const iface = selectInterface(await listInterfaces({ canReach: flags.ifaceCanReach }), {
    iface: flags.iface,
    ifaceRegex: flags.ifaceRegex,
    ifaceCanReach: flags.ifaceCanReach,
    publicIp: flags.publicIP ?? flags.publicIp,
    publicIpv6: flags.publicIPv6 ?? flags.publicIpv6,
    ipv4: config.enableIPv4,
    ipv6: config.enableIPv6,
  });
  logger.info(
    { iface: iface.name, publicIp: iface.publicIp, publicIpv6: iface.publicIpv6, reason: iface.reason },
    'using interface',
  );
  const commandTimeoutMs = flags.extensionCommandTimeout * 1000;
  return { iface: iface.name, ...(await prepareConfiguredBackend(config, iface, logger, commandTimeoutMs)) };
}

async function prepareConfiguredBackend(
  config: NetworkConfig,
  iface: SelectedInterface,
  logger: Logger,
  commandTimeoutMs: number,
): Promise<{ backend: Backend; prepared: PreparedBackend }> {
  const candidates =
    config.backend.type === 'auto' ? [config.backend.vxlan, config.backend.udp] : [config.backend];
  let lastError: unknown;
  for (const candidate of candidates) {
    const backend = createBackend(candidate);
    try {
      const prepared = await backend.prepare({
        config,
        iface,
        logger: logger.child({ backend: candidate.type }),
        commandTimeoutMs,
      });
      if (candidate !== candidates[0])
        logger.warn(
          { backend: candidate.type, err: errorFields(lastError) },
          'vxlan is not available here: falling back to the udp backend',
        );
      logger.info({ backend: backend.name, mtu: prepared.mtu, attrs: prepared.attrs }, 'backend ready');
      return { backend, prepared };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}
