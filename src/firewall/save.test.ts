import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IptablesSaveParseError, mergeSaves, parseIptablesSave, splitArgs } from './save.js';

function fixture(name: string): string {
  return fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
}

function parseError(text: string): IptablesSaveParseError {
  try {
    parseIptablesSave(text);
  } catch (err) {
    if (err instanceof IptablesSaveParseError) return err;
    throw err;
  }
  throw new Error('expected a parse error');
}

describe('parseIptablesSave', () => {
  it('reads chains with policies and rules with quoting undone (real iptables-nft output)', () => {
    const saved = parseIptablesSave(fixture('busy-nat-v4.txt'));
    const nat = saved.tables.get('nat');
    expect(nat).toBeDefined();
    expect([...(nat?.chains.keys() ?? [])]).toEqual([
      'PREROUTING',
      'INPUT',
      'OUTPUT',
      'POSTROUTING',
      'FLANNEL-POSTRTG',
      'KUBE-POSTROUTING',
    ]);
    expect(nat?.chains.get('POSTROUTING')?.policy).toBe('ACCEPT');
    expect(nat?.chains.get('FLANNEL-POSTRTG')?.policy).toBe('-');
    const dnat = nat?.rules[0];
    expect(dnat?.chain).toBe('PREROUTING');
    expect(dnat?.args).toContain('quote " and \\ here');
    expect(dnat?.line).toBe(9);
    expect(nat?.rules.filter((r) => r.chain === 'FLANNEL-POSTRTG')).toHaveLength(7);
  });

  it('reads the filter table with a DROP policy', () => {
    const filter = parseIptablesSave(fixture('busy-filter-v4.txt')).tables.get('filter');
    expect(filter?.chains.get('FORWARD')?.policy).toBe('DROP');
    expect(filter?.rules.map((r) => r.chain)).toEqual(['FORWARD', 'FORWARD', 'FLANNEL-FWD']);
  });

  it('reads output with packet counters (iptables-save -c) like output without them', () => {
    const plain = parseIptablesSave(fixture('busy-nat-v4.txt')).tables.get('nat');
    const counted = parseIptablesSave(fixture('busy-nat-v4-counters.txt')).tables.get('nat');
    expect(counted?.rules.map((r) => r.args)).toEqual(plain?.rules.map((r) => r.args));
  });

  it('reads several tables, an empty table and empty output', () => {
    const both = parseIptablesSave(fixture('flannel-nat-v4.txt') + fixture('flannel-filter-v4.txt'));
    expect([...both.tables.keys()]).toEqual(['nat', 'filter']);
    expect(parseIptablesSave(fixture('empty-nat-v4.txt')).tables.get('nat')?.rules).toEqual([]);
    expect(parseIptablesSave('').tables.size).toBe(0);
    const merged = mergeSaves([
      parseIptablesSave(fixture('flannel-nat-v4.txt')),
      parseIptablesSave(fixture('flannel-filter-v4.txt')),
    ]);
    expect([...merged.tables.keys()]).toEqual(['nat', 'filter']);
    expect(() => mergeSaves([merged, merged])).toThrow(/appears in two outputs/);
  });

  it('names the line of malformed input', () => {
    expect(parseError('*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j "RET\nCOMMIT\n').line).toBe(3);
    expect(parseError('*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j "RET\nCOMMIT\n').message).toMatch(
      /line 3: unterminated quote/,
    );
    expect(parseError('-A POSTROUTING -j X\n').message).toMatch(/line 1: rule outside a table/);
    expect(parseError('*nat\n-A NOPE -j X\nCOMMIT\n').message).toMatch(
      /line 2: rule in chain NOPE, which table nat/,
    );
    expect(parseError('*nat\n:A - [0:0]\n').message).toMatch(/table nat has no COMMIT/);
    expect(parseError('*nat\n*filter\n').message).toMatch(
      /line 2: table filter starts before the COMMIT of table nat/,
    );
    expect(parseError('COMMIT\n').message).toMatch(/COMMIT outside a table/);
    expect(parseError('*nat\n:A\nCOMMIT\n').message).toMatch(/line 2: expected ":CHAIN POLICY/);
    expect(parseError('*nat\n:A - [0:0]\n:A - [0:0]\nCOMMIT\n').message).toMatch(/declared twice/);
    expect(parseError('*nat\nCOMMIT\n*nat\nCOMMIT\n').message).toMatch(/appears twice/);
    expect(parseError('*nat\n-I POSTROUTING 1 -j X\nCOMMIT\n').message).toMatch(/line 2: expected a comment/);
    expect(parseError('*NAT!\nCOMMIT\n').message).toMatch(/expected a table name/);
  });
});

describe('splitArgs', () => {
  it('splits like iptables-restore', () => {
    expect(splitArgs('-A X  -m comment --comment "a b"   -j Y')).toEqual([
      '-A',
      'X',
      '-m',
      'comment',
      '--comment',
      'a b',
      '-j',
      'Y',
    ]);
    expect(splitArgs('--comment "it\\\'s"')).toEqual(['--comment', "it's"]);
    expect(splitArgs('a"b c"d')).toEqual(['ab cd']);
    expect(splitArgs('"unterminated')).toBeUndefined();
  });
});
