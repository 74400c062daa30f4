import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InterfaceSelectionError, selectInterface } from './interfaces.js';
import { parseLinkList, toInterfaceFact } from './parse.js';
import type { InterfaceAddress, InterfaceFact, InterfaceFacts } from './types.js';

const v4 = (ip: string, prefix = 24): InterfaceAddress => ({ family: 4, ip, prefix, scope: 'global' });
const v6 = (ip: string, prefix = 64, scope = 'global'): InterfaceAddress => ({
  family: 6,
  ip,
  prefix,
  scope,
});
const iface = (name: string, index: number, addresses: InterfaceAddress[], mtu = 1500): InterfaceFact => ({
  name,
  index,
  mtu,
  up: true,
  loopback: name === 'lo',
  addresses,
});

const facts: InterfaceFacts = {
  interfaces: [
    iface('lo', 1, [{ family: 4, ip: '127.0.0.1', prefix: 8, scope: 'host' }], 65536),
    iface('eth0', 2, [v4('192.168.1.10'), v6('fd00:1::10'), v6('fe80::1', 64, 'link')]),
    iface('eth1', 3, [v4('10.0.0.5', 16), v4('10.0.9.9', 16)], 9000),
    iface('wg0', 4, [], 1420),
  ],
  defaultRouteDev: { ipv4: 'eth0' },
};

describe('selectInterface', () => {
  it('defaults to the default-route interface and its address', () => {
    expect(selectInterface(facts, {})).toMatchObject({
      name: 'eth0',
      index: 2,
      mtu: 1500,
      ipv4: { ip: '192.168.1.10', prefix: 24 },
      publicIp: '192.168.1.10',
      reason: 'default route dev eth0',
    });
  });

  it('uses the interface holding --public-ip', () => {
    const s = selectInterface(facts, { publicIp: '10.0.9.9' });
    expect(s).toMatchObject({ name: 'eth1', ipv4: { ip: '10.0.9.9' }, publicIp: '10.0.9.9' });
  });

  it('--public-ip on no interface (NAT): default-route interface, PublicIP as given', () => {
    const s = selectInterface(facts, { publicIp: '203.0.113.7' });
    expect(s).toMatchObject({ name: 'eth0', ipv4: { ip: '192.168.1.10' }, publicIp: '203.0.113.7' });
    expect(s.reason).toMatch(/NAT/);
  });

  it('--iface by name or address, in order; the first usable wins', () => {
    expect(selectInterface(facts, { iface: ['nope', 'eth1'] })).toMatchObject({
      name: 'eth1',
      ipv4: { ip: '10.0.0.5' },
    });
    expect(selectInterface(facts, { iface: ['10.0.9.9', 'eth0'] })).toMatchObject({
      name: 'eth1',
      ipv4: { ip: '10.0.9.9' },
    });
    // wg0 has no IPv4 address: skipped, eth0 next.
    expect(selectInterface(facts, { iface: ['wg0', 'eth0'] }).name).toBe('eth0');
  });

  it('--iface with --public-ip (NAT): the named interface, PublicIP as given', () => {
    const s = selectInterface(facts, { iface: ['eth1'], publicIp: '203.0.113.7' });
    expect(s).toMatchObject({ name: 'eth1', ipv4: { ip: '10.0.0.5' }, publicIp: '203.0.113.7' });
  });

  it('--iface-regex matches addresses before names', () => {
    expect(selectInterface(facts, { ifaceRegex: ['^10\\.0\\.9\\.'] })).toMatchObject({
      name: 'eth1',
      ipv4: { ip: '10.0.9.9' },
    });
    expect(selectInterface(facts, { ifaceRegex: ['^eth1$'] }).name).toBe('eth1');
    // "1" matches eth0's address 192.168.1.10 before it matches the name eth1.
    expect(selectInterface(facts, { ifaceRegex: ['1'] }).name).toBe('eth0');
  });

  it('--iface first, then --iface-regex, then --iface-can-reach', () => {
    const withRoute: InterfaceFacts = { ...facts, canReach: { target: '10.0.200.1', dev: 'eth1' } };
    expect(
      selectInterface(withRoute, { iface: ['nope'], ifaceRegex: ['^zzz'], ifaceCanReach: '10.0.200.1' }),
    ).toMatchObject({
      name: 'eth1',
      reason: 'route to 10.0.200.1 uses eth1',
    });
  });

  it('fails with what was tried and the interfaces seen', () => {
    let error: unknown;
    try {
      selectInterface(facts, { iface: ['nope', 'wg0'], ifaceRegex: ['^zzz'] });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InterfaceSelectionError);
    const e = error as InterfaceSelectionError;
    expect(e.tried).toEqual([
      '--iface nope: no such interface',
      '--iface wg0: wg0 has no global IPv4 address',
      '--iface-regex ^zzz: no usable match',
    ]);
    expect(e.message).toMatch(/interfaces seen: lo, eth0 \(192\.168\.1\.10\/24 fd00:1::10\/64\), eth1/);
  });

  it('fails without a default route', () => {
    expect(() => selectInterface({ ...facts, defaultRouteDev: {} }, {})).toThrow(
      /no usable default-route interface.*default route: none/,
    );
  });

  it('rejects a bad --public-ip and a bad regex', () => {
    expect(() => selectInterface(facts, { publicIp: '300.1.1.1' })).toThrow(
      /--public-ip "300.1.1.1" is not an IPv4 address/,
    );
    expect(() => selectInterface(facts, { ifaceRegex: ['('] })).toThrow(/not a valid regular expression/);
  });

  it('dual stack: needs both families and publishes both', () => {
    const s = selectInterface(facts, { ipv6: true });
    expect(s).toMatchObject({
      name: 'eth0',
      ipv6: { ip: 'fd00:1::10' },
      publicIpv6: 'fd00:1::10',
      publicIp: '192.168.1.10',
    });
    expect(() => selectInterface(facts, { iface: ['eth1'], ipv6: true })).toThrow(
      /eth1 has no global IPv6 address/,
    );
  });

  it('IPv6: prefers a stable address to a temporary or deprecated one, never takes a dadfailed one', () => {
    const flagged = (ip: string, ...flags: NonNullable<InterfaceAddress['flags']>) => ({ ...v6(ip), flags });
    const eth = iface('eth0', 2, [
      v4('192.168.1.10'),
      // iproute2 order: newest first.
      flagged('2001:db8::aaaa', 'temporary'),
      flagged('2001:db8::bbbb', 'deprecated'),
      flagged('2001:db8::cccc', 'dadfailed'),
      v6('2001:db8::10'),
    ]);
    const dual = { interfaces: [eth], defaultRouteDev: { ipv4: 'eth0' } };
    expect(selectInterface(dual, { ipv6: true })).toMatchObject({
      ipv6: { ip: '2001:db8::10' },
      publicIpv6: '2001:db8::10',
    });
    // Only unstable addresses: still usable (better than none), the temporary one is taken.
    const onlyTemporary = iface('eth0', 2, [v4('192.168.1.10'), flagged('2001:db8::aaaa', 'temporary')]);
    expect(
      selectInterface({ interfaces: [onlyTemporary], defaultRouteDev: { ipv4: 'eth0' } }, { ipv6: true })
        .publicIpv6,
    ).toBe('2001:db8::aaaa');
    const onlyFailed = iface('eth0', 2, [v4('192.168.1.10'), flagged('2001:db8::cccc', 'dadfailed')]);
    expect(() =>
      selectInterface({ interfaces: [onlyFailed], defaultRouteDev: { ipv4: 'eth0' } }, { ipv6: true }),
    ).toThrow(/eth0 has no global IPv6 address/);
  });

  it('reads IPv6 address flags from `ip -json addr show`', () => {
    const text = JSON.stringify([
      {
        ifindex: 2,
        ifname: 'eth0',
        flags: ['UP'],
        mtu: 1500,
        addr_info: [
          { family: 'inet', local: '10.0.0.1', prefixlen: 24, scope: 'global', secondary: true },
          {
            family: 'inet6',
            local: '2001:db8::a',
            prefixlen: 64,
            scope: 'global',
            temporary: true,
            dynamic: true,
          },
          { family: 'inet6', local: '2001:db8::b', prefixlen: 64, scope: 'global', deprecated: true },
          { family: 'inet6', local: '2001:db8::c', prefixlen: 64, scope: 'global', tentative: true },
          {
            family: 'inet6',
            local: '2001:db8::d',
            prefixlen: 64,
            scope: 'global',
            dadfailed: true,
            tentative: true,
          },
          { family: 'inet6', local: '2001:db8::e', prefixlen: 64, scope: 'global' },
        ],
      },
    ]);
    const [fact] = parseLinkList(text, 'ip -json addr show').map(toInterfaceFact);
    expect(fact?.addresses.map((a) => [a.ip, a.flags])).toEqual([
      ['10.0.0.1', undefined],
      ['2001:db8::a', ['temporary']],
      ['2001:db8::b', ['deprecated']],
      ['2001:db8::c', ['tentative']],
      ['2001:db8::d', ['tentative', 'dadfailed']],
      ['2001:db8::e', undefined],
    ]);
  });

  it('works on facts read from a real `ip -json addr show`', () => {
    const real = parseLinkList(
      readFileSync(new URL('./fixtures/ip-addr-show.json', import.meta.url), 'utf8'),
      'ip -json addr show',
    ).map(toInterfaceFact);
    const s = selectInterface({ interfaces: real, defaultRouteDev: { ipv4: 'ext0' } }, { ipv6: true });
    expect(s).toMatchObject({ name: 'ext0', publicIp: '192.168.77.2', publicIpv6: 'fd00:77::2' });
  });
});
