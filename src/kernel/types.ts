// The typed model of the kernel state weft owns. Every address, CIDR and MAC in it is canonical text
// (formatIp / formatCidr / lower-case MAC) so states compare with `===`, print well in logs and survive JSON.
import type { Cidr, Family } from '../ip/index.js';

/** A VXLAN device such as `flannel.1` / `flannel-v6.1`. */
export interface VxlanLinkSpec {
  kind: 'vxlan';
  name: string;
  vni: number;
  /** Local VTEP address (the external interface's address; IPv4 or IPv6). */
  local: string;
  /** The external (underlay) interface, by name. */
  dev: string;
  /** UDP destination port. */
  port: number;
  learning: boolean;
  gbp: boolean;
  mtu: number;
  /** Hardware address; in a desired state, omit it to leave the kernel's choice alone. */
  mac?: string;
  up: boolean;
}

/** A TUN device such as the udp backend's `flannel0` (IFF_TUN, no packet information header). */
export interface TunLinkSpec {
  kind: 'tun';
  name: string;
  mtu: number;
  up: boolean;
}

/** A device of a type weft does not create (only ever observed, e.g. a bridge someone named `flannel.1`). */
export interface OtherLink {
  kind: 'other';
  name: string;
  /** iproute2's `info_kind` ('' for plain devices). */
  type: string;
  mtu: number;
  mac?: string;
  up: boolean;
}

export type LinkSpec = VxlanLinkSpec | TunLinkSpec;
export type ObservedLink = LinkSpec | OtherLink;

/** An interface address; `cidr` keeps the host bits (`10.5.1.0/32`, `10.5.1.1/24`). */
export interface AddressEntry {
  dev: string;
  cidr: string;
}

/** A unicast route in the main table. */
export interface RouteEntry {
  /** Destination network, canonical (`10.5.2.0/24`). */
  dst: string;
  /** Gateway address. */
  via?: string;
  dev: string;
  onlink?: boolean;
  /** Omitted = the family's default (IPv4 0, IPv6 1024). */
  metric?: number;
  /** Observed only: who made it (`kernel` = made for an address; never weft's to remove). */
  protocol?: string;
}

/** A PERMANENT neighbour (ARP / NDP) entry. */
export interface NeighborEntry {
  dev: string;
  ip: string;
  mac: string;
}

/** A PERMANENT forwarding entry on a VXLAN device (`self`): inner MAC → remote VTEP address. */
export interface FdbEntry {
  dev: string;
  mac: string;
  dst: string;
}

/** A desired or observed slice of kernel state. */
export interface KernelState {
  links: ObservedLink[];
  addresses: AddressEntry[];
  routes: RouteEntry[];
  neighbors: NeighborEntry[];
  fdb: FdbEntry[];
}

/** A desired state only ever holds links weft creates. */
export interface DesiredKernelState extends KernelState {
  links: LinkSpec[];
}

/**
 * What weft owns, so a dump reads only that and a plan only ever removes that:
 * - links named in `devices`, and the addresses inside `networks`, PERMANENT neighbours and `self` PERMANENT
 *   FDB entries on them;
 * - main-table unicast routes whose dst lies inside `networks` (and is not in `protectedDsts`), on one of
 *   `devices` or on `externalDev` (host-gw / DirectRouting routes). Kernel-made (`proto kernel`) routes never.
 */
export interface KernelScope {
  devices: string[];
  /**
   * Devices made outside the planner (WireGuard: kernel module or wireguard-go): their addresses and routes are
   * weft's like those on `devices`, but the link itself is never planned (never added, set or deleted).
   */
  entryDevices?: string[];
  networks: Cidr[];
  /** The external interface; routes into a Network on it are weft's (host-gw, DirectRouting). */
  externalDev?: string;
  /** Destinations never touched: the node's own subnet(s), whose route belongs to the bridge (`cni0`). */
  protectedDsts?: Cidr[];
}

export type KernelOp =
  | { kind: 'link-add'; link: LinkSpec }
  | { kind: 'link-delete'; name: string; reason: string }
  | { kind: 'link-set'; name: string; mtu?: number; mac?: string; up?: boolean }
  | { kind: 'address-add'; address: AddressEntry }
  | { kind: 'address-delete'; address: AddressEntry }
  | { kind: 'route-replace'; route: RouteEntry }
  | { kind: 'route-delete'; route: RouteEntry }
  | { kind: 'neighbor-replace'; neighbor: NeighborEntry }
  | { kind: 'neighbor-delete'; neighbor: NeighborEntry }
  | { kind: 'fdb-replace'; fdb: FdbEntry }
  | { kind: 'fdb-delete'; fdb: FdbEntry };

export type KernelOpKind = KernelOp['kind'];

/** The outcome of one op; `error` carries the kernel's (or iproute2's) own message. */
export interface KernelOpResult {
  op: KernelOp;
  ok: boolean;
  error?: string;
}

/** Where a kernel call runs: the current namespace, or `ip -n <netns>` (tests). */
export interface KernelCallOptions {
  netns?: string;
  /** Per command; default 30 s. */
  timeoutMs?: number;
}

/** An address on an interface, as listed by `ip addr`. */
export interface InterfaceAddress {
  family: Family;
  ip: string;
  prefix: number;
  /** `global`, `link`, `host`, … */
  scope: string;
  /** The IPv6 flags that matter when choosing a VTEP / PublicIPv6 (absent when none is set). */
  flags?: InterfaceAddressFlag[];
}

/**
 * `temporary`: a privacy address (RFC 8981) that is replaced within hours; `deprecated`: its preferred lifetime
 * ended; `tentative`: duplicate address detection still runs; `dadfailed`: another host holds it.
 */
export type InterfaceAddressFlag = 'temporary' | 'deprecated' | 'tentative' | 'dadfailed';

/** One network interface. */
export interface InterfaceFact {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  loopback: boolean;
  addresses: InterfaceAddress[];
}

/** What interface selection needs to know about the node, gathered by `listInterfaces`. */
export interface InterfaceFacts {
  interfaces: InterfaceFact[];
  /** Device of the IPv4 / IPv6 default route, when there is one. */
  defaultRouteDev: { ipv4?: string; ipv6?: string };
  /** The route lookup for `--iface-can-reach`, when asked for. */
  canReach?: { target: string; dev?: string; error?: string };
}

/** The external interface weft uses, with the addresses it publishes. */
export interface SelectedInterface {
  name: string;
  index: number;
  mtu: number;
  /** The interface's IPv4 address (the VTEP's local address), with its prefix. */
  ipv4?: InterfaceAddress;
  ipv6?: InterfaceAddress;
  /** The lease's PublicIP: `--public-ip`, else the interface's IPv4 address. May differ (NAT). */
  publicIp?: string;
  publicIpv6?: string;
  /** Every address on the interface (for on-link checks: host-gw, DirectRouting). */
  addresses: InterfaceAddress[];
  /** How it was chosen, for the start-up log. */
  reason: string;
}
