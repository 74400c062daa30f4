// The wireguard backend (flannel's `wireguard`): encrypted pod traffic through `flannel-wg` (and `flannel-wg-v6`
// in `separate` mode). The device is kernel WireGuard where the kernel has it, else a detached wireguard-go.
//
// Who owns what: the kernel planner owns the device's address and the Network route (entry devices of the
// scope); this backend owns the device itself and its WireGuard configuration. After every reconcile pass and
// every supervision period it makes sure the device exists (adopting one a previous weftd left, with its
// wireguard-go), reads `wg show dump`, and when that differs from the wanted peers applies the whole config in
// one `wg syncconf`. Stopping weftd leaves device, key and peers in place: a restart does not cut traffic.
import type { Logger } from 'pino';
import type { WireguardBackendConfig } from '../../config/index.js';
import { errorFields, sleep, type Task } from '../../core/index.js';
import {
  ensureWgDevice,
  type KernelScope,
  keyDigest,
  readWgDevice,
  type SelectedInterface,
  syncWgDevice,
  type WgDeviceSpec,
  type WireguardImplementation,
} from '../../kernel/index.js';
import type { Lease } from '../../lease/index.js';
import { tunnelAddressOf } from '../lease-fields.js';
import { type FamilyNetworks, familyNetworks } from '../networks.js';
import {
  type Backend,
  type BackendContext,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  type PreparedBackend,
} from '../types.js';
import { loadOrCreateWireguardKey, type WireguardKeyPair, wireguardKeyFile } from './key.js';
import {
  diffWgDevice,
  planWireguard,
  type WgDeviceLayout,
  WIREGUARD_DEVICE,
  WIREGUARD_OVERHEAD,
  type WireguardPlan,
  wireguardDevices,
  wireguardLeaseAttrs,
  wireguardScope,
} from './plan.js';

export * from './key.js';
export * from './plan.js';

/** IPv6 needs links of at least 1280; IPv4 68. */
const MIN_MTU = { 4: 68, 6: 1280 } as const;

export interface WireguardBackendOptions {
  /** Default `WIREGUARD_KEY_FILE` or `/run/flannel/wgkey`. */
  keyFile?: string;
  /** How often the supervision task checks device and peers (default 10 s). */
  supervisePeriodMs?: number;
}

interface Prepared {
  networks: FamilyNetworks;
  iface: SelectedInterface;
  devices: WgDeviceLayout[];
  key: WireguardKeyPair;
  mtu: number;
  logger: Logger | undefined;
}

export class WireguardBackend implements Backend {
  readonly name = 'wireguard';
  readonly device = WIREGUARD_DEVICE;
  private prepared: Prepared | undefined;
  /** The peers wanted after the last reconcile pass; undefined until the first. */
  private wanted: WgDeviceSpec[] | undefined;
  private readonly implementations = new Map<string, WireguardImplementation>();
  private syncing: Promise<void> = Promise.resolve();
  private readonly keyFile: string;
  private lastPlan:
    | { prepared: Prepared; own: Lease; peers: readonly Lease[]; plan: WireguardPlan }
    | undefined;
  private readonly periodMs: number;

  constructor(
    readonly cfg: WireguardBackendConfig,
    options: WireguardBackendOptions = {},
  ) {
    this.keyFile = options.keyFile ?? wireguardKeyFile();
    this.periodMs = options.supervisePeriodMs ?? 10_000;
  }

  async prepare(ctx: BackendContext): Promise<PreparedBackend> {
    const networks = familyNetworks(ctx.config);
    const { iface } = ctx;
    if (this.cfg.mode === 'ipv4' && networks.ipv4 === undefined && networks.ipv6 !== undefined) {
      throw new BackendPrepareError('wireguard: Mode ipv4 dials peers over IPv4, but EnableIPv4 is false');
    }
    const devices = wireguardDevices(this.cfg, networks);
    if (devices.length === 0 || devices[0]!.families.length === 0) {
      throw new BackendPrepareError('wireguard: neither IPv4 nor IPv6 is enabled in the network config');
    }
    const needs: Array<[boolean, string | undefined, string]> = [
      [
        this.cfg.mode === 'separate' ? networks.ipv4 !== undefined : this.cfg.mode === 'ipv4',
        iface.publicIp,
        'IPv4',
      ],
      [
        this.cfg.mode === 'separate' ? networks.ipv6 !== undefined : this.cfg.mode === 'ipv6',
        iface.publicIpv6,
        'IPv6',
      ],
    ];
    for (const [needed, ip, label] of needs) {
      if (needed && ip === undefined) {
        throw new BackendPrepareError(`wireguard: ${iface.name} has no ${label} address to publish`);
      }
    }
    const mtu = (this.cfg.mtu > 0 ? this.cfg.mtu : iface.mtu) - WIREGUARD_OVERHEAD;
    const minMtu = networks.ipv6 !== undefined ? MIN_MTU[6] : MIN_MTU[4];
    if (mtu < minMtu) {
      throw new BackendPrepareError(
        `wireguard: the device would get MTU ${mtu} (underlay MTU ${this.cfg.mtu || iface.mtu} minus ${WIREGUARD_OVERHEAD}), below the minimum ${minMtu}`,
      );
    }
    let key: WireguardKeyPair;
    try {
      key = await loadOrCreateWireguardKey(this.keyFile);
    } catch (err) {
      throw new BackendPrepareError(`wireguard: ${(err as Error).message}`);
    }
    const logger = ctx.logger;
    logger?.info(
      { file: this.keyFile, publicKey: key.publicKey, generated: key.generated },
      key.generated ? 'wireguard: generated a new private key' : 'wireguard: private key read',
    );
    this.prepared = { networks, iface, devices, key, mtu, logger };
    // The devices exist before the first reconcile pass puts their address and route on them.
    for (const d of devices) await this.ensureDevice(d.name);
    const attrs = wireguardLeaseAttrs(devices, key.publicKey, iface.publicIp, iface.publicIpv6);
    return {
      attrs,
      mtu,
      tunnel: { port: devices[0]!.port, families: devices[0]!.families },
      tasks: [this.supervisionTask()],
    };
  }

  /** A peer answers on its `flannel-wg` address (its subnet's network address), through the tunnel. */
  probeAddress(peer: Lease): string | undefined {
    return tunnelAddressOf(peer);
  }

  desired(own: Lease, peers: readonly Lease[]): DesiredBackendState {
    const { state, skipped } = this.plan('desired', own, peers);
    return { state, skipped };
  }

  scope(own: Lease): KernelScope {
    const p = this.require('scope');
    return wireguardScope(p.networks, p.devices, own);
  }

  mtu(): number {
    return this.require('mtu').mtu;
  }

  /** After each pass: the wanted peers become the devices' configuration (one `wg syncconf` when they differ). */
  async afterReconcile(own: Lease, peers: readonly Lease[]): Promise<void> {
    this.wanted = this.plan('afterReconcile', own, peers).devices;
    await this.sync();
  }

  /** The data path's process (wireguard-go) and device outlive weftd on purpose: nothing to release here. */
  close(): void {}

  /** Checks every period that the devices exist (re-creating a vanished one) and their peers are the wanted ones. */
  private supervisionTask(): Task {
    return {
      name: 'wireguard-device',
      periodMs: this.periodMs,
      run: async ({ signal, beat }) => {
        while (!signal.aborted) {
          try {
            await this.sync();
            beat();
          } catch (err) {
            this.prepared?.logger?.warn(
              { err: errorFields(err) },
              'wireguard: device check failed; retrying next period',
            );
          }
          await sleep(this.periodMs, signal).catch(() => undefined);
        }
      },
    };
  }

  /** One sync at a time: the pass and the supervision task share it. */
  private sync(): Promise<void> {
    const next = this.syncing.then(() => this.syncOnce());
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private async syncOnce(): Promise<void> {
    const p = this.require('sync');
    for (const layout of p.devices) await this.ensureDevice(layout.name);
    const wanted = this.wanted;
    if (wanted === undefined) return;
    const pskDigest = this.cfg.psk === undefined ? undefined : keyDigest(this.cfg.psk);
    for (const spec of wanted) {
      const observed = await readWgDevice(spec.name);
      const reasons = diffWgDevice({ spec, publicKey: p.key.publicKey, pskDigest }, observed);
      if (reasons.length === 0) continue;
      const secrets =
        this.cfg.psk === undefined
          ? { privateKey: p.key.privateKey }
          : { privateKey: p.key.privateKey, psk: this.cfg.psk };
      await syncWgDevice(spec, secrets);
      p.logger?.info(
        { device: spec.name, peers: spec.peers.length, reasons: reasons.slice(0, 10) },
        'wireguard: peers configured',
      );
    }
  }

  private async ensureDevice(name: string): Promise<void> {
    const p = this.require('ensureDevice');
    const result = await ensureWgDevice(name, { mtu: p.mtu });
    const before = this.implementations.get(name);
    this.implementations.set(name, result.implementation);
    if (result.created || before === undefined) {
      const which =
        result.implementation === 'kernel' ? 'kernel WireGuard' : 'wireguard-go (userspace WireGuard)';
      p.logger?.info(
        { device: name, implementation: result.implementation, created: result.created, mtu: p.mtu },
        result.created ? `wireguard: created ${name} with ${which}` : `wireguard: adopted ${name} (${which})`,
      );
    }
  }

  /** A pass asks twice with the same leases (`desired`, then `afterReconcile`): the second gets the same plan. */
  private plan(method: string, own: Lease, peers: readonly Lease[]): WireguardPlan {
    const p = this.require(method);
    const last = this.lastPlan;
    if (last !== undefined && last.prepared === p && last.own === own && last.peers === peers)
      return last.plan;
    const plan = planWireguard({
      cfg: this.cfg,
      networks: p.networks,
      devices: p.devices,
      ownPublicIp: p.iface.publicIp,
      ownPublicIpv6: p.iface.publicIpv6,
      own,
      peers,
    });
    this.lastPlan = { prepared: p, own, peers, plan };
    return plan;
  }

  private require(method: string): Prepared {
    if (this.prepared === undefined) throw new BackendNotPreparedError(this.name, method);
    return this.prepared;
  }
}
