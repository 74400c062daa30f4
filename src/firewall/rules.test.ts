import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import {
  FirewallPlanError,
  mergeRuleSets,
  normaliseArgs,
  planForwardRules,
  planMasqRules,
  planTunnelNotrackRules,
  quoteArg,
  ruleText,
  tunnelNotrackJumps,
} from './rules.js';
import { splitArgs } from './save.js';

/** The `-A` lines of a fixture captured with iptables-save after adding flannel's rules one by one. */
function fixtureRuleLines(name: string): string[] {
  const text = fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
  return text.split('\n').filter((l) => l.startsWith('-A '));
}

const v4 = { network: parseCidr('10.5.0.0/16'), subnet: parseCidr('10.5.72.0/24') };
const v6 = { network: parseCidr('fd00:12:13::/48'), subnet: parseCidr('fd00:12:13:1::/64') };

describe('planMasqRules', () => {
  it("produces flannel's six FLANNEL-POSTRTG rules and the POSTROUTING jump, byte for byte as iptables-save prints them", () => {
    const set = planMasqRules({ ...v4, family: 4 });
    expect(set.family).toBe(4);
    expect(set.ownedChains).toEqual([{ table: 'nat', chain: 'FLANNEL-POSTRTG' }]);
    expect(set.rules.every((r) => r.table === 'nat')).toBe(true);
    expect(set.rules.map(ruleText)).toEqual(fixtureRuleLines('flannel-nat-v4.txt'));
  });

  it('lists the rules in flannel order', () => {
    expect(planMasqRules(v4).rules.map(ruleText)).toEqual([
      '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
      '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG -s 10.5.72.0/24 -d 10.5.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.72.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.72.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG -s 10.5.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
      '-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    ]);
  });

  it('uses ff00::/8 instead of 224.0.0.0/4 for IPv6, matching ip6tables-save', () => {
    const set = planMasqRules(v6);
    expect(set.family).toBe(6);
    expect(set.rules.map(ruleText)).toEqual(fixtureRuleLines('flannel-nat-v6.txt'));
  });

  it('leaves out --random-fully when iptables lacks it', () => {
    const texts = planMasqRules({ ...v4, randomFully: false }).rules.map(ruleText);
    expect(texts.filter((t) => t.includes('MASQUERADE'))).toHaveLength(2);
    expect(texts.some((t) => t.includes('--random-fully'))).toBe(false);
  });

  it('refuses mixed families', () => {
    expect(() => planMasqRules({ network: v4.network, subnet: v6.subnet })).toThrow(FirewallPlanError);
    expect(() => planMasqRules({ ...v4, family: 6 })).toThrow(
      /network 10\.5\.0\.0\/16 is IPv4, expected IPv6/,
    );
  });
});

describe('planForwardRules', () => {
  it("produces flannel's FLANNEL-FWD rules and the FORWARD jump (IPv4 and IPv6)", () => {
    const set4 = planForwardRules({ network: v4.network });
    expect(set4.ownedChains).toEqual([{ table: 'filter', chain: 'FLANNEL-FWD' }]);
    expect(set4.rules.map(ruleText)).toEqual(fixtureRuleLines('flannel-filter-v4.txt'));
    expect(planForwardRules({ network: v6.network }).rules.map(ruleText)).toEqual(
      fixtureRuleLines('flannel-filter-v6.txt'),
    );
  });
});

describe('planTunnelNotrackRules', () => {
  it('produces the raw-table chains and jumps byte for byte as iptables-save and ip6tables-save print them', () => {
    for (const family of [4, 6] as const) {
      const set = planTunnelNotrackRules({ family, port: 8472 });
      expect(set.family).toBe(family);
      expect(set.ownedChains).toEqual([
        { table: 'raw', chain: 'WEFT-NOTRACK-IN' },
        { table: 'raw', chain: 'WEFT-NOTRACK-OUT' },
      ]);
      expect(set.rules.every((r) => r.table === 'raw')).toBe(true);
      expect(set.rules.map(ruleText)).toEqual(fixtureRuleLines(`weft-raw-v${family}.txt`));
    }
  });

  it('matches only arriving packets addressed to this host, and every packet this host sends, to the port', () => {
    expect(planTunnelNotrackRules({ family: 4, port: 8285 }).rules.map(ruleText).slice(2)).toEqual([
      '-A WEFT-NOTRACK-IN -p udp -m udp --dport 8285 -m addrtype --dst-type LOCAL -m comment --comment "weft tunnel notrack" -j NOTRACK',
      '-A WEFT-NOTRACK-OUT -p udp -m udp --dport 8285 -m comment --comment "weft tunnel notrack" -j NOTRACK',
    ]);
  });

  it('has the same jumps whatever the port: what removes an earlier run’s NOTRACK', () => {
    for (const port of [8472, 8285]) {
      expect(tunnelNotrackJumps(6).rules.map(ruleText)).toEqual(
        planTunnelNotrackRules({ family: 6, port }).rules.slice(0, 2).map(ruleText),
      );
    }
    expect(tunnelNotrackJumps(4).ownedChains).toEqual([]);
  });

  it('refuses a port outside 1..65535', () => {
    for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
      expect(() => planTunnelNotrackRules({ family: 4, port })).toThrow(FirewallPlanError);
    }
  });

  it('merges with the masquerade and forward sets of the same family', () => {
    const merged = mergeRuleSets([
      planMasqRules(v4),
      planForwardRules(v4),
      planTunnelNotrackRules({ family: 4, port: 8472 }),
    ]);
    expect(merged).toHaveLength(1);
    expect(merged[0]!.ownedChains.map((c) => `${c.table}/${c.chain}`)).toEqual([
      'nat/FLANNEL-POSTRTG',
      'filter/FLANNEL-FWD',
      'raw/WEFT-NOTRACK-IN',
      'raw/WEFT-NOTRACK-OUT',
    ]);
  });
});

describe('mergeRuleSets', () => {
  it('groups sets per family, IPv4 first, keeping order', () => {
    const merged = mergeRuleSets([
      planMasqRules(v6),
      planMasqRules(v4),
      planForwardRules({ network: v4.network }),
    ]);
    expect(merged.map((s) => s.family)).toEqual([4, 6]);
    expect(merged[0]?.ownedChains.map((c) => c.chain)).toEqual(['FLANNEL-POSTRTG', 'FLANNEL-FWD']);
    expect(merged[0]?.rules).toHaveLength(10);
  });

  it('refuses two sets owning the same chain', () => {
    expect(() => mergeRuleSets([planMasqRules(v4), planMasqRules(v4)])).toThrow(
      /own IPv4 chain nat\/FLANNEL-POSTRTG/,
    );
  });
});

describe('normaliseArgs / quoteArg', () => {
  it('writes addresses the way iptables-save prints them', () => {
    expect(
      normaliseArgs(['--source', '10.5.1.1', '--destination', 'FD00:0:0::1/64', '-j', 'RETURN']),
    ).toEqual(['-s', '10.5.1.1/32', '-d', 'fd00::/64', '-j', 'RETURN']);
    expect(normaliseArgs(['!', '-d', '10.5.7.9/16'])).toEqual(['!', '-d', '10.5.0.0/16']);
    expect(normaliseArgs(['-s', '10.0.0.0/255.0.0.0'])).toEqual(['-s', '10.0.0.0/255.0.0.0']);
    expect(normaliseArgs(['-s'])).toEqual(['-s']);
  });

  it('quotes only what needs it, and splitArgs reads it back', () => {
    expect(quoteArg('flanneld')).toBe('flanneld');
    expect(quoteArg('10.5.0.0/16')).toBe('10.5.0.0/16');
    expect(quoteArg('flanneld masq')).toBe('"flanneld masq"');
    expect(quoteArg('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(quoteArg('')).toBe('""');
    const args = ['-m', 'comment', '--comment', `it's "x" \\ y`, '-j', 'RETURN', ''];
    expect(splitArgs(args.map(quoteArg).join(' '))).toEqual(args);
  });
});
