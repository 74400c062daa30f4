// Kube mode at Kubernetes' limit: the test API server (this process) holds 5000 nodes; a child process runs
// weft's kube subnet manager alone (no kernel: what the manager costs, not the reconciler) and reports:
//   - start → ready: child process start → own lease acquired and the first snapshot of every peer
//     (paged LIST, 500 per page as client-go) — goal < 5 s;
//   - a storm of heartbeat updates (status.conditions[].lastHeartbeatTime and a kubelet annotation, as
//     kubelets write them): lease batches produced (goal 0: no kernel work) and CPU µs per update in the
//     child (goal ≤ 100 µs: bounded, parsing the watch line dominates);
//   - updates that touch weft's fields (public-ip): each one exactly one `changed` delta, never a snapshot;
//   - VmRSS/VmHWM of the child: after importing the manager, idle after ready with all nodes, after the storms.
//
//   npm run build:dev && node dist-dev/bench/kube-scale.js [--nodes 5000] [--storm 5000] [--touch 500] [--cpu-prof DIR]
//
// Loopback only; the server and the child are stopped and the temp dirs removed at the end (also on failure).
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type FakeApiServer, makeNode, startFakeApiServer } from '../testkit/kube-apiserver/server.js';
import { processMemory } from '../testkit/proc-memory.js';
import { makeRunTempDir, removeRunTempDir } from '../testkit/run.js';

const PREFIX = 'flannel.alpha.coreos.com';
const NET_CONF = '{"Network":"10.0.0.0/8","Backend":{"Type":"vxlan"}}';

function memory(): { rssMiB: number; hwmMiB: number } {
  const m = processMemory();
  return { rssMiB: m.rss, hwmMiB: m.hwm };
}

type ToParent =
  | { type: 'imported'; atMs: number; memory: ReturnType<typeof memory> }
  | { type: 'ready'; atMs: number; peers: number; memory: ReturnType<typeof memory> }
  | {
      type: 'marker';
      batches: number;
      snapshots: number;
      events: number;
      cpuUs: number;
      memory: ReturnType<typeof memory>;
    };
type ToChild = { type: 'measure' } | { type: 'exit' };

// ---------------------------------------------------------------- child: the kube subnet manager alone
async function child(kubeconfig: string, netConf: string): Promise<void> {
  const send = (m: ToParent): void => {
    process.send?.(m);
  };
  const { KubeSubnetManager } = await import('../src/subnet/kube/index.js');
  const { silentLogger } = await import('../src/log/index.js');
  send({ type: 'imported', atMs: performance.now(), memory: memory() });
  const m = new KubeSubnetManager({
    kubeconfigFile: kubeconfig,
    netConfigPath: netConf,
    nodeName: 'node-0',
    env: {},
    logger: silentLogger(),
  });
  const config = await m.getNetworkConfig();
  const abort = new AbortController();
  await m.acquireLease(
    {
      config,
      attrs: {
        publicIP: '10.255.0.1',
        backendType: 'vxlan',
        backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' },
      },
    },
    abort.signal,
  );
  let batches = 0;
  let snapshots = 0;
  let events = 0;
  let cpuStart = process.cpuUsage();
  process.on('message', (msg: ToChild) => {
    // A clean exit writes the CPU profile when one was asked for.
    if (msg.type === 'exit') process.exit(0);
    if (msg.type === 'measure') {
      batches = 0;
      snapshots = 0;
      events = 0;
      cpuStart = process.cpuUsage();
    }
  });
  for await (const batch of m.watchLeases(abort.signal)) {
    batches++;
    if (batch.type === 'snapshot') {
      snapshots++;
      if (snapshots === 1)
        send({ type: 'ready', atMs: performance.now(), peers: batch.leases.length, memory: memory() });
      continue;
    }
    events += batch.events.length;
    // The marker node's public-ip tells that every update sent before it has been processed.
    if (batch.events.some((e) => e.lease.attrs.publicIP === '10.255.255.254')) {
      const cpu = process.cpuUsage(cpuStart);
      send({ type: 'marker', batches, snapshots, events, cpuUs: cpu.user + cpu.system, memory: memory() });
    }
  }
}

// ---------------------------------------------------------------- parent: the API server and the figures
function ipOf(i: number): string {
  return `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

/** A node as a kubelet registers it, with flannel's annotations and a realistic status (~3 KiB of JSON). */
function registeredNode(i: number) {
  const node = makeNode(`node-${i}`, {
    podCIDR: `10.${i >> 8}.${i & 255}.0/24`,
    internalIP: ipOf(i),
    labels: {
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'node.kubernetes.io/instance-type': 'm5.large',
    },
    annotations: {
      [`${PREFIX}/kube-subnet-manager`]: 'true',
      [`${PREFIX}/backend-type`]: 'vxlan',
      [`${PREFIX}/backend-data`]: JSON.stringify({
        VNI: 1,
        VtepMAC: `02:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:01`,
      }),
      [`${PREFIX}/public-ip`]: ipOf(i),
      'node.alpha.kubernetes.io/ttl': '0',
      'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
    },
  });
  node.status = {
    ...node.status,
    capacity: { cpu: '2', memory: '8009412Ki', pods: '110', 'ephemeral-storage': '101430960Ki' },
    allocatable: { cpu: '2', memory: '7907012Ki', pods: '110', 'ephemeral-storage': '93478772582' },
    conditions: ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((type) => ({
      type,
      status: type === 'Ready' ? 'True' : 'False',
      lastHeartbeatTime: '2026-01-01T00:00:00Z',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      reason: type === 'Ready' ? 'KubeletReady' : `KubeletHasNo${type}`,
      message: type === 'Ready' ? 'kubelet is posting ready status' : `kubelet has no ${type}`,
    })),
    nodeInfo: {
      machineID: 'ec2f0f0c6a2e4b0b9b3f0b2e7f0e0c1a',
      systemUUID: 'ec2f0f0c-6a2e-4b0b-9b3f-0b2e7f0e0c1a',
      bootID: '3c1f0f0c-6a2e-4b0b-9b3f-0b2e7f0e0c1a',
      kernelVersion: '6.1.0-18-cloud-amd64',
      osImage: 'Debian GNU/Linux 12 (bookworm)',
      containerRuntimeVersion: 'containerd://1.7.13',
      kubeletVersion: 'v1.31.0',
      kubeProxyVersion: 'v1.31.0',
      operatingSystem: 'linux',
      architecture: 'amd64',
    },
    images: Array.from({ length: 8 }, (_, k) => ({
      names: [
        `registry.k8s.io/image-${k}@sha256:${'0123456789abcdef'.repeat(4)}`,
        `registry.k8s.io/image-${k}:v1.${k}.0`,
      ],
      sizeBytes: 10_000_000 + k,
    })),
  };
  return node;
}

function heartbeat(server: FakeApiServer, i: number, beat: number): void {
  server.nodes.update(`node-${i}`, (n) => {
    const time = new Date(Date.UTC(2026, 0, 1, 0, 0, beat % 60)).toISOString().replace(/\.\d{3}Z$/, 'Z');
    n.status = {
      ...n.status,
      conditions: (n.status?.conditions ?? []).map((c) => ({ ...c, lastHeartbeatTime: time })),
    };
    n.metadata.annotations = { ...n.metadata.annotations, 'node.alpha.kubernetes.io/ttl': String(beat % 15) };
    return n;
  });
}

function verdict(met: boolean): string {
  return met ? 'met' : 'NOT met';
}

async function parent(): Promise<void> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '5000' },
      storm: { type: 'string', default: '5000' },
      touch: { type: 'string', default: '500' },
      /** Write a V8 CPU profile of the child (the manager) into this directory. */
      'cpu-prof': { type: 'string' },
    },
  });
  const nodes = Number(values.nodes);
  const storm = Number(values.storm);
  const touch = Number(values.touch);
  for (const [name, v, max] of [
    ['nodes', nodes, 65_000],
    ['storm', storm, 100_000],
    ['touch', touch, 10_000],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max)
      throw new Error(`--${name} must be an integer from 1 to ${max}`);
  }
  if (touch > nodes) throw new Error('--touch must not exceed --nodes');

  const dir = makeRunTempDir('kube-scale');
  // Enough history that the watch never falls behind during the storms (a real server keeps ~75 s).
  const server = await startFakeApiServer({ historyLimit: storm + touch + 100, bookmarkIntervalMs: 1000 });
  let childProcess: ReturnType<typeof fork> | undefined;
  try {
    const netConf = path.join(dir, 'net-conf.json');
    fs.writeFileSync(netConf, NET_CONF);
    server.nodes.add(makeNode('node-0', { podCIDR: '10.255.0.0/24' }));
    for (let i = 1; i <= nodes; i++) server.nodes.add(registeredNode(i));
    const nodeBytes = JSON.stringify(server.nodes.get('node-1')).length;

    const self = fileURLToPath(import.meta.url);
    const messages: ToParent[] = [];
    const waiters: Array<() => void> = [];
    const next = async <T extends ToParent['type']>(
      type: T,
      timeoutMs: number,
    ): Promise<Extract<ToParent, { type: T }>> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = messages.findIndex((m) => m.type === type);
        if (i >= 0) return messages.splice(i, 1)[0] as Extract<ToParent, { type: T }>;
        if (Date.now() > deadline) throw new Error(`the child sent no ${type} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    };
    const spawnedAt = performance.now();
    const profileDir = values['cpu-prof'];
    childProcess = fork(self, ['--child', server.kubeconfigPath, netConf], {
      stdio: 'inherit',
      execArgv: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    });
    childProcess.on('message', (m: ToParent) => {
      messages.push(m);
      for (const w of waiters.splice(0)) w();
    });
    const imported = await next('imported', 60_000);
    const ready = await next('ready', 120_000);
    // The child's clock starts at its process start; the parent's fork → child start gap is not weft's.
    const readyMs = ready.atMs;
    const pages = server.requests.filter((r) => r.path === '/api/v1/nodes' && !r.watch).length;

    // Storm: every node heartbeats once (in rounds), then a marker change.
    const marker = (ip: string): void => {
      server.nodes.annotate('node-1', { [`${PREFIX}/public-ip`]: ip });
    };
    childProcess.send({ type: 'measure' } satisfies ToChild);
    await new Promise((r) => setTimeout(r, 100));
    for (let k = 0; k < storm; k++) {
      heartbeat(server, 1 + (k % nodes), Math.floor(k / nodes));
      if (k % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    marker('10.255.255.254');
    const afterStorm = await next('marker', 120_000);
    const usPerHeartbeat = afterStorm.cpuUs / storm;
    marker(ipOf(1));
    await new Promise((r) => setTimeout(r, 300));

    // Updates that touch weft's fields: a new public-ip on `touch` nodes.
    childProcess.send({ type: 'measure' } satisfies ToChild);
    await new Promise((r) => setTimeout(r, 100));
    for (let k = 1; k <= touch; k++) {
      server.nodes.annotate(`node-${k + 1 > nodes ? k : k + 1}`, {
        [`${PREFIX}/public-ip`]: `10.254.${k >> 8}.${k & 255}`,
      });
      if (k % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    marker('10.255.255.254');
    const afterTouch = await next('marker', 120_000);
    const usPerTouch = afterTouch.cpuUs / touch;

    const f = (x: number, digits = 1): string => x.toFixed(digits);
    const lines = [
      `kube-scale: ${nodes} nodes (~${f(nodeBytes / 1024)} KiB of JSON each), pages of 500, child = weft's kube subnet manager alone`,
      `  start → ready (child start → own lease + first snapshot, ${pages} list pages): ${f(readyMs, 0)} ms; goal < 5000 ms: ${verdict(readyMs < 5000)}`,
      `    (of which importing the manager: ${f(imported.atMs, 0)} ms; fork → ready seen by the parent: ${f(performance.now() - spawnedAt, 0)} ms incl. storms)`,
      `  snapshot leases: ${ready.peers} (goal ${nodes + 1}: every node and the own one, as flannel): ${verdict(ready.peers === nodes + 1)}`,
      `  heartbeat storm: ${storm} updates → ${afterStorm.batches - 1} lease batches besides the marker (goal 0, no kernel work): ${verdict(afterStorm.batches === 1 && afterStorm.snapshots === 0)}`,
      `    CPU per heartbeat update: ${f(usPerHeartbeat)} µs; goal ≤ 100 µs: ${verdict(usPerHeartbeat <= 100)}`,
      `  touching updates: ${touch} public-ip changes → ${afterTouch.events - 1} changed deltas, ${afterTouch.snapshots} snapshots (goal ${touch} and 0): ${verdict(afterTouch.events - 1 === touch && afterTouch.snapshots === 0)}`,
      `    CPU per touching update: ${f(usPerTouch)} µs`,
      `  memory (VmRSS / VmHWM, MiB): after import ${f(imported.memory.rssMiB)} / ${f(imported.memory.hwmMiB)}; ready with ${nodes} nodes ${f(ready.memory.rssMiB)} / ${f(ready.memory.hwmMiB)}; after the storms ${f(afterTouch.memory.rssMiB)} / ${f(afterTouch.memory.hwmMiB)}`,
      `    goal (issue 16, kube mode with ${nodes} nodes) peak ≤ 128 MiB: ${verdict(afterTouch.memory.hwmMiB <= 128)} (manager only; weftd adds the daemon, kernel and metrics)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    if (childProcess && childProcess.exitCode === null) {
      const exited = new Promise((r) => childProcess?.once('exit', r));
      childProcess.send({ type: 'exit' } satisfies ToChild);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      childProcess.kill('SIGKILL');
    }
    await server.stop();
    removeRunTempDir(dir);
  }
}

if (process.argv[2] === '--child') {
  const [, , , kubeconfig = '', netConf = ''] = process.argv;
  child(kubeconfig, netConf).catch((err: unknown) => {
    process.stderr.write(`kube-scale child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else {
  parent().catch((err: unknown) => {
    process.stderr.write(`kube-scale failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
