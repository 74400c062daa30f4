// One worker process of `bench/leases --workers K`: it holds a share of the simulated nodes (each its own
// EtcdSubnetManager and etcd connection, as in the one-process variant), warms their connections, says "ready",
// and on "go" runs every node's acquisition at once. It sends back each acquisition's latency, the subnets
// handed out and the CPU it used, then exits. Started by bench/leases.ts only (fork, IPC); loopback traffic only.
import { parseNetworkConfigText } from '../src/config/index.js';
import { formatCidr } from '../src/ip/index.js';
import { silentLogger } from '../src/log/index.js';
import { EtcdSubnetManager } from '../src/subnet/index.js';
import {
  acquireAt,
  LEASES_CONFIG,
  type WorkerReply,
  type WorkerRequest,
  warmConnections,
} from './leases-shared.js';

function send(message: WorkerReply): void {
  process.send?.(message);
}

async function run(request: WorkerRequest): Promise<void> {
  const config = parseNetworkConfigText(LEASES_CONFIG);
  const managers = Array.from(
    { length: request.count },
    () =>
      new EtcdSubnetManager({
        endpoints: [request.endpoint],
        prefix: request.prefix,
        renewMargin: 60,
        logger: silentLogger(),
      }),
  );
  try {
    await warmConnections(managers, request.shape.priorRead);
    await new Promise<void>((resolve) => {
      process.once('message', () => resolve());
      send({ type: 'ready' });
    });
    const cpu0 = process.cpuUsage();
    const results = await Promise.all(
      managers.map(async (m, i) => {
        const { lease, ms } = await acquireAt(m, config, request.first + i, request.shape);
        return { subnet: lease.subnet ? formatCidr(lease.subnet) : '', ms };
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    send({
      type: 'done',
      latencies: results.map((r) => r.ms),
      subnets: results.map((r) => r.subnet),
      cpuMs: (cpu.user + cpu.system) / 1000,
    });
  } finally {
    await Promise.all(managers.map((m) => m.close()));
  }
}

process.once('message', (request: WorkerRequest) => {
  run(request).then(
    () => process.disconnect?.(),
    (err: unknown) => {
      send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      process.exitCode = 1;
      process.disconnect?.();
    },
  );
});
