import {
  addressAt,
  type Cidr,
  containsCidr,
  type Family,
  formatCidr,
  formatIp,
  parseCidr,
} from '../ip/index.js';
import { writeFileIfChanged } from './atomic-file.js';

/** Where weft writes its conflist by default (kube-flannel uses 10-flannel.conflist in the same dir). */
export const DEFAULT_CONFLIST_PATH = '/etc/cni/net.d/10-weft.conflist';

export interface BridgeConflistInput {
  /** CNI network name (default "weft"). */
  name?: string;
  /** Bridge device on the node (default "cni0", as flannel's CNI plugin uses). */
  bridge?: string;
  /** The node's IPv4 pod subnet, masked (host-local rejects host bits). */
  subnet?: Cidr;
  /** The node's IPv6 pod subnet, masked. */
  ipv6Subnet?: Cidr;
  /** The whole IPv4 Network: pods get a route to it. Required with `subnet`. */
  network?: Cidr;
  /** The whole IPv6 Network. Required with `ipv6Subnet`. */
  ipv6Network?: Cidr;
  /** MTU of the pod interfaces and the bridge (the backend's MTU, FLANNEL_MTU). */
  mtu: number;
  /** host-local's lease directory (default /var/lib/cni/networks). */
  ipamDataDir?: string;
}

export interface CniRange {
  subnet: string;
}

export interface CniRoute {
  dst: string;
  /** The bridge gateway (first address of the subnet). */
  gw: string;
}

export interface HostLocalIpam {
  type: 'host-local';
  ranges: CniRange[][];
  routes: CniRoute[];
  dataDir?: string;
}

export interface BridgePluginConf {
  type: 'bridge';
  bridge: string;
  isGateway: true;
  isDefaultGateway: true;
  hairpinMode: true;
  ipMasq: false;
  mtu: number;
  ipam: HostLocalIpam;
}

export interface PortmapPluginConf {
  type: 'portmap';
  capabilities: { portMappings: true };
  snat: true;
}

export interface BridgeConflist {
  cniVersion: '1.0.0';
  name: string;
  plugins: [BridgePluginConf, PortmapPluginConf];
}

/** A conflist input that the CNI plugins would reject, caught before writing. */
export class ConflistError extends Error {
  override name = 'ConflistError';
}

// libcni's rule for network names.
const CNI_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function checkInterfaceName(name: string): void {
  // IFNAMSIZ is 16 including the NUL; the kernel refuses '/', ':' and whitespace.
  if (name.length === 0 || name.length > 15 || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new ConflistError(
      `bridge name ${JSON.stringify(name)} is not a valid interface name (1-15 characters, no '/', ':' or spaces)`,
    );
  }
}

function checkFamilyPair(
  label: string,
  family: Family,
  subnet: Cidr | undefined,
  network: Cidr | undefined,
): void {
  const subnetKey = family === 4 ? 'subnet' : 'ipv6Subnet';
  const networkKey = family === 4 ? 'network' : 'ipv6Network';
  if (subnet === undefined && network === undefined) return;
  if (subnet === undefined || network === undefined) {
    throw new ConflistError(`${label}: ${subnetKey} and ${networkKey} go together: give both or neither`);
  }
  if (subnet.family !== family)
    throw new ConflistError(`${subnetKey} ${formatCidr(subnet)} is not IPv${family}`);
  if (network.family !== family)
    throw new ConflistError(`${networkKey} ${formatCidr(network)} is not IPv${family}`);
  // host-local rejects a subnet with host bits ("invalid CIDR"): insist on the masked form.
  const masked = parseCidr(formatCidr(subnet));
  if (masked.value !== subnet.value) {
    throw new ConflistError(`${subnetKey} has host bits set; pass the masked network ${formatCidr(masked)}`);
  }
  if (!containsCidr(network, subnet)) {
    throw new ConflistError(
      `${subnetKey} ${formatCidr(subnet)} does not lie inside ${networkKey} ${formatCidr(network)}`,
    );
  }
}

/**
 * The bridge conflist for local pods, shaped like kube-flannel's `cbr0`: bridge `cni0` as gateway and
 * default gateway (pods reach the world through the node's masquerade rules), hairpin, no plugin-side
 * masquerade (weft's FLANNEL-POSTRTG does it), host-local IPAM over the node's subnet(s) with a route to
 * the Network(s), then portmap for hostPort.
 *
 * The Network route names its gateway (the bridge address) although the kernel route is the same
 * without it: bridge plugins before v1.3.0 (Debian's 1.1.1 among them) fail CHECK on a gateway-less
 * route ("Expected Route … GW:<nil> not found", containernetworking/plugins#886), which breaks CRI-O.
 */
export function renderBridgeConflist(input: BridgeConflistInput): BridgeConflist {
  const name = input.name ?? 'weft';
  const bridge = input.bridge ?? 'cni0';
  if (!CNI_NAME.test(name)) {
    throw new ConflistError(
      `network name ${JSON.stringify(name)} is not a valid CNI name (letters, digits, _ . -)`,
    );
  }
  checkInterfaceName(bridge);
  checkFamilyPair('IPv4', 4, input.subnet, input.network);
  checkFamilyPair('IPv6', 6, input.ipv6Subnet, input.ipv6Network);
  if (input.subnet === undefined && input.ipv6Subnet === undefined) {
    throw new ConflistError('neither an IPv4 nor an IPv6 subnet is given: pods would get no address');
  }
  if (!Number.isInteger(input.mtu) || input.mtu < 68 || input.mtu > 65535) {
    throw new ConflistError(`mtu ${String(input.mtu)} is not an integer in 68..65535`);
  }
  if (input.ipamDataDir !== undefined && (input.ipamDataDir === '' || !input.ipamDataDir.startsWith('/'))) {
    throw new ConflistError(`ipamDataDir ${JSON.stringify(input.ipamDataDir)} must be an absolute path`);
  }

  const ranges: CniRange[][] = [];
  const routes: CniRoute[] = [];
  if (input.subnet && input.network) {
    ranges.push([{ subnet: formatCidr(input.subnet) }]);
    routes.push({ dst: formatCidr(input.network), gw: formatIp(addressAt(input.subnet, 1n)) });
  }
  if (input.ipv6Subnet && input.ipv6Network) {
    ranges.push([{ subnet: formatCidr(input.ipv6Subnet) }]);
    routes.push({ dst: formatCidr(input.ipv6Network), gw: formatIp(addressAt(input.ipv6Subnet, 1n)) });
  }
  const ipam: HostLocalIpam = { type: 'host-local', ranges, routes };
  if (input.ipamDataDir !== undefined) ipam.dataDir = input.ipamDataDir;

  return {
    cniVersion: '1.0.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        isDefaultGateway: true,
        hairpinMode: true,
        ipMasq: false,
        mtu: input.mtu,
        ipam,
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/** The conflist as file text: 2-space JSON and a trailing newline (stable bytes, so unchanged configs are not rewritten). */
export function formatConflist(conflist: BridgeConflist): string {
  return `${JSON.stringify(conflist, null, 2)}\n`;
}

/** Writes the conflist atomically (mode 0644) when its bytes changed. Resolves true when it wrote. */
export async function writeBridgeConflist(filePath: string, conflist: BridgeConflist): Promise<boolean> {
  return writeFileIfChanged(filePath, formatConflist(conflist), { mode: 0o644 });
}
