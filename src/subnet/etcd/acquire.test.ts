import { describe, expect, it } from 'vitest';
import { parseNetworkConfig } from '../../config/index.js';
import { type Cidr, formatCidr, parseCidr } from '../../ip/index.js';
import { freeSubnets, pickRandom } from './acquire.js';

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
