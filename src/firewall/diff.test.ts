import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import { checkRules, planCleanup, renderCleanup, renderRestore } from './diff.js';
import { type IptablesRuleSet, mergeRuleSets, planForwardRules, planMasqRules } from './rules.js';
import { parseIptablesSave } from './save.js';

function fixture(...names: string[]): string {
  return names.map((n) => fs.readFileSync(new URL(`./fixtures/${n}`, import.meta.url), 'utf8')).join('');
}

const network = parseCidr('10.5.0.0/16');
const subnet = parseCidr('10.5.72.0/24');
const [desired] = mergeRuleSets([planMasqRules({ network, subnet }), planForwardRules({ network })]) as [
  IptablesRuleSet,
];
const masq = (s: string) => `-m comment --comment "flanneld masq" -j ${s}`;

describe('checkRules', () => {
  it("finds nothing to do on a node that already has flannel's rules", () => {
    const saved = parseIptablesSave(fixture('flannel-nat-v4.txt', 'flannel-filter-v4.txt'));
    expect(checkRules(saved, desired)).toEqual({
      missing: [],
      extra: [],
      misordered: [],
      missingChains: [],
      inSync: true,
    });
    expect(renderRestore(desired, saved)).toBe('');
  });

  it('reports every rule missing on a fresh node, and the chains', () => {
    const saved = parseIptablesSave(fixture('empty-nat-v4.txt'));
    const check = checkRules(saved, desired);
    expect(check.inSync).toBe(false);
    expect(check.missingChains).toEqual(['nat/FLANNEL-POSTRTG', 'filter/FLANNEL-FWD']);
    expect(check.missing).toHaveLength(10);
    expect(check.missing[0]).toBe('-t nat -A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ' + masq('RETURN'));
    expect(check.missing).toContain(`-t nat -A POSTROUTING ${masq('FLANNEL-POSTRTG')}`);
  });

  it('on a busy node: stale subnet rule, duplicate and old-style jumps are extra, a deleted rule is missing', () => {
    const saved = parseIptablesSave(fixture('busy-nat-v4.txt', 'busy-filter-v4.txt'));
    const check = checkRules(saved, desired);
    expect(check.missing).toEqual([
      '-t filter -A FLANNEL-FWD -d 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    ]);
    expect(check.extra).toEqual([
      `-t nat -A FLANNEL-POSTRTG -s 10.5.9.0/24 -d 10.5.0.0/16 ${masq('RETURN')}`,
      `-t nat -A POSTROUTING ${masq('FLANNEL-POSTRTG')}`,
      '-t nat -A POSTROUTING -j FLANNEL-POSTRTG',
    ]);
    // kube-proxy's and docker's rules are not weft's business.
    expect(check.extra.join('\n')).not.toMatch(/KUBE|docker|DNAT/);
  });

  it('notices rules in the wrong order', () => {
    const text = fixture('flannel-nat-v4.txt', 'flannel-filter-v4.txt');
    const lines = text.split('\n');
    const a = lines.findIndex((l) => l.includes('-s 10.5.72.0/24 -d 10.5.0.0/16'));
    const b = lines.findIndex((l) => l.includes('-s 10.5.0.0/16 -d 10.5.72.0/24'));
    [lines[a], lines[b]] = [lines[b] as string, lines[a] as string];
    const check = checkRules(parseIptablesSave(lines.join('\n')), desired);
    expect(check).toMatchObject({
      missing: [],
      extra: [],
      misordered: ['nat/FLANNEL-POSTRTG'],
      inSync: false,
    });
  });

  it('matches rules written with other spellings of the same addresses', () => {
    const saved = parseIptablesSave(fixture('flannel-filter-v4.txt'));
    const forward = planForwardRules({ network });
    const respelled: IptablesRuleSet = {
      ...forward,
      rules: forward.rules.map((r) => ({
        ...r,
        args: r.args.map((a) => (a === '-s' ? '--source' : a === '-d' ? '--destination' : a)),
      })),
    };
    expect(checkRules(saved, respelled).inSync).toBe(true);
  });
});

describe('renderRestore', () => {
  it('creates both chains, fills them and appends both jumps on a fresh node', () => {
    const saved = parseIptablesSave(fixture('empty-nat-v4.txt'));
    expect(renderRestore(desired, saved)).toBe(
      [
        '*nat',
        ':FLANNEL-POSTRTG - [0:0]',
        `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG -s 10.5.72.0/24 -d 10.5.0.0/16 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.72.0/24 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.72.0/24 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG -s 10.5.0.0/16 ! -d 224.0.0.0/4 ${masq('MASQUERADE --random-fully')}`,
        `-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.0.0/16 ${masq('MASQUERADE --random-fully')}`,
        `-A POSTROUTING ${masq('FLANNEL-POSTRTG')}`,
        'COMMIT',
        '*filter',
        ':FLANNEL-FWD - [0:0]',
        '-A FLANNEL-FWD -s 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        '-A FLANNEL-FWD -d 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('on a busy node rewrites only the chains that differ and deletes stray jumps, leaving the jump that is there', () => {
    const saved = parseIptablesSave(fixture('busy-nat-v4.txt', 'busy-filter-v4.txt'));
    const text = renderRestore(desired, saved);
    expect(text).toBe(
      [
        '*nat',
        ':FLANNEL-POSTRTG - [0:0]',
        `-D POSTROUTING ${masq('FLANNEL-POSTRTG')}`,
        '-D POSTROUTING -j FLANNEL-POSTRTG',
        `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG -s 10.5.72.0/24 -d 10.5.0.0/16 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.72.0/24 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.72.0/24 ${masq('RETURN')}`,
        `-A FLANNEL-POSTRTG -s 10.5.0.0/16 ! -d 224.0.0.0/4 ${masq('MASQUERADE --random-fully')}`,
        `-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.0.0/16 ${masq('MASQUERADE --random-fully')}`,
        'COMMIT',
        '*filter',
        ':FLANNEL-FWD - [0:0]',
        '-A FLANNEL-FWD -s 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        '-A FLANNEL-FWD -d 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('only appends the jump when just the jump is gone', () => {
    const text = fixture('flannel-nat-v4.txt').replace(/^-A POSTROUTING .*\n/m, '');
    expect(renderRestore(planMasqRules({ network, subnet }), parseIptablesSave(text))).toBe(
      `*nat\n-A POSTROUTING ${masq('FLANNEL-POSTRTG')}\nCOMMIT\n`,
    );
  });

  it('refuses a rule that would break the restore format', () => {
    const bad: IptablesRuleSet = {
      family: 4,
      ownedChains: [],
      rules: [
        { table: 'nat', chain: 'POSTROUTING', args: ['-m', 'comment', '--comment', 'a\nCOMMIT', '-j', 'X'] },
      ],
    };
    expect(() => renderRestore(bad, parseIptablesSave(''))).toThrow(/line break/);
  });
});

describe('planCleanup / renderCleanup', () => {
  it("deletes the old subnet's rules that the new rules do not share", () => {
    const saved = parseIptablesSave(fixture('flannel-nat-v4.txt'));
    const previous = planMasqRules({ network, subnet });
    const next = planMasqRules({ network, subnet: parseCidr('10.5.9.0/24') });
    const remove = planCleanup(previous, saved, [next]);
    expect(renderCleanup(remove)).toBe(
      [
        '*nat',
        `-D FLANNEL-POSTRTG -s 10.5.72.0/24 -d 10.5.0.0/16 ${masq('RETURN')}`,
        `-D FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.72.0/24 ${masq('RETURN')}`,
        `-D FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.72.0/24 ${masq('RETURN')}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('deletes every rule including the jump when nothing is kept, each copy once', () => {
    const saved = parseIptablesSave(fixture('busy-nat-v4.txt'));
    const remove = planCleanup(planMasqRules({ network, subnet }), saved);
    // Two copies of the jump + the six chain rules; the stray 10.5.9.0/24 rule was never in this set.
    expect(remove).toHaveLength(8);
    expect(remove.filter((r) => r.chain === 'POSTROUTING')).toHaveLength(2);
  });

  it('does nothing when the old rules are gone or all kept', () => {
    const saved = parseIptablesSave(fixture('flannel-nat-v4.txt'));
    const same = planMasqRules({ network, subnet });
    expect(renderCleanup(planCleanup(same, saved, [same]))).toBe('');
    expect(renderCleanup(planCleanup(same, parseIptablesSave(fixture('empty-nat-v4.txt'))))).toBe('');
    // A kept set of the other family keeps nothing.
    const v6 = planMasqRules({ network: parseCidr('fd00::/48'), subnet: parseCidr('fd00:0:0:1::/64') });
    expect(planCleanup(same, saved, [v6])).toHaveLength(7);
  });
});
