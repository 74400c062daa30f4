import { describe, expect, it } from 'vitest';
import { subnetLease, TEST_IFACE, vxlanLeaseAttrs } from '../../testkit/fixtures/backend.js';
import { createBackend } from '../backend/index.js';
import { type BackendConfig, parseNetworkConfig } from '../config/index.js';
import { parseCidr } from '../ip/index.js';
import type { DesiredKernelState, KernelScope } from '../kernel/index.js';
import { planKernel, RememberedKernelState } from '../kernel/index.js';
import type { PassReason } from './loop.js';
import { mayUseRememberedState, ObservedStateMemory } from './observed.js';

const scope: KernelScope = {
  devices: ['flannel.1', 'flannel-v6.1'],
  networks: [parseCidr('10.5.0.0/16'), parseCidr('fd00:5::/48')],
  externalDev: 'eth0',
  protectedDsts: [parseCidr('10.5.1.0/24')],
};
const state: DesiredKernelState = {
  links: [],
  addresses: [],
  routes: [{ dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', onlink: true }],
  neighbors: [],
  fdb: [],
};

describe('ObservedStateMemory', () => {
  it('only lease-event passes (also coalesced ones) may skip the dump', () => {
    expect(mayUseRememberedState(['lease'])).toBe(true);
    const others: PassReason[][] = [
      ['start'],
      ['resync'],
      ['retry'],
      ['own-lease'],
      ['lease', 'resync'],
      ['resync', 'lease'],
      [],
    ];
    for (const r of others) expect(mayUseRememberedState(r)).toBe(false);
  });

  it('recalls the desired state of the last clean pass, for the same scope only', () => {
    const m = new ObservedStateMemory();
    expect(m.recall(['lease'], scope)).toBeUndefined();
    m.passFinished(() => new RememberedKernelState(state), scope, true);
    expect(m.recall(['lease'], scope)?.state).toBe(state);
    expect(m.recall(['resync'], scope)).toBeUndefined();
    expect(m.recall(['lease'], { ...scope, devices: ['flannel.2'] })).toBeUndefined();
    expect(m.recall(['lease'], { ...scope, networks: [parseCidr('fd00:6::/48')] })).toBeUndefined();
    expect(m.recall(['lease'], { ...scope, protectedDsts: [parseCidr('10.5.7.0/24')] })).toBeUndefined();
    expect(
      m.recall(['lease'], { ...scope, networks: [parseCidr('10.5.0.0/16'), parseCidr('fd00:5::/48')] })
        ?.state,
    ).toBe(state);
  });

  it('forgets after a pass with a failed op, and on request', () => {
    const m = new ObservedStateMemory();
    const remembered = () => new RememberedKernelState(state);
    m.passFinished(remembered, scope, true);
    m.passFinished(remembered, scope, false);
    expect(m.recall(['lease'], scope)).toBeUndefined();
    m.passFinished(remembered, scope, true);
    m.forget();
    expect(m.recall(['lease'], scope)).toBeUndefined();
  });
});

// What makes the memory sound: a backend's desired state, read back as if it were a dump, needs no op; and
// planning the next desired state against it gives the same ops as planning against the real kernel would.
describe('desired state as the observed state', () => {
  const lease = (i: number, type: string) =>
    subnetLease(
      `10.5.${i}.0/24`,
      type === 'vxlan'
        ? vxlanLeaseAttrs(`192.168.1.${i}`)
        : { publicIP: `192.168.1.${i}`, backendType: type },
    );
  const configs: Record<string, unknown>[] = [
    { Network: '10.5.0.0/16', Backend: { Type: 'vxlan' } },
    { Network: '10.5.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } },
    { Network: '10.5.0.0/16', Backend: { Type: 'host-gw' } },
  ];

  it.each(configs)('plans nothing against itself, and only the delta for a new peer (%j)', async (raw) => {
    const config = parseNetworkConfig(raw);
    const type = config.backend.type;
    const own = lease(1, type);
    const peers = [2, 3, 4].map((i) => lease(i, type));
    const backend = createBackend(config.backend as BackendConfig);
    await backend.prepare({ config, iface: TEST_IFACE });
    const before = backend.desired(own, [own, ...peers]).state;
    const s = backend.scope(own);
    expect(planKernel(before, before, s)).toEqual([]);

    const newcomer = lease(9, type);
    const after = backend.desired(own, [own, ...peers, newcomer]).state;
    const ops = planKernel(after, before, s);
    expect(ops.length).toBeGreaterThan(0);
    expect(
      ops.every(
        (op) => JSON.stringify(op).includes('10.5.9.0') || JSON.stringify(op).includes('192.168.1.9'),
      ),
    ).toBe(true);
    // The departed peer's entries go, nothing else.
    const gone = backend.desired(own, [own, ...peers.slice(1)]).state;
    const removals = planKernel(gone, before, s);
    expect(removals.length).toBeGreaterThan(0);
    expect(removals.every((op) => op.kind.endsWith('-delete'))).toBe(true);
  });
});
