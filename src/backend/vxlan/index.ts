// The vxlan backend: kernel VXLAN devices `flannel.<VNI>` / `flannel-v6.<VNI>` with a stable VTEP MAC.
import type { Logger } from 'pino';
import { type VxlanBackendConfig, vxlanPort } from '../../config/index.js';
import { errorFields } from '../../core/index.js';
import {
  ensureSysctl,
  type KernelScope,
  probeVxlanSupport,
  type SelectedInterface,
  type VxlanSupport,
} from '../../kernel/index.js';
import type { Lease, LeaseAttrs } from '../../lease/index.js';
import { tunnelAddressOf } from '../lease-fields.js';
import { type FamilyNetworks, familyNetworks } from '../networks.js';
import {
  type Backend,
  type BackendContext,
  BackendNotPreparedError,
  BackendPrepareError,
  type DesiredBackendState,
  type Family,
  OwnLeaseMismatchError,
  type PreparedBackend,
} from '../types.js';
import { planVxlan, VxlanPlanMemo, vxlanDevice, vxlanDeviceName, vxlanScope } from './plan.js';

export {
  planVxlan,
  VXLAN_OVERHEAD,
  VxlanPlanMemo,
  vxlanDevice,
  vxlanDeviceMtu,
  vxlanDeviceName,
  vxlanScope,
} from './plan.js';

/** The smallest device MTU that still carries IPv4 (68) / IPv6 (1280, RFC 8200). */
const MIN_MTU = { 4: 68, 6: 1280 } as const;

interface Prepared {
  networks: FamilyNetworks;
  iface: SelectedInterface;
  mtu: number;
  devices: string[];
  logger: Logger | undefined;
}

export interface VxlanBackendOptions {
  /** Checks that the kernel can create VXLAN devices; default `probeVxlanSupport` (root). Tests pass a stub. */
  probe?: (deviceName: string) => Promise<VxlanSupport>;
  /** The network namespace the devices live in (tests); default the daemon's own. */
  netns?: string;
}

/**
 * The sysctl flannel sets on its VXLAN devices: no router advertisements are accepted on them (an RA on the
 * overlay would install a default route or addresses through the tunnel). Slash form: the name holds a dot.
 */
export function vxlanDeviceSysctls(device: string): ReadonlyArray<{ key: string; value: string }> {
  return [{ key: `net/ipv6/conf/${device}/accept_ra`, value: '0' }];
}

export class VxlanBackend implements Backend {
  readonly name = 'vxlan';
  private prepared: Prepared | undefined;
  private readonly probe: (deviceName: string) => Promise<VxlanSupport>;
  private readonly netns: string | undefined;
  /** Sysctl keys whose failure was already logged (warn once per failure run, not every pass). */
  private readonly warnedSysctl = new Set<string>();
  /** The last pass's assembled peers: a lease event's pass redoes only the peers that changed. */
  private readonly planMemo = new VxlanPlanMemo();

  constructor(
    readonly vxlan: VxlanBackendConfig,
    options: VxlanBackendOptions = {},
  ) {
    this.netns = options.netns;
    this.probe =
      options.probe ??
      ((existing) =>
        probeVxlanSupport(this.netns === undefined ? { existing } : { existing, netns: this.netns }));
  }

  /** A peer answers on its `flannel.<VNI>` address: its subnet's network address. */
  probeAddress(peer: Lease): string | undefined {
    return tunnelAddressOf(peer);
  }

  /** `flannel.<VNI>`, or `flannel-v6.<VNI>` on an IPv6-only node. */
  get device(): string {
    const v6only = this.prepared !== undefined && this.prepared.networks.ipv4 === undefined;
    return vxlanDeviceName(v6only ? 6 : 4, this.vxlan.vni);
  }

  async prepare(ctx: BackendContext): Promise<PreparedBackend> {
    const networks = familyNetworks(ctx.config);
    const enabled: Family[] = [];
    if (networks.ipv4 !== undefined) enabled.push(4);
    if (networks.ipv6 !== undefined) enabled.push(6);
    if (enabled.length === 0)
      throw new BackendPrepareError('vxlan: neither IPv4 nor IPv6 is enabled in the network config');
    const attrs: LeaseAttrs = { publicIP: ctx.iface.publicIp ?? '', backendType: 'vxlan' };
    if (ctx.iface.publicIpv6 !== undefined) attrs.publicIPv6 = ctx.iface.publicIpv6;
    const mtus: number[] = [];
    const devices: string[] = [];
    for (const family of enabled) {
      let device: ReturnType<typeof vxlanDevice>;
      try {
        device = vxlanDevice(this.vxlan, ctx.iface, family);
      } catch (err) {
        if (err instanceof OwnLeaseMismatchError) throw new BackendPrepareError(err.message);
        throw err;
      }
      if (device.mtu < MIN_MTU[family]) {
        throw new BackendPrepareError(
          `vxlan: device ${device.name} would get MTU ${device.mtu} (${this.vxlan.mtu > 0 ? `Backend.MTU ${this.vxlan.mtu}` : `${ctx.iface.name} MTU ${ctx.iface.mtu}`} minus the IPv${family} VXLAN overhead), below the IPv${family} minimum ${MIN_MTU[family]}`,
        );
      }
      mtus.push(device.mtu);
      devices.push(device.name);
      const data = { VNI: this.vxlan.vni, VtepMAC: device.mac };
      if (family === 4) attrs.backendData = data;
      else attrs.backendV6Data = data;
    }
    const support = await this.probe(vxlanDeviceName(enabled[0]!, this.vxlan.vni));
    if (!support.supported) {
      throw new BackendPrepareError(
        `vxlan: this kernel cannot create VXLAN devices (${support.reason ?? 'unknown reason'}); use Backend.Type "udp", or "auto" to fall back to it`,
      );
    }
    // A pod interface carries both families: it gets the smaller device MTU.
    const mtu = Math.min(...mtus);
    this.prepared = { networks, iface: ctx.iface, mtu, devices, logger: ctx.logger };
    return { attrs, mtu, tunnel: { port: vxlanPort(this.vxlan), families: enabled } };
  }

  desired(own: Lease, peers: readonly Lease[]): DesiredBackendState {
    const p = this.require('desired');
    return planVxlan({ vxlan: this.vxlan, networks: p.networks, iface: p.iface, own, peers }, this.planMemo);
  }

  scope(own: Lease): KernelScope {
    const p = this.require('scope');
    return vxlanScope(this.vxlan, p.networks, p.iface, own);
  }

  mtu(): number {
    return this.require('mtu').mtu;
  }

  /** After each pass (the devices exist now, or were re-created): `accept_ra` = 0 on each, like flannel. */
  async afterReconcile(): Promise<void> {
    const p = this.require('afterReconcile');
    const opts = this.netns === undefined ? {} : { netns: this.netns };
    for (const device of p.devices) {
      for (const { key, value } of vxlanDeviceSysctls(device)) {
        try {
          const { changed } = await ensureSysctl(key, value, opts);
          if (changed) p.logger?.info({ sysctl: key, value }, 'vxlan: set sysctl');
          this.warnedSysctl.delete(key);
        } catch (err) {
          // The device may be missing after a failed pass, or IPv6 compiled out: the next pass retries.
          if (!this.warnedSysctl.has(key)) {
            this.warnedSysctl.add(key);
            p.logger?.warn({ sysctl: key, err: errorFields(err) }, 'vxlan: could not set sysctl');
          }
        }
      }
    }
  }

  private require(method: string): Prepared {
    if (this.prepared === undefined) throw new BackendNotPreparedError(this.name, method);
    return this.prepared;
  }
}
