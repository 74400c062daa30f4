import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../../config/index.js';
import { type Cidr, formatCidr, parseCidr } from '../../ip/index.js';
import { OwnGrants } from './grants.js';
import { freeSubnets, pickFreeSubnet, pickRandom } from './pick.js';

const net = (json: Record<string, unknown>) => {
  const cfg = parseNetworkConfig(json);
  if (!cfg.ipv4) throw new Error('test config has no IPv4');
  return cfg.ipv4;
};
const names = (cs: Cidr[]) => cs.map(formatCidr);

describe('freeSubnets', () => {
  it('walks SubnetMin..SubnetMax in SubnetLen steps', () => {
    const n = net({ Network: '10.5.0.0/16' });
    expect(names(freeSubnets(n, [], 3))).toEqual(['10.5.1.0/24', '10.5.2.0/24', '10.5.3.0/24']);
  });

  it('skips taken subnets, including larger and smaller overlapping ones', () => {
    const n = net({ Network: '10.5.0.0/16' });
    const taken = ['10.5.1.0/24', '10.5.2.128/25', '10.5.4.0/22', '10.5.9.0/24', '10.5.4.0/23'].map((t) =>
      parseCidr(t),
    );
    expect(names(freeSubnets(n, taken, 4))).toEqual([
      '10.5.3.0/24',
      '10.5.8.0/24',
      '10.5.10.0/24',
      '10.5.11.0/24',
    ]);
  });

  it('ignores other families and stops at the limit', () => {
    const n = net({ Network: '10.5.0.0/16' });
    const free = freeSubnets(n, [parseCidr('fd00::/64')]);
    expect(free).toHaveLength(100);
    expect(formatCidr(free[99] as Cidr)).toBe('10.5.100.0/24');
  });

  it('returns nothing when every subnet is taken', () => {
    const n = net({ Network: '10.5.0.0/24', SubnetLen: 26 });
    const all = ['10.5.0.64/26', '10.5.0.128/26', '10.5.0.192/26'].map((t) => parseCidr(t));
    expect(freeSubnets(n, all)).toEqual([]);
    expect(names(freeSubnets(n, all.slice(1)))).toEqual(['10.5.0.64/26']);
  });

  it('respects SubnetMin and SubnetMax', () => {
    const n = net({ Network: '10.5.0.0/16', SubnetMin: '10.5.200.0', SubnetMax: '10.5.202.0' });
    expect(names(freeSubnets(n, [parseCidr('10.5.201.0/24')]))).toEqual(['10.5.200.0/24', '10.5.202.0/24']);
  });

  it('handles a large, mostly full network', () => {
    const n = net({ Network: '10.0.0.0/8' });
    const taken: Cidr[] = [];
    for (let i = 1; i < 60_000; i++)
      taken.push({ family: 4, value: (10n << 24n) + (BigInt(i) << 8n), prefix: 24 });
    const free = freeSubnets(n, taken.reverse(), 2);
    expect(names(free)).toEqual(['10.234.96.0/24', '10.234.97.0/24']);
  });
});

describe('pickRandom', () => {
  it('picks by the random source and handles empty lists', () => {
    expect(pickRandom([1, 2, 3], () => 0)).toBe(1);
    expect(pickRandom([1, 2, 3], () => 0.999999)).toBe(3);
    expect(pickRandom([], () => 0.5)).toBeUndefined();
  });
});

/** A deterministic [0,1) source (xorshift), so the tests see a spread of picks without flakiness. */
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('pickFreeSubnet', () => {
  it('spreads picks over the whole range, not the first hundred free subnets', () => {
    const n = net({ Network: '10.0.0.0/8' });
    const random = seeded(7);
    const picks = Array.from({ length: 200 }, () => pickFreeSubnet(n, [], random) as Cidr);
    const thirdOctets = new Set(picks.map((c) => Number((c.value >> 16n) & 255n)));
    // Uniform over 65534 subnets: 200 picks land in many different /16s (the first 100 free are all in 10.0/16).
    expect(thirdOctets.size).toBeGreaterThan(100);
    for (const c of picks) {
      expect(c.prefix).toBe(24);
      expect(c.value >= n.subnetMin.value && c.value <= n.subnetMax.value).toBe(true);
    }
  });

  it('never picks a taken or overlapping subnet, also when the network is nearly full', () => {
    const n = net({ Network: '10.5.0.0/16' });
    const taken: Cidr[] = [parseCidr('10.5.0.0/17')];
    for (let i = 128; i <= 255; i++) if (i !== 200) taken.push(parseCidr(`10.5.${i}.0/24`));
    const random = seeded(11);
    for (let i = 0; i < 20; i++)
      expect(formatCidr(pickFreeSubnet(n, taken, random) as Cidr)).toBe('10.5.200.0/24');
    taken.push(parseCidr('10.5.200.128/25'));
    expect(pickFreeSubnet(n, taken, random)).toBeUndefined();
  });

  it('respects SubnetMin and SubnetMax and works for IPv6 ranges wider than 2^53 subnets', () => {
    const small = net({ Network: '10.5.0.0/16', SubnetMin: '10.5.200.0', SubnetMax: '10.5.202.0' });
    const random = seeded(3);
    const seen = new Set(
      Array.from({ length: 50 }, () => formatCidr(pickFreeSubnet(small, [], random) as Cidr)),
    );
    expect([...seen].sort()).toEqual(['10.5.200.0/24', '10.5.201.0/24', '10.5.202.0/24']);
    const cfg = parseNetworkConfig({
      EnableIPv4: false,
      EnableIPv6: true,
      IPv6Network: 'fd00::/8',
      IPv6SubnetLen: 64,
    });
    const v6 = cfg.ipv6;
    if (!v6) throw new Error('no IPv6 network');
    const pick = pickFreeSubnet(v6, [], random) as Cidr;
    expect(pick.family).toBe(6);
    expect(pick.prefix).toBe(64);
    expect(pick.value >= v6.subnetMin.value && pick.value <= v6.subnetMax.value).toBe(true);
  });
});

describe('OwnGrants', () => {
  it('knows grants whose write may have committed, and frees them once a later write succeeded', () => {
    const g = new OwnGrants();
    expect(g.attached('10.5.1.0-24', '100')).toEqual([]);
    g.maybe('10.5.1.0-24', '101');
    expect(g.isOurs('10.5.1.0-24', '100')).toBe(true);
    expect(g.isOurs('10.5.1.0-24', '101')).toBe(true);
    expect(g.isOurs('10.5.1.0-24', '999')).toBe(false);
    expect(g.isOurs('10.5.2.0-24', '101')).toBe(false);
    expect(g.isOurs('10.5.1.0-24', '0')).toBe(false);
    expect(g.attached('10.5.1.0-24', '102').sort()).toEqual(['100', '101']);
    expect(g.isOurs('10.5.1.0-24', '101')).toBe(false);
    g.forget('10.5.1.0-24');
    expect(g.isOurs('10.5.1.0-24', '102')).toBe(false);
  });
});
