/**
 * The node's files for its lease: flannel's subnet.env (read by the CNI `flannel` plugin and by scripts) and
 * weft's bridge conflist (read by the container runtime), both written atomically and only when they change.
 */
import type { NetworkConfig } from '../config/index.js';
import { errorFields } from '../core/index.js';
import { formatCidr } from '../ip/index.js';
import type { Lease } from '../lease/index.js';
import type { Logger } from '../log/index.js';
import { renderBridgeConflist, writeBridgeConflist } from './conflist.js';
import { readSubnetEnv, writeSubnetEnv } from './subnet-env.js';

export interface NodeFilesInput {
  config: Pick<NetworkConfig, 'ipv4' | 'ipv6'>;
  lease: Pick<Lease, 'subnet' | 'ipv6Subnet'>;
  /** The MTU pods get (the backend's). */
  mtu: number;
  ipMasq: boolean;
  /** `--subnet-file`. */
  subnetFile: string;
  /** `--cni-conf-file`; empty: no conflist. */
  cniConfFile: string;
  /** `--cni-ipam-data-dir`. */
  cniIpamDataDir?: string | undefined;
  /** Told about each file that changed on disk. */
  logger?: Logger;
}

/** Which files changed on disk (unchanged files are not rewritten). */
export interface NodeFilesWritten {
  subnetFile: boolean;
  cniConfFile: boolean;
}

export async function writeNodeFiles(input: NodeFilesInput): Promise<NodeFilesWritten> {
  const written = await writeBoth(input);
  if (written.subnetFile) input.logger?.info({ file: input.subnetFile }, 'subnet file written');
  if (written.cniConfFile) input.logger?.info({ file: input.cniConfFile }, 'CNI conflist written');
  return written;
}

async function writeBoth(input: NodeFilesInput): Promise<NodeFilesWritten> {
  const { config, lease, mtu } = input;
  const subnetFile = await writeSubnetEnv(input.subnetFile, {
    network: config.ipv4?.network,
    subnet: lease.subnet,
    ipv6Network: config.ipv6?.network,
    ipv6Subnet: lease.ipv6Subnet,
    mtu,
    ipMasq: input.ipMasq,
  });
  if (!input.cniConfFile) return { subnetFile, cniConfFile: false };
  const conflist = renderBridgeConflist({
    subnet: lease.subnet,
    ipv6Subnet: lease.ipv6Subnet,
    network: lease.subnet ? config.ipv4?.network : undefined,
    ipv6Network: lease.ipv6Subnet ? config.ipv6?.network : undefined,
    mtu,
    ipamDataDir: input.cniIpamDataDir,
  });
  return { subnetFile, cniConfFile: await writeBridgeConflist(input.cniConfFile, conflist) };
}

/** The subnets the previous run wrote to `subnetFile`, to ask for them again; none when it is unreadable. */
export async function readPreviousSubnets(
  subnetFile: string,
  logger: Logger,
): Promise<{ previousSubnet?: string; previousIPv6Subnet?: string }> {
  try {
    const previous = await readSubnetEnv(subnetFile);
    return {
      ...(previous?.subnet ? { previousSubnet: formatCidr(previous.subnet) } : {}),
      ...(previous?.ipv6Subnet ? { previousIPv6Subnet: formatCidr(previous.ipv6Subnet) } : {}),
    };
  } catch (err) {
    logger.warn({ file: subnetFile, err: errorFields(err) }, 'ignoring unreadable previous subnet file');
    return {};
  }
}
