// The nftables renderer and the `nft -j list` parser with plain data. The JSON fixtures are real output of
// `nft -j list table …` (nftables 1.0.6, Debian 12): nft-weft-ipv{4,6}.json after weft's own transaction
// (masq + forward + notrack, 10.5.0.0/16 / fd66::/48), nft-flanneld-v0.25-ipv4.json after the rules flanneld
// v0.25 writes (exact kube-proxy mark, no comments) plus a hand-added rule with a counter.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import {
  checkNftTable,
  NftListParseError,
  nftRuleText,
  nftTables,
  parseNftListTable,
  planFirewallPolicy,
  renderNftTransaction,
} from './index.js';

const fixture = (name: string): string =>
  fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

const V4 = { family: 'ip', name: 'flannel-ipv4' } as const;
const V6 = { family: 'ip6', name: 'flannel-ipv6' } as const;

function fullPolicy(randomFully = true) {
  return planFirewallPolicy({
    networks: { ipv4: parseCidr('10.5.0.0/16'), ipv6: parseCidr('fd66::/48') },
    lease: { subnet: parseCidr('10.5.72.0/24'), ipv6Subnet: parseCidr('fd66:0:0:48::/64') },
    ipMasq: true,
    forwardRules: true,
    tunnelNotrack: { port: 8472, families: [4, 6] },
    randomFully,
  });
}

describe('nftables renderer', () => {
  it("renders flannel's tables, chains and rules in flannel's order, with the masked kube-proxy mark", () => {
    const [v4, v6] = nftTables(fullPolicy());
    expect(v4).toMatchObject({ family: 'ip', name: 'flannel-ipv4' });
    expect(v6).toMatchObject({ family: 'ip6', name: 'flannel-ipv6' });
    expect(v4?.chains.map((c) => [c.name, c.type, c.hook, c.priority.keyword])).toEqual([
      ['postrtg', 'nat', 'postrouting', 'srcnat'],
      ['forward', 'filter', 'forward', 'filter'],
      ['notrack-in', 'filter', 'prerouting', 'raw'],
      ['notrack-out', 'filter', 'output', 'raw'],
    ]);
    expect(v4?.chains[0]?.rules).toEqual([
      'meta mark & 0x4000 == 0x4000 return comment "flanneld masq"',
      'ip saddr 10.5.72.0/24 ip daddr 10.5.0.0/16 return comment "flanneld masq"',
      'ip saddr 10.5.0.0/16 ip daddr 10.5.72.0/24 return comment "flanneld masq"',
      'ip saddr != 10.5.0.0/16 ip daddr 10.5.72.0/24 return comment "flanneld masq"',
      'ip saddr 10.5.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random comment "flanneld masq"',
      'ip saddr != 10.5.0.0/16 ip daddr 10.5.0.0/16 masquerade fully-random comment "flanneld masq"',
    ]);
    expect(v6?.chains[1]?.rules).toEqual([
      'ip6 saddr fd66::/48 accept comment "flanneld forward"',
      'ip6 daddr fd66::/48 accept comment "flanneld forward"',
    ]);
    expect(v6?.chains[0]?.rules[4]).toBe(
      'ip6 saddr fd66::/48 ip6 daddr != ff00::/8 masquerade fully-random comment "flanneld masq"',
    );
    expect(v4?.chains[2]?.rules).toEqual([
      'udp dport 8472 fib daddr type local notrack comment "weft tunnel notrack"',
    ]);
  });

  it('gives a family without rules no table, writes a full-length prefix bare, and plain masquerade when asked', () => {
    const tables = nftTables(
      planFirewallPolicy({
        networks: { ipv4: parseCidr('10.5.0.0/16'), ipv6: parseCidr('fd66::/48') },
        lease: { subnet: parseCidr('10.5.7.1/32') },
        ipMasq: true,
        forwardRules: false,
        randomFully: false,
      }),
    );
    expect(tables.map((t) => t.name)).toEqual(['flannel-ipv4']);
    expect(tables[0]?.chains.map((c) => c.name)).toEqual(['postrtg']);
    expect(tables[0]?.chains[0]?.rules[1]).toBe(
      'ip saddr 10.5.7.1 ip daddr 10.5.0.0/16 return comment "flanneld masq"',
    );
    expect(tables[0]?.chains[0]?.rules[5]).toBe(
      'ip saddr != 10.5.0.0/16 ip daddr 10.5.0.0/16 masquerade comment "flanneld masq"',
    );
    expect(nftTables(planFirewallPolicy({ ...baseInput(), ipMasq: false, forwardRules: false }))).toEqual([]);
  });

  it('renders one transaction: every touched table deleted (valid whether it exists or not), then written whole', () => {
    const [v4] = nftTables(fullPolicy());
    const script = renderNftTransaction({ write: [v4!], remove: [V6] });
    const lines = script.split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'add table ip6 flannel-ipv6',
      'delete table ip6 flannel-ipv6',
      'add table ip flannel-ipv4',
      'delete table ip flannel-ipv4',
    ]);
    expect(lines).toContain('table ip flannel-ipv4 {');
    expect(lines).toContain('\t\ttype nat hook postrouting priority srcnat; policy accept;');
    expect(script).not.toContain('table ip6 flannel-ipv6 {');
    expect(renderNftTransaction({ write: [], remove: [] })).toBe('');
  });
});

function baseInput() {
  return {
    networks: { ipv4: parseCidr('10.5.0.0/16') },
    lease: { subnet: parseCidr('10.5.72.0/24') },
    ipMasq: true,
    forwardRules: true,
    randomFully: true,
  };
}

describe('nft -j list parser and check (real nft output)', () => {
  it("reads weft's own tables back as exactly the rendered rules: in sync", () => {
    const [v4, v6] = nftTables(fullPolicy());
    const listed4 = parseNftListTable(fixture('nft-weft-ipv4.json'), V4);
    const listed6 = parseNftListTable(fixture('nft-weft-ipv6.json'), V6);
    expect([...listed4.chains.keys()]).toEqual(['postrtg', 'forward', 'notrack-in', 'notrack-out']);
    expect(listed4.chains.get('postrtg')).toMatchObject({ type: 'nat', hook: 'postrouting', prio: 100 });
    expect(listed4.chains.get('notrack-out')).toMatchObject({ hook: 'output', prio: -300 });
    expect(listed4.chains.get('postrtg')?.rules).toEqual(v4?.chains[0]?.rules);
    expect(checkNftTable(v4, listed4)).toEqual({ inSync: true, differences: [] });
    expect(checkNftTable(v6, listed6)).toEqual({ inSync: true, differences: [] });
  });

  it("finds flanneld's exact-mark rule, missing comments and a hand-added rule (its counter ignored)", () => {
    const [v4] = nftTables(
      planFirewallPolicy({
        ...baseInput(),
        tunnelNotrack: undefined,
      }),
    );
    const listed = parseNftListTable(fixture('nft-flanneld-v0.25-ipv4.json'), V4);
    expect(listed.chains.get('postrtg')?.rules[0]).toBe('meta mark 16384 return');
    expect(listed.chains.get('forward')?.rules).toEqual([
      'ip saddr 10.5.0.0/16 accept',
      'ip daddr 10.5.0.0/16 accept',
      'ip saddr 10.9.0.0/16 accept',
    ]);
    const check = checkNftTable(v4, listed);
    expect(check.inSync).toBe(false);
    expect(check.differences).toContain(
      'chain postrtg: +meta mark & 0x4000 == 0x4000 return comment "flanneld masq"',
    );
    expect(check.differences).toContain('chain postrtg: -meta mark 16384 return');
    expect(check.differences).toContain('chain forward: -ip saddr 10.9.0.0/16 accept');
  });

  it('names what differs: a missing or unwanted table, a changed chain header, a missing chain, reordered rules', () => {
    const [v4] = nftTables(fullPolicy());
    const listed = parseNftListTable(fixture('nft-weft-ipv4.json'), V4);
    expect(checkNftTable(v4, undefined).differences).toEqual(['table ip flannel-ipv4 missing']);
    expect(checkNftTable(undefined, listed).differences).toEqual(['table ip flannel-ipv4 is not wanted']);
    expect(checkNftTable(undefined, undefined).inSync).toBe(true);

    const chains = new Map(listed.chains);
    const postrtg = chains.get('postrtg')!;
    chains.set('postrtg', { ...postrtg, prio: 0, rules: [...postrtg.rules].reverse() });
    chains.delete('forward');
    const check = checkNftTable(v4, { ...listed, chains });
    expect(check.differences).toEqual([
      'chain postrtg: expected type nat hook postrouting prio 100 policy accept, found type nat hook postrouting prio 0 policy accept',
      'chain postrtg: rules out of order or repeated',
      'chain forward missing',
    ]);
    const extraChain = new Map(listed.chains).set('mine', { name: 'mine', rules: [] });
    expect(checkNftTable(v4, { ...listed, chains: extraChain }).differences).toEqual([
      'chain mine is not wanted',
    ]);
  });

  it('prints expressions weft does not write as JSON, so they never match', () => {
    expect(
      nftRuleText({
        expr: [{ match: { op: '==', left: { ct: { key: 'state' } }, right: 'new' } }, { drop: null }],
      }),
    ).toBe('?{"ct":{"key":"state"}} new drop');
    expect(nftRuleText({ expr: [{ snat: { addr: '1.2.3.4' } }] })).toBe('?{"snat":{"addr":"1.2.3.4"}}');
  });

  it('rejects output of the wrong shape with a message naming the table', () => {
    expect(() => parseNftListTable('not json', V4)).toThrow(NftListParseError);
    expect(() => parseNftListTable('{"x": 1}', V4)).toThrow(/flannel-ipv4: expected \{"nftables"/);
    expect(() => parseNftListTable(fixture('nft-weft-ipv6.json'), V4)).toThrow(/another table/);
    const ruleFirst = JSON.stringify({
      nftables: [
        { table: { family: 'ip', name: 'flannel-ipv4' } },
        { rule: { table: 'flannel-ipv4', chain: 'postrtg', expr: [] } },
      ],
    });
    expect(() => parseNftListTable(ruleFirst, V4)).toThrow(/listed before its chain/);
    expect(() => parseNftListTable('{"nftables": []}', V4)).toThrow(/no table listed/);
  });
});
