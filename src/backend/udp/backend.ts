// The udp backend: flannel's userspace encapsulation over the TUN `flannel0` and a UDP socket on the node's
// address (Backend.Port, 8285), with the native engine (engine.ts) as the data path.
//
// Who owns what: the kernel planner owns the device. The desired state names a persistent TUN, so the reconcile
// pass creates it (`ip tuntap add`), keeps its MTU, address and route, and re-creates it when someone deletes
// it. This backend only attaches the engine to it after each pass (`afterReconcile`). Stopping weftd closes the
// engine's descriptor and leaves the device, its address and the route in place (flannel's own TUN vanished
// with the process); a restarted weftd re-attaches to the same device. (Should the device vanish between the
// existence check and the attach, the open creates a bare one; the next pass gives it its MTU, address and route.)

import { createSocket } from 'node:dgram';
import { closeSync, existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { UdpBackendConfig } from '../../config/index.js';
import { errorFields } from '../../core/index.js';
import { type Cidr, canonicalIp, formatCidr } from '../../ip/index.js';
import { ensureSysctl, type KernelScope, type SelectedInterface } from '../../kernel/index.js';
import type { Lease, LeaseAttrs } from '../../lease/index.js';
import { tunnelAddressOf } from '../lease-fields.js';
import { familyNetworks } from '../networks.js';
import {
  type Backend,
  type BackendContext,
  type BackendCounters,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  type PreparedBackend,
} from '../types.js';
import { addCounters, countersOf, zeroCounters } from './counters.js';
import { loadUdpAddon, openTun, type TunDevice, UdpEngine, type UdpPeer } from './engine.js';
import { ownUdpSubnet, peerTableKey, planUdp, UDP_DEVICE_NAME, udpDeviceMtu, udpScope } from './plan.js';
import { adoptResumedEngine, saveResumeState, udpStateDir } from './resume.js';

/** The smallest MTU that still carries IPv4. */
const MIN_MTU = 68;

/**
 * Per-device sysctls the data path needs: ICMP net-unreachable replies come from our own tunnel address, so
 * the kernel must accept a local source on the TUN; the tunnel is IPv4 only, and without IPv6 disabled the
 * kernel sends router solicitations into it. (Slash form: a device name may hold dots.)
 */
const DEVICE_SYSCTLS: ReadonlyArray<{ key: string; value: string; required: boolean }> = [
  { key: `net/ipv4/conf/${UDP_DEVICE_NAME}/accept_local`, value: '1', required: true },
  { key: `net/ipv6/conf/${UDP_DEVICE_NAME}/disable_ipv6`, value: '1', required: false },
];

/** The TUN device is not there after a reconcile pass (the pass failed to create it). */
export class UdpDeviceMissingError extends Error {
  override name = 'UdpDeviceMissingError';
  constructor(device: string) {
    super(
      `udp: ${device} does not exist after the reconcile pass (see the kernel operation errors above); the engine attaches on the next pass`,
    );
  }
}

export interface UdpBackendOptions {
  /**
   * Checks at prepare that the engine will be able to bind `address:port`, so a taken port fails start-up
   * (and `auto`) with a clear message. Default: binds a UDP socket there and closes it.
   */
  checkBind?: (address: string, port: number) => Promise<void>;
  /** IFF_VNET_HDR offloads on the TUN (default true; see native/README.md). */
  vnetHdr?: boolean;
  /** Loads the native addon, throwing when it is not built. Default `loadUdpAddon`; unit tests pass a no-op. */
  loadAddon?: () => unknown;
  /**
   * Where the peer table is saved for a restarted weftd to resume the data path at once (resume.ts); default
   * the directory the daemon gave resumeUdpDataPath (its subnet file's), '' to save nothing.
   */
  stateDir?: string;
}

interface Prepared {
  network: Cidr;
  iface: SelectedInterface;
  /** The interface's own IPv4 address: the socket binds here (PublicIP may be a NAT address). */
  bindAddress: string;
  mtu: number;
  logger: Logger | undefined;
}

interface Attached {
  engine: UdpEngine;
  ownSubnet: string;
  peersKey: string;
  /** The engine's TUN read errors when last looked at: growth means the device went away under it. */
  tunReadErrors: number;
  /** What the state file holds (own subnet and peer table key), to write it only when that changes. */
  savedKey: string;
}

export class UdpBackend implements Backend {
  readonly name = 'udp';
  readonly device = UDP_DEVICE_NAME;
  private prepared: Prepared | undefined;

  /** A peer answers on its `flannel0` address: its subnet's network address. */
  probeAddress(peer: Lease): string | undefined {
    return tunnelAddressOf(peer);
  }
  private attached: Attached | undefined;
  /** Totals of engines already stopped (re-attach, own subnet change), so the counters never go down. */
  private retired: BackendCounters = zeroCounters();
  private readonly checkBind: (address: string, port: number) => Promise<void>;
  private readonly vnetHdr: boolean;
  private readonly loadAddon: () => unknown;
  private readonly stateDir: string | undefined;
  private readonly warnedSysctl = new Set<string>();

  constructor(
    readonly udp: UdpBackendConfig,
    options: UdpBackendOptions = {},
  ) {
    this.checkBind = options.checkBind ?? bindOnce;
    this.vnetHdr = options.vnetHdr ?? true;
    this.loadAddon = options.loadAddon ?? loadUdpAddon;
    this.stateDir = options.stateDir;
  }

  async prepare(ctx: BackendContext): Promise<PreparedBackend> {
    const networks = familyNetworks(ctx.config);
    const { iface } = ctx;
    if (networks.ipv6 !== undefined) {
      throw new BackendPrepareError(
        'udp: the udp backend carries IPv4 only, but EnableIPv6 is set; use vxlan or host-gw for IPv6',
      );
    }
    if (networks.ipv4 === undefined)
      throw new BackendPrepareError('udp: IPv4 is not enabled in the network config');
    if (iface.ipv4 === undefined || iface.publicIp === undefined) {
      throw new BackendPrepareError(
        `udp: ${iface.name} has no IPv4 address to bind the UDP socket to and publish as PublicIP`,
      );
    }
    const mtu = udpDeviceMtu(iface.mtu);
    if (mtu < MIN_MTU) {
      throw new BackendPrepareError(
        `udp: ${UDP_DEVICE_NAME} would get MTU ${mtu} (${iface.name} MTU ${iface.mtu} minus 28), below the IPv4 minimum ${MIN_MTU}`,
      );
    }
    try {
      this.loadAddon();
    } catch (err) {
      throw new BackendPrepareError(`udp: ${(err as Error).message}`);
    }
    const bindAddress = canonicalIp(iface.ipv4.ip);
    if (this.attached === undefined) this.adoptResumed(bindAddress, ctx.logger);
    // Our own running engine holds the port; only a fresh start checks it.
    if (this.attached === undefined) {
      try {
        await this.checkBind(bindAddress, this.udp.port);
      } catch (err) {
        throw new BackendPrepareError(
          `udp: cannot bind UDP ${bindAddress}:${this.udp.port} (${(err as Error).message}); is another flanneld or weftd running, or is Backend.Port taken?`,
        );
      }
    }
    this.prepared = { network: networks.ipv4, iface, bindAddress, mtu, logger: ctx.logger };
    // flannel's udp backend publishes only PublicIP: no BackendType, no BackendData.
    const attrs: LeaseAttrs = { publicIP: iface.publicIp };
    return { attrs, mtu, tunnel: { port: this.udp.port, families: [4] } };
  }

  desired(own: Lease, peers: readonly Lease[]): DesiredBackendState {
    const { state, skipped } = this.plan('desired', own, peers);
    return { state, skipped };
  }

  scope(own: Lease): KernelScope {
    const p = this.require('scope');
    return udpScope(p.network, p.iface, own);
  }

  mtu(): number {
    return this.require('mtu').mtu;
  }

  /**
   * After each reconcile pass: make sure the engine runs attached to the device for the current own subnet
   * (starting, or re-attaching when the device was re-created or the own subnet changed), and hand it the peer
   * table when it changed. The running data path picks up a new table from its next batch.
   */
  async afterReconcile(own: Lease, peers: readonly Lease[]): Promise<void> {
    const p = this.require('afterReconcile');
    const plan = this.plan('afterReconcile', own, peers);
    const ownSubnet = formatCidr(ownUdpSubnet(own));
    // The device is the planner's: never let the engine's open create it.
    if (!existsSync(`/proc/sys/net/ipv4/conf/${UDP_DEVICE_NAME}`))
      throw new UdpDeviceMissingError(UDP_DEVICE_NAME);
    await this.ensureDeviceSysctls(p.logger);

    let attached = this.attached;
    if (attached !== undefined) {
      const stats = attached.engine.stats();
      const why =
        attached.ownSubnet !== ownSubnet
          ? `own subnet changed from ${attached.ownSubnet} to ${ownSubnet}`
          : stats.tunReadErrors > attached.tunReadErrors
            ? `reading ${UDP_DEVICE_NAME} failed ${stats.tunReadErrors - attached.tunReadErrors} times (the device was deleted or re-created)`
            : !stats.running
              ? 'the engine stopped'
              : undefined;
      if (why !== undefined) {
        p.logger?.warn({ reason: why }, 'udp: restarting the data path');
        this.stopEngine();
        attached = undefined;
      }
    }
    if (attached === undefined) {
      attached = this.startEngine(p, ownSubnet);
      this.attached = attached;
    }
    const key = peerTableKey(plan.enginePeers);
    if (key !== attached.peersKey) {
      attached.engine.setPeers(plan.enginePeers);
      attached.peersKey = key;
      p.logger?.info({ peers: plan.enginePeers.length }, 'udp: peer table updated');
    }
    await this.saveState(p, attached, plan.enginePeers);
  }

  /** Takes over an engine resumeUdpDataPath started before anything slow, when it fits this node. */
  private adoptResumed(bindAddress: string, logger: Logger | undefined): void {
    const resumed = adoptResumedEngine(bindAddress, this.udp.port, this.vnetHdr);
    if (resumed === undefined) return;
    const { engine, state } = resumed;
    const peersKey = peerTableKey(state.peers);
    this.attached = {
      engine,
      ownSubnet: state.ownSubnet,
      peersKey,
      tunReadErrors: engine.stats().tunReadErrors,
      savedKey: `${state.ownSubnet}|${peersKey}`,
    };
    logger?.info(
      { device: UDP_DEVICE_NAME, ownSubnet: state.ownSubnet },
      'udp: adopted the resumed data path',
    );
  }

  /** Saves the running table for a restarted weftd (resume.ts); a failure costs only the fast restart. */
  private async saveState(p: Prepared, attached: Attached, peers: UdpPeer[]): Promise<void> {
    const key = `${attached.ownSubnet}|${attached.peersKey}`;
    const dir = this.stateDir ?? udpStateDir();
    if (dir === '' || attached.savedKey === key) return;
    try {
      await saveResumeState(
        {
          bindAddress: p.bindAddress,
          port: this.udp.port,
          ownSubnet: attached.ownSubnet,
          vnetHdr: this.vnetHdr,
          peers,
        },
        dir,
      );
      attached.savedKey = key;
    } catch (err) {
      p.logger?.warn({ err: errorFields(err), dir }, 'udp: cannot save the peer table for a fast restart');
      attached.savedKey = key; // warn once per table
    }
  }

  counters(): BackendCounters | undefined {
    if (this.attached === undefined) return this.prepared === undefined ? undefined : this.retired;
    return addCounters(this.retired, countersOf(this.attached.engine.stats()));
  }

  /** Stops the engine (joins its threads, closes the socket and the TUN descriptor); the device stays. */
  close(): void {
    this.stopEngine();
  }

  private startEngine(p: Prepared, ownSubnet: string): Attached {
    let tun: TunDevice | undefined = openTun(UDP_DEVICE_NAME, { persist: true, vnetHdr: this.vnetHdr });
    try {
      const engine = UdpEngine.start({
        tun,
        bindAddress: p.bindAddress,
        bindPort: this.udp.port,
        ownSubnet,
      });
      tun = undefined;
      const stats = engine.stats();
      p.logger?.info(
        {
          device: UDP_DEVICE_NAME,
          bind: `${p.bindAddress}:${this.udp.port}`,
          ownSubnet,
          features: stats.features,
        },
        'udp: data path attached',
      );
      return { engine, ownSubnet, peersKey: '', tunReadErrors: stats.tunReadErrors, savedKey: '' };
    } finally {
      // On failure the descriptor is still ours to close (the device stays).
      if (tun !== undefined) closeSync(tun.fd);
    }
  }

  private stopEngine(): void {
    const attached = this.attached;
    if (attached === undefined) return;
    this.attached = undefined;
    // The last totals before the engine goes away.
    try {
      this.retired = addCounters(this.retired, countersOf(attached.engine.stats()));
    } catch {
      // stats of a broken engine: lose its tail rather than fail the stop
    }
    attached.engine.stop();
  }

  private async ensureDeviceSysctls(logger: Logger | undefined): Promise<void> {
    for (const { key, value, required } of DEVICE_SYSCTLS) {
      try {
        const { changed } = await ensureSysctl(key, value);
        if (changed) logger?.info({ sysctl: key, value }, 'udp: set sysctl');
        this.warnedSysctl.delete(key);
      } catch (err) {
        // IPv6 may be compiled out (no /proc/sys/net/ipv6): nothing to disable then. Warn once per failure run.
        if (!this.warnedSysctl.has(key)) {
          this.warnedSysctl.add(key);
          const level = required ? 'warn' : 'debug';
          logger?.[level]({ sysctl: key, err: (err as Error).message }, 'udp: could not set sysctl');
        }
      }
    }
  }

  private plan(method: string, own: Lease, peers: readonly Lease[]) {
    const p = this.require(method);
    return planUdp({ udp: this.udp, network: p.network, iface: p.iface, own, peers });
  }

  private require(method: string): Prepared {
    if (this.prepared === undefined) throw new BackendNotPreparedError(this.name, method);
    return this.prepared;
  }
}

/** Binds a UDP socket to `address:port` and closes it again; rejects with the bind error. */
function bindOnce(address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: 'udp4' });
    socket.once('error', (err) => {
      try {
        socket.close();
      } catch {
        // never bound
      }
      reject(err);
    });
    socket.bind({ address, port, exclusive: true }, () => {
      socket.close(() => resolve());
    });
  });
}
