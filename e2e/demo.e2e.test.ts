// `npm run demo` run for real, non-interactively (piped, so plain output), under its own prefix and state dir:
// a full run after a crashed one, Ctrl-C with a second demo refused meanwhile, --keep then --down, and udp.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DemoUsageError, parseDemoArgs } from '../demo/options.js';
import { isDemoNamespace, namespaceTeardownOrder } from '../demo/teardown.js';
import { makeRunTempDir, run, runIn, sleep } from '../testkit/index.js';
import { isRecordedProcessAlive } from '../testkit/run.js';
import { REPO_ROOT } from '../testkit/weft-cluster.js';

const CLI = path.join(REPO_ROOT, 'dist-dev/demo/cli.js');
// `wdt` + 4 letters: never the default `wdemo`, so a developer's own demo is not disturbed.
const PREFIX = `wdt${[...randomBytes(4)].map((b) => String.fromCharCode(97 + (b % 26))).join('')}`;
let stateDir = '';
const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  WEFT_DEMO_PREFIX: PREFIX,
  WEFT_DEMO_STATE_DIR: stateDir,
  NO_COLOR: '',
});
const stateFile = (): string => path.join(stateDir, `${PREFIX}.json`);

/** A demo started in the background with its output collected. */
class DemoProcess {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  async waitFor(re: RegExp, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.output)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`demo exited before printing ${re}:\n${this.output}`);
      }
      if (Date.now() > deadline)
        throw new Error(`demo did not print ${re} in ${timeoutMs} ms:\n${this.output}`);
      await sleep(50);
    }
  }
}

const background: DemoProcess[] = [];

function startDemo(args: string[]): DemoProcess {
  const d = new DemoProcess(
    spawn(process.execPath, [CLI, ...args], {
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: REPO_ROOT,
    }),
  );
  background.push(d);
  return d;
}

async function demo(args: string[]) {
  const r = await run(process.execPath, [CLI, ...args], { env: env(), cwd: REPO_ROOT, timeoutMs: 150_000 });
  return { ...r, all: `${r.stdout}\n${r.stderr}` };
}

/** PIDs whose command line names the prefix (weftd's file flags, etcd's name and data dir). */
function processesNamingPrefix(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
      if (cmdline.includes(PREFIX) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

async function leftovers() {
  const ns = await run('ip', ['netns', 'list']);
  return {
    namespaces: ns.stdout
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(PREFIX)),
    tempDirs: fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith(`${PREFIX}-`)),
    stateFile: fs.existsSync(stateFile()),
    processes: processesNamingPrefix(),
  };
}

const NOTHING_LEFT = { namespaces: [], tempDirs: [], stateFile: false, processes: [] };

/** Leftovers are removed asynchronously by the kernel/init (zombies reaped): allow a short bounded wait. */
async function expectNothingLeft(): Promise<void> {
  let last = await leftovers();
  for (let i = 0; i < 40 && JSON.stringify(last) !== JSON.stringify(NOTHING_LEFT); i++) {
    await sleep(100);
    last = await leftovers();
  }
  expect(last).toEqual(NOTHING_LEFT);
}

const LEASE_KEY = /^ {2}\/coreos\.com\/network\/subnets\/(10\.244\.\d+\.0)-24$/gm;

/** The matrix rows: `  n1p1  10.244.3.2  ·  ✓ 0.12 …`. */
function matrixRows(output: string): string[] {
  return output.split('\n').filter((l) => /^ {2}n\d+p\d+ {2}10\.244\./.test(l));
}

function expectFullRun(output: string, backend: string, nodes: number, podsPerNode: number): void {
  const pods = nodes * podsPerNode;
  expect(output).not.toMatch(/\x1b\[/); // piped: no colors, no spinner
  const leases = [...output.matchAll(LEASE_KEY)].map((m) => m[1]);
  expect(leases).toHaveLength(nodes);
  expect(new Set(leases).size).toBe(nodes);
  for (let i = 1; i <= nodes; i++) expect(output).toContain(`"PublicIP":"192.168.77.${10 + i}"`);

  const rows = matrixRows(output);
  expect(rows).toHaveLength(pods);
  for (const row of rows) {
    expect(row.match(/✓ \d+(\.\d+)?/g)).toHaveLength(pods - 1);
    expect(row).not.toMatch(/✗|!/);
  }
  expect(output).toContain(`all ${pods * (pods - 1)} pairs answered`);

  expect(output).toMatch(
    /n1p1 \(10\.244\.\d+\.\d+ on n1\) → n2p1 \(10\.244\.\d+\.\d+ on n2\): \d+(\.\d+)? [GM]bit\/s/,
  );

  for (let i = 1; i <= nodes; i++) {
    const line = output.split('\n').find((l) => l.startsWith(`  n${i}  10.244.`));
    expect(line, `status line of n${i}`).toBeDefined();
    expect(line).toContain(`192.168.77.${10 + i}`);
    expect(line).toContain(backend);
    expect(line).toMatch(new RegExp(`peers \\d/${nodes - 1} healthy`));
    expect(line).toContain('reconcile ok');
    // The status subnet is one of the leases etcd shows.
    const subnet = /10\.244\.\d+\.0/.exec(line ?? '')?.[0];
    expect(leases).toContain(subnet);
  }
}

describe('npm run demo: flags and names (no root needed)', () => {
  it('parses flags and rejects bad ones with a message naming the flag', () => {
    expect(parseDemoArgs([], {})).toMatchObject({
      command: 'run',
      backend: 'vxlan',
      nodes: 3,
      podsPerNode: 2,
    });
    expect(parseDemoArgs(['--backend', 'udp', '--keep'], {})).toMatchObject({ backend: 'udp', keep: true });
    expect(() => parseDemoArgs(['--backend', 'gre'], {})).toThrow(
      /--backend must be one of vxlan, host-gw, udp/,
    );
    expect(() => parseDemoArgs(['--nodes', '1'], {})).toThrow(/--nodes must be 2-8/);
    expect(() => parseDemoArgs(['--down', '--keep'], {})).toThrow(/--down takes no other flags/);
    expect(() => parseDemoArgs(['--bogus'], {})).toThrow(DemoUsageError);
    expect(() => parseDemoArgs([], { WEFT_DEMO_PREFIX: 'wt12ab' })).toThrow(/WEFT_DEMO_PREFIX/);
  });

  it('knows its namespaces and removes pods first, the underlay last', () => {
    expect(
      ['wdemou', 'wdemoe', 'wdemon3', 'wdemop12', 'wdemo2n1'].every((n) => isDemoNamespace('wdemo', n)),
    ).toBe(true);
    expect(
      ['wdemo', 'wdemon', 'wdemox1', 'wt12abn1', 'wdemonn1'].some((n) => isDemoNamespace('wdemo', n)),
    ).toBe(false);
    expect(namespaceTeardownOrder(['wdemou', 'wdemon1', 'wdemoe', 'wdemop1'], 'wdemo')).toEqual([
      'wdemop1',
      'wdemon1',
      'wdemoe',
      'wdemou',
    ]);
  });
});

describe('npm run demo (root, real cluster)', () => {
  beforeAll(async () => {
    stateDir = makeRunTempDir('demostate');
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
    const r = await demo(['--backend', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--backend must be one of');
  });

  afterAll(async () => {
    for (const d of background)
      if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    await demo(['--down']).catch(() => undefined);
  });

  it('cleans up after a crashed demo, then shows leases, a full ✓ matrix, iperf3 and status, and leaves nothing', async () => {
    const crashed = startDemo([]);
    await crashed.waitFor(/✓ start weftd on n1 n2 n3/);
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    const left = await leftovers();
    expect(left.namespaces.length).toBeGreaterThan(0);
    expect(left.stateFile).toBe(true);

    const r = await demo([]);
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toMatch(/✓ clean up leftovers of a crashed demo \(pid \d+\)/);
    expectFullRun(r.stdout, 'vxlan flannel.1', 3, 2);
    expect(r.stdout).toMatch(/✓ tear down/);
    await expectNothingLeft();
  });

  it('Ctrl-C tears everything down and exits 130; a second demo meanwhile is told one is running', async () => {
    const first = startDemo(['--backend', 'host-gw']);
    await first.waitFor(/✓ start weftd on/);

    const second = await demo([]);
    expect(second.code, second.all).toBe(3);
    expect(second.stderr).toMatch(/A weft demo is already running \(pid \d+, host-gw/);
    expect(second.stdout).toBe('');

    first.child.kill('SIGINT');
    const exit = await first.exited;
    expect(exit.code, first.output).toBe(130);
    expect(first.output).toContain('Interrupted: tearing down');
    expect(first.output).toMatch(/✓ tear down/);
    await expectNothingLeft();
  });

  it('--keep leaves a working cluster, refuses a second demo, and --down removes all of it', async () => {
    const r = await demo(['--keep', '--backend', 'host-gw']);
    expect(r.code, r.all).toBe(0);
    expectFullRun(r.stdout, 'host-gw', 3, 2);
    expect(r.stdout).toContain('The demo keeps running');
    expect(r.stdout).toContain(`ip netns exec ${PREFIX}n1 ip route`);
    expect(r.stdout).toContain(
      'etcdctl --endpoints=http://192.168.77.2:2379 get --prefix /coreos.com/network/subnets',
    );
    expect(r.stdout).toContain('curl -s http://127.0.0.1:10256/metrics');
    expect(r.stdout).toContain(`WEFT_DEMO_PREFIX=${PREFIX} npm run demo -- --down`);

    const state = JSON.parse(fs.readFileSync(stateFile(), 'utf8')) as {
      mode: string;
      processes: Array<{ pid: number; startTime: string | null; role: string }>;
      pods: Array<{ netns: string; ip: string; node: string }>;
    };
    expect(state.mode).toBe('kept');
    expect(state.processes.map((p) => p.role).sort()).toEqual(['etcd', 'weftd n1', 'weftd n2', 'weftd n3']);
    expect(state.processes.every(isRecordedProcessAlive)).toBe(true);
    // The demo process is gone, the overlay still carries traffic.
    const from = state.pods[0]!;
    const to = state.pods.find((p) => p.node !== from.node)!;
    const ping = await runIn(from.netns, 'ping', ['-n', '-c', '2', '-i', '0.2', '-W', '2', to.ip]);
    expect(ping.code, ping.stdout).toBe(0);

    const second = await demo([]);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain('A weft demo started with --keep is still up');
    expect(second.stderr).toContain('--down');

    const down = await demo(['--down']);
    expect(down.code, down.all).toBe(0);
    expect(down.stdout).toMatch(/✓ tear down the kept demo \(host-gw\).*4 processes/);
    expect(state.processes.some(isRecordedProcessAlive)).toBe(false);
    await expectNothingLeft();

    const again = await demo(['--down']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to tear down');
  });

  it('runs the udp backend', async () => {
    const r = await demo(['--backend', 'udp', '--nodes', '2', '--pods', '1']);
    expect(r.code, r.all).toBe(0);
    expectFullRun(r.stdout, 'udp flannel0', 2, 1);
    await expectNothingLeft();
  });
});
