// Property test of the lease-event plan: random sequences of lease adds, changes and removes (both families,
// vxlan with and without DirectRouting, host-gw; conflicting subnets, shared and clashing VTEP MACs, foreign
// backend types), and at each step the incremental plan against the remembered state must equal the full
// planner's `planKernel(desired, remembered, scope)`, op for op and in order; and the vxlan and host-gw
// backends' desired state (their planners redo only the changed peers) must equal the planner's from scratch.
import { describe, expect, it } from 'vitest';
import { DEFAULT_VXLAN_CONFIG, TEST_IFACE } from '../../testkit/fixtures/backend.js';
import { prng } from '../../testkit/prng.js';
import { createBackend, familyNetworks, planHostGw, planVxlan, vxlanDevice } from '../backend/index.js';
import { type BackendConfig, parseNetworkConfig, type VxlanBackendConfig } from '../config/index.js';
import { parseCidr, stableVtepMac } from '../ip/index.js';
import {
  type KernelState,
  planKernel,
  planKernelDelta,
  RememberedKernelState,
  type SelectedInterface,
} from '../kernel/index.js';
import type { Lease, LeaseAttrs } from '../lease/index.js';

const v6 = { family: 6 as const, ip: 'fd00:1::1', prefix: 64, scope: 'global' };
const IFACE: SelectedInterface = {
  ...TEST_IFACE,
  ipv6: v6,
  publicIpv6: 'fd00:1::1',
  addresses: [...TEST_IFACE.addresses, v6],
};

type Families = 'v4' | 'v6' | 'dual';
const familyConfig: Record<Families, Record<string, unknown>> = {
  v4: { Network: '10.5.0.0/16' },
  v6: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00:5::/48' },
  dual: { Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48' },
};
const backends: Record<string, Record<string, unknown>> = {
  vxlan: { Type: 'vxlan' },
  'vxlan DirectRouting': { Type: 'vxlan', DirectRouting: true },
  'host-gw': { Type: 'host-gw' },
};

/** A random peer lease: mostly well-formed, sometimes conflicting or foreign. */
function randomLease(rnd: () => number, type: string, key: string): Lease {
  const pick = (n: number) => Math.floor(rnd() * n);
  const i = pick(24) + 2;
  // On-link (DirectRouting and host-gw program it) or behind a router; few addresses, so nodes share MACs.
  const host = pick(12) + 2;
  const publicIP = rnd() < 0.8 ? `192.168.1.${host}` : `172.16.0.${host}`;
  const publicIPv6 = rnd() < 0.8 ? `fd00:1::${host.toString(16)}` : `fd00:2::${host.toString(16)}`;
  const leaseType = rnd() < 0.93 ? type : type === 'vxlan' ? 'host-gw' : 'vxlan';
  const attrs: LeaseAttrs = { publicIP, publicIPv6, backendType: leaseType };
  if (leaseType === 'vxlan') {
    // Now and then a MAC another node uses (a clash the planner skips).
    const mac = (ip: string) => stableVtepMac(rnd() < 0.05 ? '192.168.1.99' : ip, 1);
    attrs.backendData = { VNI: 1, VtepMAC: mac(publicIP) };
    attrs.backendV6Data = { VNI: 1, VtepMAC: mac(publicIPv6) };
  }
  // Subnets repeat across keys (conflicts); an IPv6 /65 shares its gateway address with the /64.
  const lease: Lease = { key, attrs, expiration: undefined };
  if (rnd() < 0.95) lease.subnet = parseCidr(`10.5.${i}.0/24`);
  if (rnd() < 0.95) lease.ipv6Subnet = parseCidr(`fd00:5:0:${i.toString(16)}::/${rnd() < 0.05 ? 65 : 64}`);
  return lease;
}

const empty = (): KernelState => ({ links: [], addresses: [], routes: [], neighbors: [], fdb: [] });

describe('incremental lease-event plan = planKernel(desired, remembered, scope)', () => {
  const cases = Object.entries(backends).flatMap(([name, backend]) =>
    (Object.keys(familyConfig) as Families[]).map((families) => ({ name, backend, families })),
  );

  it.each(cases)('$name, $families: random lease sequences', async ({ backend, families }) => {
    const config = parseNetworkConfig({ ...familyConfig[families], Backend: backend });
    const type = config.backend.type;
    const b = createBackend(config.backend as BackendConfig);
    await b.prepare({ config, iface: IFACE });
    const own: Lease = {
      key: '10.5.1.0-24',
      subnet: parseCidr('10.5.1.0/24'),
      ipv6Subnet: parseCidr('fd00:5:0:1::/64'),
      attrs: { publicIP: '192.168.1.1', publicIPv6: 'fd00:1::1', backendType: type },
      expiration: undefined,
    };
    const scope = b.scope(own);
    const networks = familyNetworks(config);
    let incremental = 0;
    let steps = 0;
    let nonEmpty = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = prng(seed * 7919 + families.length);
      const leases = new Map<string, Lease>();
      let nextKey = 0;
      // The start: a dump of an empty kernel, then lease events against the remembered state.
      let remembered = new RememberedKernelState(empty());
      for (let step = 0; step < 60; step++) {
        // One to three changes per pass (coalesced events).
        const changes = 1 + Math.floor(rnd() * 3);
        for (let c = 0; c < changes; c++) {
          const keys = [...leases.keys()];
          const roll = rnd();
          if (roll < 0.45 || keys.length === 0) {
            const key = `k${nextKey++}`;
            leases.set(key, randomLease(rnd, type, key));
          } else if (roll < 0.7) {
            const key = keys[Math.floor(rnd() * keys.length)]!;
            leases.set(key, randomLease(rnd, type, key));
          } else if (roll < 0.8) {
            // The same content as a new object (a re-list): entries equal by value, not by identity.
            const key = keys[Math.floor(rnd() * keys.length)]!;
            leases.set(key, structuredClone(leases.get(key)!));
          } else {
            leases.delete(keys[Math.floor(rnd() * keys.length)]!);
          }
        }
        const planned = b.desired(own, [...leases.values()]);
        // The backend's planner redoes only the changed peers (its memo): the same as planning from scratch.
        const input = { networks, iface: IFACE, own, peers: [...leases.values()] };
        const fresh =
          type === 'vxlan'
            ? planVxlan({ ...input, vxlan: config.backend as VxlanBackendConfig })
            : planHostGw(input);
        expect(planned, `seed ${seed} step ${step}`).toEqual(fresh);
        const desired = planned.state;
        // The planners allocate the arrays at their counted size: every slot filled.
        for (const list of [desired.routes, desired.neighbors, desired.fdb])
          expect(Object.keys(list)).toHaveLength(list.length);
        const plan = planKernelDelta(desired, remembered, scope);
        expect(plan.ops, `seed ${seed} step ${step}`).toEqual(planKernel(desired, remembered.state, scope));
        if (plan.incremental) incremental++;
        if (plan.ops.length > 0) nonEmpty++;
        steps++;
        remembered = plan.next();
        expect(remembered.state).toBe(desired);
        // Now and then a resync: the kernel's dump (here: the same entries as new objects) is remembered.
        if (rnd() < 0.1) remembered = new RememberedKernelState(structuredClone(desired));
      }
    }
    // The sequences exercise the incremental path (not only the fallback), and plans that do something.
    expect(incremental).toBeGreaterThan(steps / 2);
    expect(nonEmpty).toBeGreaterThan(steps / 2);
  });

  it('falls back to planKernel when remembered entries share a key, the order changed or devices change', () => {
    const scope = { devices: ['flannel.1'], networks: [parseCidr('10.5.0.0/16')], externalDev: 'eth0' };
    const r = (dst: string, via: string) => ({ dst, via, dev: 'flannel.1', onlink: true });
    const a = r('10.5.2.0/24', '10.5.2.0');
    const b = r('10.5.3.0/24', '10.5.3.0');
    const link = vxlanDevice(DEFAULT_VXLAN_CONFIG, TEST_IFACE, 4);
    const state = (routes: (typeof a)[], links = [link]) => ({ ...empty(), links, routes });
    const check = (observed: KernelState, desired: ReturnType<typeof state>, incremental: boolean) => {
      const plan = planKernelDelta(desired, new RememberedKernelState(observed), scope);
      expect(plan.ops).toEqual(planKernel(desired, observed, scope));
      expect(plan.incremental).toBe(incremental);
    };
    // Two remembered routes with one key (a dump can hold them): the full planner decides.
    check(state([a, r('10.5.2.0/24', '10.5.9.9'), b]), state([a, b]), false);
    // Kept entries in another order.
    check(state([a, b]), state([b, a]), false);
    // The device is created: everything on it is new.
    check(state([a], []), state([a, b]), false);
    // One route gone, one changed (new object, same key), one kept: incremental.
    const c = r('10.5.4.0/24', '10.5.4.0');
    check(state([a, b, c]), state([r('10.5.2.0/24', '10.5.2.1'), c]), true);
  });
});
