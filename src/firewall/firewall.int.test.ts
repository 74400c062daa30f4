// Root only. Everything happens inside namespaces named wf<4 hex>…, removed in `finally` even on failure:
// the root namespace's iptables, addresses and routes are never touched.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerNamespace, runPrefix } from '../../testkit/run.js';
import { sleep } from '../core/index.js';
import { parseCidr } from '../ip/index.js';
import {
  detectIptables,
  Firewall,
  type IptablesRuleSet,
  NodeFirewall,
  planForwardRules,
  planMasqRules,
  ruleText,
} from './index.js';

const prefix = `${runPrefix()}f`;
const ns = {
  node: `${prefix}n`,
  pod: `${prefix}p`,
  remotePod: `${prefix}r`,
  outside: `${prefix}o`,
  busy: `${prefix}b`,
};

const network = parseCidr('10.66.0.0/16');
const subnet = parseCidr('10.66.1.0/24');
const newSubnet = parseCidr('10.66.9.0/24');
const v6Network = parseCidr('fd66::/48');
const v6Subnet = parseCidr('fd66:0:0:1::/64');
// Addresses live only in this test's namespaces. 198.18.0.0/15 is the benchmarking range.
const POD = '10.66.1.5';
const REMOTE_POD = '10.66.2.7';
const NODE_OUTSIDE = '198.18.0.1';
const OUTSIDE = '198.18.0.2';
const PORT = 7777;

interface Result {
  stdout: string;
  stderr: string;
  code: number | null;
}

function run(cmd: string, args: string[], input?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ stdout, stderr, code });
    });
    child.stdin?.on('error', () => {
      // The command may exit before reading stdin; its exit code tells.
    });
    child.stdin?.end(input ?? '');
  });
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

const inNs = (name: string, cmd: string, ...args: string[]): Promise<string> =>
  sh('ip', 'netns', 'exec', name, cmd, ...args);

/** The `-A` lines of the chains weft cares about, as iptables-save prints them. */
async function savedLines(table: 'nat' | 'filter', family: 4 | 6 = 4): Promise<string[]> {
  const out = await inNs(ns.node, family === 4 ? 'iptables-save' : 'ip6tables-save', '-t', table);
  return out.split('\n').filter((l) => l.startsWith('-A '));
}

const flannelLines = (set: IptablesRuleSet, table: 'nat' | 'filter'): string[] =>
  set.rules.filter((r) => r.table === table).map(ruleText);

/** Connects `veth` pairs and addresses: pod ─ node ─ remote pod; node ─ outside. */
async function buildTopology(): Promise<void> {
  for (const name of Object.values(ns)) {
    await sh('ip', 'netns', 'add', name);
    registerNamespace(name);
  }
  const link = async (a: string, aIf: string, b: string, bIf: string): Promise<void> => {
    await sh('ip', 'link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b);
    await inNs(a, 'ip', 'link', 'set', aIf, 'up');
    await inNs(b, 'ip', 'link', 'set', bIf, 'up');
  };
  await link(ns.node, 'topod', ns.pod, 'eth0');
  await link(ns.node, 'toremote', ns.remotePod, 'eth0');
  await link(ns.node, 'toout', ns.outside, 'eth0');
  for (const name of Object.values(ns)) await inNs(name, 'ip', 'link', 'set', 'lo', 'up');
  // The node: gateway of its subnet, a route to the "remote" subnet, an address on the outside link.
  await inNs(ns.node, 'ip', 'addr', 'add', '10.66.1.1/24', 'dev', 'topod');
  await inNs(ns.node, 'ip', 'addr', 'add', '10.66.2.1/32', 'dev', 'toremote');
  await inNs(ns.node, 'ip', 'route', 'add', '10.66.2.0/24', 'dev', 'toremote');
  await inNs(ns.node, 'ip', 'addr', 'add', `${NODE_OUTSIDE}/24`, 'dev', 'toout');
  await inNs(ns.node, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
  await inNs(ns.pod, 'ip', 'addr', 'add', `${POD}/24`, 'dev', 'eth0');
  await inNs(ns.pod, 'ip', 'route', 'add', 'default', 'via', '10.66.1.1');
  await inNs(ns.remotePod, 'ip', 'addr', 'add', `${REMOTE_POD}/24`, 'dev', 'eth0');
  await inNs(ns.remotePod, 'ip', 'route', 'add', '10.66.2.1/32', 'dev', 'eth0');
  await inNs(ns.remotePod, 'ip', 'route', 'add', 'default', 'via', '10.66.2.1');
  // The outside host knows no route to pods: only masquerading lets it answer.
  await inNs(ns.outside, 'ip', 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'eth0');
}

const SERVER = `
const net = require('node:net');
const server = net.createServer((c) => c.end(c.remoteAddress + '\\n'));
server.listen(Number(process.argv[2]), process.argv[1], () => console.log('ready'));
setTimeout(() => process.exit(0), 120000).unref();
`;
const CLIENT = `
const net = require('node:net');
const c = net.connect(Number(process.argv[2]), process.argv[1]);
let data = '';
c.setTimeout(Number(process.argv[3]), () => { console.error('timeout'); process.exit(2); });
c.on('data', (d) => { data += d; });
c.on('end', () => { process.stdout.write(data); process.exit(0); });
c.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

const servers: ChildProcess[] = [];

/** A TCP server in `name` that answers each connection with the source address it saw. */
function startServer(name: string, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', name, process.execPath, '-e', SERVER, host, String(PORT)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    servers.push(child);
    let out = '';
    child.stdout?.on('data', (d) => {
      out += String(d);
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`server in ${name} exited with ${code}`)));
    child.on('error', reject);
  });
}

/**
 * The source address the server at host:PORT saw for a connection from the pod. A connection expected
 * to fail gets a short idle timeout; one expected to work gets a generous one.
 */
async function sourceSeenBy(host: string, timeoutMs = 10_000): Promise<string> {
  return (await inNs(ns.pod, process.execPath, '-e', CLIENT, host, String(PORT), String(timeoutMs))).trim();
}

async function removeAll(): Promise<void> {
  for (const child of servers) if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  for (const name of Object.values(ns)) await run('ip', ['netns', 'del', name]);
}

describe.skipIf(process.getuid?.() !== 0)('Firewall in a network namespace', () => {
  const masq = planMasqRules({ network, subnet });
  const forward = planForwardRules({ network });
  let firewall: Firewall;

  beforeAll(async () => {
    try {
      await buildTopology();
      await startServer(ns.outside, OUTSIDE);
      await startServer(ns.remotePod, REMOTE_POD);
    } catch (err) {
      await removeAll();
      throw err;
    }
    firewall = new Firewall({ netns: ns.node });
  });

  afterAll(async () => {
    await removeAll();
    const left = await sh('ip', 'netns', 'list');
    expect(left).not.toContain(prefix);
  });

  it('runs on iptables-nft with --random-fully available', async () => {
    const version = await detectIptables({ netns: ns.node });
    expect(version.randomFully).toBe(true);
    expect(['nf_tables', 'legacy']).toContain(version.backend);
  });

  it("installs exactly flannel's rules, and a second ensure changes nothing", async () => {
    const first = await firewall.ensure([masq, forward]);
    expect(first.repaired).toBe(true);
    expect(first.missing).toHaveLength(10);
    expect(await savedLines('nat')).toEqual(flannelLines(masq, 'nat'));
    expect(await savedLines('filter')).toEqual(flannelLines(forward, 'filter'));

    const repairsBefore = firewall.stats.repairs;
    const second = await firewall.ensure([masq, forward]);
    expect(second).toEqual({ repaired: false, missing: [], extra: [] });
    expect(firewall.stats.repairs).toBe(repairsBefore);
  });

  it('repairs a rule deleted by hand and a deleted jump, leaving foreign rules alone', async () => {
    const deleted = '-s 10.66.0.0/16 -d 10.66.1.0/24 -m comment --comment "flanneld masq" -j RETURN';
    await inNs(
      ns.node,
      'iptables',
      '-t',
      'nat',
      '-D',
      'FLANNEL-POSTRTG',
      '-s',
      '10.66.0.0/16',
      '-d',
      '10.66.1.0/24',
      '-m',
      'comment',
      '--comment',
      'flanneld masq',
      '-j',
      'RETURN',
    );
    await inNs(
      ns.node,
      'iptables',
      '-t',
      'filter',
      '-D',
      'FORWARD',
      '-m',
      'comment',
      '--comment',
      'flanneld forward',
      '-j',
      'FLANNEL-FWD',
    );
    await inNs(
      ns.node,
      'iptables',
      '-t',
      'nat',
      '-I',
      'POSTROUTING',
      '1',
      '-s',
      '172.17.0.0/16',
      '-j',
      'MASQUERADE',
    );

    const result = await firewall.ensure([masq, forward]);
    expect(result.repaired).toBe(true);
    expect(result.missing).toEqual([
      `-t nat -A FLANNEL-POSTRTG ${deleted}`,
      '-t filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
    ]);
    expect(await savedLines('nat')).toEqual([
      '-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE',
      ...flannelLines(masq, 'nat'),
    ]);
    expect(await savedLines('filter')).toEqual(flannelLines(forward, 'filter'));
    await inNs(
      ns.node,
      'iptables',
      '-t',
      'nat',
      '-D',
      'POSTROUTING',
      '-s',
      '172.17.0.0/16',
      '-j',
      'MASQUERADE',
    );
  });

  it('masquerades pod → outside to the node address and keeps pod → pod sources, with FORWARD policy DROP', async () => {
    await inNs(ns.node, 'iptables', '-P', 'FORWARD', 'DROP');
    expect(await sourceSeenBy(OUTSIDE)).toBe(NODE_OUTSIDE);
    expect(await sourceSeenBy(REMOTE_POD)).toBe(POD);
  });

  it('without the rules forwarding is dropped and the outside host cannot answer (the rules do the work)', async () => {
    await inNs(ns.node, 'iptables', '-t', 'filter', '-F', 'FLANNEL-FWD');
    await expect(sourceSeenBy(REMOTE_POD, 1500)).rejects.toThrow();
    await inNs(ns.node, 'iptables', '-t', 'nat', '-F', 'FLANNEL-POSTRTG');
    await inNs(ns.node, 'iptables', '-P', 'FORWARD', 'ACCEPT');
    await expect(sourceSeenBy(OUTSIDE, 1500)).rejects.toThrow();
    await inNs(ns.node, 'iptables', '-P', 'FORWARD', 'DROP');

    const result = await firewall.ensure([masq, forward]);
    expect(result.repaired).toBe(true);
    expect(result.missing).toHaveLength(8);
    expect(await sourceSeenBy(REMOTE_POD)).toBe(POD);
    expect(await sourceSeenBy(OUTSIDE)).toBe(NODE_OUTSIDE);
  });

  it("on a subnet change cleanup removes the old subnet's rules and ensure installs the new ones", async () => {
    const next = planMasqRules({ network, subnet: newSubnet });
    const cleaned = await firewall.cleanup(masq, [next, forward]);
    expect(cleaned.removed).toEqual([
      '-t nat -A FLANNEL-POSTRTG -s 10.66.1.0/24 -d 10.66.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
      '-t nat -A FLANNEL-POSTRTG -s 10.66.0.0/16 -d 10.66.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-t nat -A FLANNEL-POSTRTG ! -s 10.66.0.0/16 -d 10.66.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
    ]);
    expect((await savedLines('nat')).join('\n')).not.toContain('10.66.1.0/24');

    const result = await firewall.ensure([next, forward]);
    expect(result.repaired).toBe(true);
    expect(await savedLines('nat')).toEqual(flannelLines(next, 'nat'));
    expect(await savedLines('filter')).toEqual(flannelLines(forward, 'filter'));

    // Back to the original subnet for the remaining tests, this time without cleanup: ensure alone rewrites the chain.
    const back = await firewall.ensure([masq, forward]);
    expect(back.extra).toHaveLength(3);
    expect(await savedLines('nat')).toEqual(flannelLines(masq, 'nat'));
  });

  it('installs the IPv6 variant with ip6tables', async () => {
    const masq6 = planMasqRules({ network: v6Network, subnet: v6Subnet });
    const forward6 = planForwardRules({ network: v6Network });
    const result = await firewall.ensure([masq, forward, masq6, forward6]);
    expect(result.repaired).toBe(true);
    expect(result.missing).toHaveLength(10);
    expect(await savedLines('nat', 6)).toEqual(flannelLines(masq6, 'nat'));
    expect((await savedLines('nat', 6)).join('\n')).toContain('! -d ff00::/8');
    expect(await savedLines('filter', 6)).toEqual(flannelLines(forward6, 'filter'));
    expect(await savedLines('nat')).toEqual(flannelLines(masq, 'nat'));
    expect((await firewall.ensure([masq, forward, masq6, forward6])).repaired).toBe(false);
  });

  it('the periodic check task notices a deleted rule, repairs it with one transaction and beats', async () => {
    const node = new NodeFirewall({
      mode: 'iptables',
      networks: { ipv4: network },
      ipMasq: true,
      forwardRules: true,
      netns: ns.node,
    });
    await node.install({ subnet });
    await inNs(ns.node, 'iptables', '-t', 'nat', '-D', 'FLANNEL-POSTRTG', '1');
    const before = node.stats.transactions;
    const controller = new AbortController();
    const outcomes: boolean[] = [];
    let beats = 0;
    const loop = node
      .checkTask(100, (ok) => outcomes.push(ok))
      .run({
        signal: controller.signal,
        beat: () => {
          beats++;
        },
      });
    for (let i = 0; i < 200 && node.stats.repairs === 0; i++) await sleep(50);
    controller.abort();
    await loop;
    expect(node.stats.repairs).toBe(1);
    expect(node.stats.transactions).toBe(before + 1);
    expect(node.stats.failures).toBe(0);
    expect(beats).toBeGreaterThan(0);
    expect(outcomes).not.toContain(false);
    expect(await savedLines('nat')).toEqual(flannelLines(masq, 'nat'));
  });

  it('repairs a busy node restored from real iptables-save output, keeping foreign rules', async () => {
    const fixture = (name: string): string =>
      fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
    const load = await run(
      'ip',
      ['netns', 'exec', ns.busy, 'iptables-restore', '-w', '5'],
      fixture('busy-nat-v4.txt') + fixture('busy-filter-v4.txt'),
    );
    expect(load.stderr).toBe('');
    const busyMasq = planMasqRules({ network: parseCidr('10.5.0.0/16'), subnet: parseCidr('10.5.72.0/24') });
    const busyForward = planForwardRules({ network: parseCidr('10.5.0.0/16') });
    const busy = new Firewall({ netns: ns.busy });
    const result = await busy.ensure([busyMasq, busyForward]);
    expect(result.repaired).toBe(true);
    expect(result.extra).toHaveLength(3);
    const lines = async (table: string): Promise<string[]> =>
      (await inNs(ns.busy, 'iptables-save', '-t', table)).split('\n').filter((l) => l.startsWith('-A '));
    expect(await lines('nat')).toEqual([
      '-A PREROUTING -p tcp -m tcp --dport 8080 -m comment --comment "quote \\" and \\\\ here" -j DNAT --to-destination 10.5.72.7:80',
      '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE',
      ...flannelLines(busyMasq, 'nat'),
      '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]);
    expect(await lines('filter')).toEqual([
      '-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      ...flannelLines(busyForward, 'filter'),
    ]);
    expect(await inNs(ns.busy, 'iptables-save', '-t', 'filter')).toContain(':FORWARD DROP');
    expect((await busy.ensure([busyMasq, busyForward])).repaired).toBe(false);
  });

  it('reports a failing iptables command with its stderr and counts the failure', async () => {
    const broken = new Firewall({ netns: `${prefix}missing` });
    await expect(broken.ensure([masq])).rejects.toThrow(/iptables-save -t nat exited with code \d+: .*/);
    expect(broken.stats.failures).toBe(1);
  });
});
