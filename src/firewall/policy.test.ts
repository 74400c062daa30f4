// The node's firewall policy and its iptables renderer, with plain data; the removal of weft's iptables
// chains (leaving iptables mode) against real iptables-save output; the missing-tool errors with a PATH
// that holds neither nft nor iptables.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import {
  FirewallPlanError,
  FirewallToolMissingError,
  firewallModeOf,
  iptablesRuleSets,
  mergeRuleSets,
  NodeFirewall,
  parseIptablesSave,
  planFirewallPolicy,
  planForwardRules,
  planMasqRules,
  planTunnelNotrackRules,
  policyHasRules,
  renderChainRemoval,
  staleIptablesRuleSets,
  tunnelNotrackJumps,
  WEFT_IPTABLES_CHAINS,
} from './index.js';

const network = parseCidr('10.5.0.0/16');
const subnet = parseCidr('10.5.72.0/24');
const network6 = parseCidr('fd66::/48');
const subnet6 = parseCidr('fd66:0:0:48::/64');

describe('planFirewallPolicy', () => {
  it('gives each family of the config the groups its flags ask for', () => {
    const policy = planFirewallPolicy({
      networks: { ipv4: network, ipv6: network6 },
      lease: { subnet, ipv6Subnet: subnet6 },
      ipMasq: true,
      forwardRules: false,
      tunnelNotrack: { port: 8472, families: [6] },
      randomFully: false,
    });
    expect(policy.families).toEqual([
      { family: 4, masq: { network, subnet, randomFully: false } },
      {
        family: 6,
        masq: { network: network6, subnet: subnet6, randomFully: false },
        notrack: { port: 8472 },
      },
    ]);
    expect(policyHasRules(policy)).toBe(true);
  });

  it('has no rules without flags, and a family without a lease subnet gets no masq or forward', () => {
    const off = planFirewallPolicy({
      networks: { ipv4: network },
      lease: { subnet },
      ipMasq: false,
      forwardRules: false,
      randomFully: true,
    });
    expect(off.families).toEqual([{ family: 4 }]);
    expect(policyHasRules(off)).toBe(false);
    const noLease = planFirewallPolicy({
      networks: { ipv4: network, ipv6: network6 },
      lease: { subnet },
      ipMasq: true,
      forwardRules: true,
      randomFully: true,
    });
    expect(noLease.families[1]).toEqual({ family: 6 });
  });

  it('rejects a port that is not a UDP port and a network of the wrong family', () => {
    const input = {
      networks: { ipv4: network },
      lease: { subnet },
      ipMasq: true,
      forwardRules: true,
      randomFully: true,
    };
    expect(() => planFirewallPolicy({ ...input, tunnelNotrack: { port: 0, families: [4] } })).toThrow(
      FirewallPlanError,
    );
    expect(() => planFirewallPolicy({ ...input, networks: { ipv4: network6 } })).toThrow(
      /another address family/,
    );
  });

  it('chooses nftables only with EnableNFTables', () => {
    expect(firewallModeOf({ enableNFTables: true })).toBe('nftables');
    expect(firewallModeOf({ enableNFTables: false })).toBe('iptables');
  });
});

describe('iptables renderer of the policy', () => {
  it("renders the same rule sets the planners make, masq and forward first, NOTRACK last (flannel's order)", () => {
    const policy = planFirewallPolicy({
      networks: { ipv4: network, ipv6: network6 },
      lease: { subnet, ipv6Subnet: subnet6 },
      ipMasq: true,
      forwardRules: true,
      tunnelNotrack: { port: 8472, families: [4] },
      randomFully: true,
    });
    expect(iptablesRuleSets(policy)).toEqual(
      mergeRuleSets([
        planMasqRules({ network, subnet, family: 4 }),
        planForwardRules({ network, family: 4 }),
        planMasqRules({ network: network6, subnet: subnet6, family: 6 }),
        planForwardRules({ network: network6, family: 6 }),
        planTunnelNotrackRules({ family: 4, port: 8472 }),
      ]),
    );
    // The IPv6 family has NOTRACK off: its jumps are what an earlier run may have left.
    expect(staleIptablesRuleSets(policy)).toEqual([tunnelNotrackJumps(6)]);
  });
});

describe('renderChainRemoval (leaving iptables mode)', () => {
  const fixture = (name: string): string =>
    fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

  it("deletes the jumps, flushes and deletes flannel's chains, and leaves foreign rules alone", () => {
    const saved = parseIptablesSave(fixture('busy-nat-v4.txt'));
    const text = renderChainRemoval(saved, WEFT_IPTABLES_CHAINS);
    const lines = text.trim().split('\n');
    expect(lines[0]).toBe('*nat');
    expect(lines).toContain('-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    expect(lines.slice(-3)).toEqual(['-F FLANNEL-POSTRTG', '-X FLANNEL-POSTRTG', 'COMMIT']);
    expect(text).not.toContain('KUBE-POSTROUTING');
    expect(text).not.toContain('docker0');
  });

  it('removes the NOTRACK chains from the raw table and writes nothing when no chain of weft exists', () => {
    const raw = parseIptablesSave(fixture('weft-raw-v4.txt'));
    const text = renderChainRemoval(raw, WEFT_IPTABLES_CHAINS);
    expect(text).toContain('-D PREROUTING -m comment --comment "weft tunnel notrack" -j WEFT-NOTRACK-IN');
    expect(text).toContain('-X WEFT-NOTRACK-OUT');
    expect(renderChainRemoval(parseIptablesSave(fixture('empty-nat-v4.txt')), WEFT_IPTABLES_CHAINS)).toBe('');
  });
});

describe('NodeFirewall without the tool its mode needs', () => {
  // A PATH with neither nft nor iptables: the commands cannot start, as on a node without the package.
  const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-nopath-'));
  const env = { ...process.env, PATH: emptyDir };
  const options = { networks: { ipv4: network }, ipMasq: true, forwardRules: true, env };

  it('nftables mode names the nftables package and the key that chooses iptables', async () => {
    const fw = new NodeFirewall({ ...options, mode: 'nftables' });
    const err = await fw.install({ subnet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FirewallToolMissingError);
    expect((err as Error).message).toMatch(/install the Debian package "nftables"/);
    expect((err as Error).message).toMatch(/"EnableNFTables": false to use iptables/);
    expect(fw.stats.failures).toBe(1);
  });

  it('iptables mode names the iptables package and the key that chooses nftables', async () => {
    const fw = new NodeFirewall({ ...options, mode: 'iptables' });
    const err = await fw.install({ subnet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FirewallToolMissingError);
    expect((err as Error).message).toMatch(/install the Debian package "iptables"/);
    expect((err as Error).message).toMatch(/"EnableNFTables": true to use nftables/);
    fs.rmSync(emptyDir, { recursive: true, force: true });
  });
});
