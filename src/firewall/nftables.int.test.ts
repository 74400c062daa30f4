// Root only. The node firewall against the real nft and iptables in private namespaces named with the run
// prefix, removed in afterAll even on failure: install, repair after hand edits with `nft`, no rewrite of
// unchanged tables (transactions counted, rule handles unchanged), lease change, mode switch both ways.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerNamespace, runPrefix, unregisterNamespace } from '../../testkit/run.js';
import { runCommand, runCommandChecked } from '../core/index.js';
import { parseCidr } from '../ip/index.js';
import { NodeFirewall, type NodeFirewallOptions, nftTables, planFirewallPolicy } from './index.js';

const prefix = `${runPrefix()}n`;
const ns = { main: `${prefix}m`, v6: `${prefix}6` };
const network = parseCidr('10.66.0.0/16');
const subnet = parseCidr('10.66.1.0/24');
const newSubnet = parseCidr('10.66.9.0/24');
const network6 = parseCidr('fd66::/48');
const subnet6 = parseCidr('fd66:0:0:1::/64');

const inNs = (name: string, file: string, ...args: string[]): Promise<string> =>
  runCommandChecked(file, args, { netns: name });

/** `nft list tables` as `family name` lines. */
async function tables(name: string): Promise<string[]> {
  return (await inNs(name, 'nft', 'list', 'tables'))
    .split('\n')
    .filter((l) => l.startsWith('table '))
    .map((l) => l.slice('table '.length));
}

/** The rules of a table as nft lists them, with handles: a rewrite changes every handle. */
async function listing(name: string, family: string, table: string): Promise<string> {
  return inNs(name, 'nft', '-a', 'list', 'table', family, table);
}

/** Every iptables/ip6tables line that names a flannel or weft chain. */
async function iptablesTraces(name: string): Promise<string[]> {
  const lines: string[] = [];
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    lines.push(...(await inNs(name, tool)).split('\n').filter((l) => /FLANNEL|WEFT/.test(l)));
  }
  return lines;
}

const base = (netns: string): Omit<NodeFirewallOptions, 'mode'> => ({
  networks: { ipv4: network },
  ipMasq: true,
  forwardRules: true,
  tunnelNotrack: { port: 8472, families: [4] },
  netns,
});

describe.skipIf(process.getuid?.() !== 0)('NodeFirewall, nftables mode, in a network namespace', () => {
  beforeAll(async () => {
    for (const name of Object.values(ns)) {
      await runCommandChecked('ip', ['netns', 'add', name]);
      registerNamespace(name);
    }
  });

  afterAll(async () => {
    for (const name of Object.values(ns)) {
      await runCommand('ip', ['netns', 'del', name]);
      unregisterNamespace(name);
    }
  });

  const fw = new NodeFirewall({ ...base(ns.main), mode: 'nftables' });

  it("installs flannel's table with one transaction, and the check rewrites nothing while it is unchanged", async () => {
    await fw.install({ subnet });
    expect(await tables(ns.main)).toEqual(['ip flannel-ipv4']);
    expect(fw.stats.transactions).toBe(1);
    const text = await inNs(ns.main, 'nft', 'list', 'table', 'ip', 'flannel-ipv4');
    expect(text).toContain('meta mark & 0x00004000 == 0x00004000 return comment "flanneld masq"');
    expect(text).toContain('ip saddr 10.66.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random');
    expect(text).toContain('udp dport 8472 fib daddr type local notrack');
    const before = await listing(ns.main, 'ip', 'flannel-ipv4');
    for (let i = 0; i < 3; i++) expect(await fw.check()).toBe(false);
    expect(fw.stats.transactions).toBe(1);
    expect(fw.stats.checks).toBe(3);
    expect(await listing(ns.main, 'ip', 'flannel-ipv4')).toBe(before);
    expect(await iptablesTraces(ns.main)).toEqual([]);
  });

  it('puts back a rule deleted by hand with nft after one check', async () => {
    const handles =
      /ip saddr 10\.66\.0\.0\/16 ip daddr 10\.66\.1\.0\/24 return comment "flanneld masq" # handle (\d+)/.exec(
        await listing(ns.main, 'ip', 'flannel-ipv4'),
      );
    expect(handles).not.toBeNull();
    await inNs(ns.main, 'nft', 'delete', 'rule', 'ip', 'flannel-ipv4', 'postrtg', 'handle', handles![1]!);
    expect(await inNs(ns.main, 'nft', 'list', 'chain', 'ip', 'flannel-ipv4', 'postrtg')).not.toContain(
      'ip saddr 10.66.0.0/16 ip daddr 10.66.1.0/24 return',
    );
    expect(await fw.check()).toBe(true);
    expect(fw.stats.repairs).toBe(1);
    expect(fw.stats.transactions).toBe(2);
    expect(await inNs(ns.main, 'nft', 'list', 'chain', 'ip', 'flannel-ipv4', 'postrtg')).toContain(
      'ip saddr 10.66.0.0/16 ip daddr 10.66.1.0/24 return',
    );
    expect(await fw.check()).toBe(false);
  });

  it('puts back a chain flushed by hand, a rule added by hand goes, and a deleted table comes back', async () => {
    await inNs(ns.main, 'nft', 'flush', 'chain', 'ip', 'flannel-ipv4', 'forward');
    expect(await fw.check()).toBe(true);
    const forward = await inNs(ns.main, 'nft', 'list', 'chain', 'ip', 'flannel-ipv4', 'forward');
    expect(forward).toContain('ip saddr 10.66.0.0/16 accept comment "flanneld forward"');
    expect(forward).toContain('ip daddr 10.66.0.0/16 accept comment "flanneld forward"');

    await inNs(
      ns.main,
      'nft',
      'add',
      'rule',
      'ip',
      'flannel-ipv4',
      'forward',
      'ip',
      'saddr',
      '10.9.0.0/16',
      'drop',
    );
    expect(await fw.check()).toBe(true);
    expect(await inNs(ns.main, 'nft', 'list', 'chain', 'ip', 'flannel-ipv4', 'forward')).not.toContain(
      '10.9.0.0',
    );

    await inNs(ns.main, 'nft', 'delete', 'table', 'ip', 'flannel-ipv4');
    expect(await fw.check()).toBe(true);
    expect(await tables(ns.main)).toEqual(['ip flannel-ipv4']);
    expect(fw.stats.repairs).toBe(4);
    expect(fw.stats.failures).toBe(0);
  });

  it("a new lease replaces the old subnet's rules in the same table", async () => {
    await fw.install({ subnet: newSubnet });
    const text = await inNs(ns.main, 'nft', 'list', 'table', 'ip', 'flannel-ipv4');
    expect(text).toContain('ip saddr 10.66.9.0/24 ip daddr 10.66.0.0/16 return');
    expect(text).not.toContain('10.66.1.0/24');
    expect(await fw.check()).toBe(false);
  });

  it('switching to iptables mode removes both nft tables; switching back removes every iptables chain', async () => {
    const ipt = new NodeFirewall({ ...base(ns.main), mode: 'iptables' });
    await ipt.install({ subnet: newSubnet });
    expect(await tables(ns.main)).not.toContain('ip flannel-ipv4');
    const traces = await iptablesTraces(ns.main);
    expect(traces).toContain('-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    expect(traces).toContain('-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD');
    expect(traces).toContain('-A PREROUTING -m comment --comment "weft tunnel notrack" -j WEFT-NOTRACK-IN');

    const nft = new NodeFirewall({ ...base(ns.main), mode: 'nftables' });
    await nft.install({ subnet: newSubnet });
    expect(await iptablesTraces(ns.main)).toEqual([]);
    expect(await tables(ns.main)).toContain('ip flannel-ipv4');
    expect(nft.stats.transactions).toBe(1);
  });

  it('dual stack: both tables, the IPv6 rules read back in sync; a family dropped from the config loses its table', async () => {
    const dual = new NodeFirewall({
      ...base(ns.v6),
      networks: { ipv4: network, ipv6: network6 },
      tunnelNotrack: { port: 8472, families: [4, 6] },
      mode: 'nftables',
    });
    await dual.install({ subnet, ipv6Subnet: subnet6 });
    expect(await tables(ns.v6)).toEqual(['ip flannel-ipv4', 'ip6 flannel-ipv6']);
    const v6 = await inNs(ns.v6, 'nft', 'list', 'table', 'ip6', 'flannel-ipv6');
    expect(v6).toContain('ip6 saddr fd66::/48 ip6 daddr != ff00::/8 masquerade fully-random');
    expect(await dual.check()).toBe(false);
    expect(dual.stats.transactions).toBe(1);

    const v4only = new NodeFirewall({ ...base(ns.v6), mode: 'nftables' });
    await v4only.install({ subnet });
    expect(await tables(ns.v6)).toEqual(['ip flannel-ipv4']);
  });

  it('with no rule wanted, no table of weft stays', async () => {
    const none = new NodeFirewall({
      ...base(ns.v6),
      ipMasq: false,
      forwardRules: false,
      tunnelNotrack: undefined,
      mode: 'nftables',
    });
    expect(none.hasRules).toBe(false);
    await none.install({ subnet });
    expect(await tables(ns.v6)).toEqual([]);
    // The policy renders no table either: the check has nothing to read.
    expect(
      nftTables(
        planFirewallPolicy({
          ...base(ns.v6),
          ipMasq: false,
          forwardRules: false,
          lease: {},
          randomFully: true,
          tunnelNotrack: undefined,
        }),
      ),
    ).toEqual([]);
    expect(await none.check()).toBe(false);
  });
});
