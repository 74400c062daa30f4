import { describe, expect, it } from 'vitest';
import { subnetLease, TEST_IFACE } from '../../../testkit/fixtures/backend.js';
import { parseNetworkConfig, type UdpBackendConfig } from '../../config/index.js';
import { parseCidr } from '../../ip/index.js';
import { BackendNotPreparedError, BackendPrepareError } from '../types.js';
import { UdpBackend } from './backend.js';
import { addCounters, countersOf, DROP_REASON_LABELS, zeroCounters } from './counters.js';
import type { UdpEngineStats } from './engine.js';

const iface = TEST_IFACE;
const network = parseCidr('10.5.0.0/16');
const udp: UdpBackendConfig = { type: 'udp', port: 8285 };
const own = subnetLease('10.5.1.0/24', { publicIP: '192.168.1.1' });

describe('udp counters', () => {
  const stats = (n: number): UdpEngineStats => ({
    txPackets: n,
    txBytes: n * 100,
    rxPackets: n * 2,
    rxBytes: n * 200,
    icmpSent: 0,
    tunReads: 0,
    tunWrites: 0,
    udpSends: 0,
    udpRecvs: 0,
    udpDatagramsReceived: 0,
    tunReadErrors: 0,
    gsoFallbacks: 0,
    drops: {
      malformed: 1,
      notIpv4: 2,
      unknownPeer: 3,
      spoofedSource: 4,
      wrongDestination: 5,
      noRoute: 6,
      ttlExpired: 7,
      unsupportedOffload: 8,
      sendFailed: 9,
      tunWriteFailed: n,
    },
    features: { vnetHdr: true, udpGso: true, udpGro: true },
    peers: 0,
    running: true,
  });

  it('names every drop reason in snake_case', () => {
    const c = countersOf(stats(10));
    expect(c).toMatchObject({ txPackets: 10, txBytes: 1000, rxPackets: 20, rxBytes: 2000 });
    expect(c.drops).toEqual({
      malformed: 1,
      not_ipv4: 2,
      unknown_peer: 3,
      spoofed_source: 4,
      wrong_destination: 5,
      no_route: 6,
      ttl_expired: 7,
      unsupported_offload: 8,
      udp_send: 9,
      tun_write: 10,
    });
    expect(Object.keys(zeroCounters().drops).sort()).toEqual(Object.values(DROP_REASON_LABELS).sort());
  });

  it('sums engines so totals never go down across a restart', () => {
    const sum = addCounters(countersOf(stats(10)), countersOf(stats(1)));
    expect(sum.txPackets).toBe(11);
    expect(sum.drops.spoofed_source).toBe(8);
    expect(sum.drops.tun_write).toBe(11);
  });
});

describe('UdpBackend.prepare', () => {
  const config = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'udp' } });
  const okBind = async () => undefined;
  const noAddon = () => undefined;

  it('publishes only PublicIP (no BackendType, no BackendData) and MTU underlay − 28', async () => {
    const backend = new UdpBackend(udp, { checkBind: okBind, loadAddon: noAddon });
    expect(() => backend.mtu()).toThrow(BackendNotPreparedError);
    const prepared = await backend.prepare({ config, iface });
    expect(prepared).toEqual({
      attrs: { publicIP: '192.168.1.1' },
      mtu: 1472,
      tunnel: { port: 8285, families: [4] },
    });
    expect(backend.device).toBe('flannel0');
    expect(backend.scope(own)).toEqual({
      devices: ['flannel0'],
      networks: [network],
      externalDev: 'eth0',
      protectedDsts: [own.subnet],
    });
  });

  it('binds the interface address, not a NAT PublicIP', async () => {
    const bound: string[] = [];
    const backend = new UdpBackend(
      { type: 'udp', port: 9999 },
      { checkBind: async (a, p) => void bound.push(`${a}:${p}`), loadAddon: noAddon },
    );
    const prepared = await backend.prepare({ config, iface: { ...iface, publicIp: '203.0.113.9' } });
    expect(prepared.attrs).toEqual({ publicIP: '203.0.113.9' });
    expect(bound).toEqual(['192.168.1.1:9999']);
  });

  it('refuses IPv6, a missing IPv4 address, a tiny MTU, a missing addon and a taken port with clear errors', async () => {
    const backend = new UdpBackend(udp, { checkBind: okBind, loadAddon: noAddon });
    const dual = parseNetworkConfig({
      Network: '10.5.0.0/16',
      EnableIPv6: true,
      IPv6Network: 'fd00:5::/48',
      Backend: { Type: 'udp' },
    });
    await expect(backend.prepare({ config: dual, iface })).rejects.toThrow(/IPv4 only/);
    const { ipv4: _drop, ...noV4 } = iface;
    await expect(backend.prepare({ config, iface: { ...noV4, publicIp: undefined } })).rejects.toThrow(
      /no IPv4 address/,
    );
    await expect(backend.prepare({ config, iface: { ...iface, mtu: 90 } })).rejects.toThrow(/MTU 62/);
    const taken = new UdpBackend(udp, {
      loadAddon: noAddon,
      checkBind: async () => {
        throw new Error('bind EADDRINUSE 192.168.1.1:8285');
      },
    });
    const unbuilt = new UdpBackend(udp, {
      checkBind: okBind,
      loadAddon: () => {
        throw new Error('the native addon is not built');
      },
    });
    await expect(unbuilt.prepare({ config, iface })).rejects.toThrow(/udp: the native addon is not built/);
    await expect(taken.prepare({ config, iface })).rejects.toThrow(BackendPrepareError);
    await expect(taken.prepare({ config, iface })).rejects.toThrow(/cannot bind UDP 192\.168\.1\.1:8285/);
  });
});
