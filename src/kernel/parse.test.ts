import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import { filterOwned } from './ownership.js';
import {
  KernelOutputParseError,
  parseDefaultRouteDev,
  parseFdbList,
  parseLinkList,
  parseNeighborList,
  parseRouteGet,
  parseRouteList,
  toAddressEntries,
  toInterfaceFact,
  toObservedLink,
} from './parse.js';
import type { KernelScope } from './types.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('iproute2 JSON parsing (fixtures captured from a real namespace)', () => {
  it('reads vxlan, tun and other devices from `ip -d -json addr show`', () => {
    const links = parseLinkList(fixture('ip-d-addr-show.json'));
    const byName = new Map(links.map((l) => [l.name, toObservedLink(l)]));
    expect(byName.get('flannel.1')).toEqual({
      kind: 'vxlan',
      name: 'flannel.1',
      vni: 1,
      local: '192.168.77.2',
      dev: 'ext0',
      port: 8472,
      learning: false,
      gbp: false,
      mtu: 1450,
      mac: '02:6b:10:00:00:01',
      up: true,
    });
    expect(byName.get('flannel-v6.1')).toMatchObject({
      kind: 'vxlan',
      local: 'fd00:77::2',
      gbp: true,
      mtu: 1430,
      mac: '02:aa:bb:cc:dd:ee',
    });
    expect(byName.get('flannel0')).toEqual({ kind: 'tun', name: 'flannel0', mtu: 1472, up: true });
    expect(byName.get('cni0')).toMatchObject({ kind: 'other', type: 'bridge', up: true });
    expect(byName.get('lo')).toMatchObject({ kind: 'other', type: '' });
  });

  it('reads addresses with host bits kept', () => {
    const links = parseLinkList(fixture('ip-d-addr-show.json'));
    const addresses = toAddressEntries(links);
    expect(addresses).toContainEqual({ dev: 'flannel.1', cidr: '10.5.1.0/32' });
    expect(addresses).toContainEqual({ dev: 'flannel.1', cidr: '10.5.44.0/32' });
    expect(addresses).toContainEqual({ dev: 'flannel-v6.1', cidr: 'fd00:5:1::/128' });
    expect(addresses).toContainEqual({ dev: 'cni0', cidr: '10.5.1.1/24' });
    const ext = links.map(toInterfaceFact).find((f) => f.name === 'ext0');
    expect(ext?.addresses).toContainEqual({ family: 4, ip: '192.168.77.2', prefix: 24, scope: 'global' });
    expect(ext?.addresses).toContainEqual({ family: 6, ip: 'fd00:77::2', prefix: 64, scope: 'global' });
    expect(ext?.addresses.some((a) => a.scope === 'link')).toBe(true);
  });

  it('reads unicast main-table routes, skipping default and blackhole', () => {
    const routes = parseRouteList(fixture('ip-4-route-show.json'));
    expect(routes).toContainEqual({ dst: '10.5.2.0/24', via: '10.5.2.0', dev: 'flannel.1', onlink: true });
    expect(routes).toContainEqual({
      dst: '10.5.2.0/24',
      via: '10.5.2.0',
      dev: 'flannel.1',
      onlink: true,
      metric: 100,
    });
    expect(routes).toContainEqual({ dst: '10.5.1.0/24', dev: 'cni0', protocol: 'kernel' });
    expect(routes.some((r) => r.dst === '10.5.200.0/24')).toBe(false);
    expect(routes.some((r) => r.dst === '0.0.0.0/0')).toBe(false);
    const routes6 = parseRouteList(fixture('ip-6-route-show.json'));
    expect(routes6).toContainEqual({
      dst: 'fd00:5:2::/64',
      via: 'fd00:5:2::',
      dev: 'flannel-v6.1',
      onlink: true,
      metric: 1024,
    });
    // The kernel's route for a /128 address on the device: a bare address means a host route.
    expect(routes6).toContainEqual({
      dst: 'fd00:5:1::/128',
      dev: 'flannel-v6.1',
      metric: 256,
      protocol: 'kernel',
    });
  });

  it('reads PERMANENT neighbours and self PERMANENT FDB entries', () => {
    const neighbors = parseNeighborList(fixture('ip-neigh-show-permanent.json'));
    expect(neighbors).toContainEqual({ dev: 'flannel.1', ip: '10.5.2.0', mac: '02:00:00:00:00:02' });
    expect(neighbors).toContainEqual({ dev: 'flannel-v6.1', ip: 'fd00:5:2::', mac: '02:00:00:00:06:02' });
    expect(parseFdbList(fixture('bridge-fdb-show-flannel.1.json'), 'flannel.1')).toEqual([
      { dev: 'flannel.1', mac: '02:00:00:00:00:03', dst: '192.168.77.3' },
      { dev: 'flannel.1', mac: '02:00:00:00:00:02', dst: '192.168.77.2' },
    ]);
    expect(parseFdbList(fixture('bridge-fdb-show-flannel-v6.1.json'), 'flannel-v6.1')).toEqual([
      { dev: 'flannel-v6.1', mac: '02:00:00:00:06:02', dst: 'fd00:77::3' },
    ]);
  });

  it('ignores learned (non-permanent) entries', () => {
    const learned = '[{"mac":"aa:bb:cc:dd:ee:01","dst":"192.168.77.9","flags":["self"],"state":""}]';
    expect(parseFdbList(learned, 'flannel.1')).toEqual([]);
    const stale = '[{"dst":"10.5.9.0","dev":"flannel.1","lladdr":"02:00:00:00:00:09","state":["STALE"]}]';
    expect(parseNeighborList(stale)).toEqual([]);
  });

  it('reads default-route devices and route lookups', () => {
    expect(parseDefaultRouteDev(fixture('ip-4-route-show-default.json'))).toBe('ext0');
    expect(parseDefaultRouteDev(fixture('ip-6-route-show-default.json'))).toBeUndefined();
    expect(parseRouteGet(fixture('ip-route-get-onlink.json'))).toEqual({
      dev: 'ext0',
      via: undefined,
      src: '192.168.77.2',
    });
    expect(parseRouteGet(fixture('ip-route-get-via-gateway.json'))?.via).toBe('192.168.77.1');
  });

  it('names the command on malformed output', () => {
    expect(() => parseRouteList('{"dst":1}', 'ip -4 -json route show')).toThrow(KernelOutputParseError);
    expect(() => parseRouteList('not json', 'ip -4 -json route show')).toThrow(/ip -4 -json route show/);
    expect(() => parseLinkList('[{"ifname":"x"}]')).toThrow(/entry 0 lacks ifname\/ifindex\/mtu/);
    expect(parseRouteList('', 'ip route')).toEqual([]);
  });

  it('keeps only what the scope owns', () => {
    const links = parseLinkList(fixture('ip-d-addr-show.json'));
    const scope: KernelScope = {
      devices: ['flannel.1', 'flannel-v6.1'],
      networks: [parseCidr('10.5.0.0/16'), parseCidr('fd00:5::/32')],
      externalDev: 'ext0',
      protectedDsts: [parseCidr('10.5.1.0/24'), parseCidr('fd00:5:1::/64')],
    };
    const owned = filterOwned(
      {
        links: links.map(toObservedLink),
        addresses: toAddressEntries(links),
        routes: [
          ...parseRouteList(fixture('ip-4-route-show.json')),
          ...parseRouteList(fixture('ip-6-route-show.json')),
        ],
        neighbors: parseNeighborList(fixture('ip-neigh-show-permanent.json')),
        fdb: parseFdbList(fixture('bridge-fdb-show-flannel.1.json'), 'flannel.1'),
      },
      scope,
    );
    expect(owned.links.map((l) => l.name).sort()).toEqual(['flannel-v6.1', 'flannel.1']);
    // Link-local addresses stay out; the stray 10.5.44.0/32 is owned (and would be removed).
    expect(owned.addresses.map((a) => a.cidr).sort()).toEqual([
      '10.5.1.0/32',
      '10.5.44.0/32',
      'fd00:5:1::/128',
    ]);
    // Owned: peer routes on flannel.1 / flannel-v6.1 and the direct route on ext0. Not owned: cni0's own
    // subnet route, the route on cni0, the foreign 10.7.0.0/16, the connected underlay route, kernel routes.
    expect(
      owned.routes.map((r) => `${r.dst} ${r.dev}${r.metric !== undefined ? ` ${r.metric}` : ''}`).sort(),
    ).toEqual([
      '10.5.2.0/24 flannel.1',
      '10.5.2.0/24 flannel.1 100',
      '10.5.3.0/24 flannel.1',
      '10.5.9.0/24 ext0',
      'fd00:5:2::/64 flannel-v6.1 1024',
    ]);
    expect(owned.neighbors).toHaveLength(3);
  });
});
