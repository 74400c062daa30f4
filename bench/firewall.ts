// The node's firewall rule set (dual stack: masquerade + forward + tunnel NOTRACK), nftables vs iptables, side by
// side in one run, through weft's own code paths:
//
//   apply   from nothing to the full rule set: nftables = one `nft -j list table` per table, one `nft -f`
//           transaction, one read each to confirm; iptables = `iptables-save -t …` per table and family, one
//           `iptables-restore --noflush` per family, the confirming reads
//   check   the steady state every --iptables-resync period costs (everything in place, nothing written):
//           nftables = one `nft -j list table` per table; iptables = one `iptables-save -t …` per table and family
//
//   npm run build:dev && node dist-dev/bench/firewall.js [--rounds 20]
//
// Needs root, nft and iptables. Each mode works in its own namespace (run prefix wt<4 hex>), removed at the end,
// also on failure. No packets are sent. Rounds alternate between the modes so other load hits both alike.
import { parseArgs } from 'node:util';
import { runCommand, runCommandChecked } from '../src/core/index.js';
import {
  Firewall,
  iptablesRuleSets,
  Nftables,
  nftTables,
  planFirewallPolicy,
  WEFT_IPTABLES_CHAINS,
} from '../src/firewall/index.js';
import { parseCidr } from '../src/ip/index.js';
import { registerNamespace, runPrefix, unregisterNamespace } from '../testkit/run.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 500) throw new Error('--rounds must be 1..500');

const policy = planFirewallPolicy({
  networks: { ipv4: parseCidr('10.244.0.0/16'), ipv6: parseCidr('fd00:10:244::/56') },
  lease: { subnet: parseCidr('10.244.7.0/24'), ipv6Subnet: parseCidr('fd00:10:244:7::/64') },
  ipMasq: true,
  forwardRules: true,
  tunnelNotrack: { port: 8472, families: [4, 6] },
  randomFully: true,
});
const desiredNft = nftTables(policy);
const desiredIpt = iptablesRuleSets(policy);

const prefix = `${runPrefix()}fb`;
const ns = { nft: `${prefix}n`, ipt: `${prefix}i` };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function main(): Promise<void> {
  for (const name of Object.values(ns)) {
    await runCommandChecked('ip', ['netns', 'add', name]);
    registerNamespace(name);
  }
  try {
    const nft = new Nftables({ netns: ns.nft });
    const ipt = new Firewall({ netns: ns.ipt });
    const samples = {
      nftApply: [] as number[],
      iptApply: [] as number[],
      nftCheck: [] as number[],
      iptCheck: [] as number[],
    };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['nft', 'ipt'] as const) : (['ipt', 'nft'] as const);
      for (const mode of order) {
        if (mode === 'nft') {
          samples.nftApply.push(await timed(() => nft.ensure(desiredNft, desiredNft)));
          samples.nftCheck.push(
            await timed(async () => {
              if ((await nft.ensure(desiredNft, desiredNft)).repaired) throw new Error('nft check rewrote');
            }),
          );
          await nft.ensure([], desiredNft); // back to nothing for the next apply (not timed)
        } else {
          samples.iptApply.push(await timed(() => ipt.ensure(desiredIpt)));
          samples.iptCheck.push(
            await timed(async () => {
              if ((await ipt.ensure(desiredIpt)).repaired) throw new Error('iptables check rewrote');
            }),
          );
          await ipt.removeChains([4, 6], WEFT_IPTABLES_CHAINS);
        }
      }
    }
    const rules = desiredNft.flatMap((t) => t.chains.flatMap((c) => c.rules)).length;
    const iptRules = desiredIpt.reduce((n, s) => n + s.rules.length, 0);
    process.stdout.write(
      `firewall: the node's dual-stack rule set (${rules} nftables rules in ${desiredNft.length} tables; ` +
        `${iptRules} iptables rules incl. jumps), ${rounds} rounds, median ms\n\n`,
    );
    const row = (what: string, n: number[], i: number[]): void => {
      const ratio = median(n) / median(i);
      const verdict = ratio <= 1 ? 'met' : 'NOT met';
      process.stdout.write(
        `${what.padEnd(8)} nftables ${median(n).toFixed(1).padStart(7)} ms   iptables ${median(i).toFixed(1).padStart(7)} ms   ` +
          `nftables/iptables ${ratio.toFixed(2)}   (goal ≤ 1.00: ${verdict})\n`,
      );
    };
    row('apply', samples.nftApply, samples.iptApply);
    row('check', samples.nftCheck, samples.iptCheck);
    process.stdout.write(
      `\nnft -f transactions: ${nft.transactions} (${rounds} applies + ${rounds} removals; checks wrote none)\n`,
    );
  } finally {
    for (const name of Object.values(ns)) {
      await runCommand('ip', ['netns', 'del', name]);
      unregisterNamespace(name);
    }
  }
}

await main();
