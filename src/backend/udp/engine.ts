// TypeScript face of the native udp data path (native/, built by node-gyp into native/build/Release).
// The per-packet work runs on the addon's own threads; this module validates input, converts types and
// names the counters.
import { loadNativeAddon, NATIVE_ADDON_PATH } from '../../core/index.js';
import { InvalidAddressError, parseCidr, parseIp } from '../../ip/index.js';
import type { UdpEngineDrops } from './counters.js';

const ADDON_PATH = NATIVE_ADDON_PATH;
/** flannel's udp device name (`flannel%d`, the first one). */
export const UDP_DEVICE_NAME = 'flannel0';
/** The flannel udp backend's default port. */
export const DEFAULT_UDP_PORT = 8285;
/** Outer IPv4 (20) + UDP (8) headers: the TUN MTU is the underlay MTU minus this. */
export const UDP_ENCAP_OVERHEAD = 28;

interface NativeAddon {
  openTun(
    name: string,
    options: { persist: boolean; vnetHdr: boolean; netns?: string },
  ): { fd: number; name: string };
  createEngine(options: {
    tunFd: number;
    vnetHdr: boolean;
    bindAddress: string;
    bindPort: number;
    ownSubnet: string;
    udpGso: boolean;
    udpGro: boolean;
    netns?: string;
  }): NativeHandle;
  setPeers(handle: NativeHandle, peers: { subnet: string; address: string; port: number }[]): void;
  stats(handle: NativeHandle): UdpEngineStats;
  stop(handle: NativeHandle): void;
}

/** Opaque engine handle (a napi external). */
type NativeHandle = { readonly __brand: 'weft-udp-engine' };

export class UdpAddonNotBuiltError extends Error {
  constructor(searched: string[], cause?: unknown) {
    super(
      `the udp backend's native addon is not built: no loadable ${ADDON_PATH} in ${searched.join(', ')}. ` +
        'Build it with `npm install` (its install script runs `node-gyp rebuild --directory=native`) ' +
        'or `npm run build:native`; it needs python3, make and a C compiler.' +
        (cause instanceof Error ? ` Loading failed with: ${cause.message}` : ''),
      { cause },
    );
    this.name = 'UdpAddonNotBuiltError';
  }
}

export class TunOpenError extends Error {
  constructor(name: string, cause: unknown) {
    super(
      `cannot open TUN device ${JSON.stringify(name)}: ${cause instanceof Error ? cause.message : cause}`,
      {
        cause,
      },
    );
    this.name = 'TunOpenError';
  }
}

export class UdpEngineStartError extends Error {
  constructor(cause: unknown) {
    super(`cannot start the udp engine: ${cause instanceof Error ? cause.message : cause}`, { cause });
    this.name = 'UdpEngineStartError';
  }
}

export class UdpEngineOptionError extends Error {
  constructor(what: string, problem: string) {
    super(`invalid udp engine ${what}: ${problem}`);
    this.name = 'UdpEngineOptionError';
  }
}

export class UdpEngineStoppedError extends Error {
  constructor(operation: string) {
    super(`udp engine already stopped: cannot ${operation}; start a new engine`);
    this.name = 'UdpEngineStoppedError';
  }
}

/** Loads the addon once (core's loader); throws UdpAddonNotBuiltError when it cannot be loaded. */
export function loadUdpAddon(): NativeAddon {
  const load = loadNativeAddon();
  if (load.ok) return load.addon as NativeAddon;
  throw new UdpAddonNotBuiltError(load.searched, load.error);
}

export interface TunDevice {
  /** The open TUN file descriptor; UdpEngine.start takes it over (and closes it on stop). */
  fd: number;
  /** The device name the kernel gave. */
  name: string;
  vnetHdr: boolean;
}

export interface OpenTunOptions {
  /** TUNSETPERSIST (default true): the device outlives the fd, so a restarted weftd re-attaches. */
  persist?: boolean;
  /**
   * IFF_VNET_HDR with checksum and TSO4 offloads (default true): the kernel hands over 64 KiB TCP
   * super-packets that the engine segments itself, and the engine writes merged TCP runs back.
   */
  vnetHdr?: boolean;
  /** Create or attach the device inside this network namespace (a path such as /run/netns/NAME). */
  netns?: string;
}

/**
 * Creates (or re-attaches to) the TUN device `name` (IFF_TUN | IFF_NO_PI). Addresses, MTU, link state and
 * routes are the kernel layer's job, not this one's.
 */
export function openTun(name: string, options: OpenTunOptions = {}): TunDevice {
  const native = loadUdpAddon();
  const vnetHdr = options.vnetHdr ?? true;
  try {
    const opened = native.openTun(name, {
      persist: options.persist ?? true,
      vnetHdr,
      ...(options.netns === undefined ? {} : { netns: options.netns }),
    });
    return { fd: opened.fd, name: opened.name, vnetHdr };
  } catch (error) {
    throw new TunOpenError(name, error);
  }
}

export interface UdpPeer {
  /** The peer's lease subnet, `a.b.c.d/len`. */
  subnet: string;
  /** The peer's public IP (its lease's PublicIP). */
  address: string;
  /** The peer's UDP port (Backend.Port, default 8285). */
  port: number;
}

export interface UdpEngineOptions {
  tun: TunDevice;
  /** This node's public IP; the socket binds to it. */
  bindAddress: string;
  bindPort?: number;
  /** This node's lease subnet: datagrams to other destinations are dropped; ICMP replies come from its first address. */
  ownSubnet: string;
  /** Send segmented TCP super-packets with UDP_SEGMENT (default true; falls back when the kernel refuses). */
  udpGso?: boolean;
  /** Receive with UDP_GRO (default true; off when the kernel lacks it). */
  udpGro?: boolean;
  /** Create the UDP socket inside this network namespace (a path such as /run/netns/NAME). */
  netns?: string;
}

export interface UdpEngineStats {
  /** Inner packets sent to peers, and their bytes. */
  txPackets: number;
  txBytes: number;
  /** Inner packets received from peers and written to the TUN, and their bytes. */
  rxPackets: number;
  rxBytes: number;
  icmpSent: number;
  tunReads: number;
  tunWrites: number;
  udpSends: number;
  udpRecvs: number;
  udpDatagramsReceived: number;
  tunReadErrors: number;
  /** GSO sends the kernel refused (e.g. a lowered path MTU), repeated datagram by datagram; GSO then rests a while. */
  gsoFallbacks: number;
  drops: UdpEngineDrops;
  /** `udpGso` is false while GSO rests after a refusal (see native/src/gso_backoff.h). */
  features: { vnetHdr: boolean; udpGso: boolean; udpGro: boolean };
  peers: number;
  running: boolean;
}

/** The userspace UDP encapsulation data path of one node. */
export class UdpEngine {
  private stopped = false;

  private constructor(
    private readonly native: NativeAddon,
    private readonly handle: NativeHandle,
    readonly tunName: string,
  ) {}

  /** Starts the engine's threads. On failure the TUN fd stays the caller's (close it with fs.closeSync). */
  static start(options: UdpEngineOptions): UdpEngine {
    const native = loadUdpAddon();
    const bindPort = options.bindPort ?? DEFAULT_UDP_PORT;
    checkAddress('bindAddress', options.bindAddress);
    checkPort('bindPort', bindPort);
    checkPrefix('ownSubnet', options.ownSubnet);
    try {
      const handle = native.createEngine({
        tunFd: options.tun.fd,
        vnetHdr: options.tun.vnetHdr,
        bindAddress: options.bindAddress,
        bindPort,
        ownSubnet: options.ownSubnet,
        udpGso: options.udpGso ?? true,
        udpGro: options.udpGro ?? true,
        ...(options.netns === undefined ? {} : { netns: options.netns }),
      });
      return new UdpEngine(native, handle, options.tun.name);
    } catch (error) {
      throw new UdpEngineStartError(error);
    }
  }

  /**
   * Replaces the whole peer set; the running data path uses it from its next batch. The addon validates every
   * entry (a prefix without host bits, an IPv4 address, a port) and names the first bad one; the previous
   * table then stays in force. (Validated there, not here: at 5000 peers a second pass in TypeScript would
   * cost more than the whole native update.)
   */
  setPeers(peers: readonly UdpPeer[]): void {
    if (this.stopped) throw new UdpEngineStoppedError('set peers');
    try {
      this.native.setPeers(this.handle, peers as UdpPeer[]);
    } catch (error) {
      if (error instanceof TypeError || error instanceof RangeError) {
        throw new UdpEngineOptionError('peer table', error.message);
      }
      throw error;
    }
  }

  stats(): UdpEngineStats {
    return this.native.stats(this.handle);
  }

  get running(): boolean {
    return !this.stopped;
  }

  /** Joins the threads and closes the socket and the TUN fd; the (persistent) device stays. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.native.stop(this.handle);
  }
}

function checkAddress(what: string, value: unknown): void {
  if (typeof value !== 'string')
    throw new UdpEngineOptionError(what, `expected a string a.b.c.d, got ${typeof value}`);
  try {
    if (parseIp(value).family !== 4) throw new InvalidAddressError(`"${value}" is not an IPv4 address`);
  } catch (error) {
    throw new UdpEngineOptionError(what, (error as Error).message);
  }
}

function checkPrefix(what: string, value: unknown): void {
  if (typeof value !== 'string')
    throw new UdpEngineOptionError(what, `expected a string a.b.c.d/len, got ${typeof value}`);
  try {
    if (parseCidr(value, { strict: true }).family !== 4)
      throw new InvalidAddressError(`"${value}" is not an IPv4 prefix`);
  } catch (error) {
    throw new UdpEngineOptionError(what, (error as Error).message);
  }
}

function checkPort(what: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new UdpEngineOptionError(what, `expected an integer port 1..65535, got ${String(value)}`);
  }
}
