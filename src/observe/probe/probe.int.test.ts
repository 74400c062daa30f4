// Peer probes over real ICMP (root): two namespaces joined by a veth, the "peer" namespace owning tunnel
// addresses (a subnet's network address, v4 and v6, as flannel.N does) on its loopback, the "node" namespace
// routing the overlay subnet to it. The prober runs as a child process inside the node namespace (a raw
// socket belongs to the namespace it is created in) and prints JSON lines; the test takes the veth down and
// up and checks the health transitions, each reported once.
//
// The child is dist-dev/testkit/probe-child.js. `npm test` builds dist first; when that file is missing or
// older than its sources, beforeAll compiles just probe-child.ts and its imports into dist with tsc.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  registerNamespace,
  registerProcess,
  runPrefix,
  unregisterNamespace,
  unregisterProcess,
} from '../../../testkit/run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'dist-dev/testkit/probe-child.js');
/** The child's sources: a build older than any of them is rebuilt. */
const SOURCE_DIRS = ['testkit', 'src/observe', 'src/observe/probe', 'src/ip', 'src/core', 'src/log'];
const isRoot = process.getuid?.() === 0;

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${[cmd, ...args].join(' ')} failed: ${err.message}\n${stderr}${stdout}`));
        else resolve({ stdout, stderr });
      },
    );
  });
}

function newestSourceMtime(): number {
  const files = SOURCE_DIRS.flatMap((dir) =>
    fs
      .readdirSync(path.join(ROOT, dir))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `${dir}/${f}`),
  );
  return Math.max(...files.map((f) => fs.statSync(path.join(ROOT, f)).mtimeMs));
}

/** Compiles probe-child.ts (and what it imports) into dist/ unless an up-to-date build is there. */
async function ensureProbeCliBuilt(): Promise<void> {
  if (fs.existsSync(CLI) && fs.statSync(CLI).mtimeMs >= newestSourceMtime()) return;
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  await run(
    process.execPath,
    [
      tsc,
      '--outDir',
      path.join(ROOT, 'dist-dev'),
      '--rootDir',
      ROOT,
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--lib',
      'es2023',
      '--types',
      'node',
      '--strict',
      '--skipLibCheck',
      '--sourceMap',
      path.join(ROOT, 'testkit/probe-child.ts'),
    ],
    180_000,
  );
}

interface SocketStats {
  family: 4 | 6;
  kernelFilter: boolean;
  received: number;
}

interface ProbeEvent {
  event: string;
  sent?: number;
  elapsedMs?: number;
  beats?: number;
  healthy?: number;
  peerSeries?: number;
  weftSeries?: number;
  sockets?: SocketStats[];
  key?: string;
  from?: string;
  to?: string;
  rttMs?: number | null;
  health?: string;
}

/** Run prefix + `o` (observe): swept with the run's other leftovers after a crash. */
const PREFIX = `${runPrefix()}o`;
const NODE_NS = `${PREFIX}n`;
const PEER_NS = `${PREFIX}p`;
const NODE_VETH = `${PREFIX}vn`;
const PEER_VETH = `${PREFIX}vp`;

async function ipIn(ns: string, args: string[]): Promise<void> {
  await run('ip', ['-n', ns, ...args]);
}

async function createTopology(): Promise<void> {
  for (const ns of [NODE_NS, PEER_NS]) {
    registerNamespace(ns);
    await run('ip', ['netns', 'add', ns]);
    await ipIn(ns, ['link', 'set', 'lo', 'up']);
    // Keep IPv6 addresses while a link is down, so bringing the veth back restores the path.
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.keep_addr_on_down=1']);
  }
  await ipIn(NODE_NS, [
    'link',
    'add',
    NODE_VETH,
    'type',
    'veth',
    'peer',
    'name',
    PEER_VETH,
    'netns',
    PEER_NS,
  ]);
  await ipIn(NODE_NS, ['addr', 'add', '10.99.0.1/24', 'dev', NODE_VETH]);
  await ipIn(NODE_NS, ['addr', 'add', 'fd99::1/64', 'dev', NODE_VETH, 'nodad']);
  await ipIn(PEER_NS, ['addr', 'add', '10.99.0.2/24', 'dev', PEER_VETH]);
  await ipIn(PEER_NS, ['addr', 'add', 'fd99::2/64', 'dev', PEER_VETH, 'nodad']);
  // The peer's tunnel addresses: its subnets' network addresses, as on flannel.N / flannel-v6.N.
  await ipIn(PEER_NS, ['addr', 'add', '10.5.2.0/32', 'dev', 'lo']);
  await ipIn(PEER_NS, ['addr', 'add', 'fd05:2::/128', 'dev', 'lo', 'nodad']);
  await ipIn(NODE_NS, ['link', 'set', NODE_VETH, 'up']);
  await ipIn(PEER_NS, ['link', 'set', PEER_VETH, 'up']);
  await ipIn(NODE_NS, ['route', 'add', '10.5.2.0/24', 'via', '10.99.0.2']);
  await ipIn(NODE_NS, ['-6', 'route', 'add', 'fd05:2::/64', 'via', 'fd99::2']);
}

/**
 * Waits until the peer's tunnel addresses answer ping (bounded): a fresh veth may drop the first neighbour
 * solicitation, and the kernel retries only after a second, which the test must not mistake for the prober's.
 */
async function waitForPath(address: string): Promise<void> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await run('ip', ['netns', 'exec', NODE_NS, 'ping', '-n', '-q', '-c', '1', '-W', '1', address], 5000);
      return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
  }
  throw new Error(`the test topology does not carry pings to ${address}: ${last}`);
}

async function deleteTopology(): Promise<void> {
  for (const ns of [NODE_NS, PEER_NS]) {
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    unregisterNamespace(ns);
  }
}

class ProbeChild {
  readonly events: ProbeEvent[] = [];
  stderr = '';
  private exit: Promise<number | null>;

  constructor(private readonly child: ChildProcess) {
    let buffered = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() !== '') this.events.push(JSON.parse(line) as ProbeEvent);
        nl = buffered.indexOf('\n');
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    if (child.pid !== undefined) registerProcess(child.pid);
  }

  /** Waits (at most `timeoutMs`) until `predicate` holds for the events; returns whether it did. */
  async waitFor(predicate: (events: ProbeEvent[]) => boolean, timeoutMs = 20_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (predicate(this.events)) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return predicate(this.events);
  }

  transitions(key: string): string[] {
    return this.events
      .filter((e) => e.event === 'transition' && e.key === key)
      .map((e) => `${e.from}->${e.to}`);
  }

  results(key: string): ProbeEvent[] {
    return this.events.filter((e) => e.event === 'result' && e.key === key);
  }

  async stop(): Promise<number | null> {
    const pid = this.child.pid;
    // A child that printed `stopped` is already on its way out: a signal in its exit path would kill it.
    const exiting = this.events.some((e) => e.event === 'stopped');
    if (!exiting && this.child.exitCode === null && this.child.signalCode === null)
      this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const code = await this.exit;
    clearTimeout(timer);
    if (pid !== undefined) unregisterProcess(pid);
    return code;
  }
}

function spawnProbeChild(args: string[]): ProbeChild {
  return new ProbeChild(
    spawn('ip', ['netns', 'exec', NODE_NS, process.execPath, CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/**
 * ICMP the prober has no use for, sent into the node namespace: echo requests from the peer (v4 and v6), and
 * destination-unreachable errors the peer (a router without a route) returns for the node's pings to 10.77.0.1.
 * Bounded by count. Returns how many of each were sent into the node.
 */
async function unwantedIcmp(): Promise<{ requests: number; unreachable: number }> {
  const requests = 200;
  for (const [family, node] of [
    ['-4', '10.99.0.1'],
    ['-6', 'fd99::1'],
  ]) {
    await run('ip', [
      'netns',
      'exec',
      PEER_NS,
      'ping',
      family!,
      '-n',
      '-q',
      '-c',
      `${requests}`,
      '-i',
      '0.002',
      node!,
    ]);
  }
  // ping exits 1 when nothing answers; it counts the errors that came back ("+N errors"). The peer's
  // kernel throttles them (route error_cost), so how many arrive is read, not assumed.
  const unreachable = await new Promise<number>((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', NODE_NS, 'ping', '-n', '-q', '-c', '20', '-i', '0.01', '-W', '1', '10.77.0.1'],
      { timeout: 30_000, encoding: 'utf8' },
      (_err, stdout) => resolve(Number(/\+(\d+) errors/.exec(stdout)?.[1] ?? 0)),
    );
  });
  return { requests, unreachable };
}

describe.skipIf(!isRoot)('peer probes over ICMP in network namespaces', () => {
  let child: ProbeChild | undefined;

  beforeAll(async () => {
    await ensureProbeCliBuilt();
    await createTopology();
    await waitForPath('10.5.2.0');
    await waitForPath('fd05:2::');
    // The peer routes for the node but has no route to 10.77.0.0/24: it answers net-unreachable, unthrottled.
    await run('ip', [
      'netns',
      'exec',
      PEER_NS,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      'net.ipv4.icmp_ratelimit=0',
    ]);
    await ipIn(NODE_NS, ['route', 'add', '10.77.0.0/24', 'via', '10.99.0.2']);
    // A loopback-routed prefix: every address of it answers echo from the node namespace itself.
    await ipIn(NODE_NS, ['route', 'add', 'local', '10.64.0.0/16', 'dev', 'lo']);
  }, 240_000);

  afterAll(async () => {
    try {
      await child?.stop();
    } finally {
      await deleteTopology();
    }
  });

  it('marks peers unhealthy after N lost probes when the veth goes down, and healthy after a reply', async () => {
    child = new ProbeChild(
      spawn(
        'ip',
        [
          'netns',
          'exec',
          NODE_NS,
          process.execPath,
          CLI,
          '--target',
          'v4=10.5.2.0',
          '--target',
          'v6=fd05:2::',
          '--target',
          'underlay=10.99.0.2',
          '--overlay',
          '10.5.0.0/16',
          '--overlay',
          'fd05::/16',
          '--interval-ms',
          '200',
          '--timeout-ms',
          '150',
          '--unhealthy-after',
          '3',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const c = child;
    const diagnose = (): string =>
      `events: ${JSON.stringify(c.events.slice(-20))}\nstderr: ${c.stderr.slice(-2000)}`;

    // The underlay address is outside the overlay: refused, never probed.
    expect(await c.waitFor((ev) => ev.some((e) => e.event === 'started')), diagnose()).toBe(true);
    expect(c.events.find((e) => e.event === 'rejected')).toMatchObject({ key: 'underlay' });

    // Both tunnel addresses answer: unknown -> healthy, with an RTT.
    const healthy = (key: string) => (ev: ProbeEvent[]) =>
      ev.some((e) => e.event === 'transition' && e.key === key && e.to === 'healthy');
    expect(await c.waitFor(healthy('v4')), diagnose()).toBe(true);
    expect(await c.waitFor(healthy('v6')), diagnose()).toBe(true);
    expect(c.results('v4').find((e) => e.rttMs !== null)?.rttMs).toBeGreaterThan(0);
    expect(c.results('v6').find((e) => e.rttMs !== null)?.rttMs).toBeGreaterThan(0);

    // Link down: after 3 losses in a row each peer turns unhealthy, once.
    await ipIn(PEER_NS, ['link', 'set', PEER_VETH, 'down']);
    const unhealthy = (key: string) => (ev: ProbeEvent[]) =>
      ev.some((e) => e.event === 'transition' && e.key === key && e.to === 'unhealthy');
    expect(await c.waitFor(unhealthy('v4')), diagnose()).toBe(true);
    expect(await c.waitFor(unhealthy('v6')), diagnose()).toBe(true);
    const lostBefore = c.results('v4').length;
    // More losses follow; they are no new transition and no new log line.
    expect(await c.waitFor(() => c.results('v4').length >= lostBefore + 4), diagnose()).toBe(true);
    expect(c.transitions('v4')).toEqual(['unknown->healthy', 'healthy->unhealthy']);
    const downResults = c.results('v4').slice(-4);
    expect(downResults.every((e) => e.rttMs === null && e.health === 'unhealthy')).toBe(true);
    expect(
      c.stderr.split('\n').filter((l) => l.includes('peer v4 unreachable through the overlay')),
    ).toHaveLength(1);

    // Link up: one reply makes each peer healthy again.
    await ipIn(PEER_NS, ['link', 'set', PEER_VETH, 'up']);
    const recovered = (key: string) => (ev: ProbeEvent[]) =>
      ev.some(
        (e) => e.event === 'transition' && e.key === key && e.from === 'unhealthy' && e.to === 'healthy',
      );
    expect(await c.waitFor(recovered('v4')), diagnose()).toBe(true);
    expect(await c.waitFor(recovered('v6')), diagnose()).toBe(true);
    expect(c.transitions('v4')).toEqual(['unknown->healthy', 'healthy->unhealthy', 'unhealthy->healthy']);
    expect(c.transitions('v6')).toEqual(['unknown->healthy', 'healthy->unhealthy', 'unhealthy->healthy']);
    expect(c.stderr).toContain('peer v4 reachable again through the overlay');

    // SIGTERM stops it cleanly.
    expect(await c.stop()).toBe(0);
    expect(c.events.at(-1)?.event).toBe('stopped');
    expect(c.results('underlay')).toHaveLength(0);
  });

  it('lets only echo replies reach JavaScript with the kernel ICMP filter; without it every ICMP packet does', async () => {
    const received = async (
      filter: boolean,
    ): Promise<{
      sent: number;
      sockets: SocketStats[];
      flood: { requests: number; unreachable: number };
    }> => {
      const c = spawnProbeChild([
        '--target',
        'v4=10.5.2.0',
        '--target',
        'v6=fd05:2::',
        '--interval-ms',
        '200',
        '--timeout-ms',
        '150',
        '--quiet',
        ...(filter ? [] : ['--no-icmp-filter']),
      ]);
      child = c;
      const diagnose = (): string =>
        `events: ${JSON.stringify(c.events.slice(-5))}\nstderr: ${c.stderr.slice(-2000)}`;
      expect(await c.waitFor((ev) => ev.some((e) => e.event === 'started')), diagnose()).toBe(true);
      const flood = await unwantedIcmp();
      expect(await c.stop()).toBe(0);
      const stopped = c.events.find((e) => e.event === 'stopped');
      expect(stopped?.sockets, diagnose()).toHaveLength(2);
      return { sent: stopped!.sent!, sockets: stopped!.sockets!, flood };
    };
    const on = await received(true);
    const total = (r: { sockets: SocketStats[] }): number => r.sockets.reduce((n, s) => n + s.received, 0);
    expect(on.sockets.every((s) => s.kernelFilter)).toBe(true);
    expect(on.sent).toBeGreaterThan(0);
    // One reply per echo at most: none of the flood's requests or errors got through.
    expect(total(on)).toBeLessThanOrEqual(on.sent);
    const off = await received(false);
    expect(off.sockets.every((s) => !s.kernelFilter)).toBe(true);
    const v4 = off.sockets.find((s) => s.family === 4)!.received;
    const v6 = off.sockets.find((s) => s.family === 6)!.received;
    // Without the filter: every request and error (v4), every request (v6), on top of the replies.
    expect(off.flood.unreachable).toBeGreaterThan(0);
    expect(v4).toBeGreaterThanOrEqual(off.flood.requests + off.flood.unreachable);
    expect(v6).toBeGreaterThanOrEqual(off.flood.requests);
    expect(on.flood.unreachable).toBeGreaterThan(0);
  });

  it('keeps to the probe budget however many targets, and caps the per-peer metric series', async () => {
    const targets = 40;
    const budget = 20;
    const c = spawnProbeChild([
      '--target-prefix',
      '10.64.0.0/16',
      '--target-count',
      `${targets}`,
      '--max-probes-per-second',
      `${budget}`,
      '--interval-ms',
      '100',
      '--timeout-ms',
      '100',
      '--max-peer-series',
      '5',
      '--duration-ms',
      '4000',
      '--quiet',
    ]);
    child = c;
    const diagnose = (): string =>
      `events: ${JSON.stringify(c.events.slice(-3))}\nstderr: ${c.stderr.slice(-2000)}`;
    expect(await c.waitFor((ev) => ev.some((e) => e.event === 'stopped'), 30_000), diagnose()).toBe(true);
    const stopped = c.events.find((e) => e.event === 'stopped')!;
    // Every target was probed (one round is 40 / 20 = 2 s) and answered.
    expect(stopped.healthy, diagnose()).toBe(targets);
    // The budget is an upper bound: a loaded machine sends fewer, never more (an echo may leave up to 50 ms
    // early: one more at 20/s). The interval alone (100 ms, 40 targets) would have sent 400 per second.
    expect(stopped.sent!).toBeLessThanOrEqual(Math.ceil((budget * (stopped.elapsedMs! + 50)) / 1000) + 1);
    expect(stopped.sent!).toBeGreaterThanOrEqual(targets);
    // 5 peers with detail, 5 per-peer families each at most; the aggregates carry the rest.
    expect(stopped.peerSeries!).toBeGreaterThan(0);
    expect(stopped.peerSeries!).toBeLessThanOrEqual(5 * 5);
    expect(await c.stop()).toBe(0);
  });
});
