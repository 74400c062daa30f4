import { describe, expect, it } from 'vitest';
import { subnetLease, TEST_IFACE } from '../../testkit/fixtures/backend.js';
import { type BackendConfig, parseNetworkConfig, type VxlanBackendConfig } from '../config/index.js';
import { stableVtepMac } from '../ip/index.js';
import type { SelectedInterface } from '../kernel/index.js';
import {
  BackendNotPreparedError,
  BackendPrepareError,
  createBackend,
  registerBackend,
  registeredBackendTypes,
  UnknownBackendError,
  VxlanBackend,
} from './index.js';

const iface = TEST_IFACE;
const own = subnetLease('10.5.1.0/24', { publicIP: '192.168.1.1', backendType: 'vxlan' });

describe('backend registry', () => {
  it('knows vxlan, host-gw and udp, and refuses unknown types by name', () => {
    expect(registeredBackendTypes()).toEqual(expect.arrayContaining(['host-gw', 'udp', 'vxlan']));
    expect(createBackend({ type: 'udp', port: 8285 }).name).toBe('udp');
    expect(() => createBackend({ type: 'geneve' } as never)).toThrow(UnknownBackendError);
  });

  it('accepts more backends', () => {
    registerBackend('test-null', () => ({
      name: 'test-null',
      prepare: async () => ({ attrs: { publicIP: '' }, mtu: 1 }),
      desired: () => ({
        state: { links: [], addresses: [], routes: [], neighbors: [], fdb: [] },
        skipped: [],
      }),
      scope: () => ({ devices: [], networks: [] }),
      mtu: () => 1,
      probeAddress: () => undefined,
    }));
    expect(registeredBackendTypes()).toContain('test-null');
  });
});

const supported = async () => ({ supported: true });
const vxlanOf = (config: BackendConfig) =>
  new VxlanBackend(config as VxlanBackendConfig, { probe: supported });

describe('vxlan backend', () => {
  it('prepare publishes VNI and the stable VtepMAC, MTU = iface - 50', async () => {
    const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan', VNI: 3 } });
    const probed: string[] = [];
    const backend = new VxlanBackend(config.backend as VxlanBackendConfig, {
      probe: async (name) => {
        probed.push(name);
        return { supported: true };
      },
    });
    expect(() => backend.mtu()).toThrow(BackendNotPreparedError);
    const prepared = await backend.prepare({ config, iface });
    expect(prepared).toEqual({
      attrs: {
        publicIP: '192.168.1.1',
        backendType: 'vxlan',
        backendData: { VNI: 3, VtepMAC: stableVtepMac('192.168.1.1', 3) },
      },
      mtu: 1450,
      tunnel: { port: 8472, families: [4] },
    });
    expect(backend.mtu()).toBe(1450);
    expect(probed).toEqual(['flannel.3']);
    expect(backend.device).toBe('flannel.3');
    expect(backend.scope(own).devices).toEqual(['flannel.3', 'flannel-v6.3']);
    expect(backend.desired(own, []).state.links[0]?.name).toBe('flannel.3');
  });

  it('dual stack: backendV6Data and the smaller MTU of both devices', async () => {
    const config = parseNetworkConfig({
      Network: '10.5.0.0/16',
      EnableIPv6: true,
      IPv6Network: 'fd00:5::/48',
    });
    const backend = new VxlanBackend(config.backend as VxlanBackendConfig, { probe: supported });
    const dual: SelectedInterface = {
      ...iface,
      ipv6: { family: 6, ip: 'fd00:1::1', prefix: 64, scope: 'global' },
      publicIpv6: 'fd00:1::1',
    };
    const prepared = await backend.prepare({ config, iface: dual });
    expect(prepared.attrs.backendV6Data).toEqual({ VNI: 1, VtepMAC: stableVtepMac('fd00:1::1', 1) });
    expect(prepared.mtu).toBe(1430);
    expect(prepared.tunnel).toEqual({ port: 8472, families: [4, 6] });
  });

  it('reports Backend.Port as the tunnel port, and host-gw has no tunnel', async () => {
    const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan', Port: 4789 } });
    expect((await vxlanOf(config.backend).prepare({ config, iface })).tunnel).toEqual({
      port: 4789,
      families: [4],
    });
    const hostgw = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'host-gw' } });
    expect((await createBackend(hostgw.backend).prepare({ config: hostgw, iface })).tunnel).toBeUndefined();
  });

  it('Backend.MTU is the underlay MTU: "MTU":1500 prepares MTU 1450 (FLANNEL_MTU and the CNI MTU)', async () => {
    const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'vxlan', MTU: 1500 } });
    const prepared = await vxlanOf(config.backend).prepare({ config, iface: { ...iface, mtu: 9000 } });
    expect(prepared.mtu).toBe(1450);
  });

  it('refuses an interface without the address it needs, or an MTU too small', async () => {
    const v6only = parseNetworkConfig({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00:5::/48' });
    await expect(vxlanOf(v6only.backend).prepare({ config: v6only, iface })).rejects.toThrow(
      /vxlan over IPv6 needs an IPv6 address on eth0/,
    );
    const tiny = parseNetworkConfig({ Network: '10.5.0.0/16' });
    await expect(
      createBackend(tiny.backend).prepare({ config: tiny, iface: { ...iface, mtu: 100 } }),
    ).rejects.toThrow(BackendPrepareError);
  });
});

describe('vxlan backend on a kernel without VXLAN', () => {
  it('prepare fails with the kernel message, so `auto` can fall back to udp', async () => {
    const config = parseNetworkConfig({ Network: '10.5.0.0/16' });
    const backend = new VxlanBackend(config.backend as VxlanBackendConfig, {
      probe: async () => ({ supported: false, reason: 'Error: Unknown device type.' }),
    });
    await expect(backend.prepare({ config, iface })).rejects.toThrow(
      /this kernel cannot create VXLAN devices \(Error: Unknown device type.\)/,
    );
  });
});

describe('host-gw backend', () => {
  const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'host-gw' } });

  it('prepare publishes the interface address, MTU = interface MTU', async () => {
    const backend = createBackend(config.backend);
    expect(await backend.prepare({ config, iface })).toEqual({
      attrs: { publicIP: '192.168.1.1', backendType: 'host-gw' },
      mtu: 1500,
    });
    expect(backend.scope(own)).toMatchObject({ devices: [], externalDev: 'eth0' });
  });

  it('refuses a NAT public IP with a clear message', async () => {
    await expect(
      createBackend(config.backend).prepare({ config, iface: { ...iface, publicIp: '203.0.113.9' } }),
    ).rejects.toThrow(
      /public IPv4 203.0.113.9 differs from eth0's address 192.168.1.1, so this node is behind NAT/,
    );
  });
});
