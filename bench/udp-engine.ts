// Throughput of the udp backend's native engine: iperf3 TCP between two namespaces across the TUN
// tunnel, next to the same over the raw veth underlay, measured side by side in one run.
//
//   npm run build:dev && node dist-dev/bench/udp-engine.js [--seconds 5]
//
// Needs root, the built addon (native/build/Release/weft_udp.node), iproute2 and iperf3. Traffic stays
// inside the two namespaces this script creates (prefix wu<4 hex>); they are removed at the end.
import { type ChildProcess, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { UdpEngineStats } from '../src/backend/udp/engine.js';
import {
  createTestbed,
  destroyTestbed,
  inNamespace,
  type Testbed,
  testbedPrefix,
} from '../testkit/udp-testbed.js';

interface Measurement {
  name: string;
  gbitPerSecond: number;
  retransmits: number;
  sender?: UdpEngineStats;
  receiver?: UdpEngineStats;
  /** Where the kernel dropped: the sender's TUN queue (reader too slow), the receiver's UDP buffer. */
  kernelDrops?: { senderTunTxDropped: number; receiverUdpRcvbufErrors: number };
}

async function tunTxDropped(ns: string, tun: string): Promise<number> {
  const out = await inNamespace(ns, 'ip', ['-s', '-j', 'link', 'show', tun]);
  const [link] = JSON.parse(out) as { stats64?: { tx?: { dropped?: number } } }[];
  return link?.stats64?.tx?.dropped ?? 0;
}

async function udpRcvbufErrors(ns: string): Promise<number> {
  const snmp = await inNamespace(ns, 'cat', ['/proc/net/snmp']);
  const [names, values] = snmp.split('\n').filter((line) => line.startsWith('Udp:'));
  const index = names!.split(/\s+/).indexOf('RcvbufErrors');
  return Number(values!.split(/\s+/)[index]);
}

async function iperf(
  testbed: Testbed,
  serverAddress: string,
  seconds: number,
): Promise<{ bps: number; retransmits: number }> {
  const server: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', testbed.b.ns, 'iperf3', '-s', '-1', '-B', serverAddress, '-p', '5201'],
    { stdio: 'ignore' },
  );
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await inNamespace(
          testbed.a.ns,
          'iperf3',
          [
            '-c',
            serverAddress,
            '-p',
            '5201',
            '-t',
            String(seconds),
            '-O',
            '1',
            '-J',
            '--connect-timeout',
            '2000',
          ],
          (seconds + 30) * 1000,
        );
        const report = JSON.parse(out) as {
          end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } };
        };
        return {
          bps: report.end.sum_received.bits_per_second,
          retransmits: report.end.sum_sent.retransmits ?? 0,
        };
      } catch (error) {
        // The server may not listen yet: a bounded number of retries.
        if (attempt >= 30) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    if (server.pid !== undefined && server.exitCode === null) process.kill(server.pid, 'SIGTERM');
  }
}

async function measureTunnel(
  name: string,
  seconds: number,
  options: { vnetHdr: boolean; udpGso?: boolean; udpGro?: boolean },
  baseline?: (testbed: Testbed) => Promise<void>,
): Promise<Measurement> {
  const testbed = await createTestbed(testbedPrefix(), options);
  try {
    if (baseline) await baseline(testbed);
    const result = await iperf(testbed, testbed.b.tunnelAddress, seconds);
    return {
      name,
      gbitPerSecond: result.bps / 1e9,
      retransmits: result.retransmits,
      sender: testbed.a.engine!.stats(),
      receiver: testbed.b.engine!.stats(),
      kernelDrops: {
        senderTunTxDropped: await tunTxDropped(testbed.a.ns, testbed.a.tunName),
        receiverUdpRcvbufErrors: await udpRcvbufErrors(testbed.b.ns),
      },
    };
  } finally {
    await destroyTestbed(testbed);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string', default: '5' }, mode: { type: 'string', default: 'all' } },
  });
  const mode = values.mode;
  if (mode !== 'all' && mode !== 'offload' && mode !== 'plain') {
    throw new Error(`--mode must be all, offload or plain, got ${mode}`);
  }
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) {
    throw new Error(`--seconds must be an integer 1..60, got ${values.seconds}`);
  }
  const results: Measurement[] = [];
  const measureRaw = async (t: Testbed) => {
    const raw = await iperf(t, t.b.underlayAddress, seconds);
    results.push({
      name: 'raw veth (no tunnel)',
      gbitPerSecond: raw.bps / 1e9,
      retransmits: raw.retransmits,
    });
  };
  if (mode !== 'plain') {
    const name = 'udp engine, TUN offloads (vnet hdr + TSO, UDP GSO/GRO)';
    results.push(await measureTunnel(name, seconds, { vnetHdr: true }, measureRaw));
  }
  if (mode !== 'offload') {
    const name = 'udp engine, plain TUN (recvmmsg/sendmmsg batches)';
    results.push(
      await measureTunnel(name, seconds, { vnetHdr: false }, mode === 'plain' ? measureRaw : undefined),
    );
  }

  const raw = results.find((r) => r.name.startsWith('raw'))!;
  console.log(`iperf3 TCP, ${seconds} s per run, namespace a -> b`);
  for (const r of results) {
    const ratio =
      r === raw ? '' : `  (${((r.gbitPerSecond / raw.gbitPerSecond) * 100).toFixed(1)}% of raw veth)`;
    console.log(
      `${r.name.padEnd(58)} ${r.gbitPerSecond.toFixed(2).padStart(7)} Gbit/s  retransmits ${r.retransmits}${ratio}`,
    );
    if (r.sender && r.receiver) {
      const s = r.sender;
      const d = r.receiver;
      const ratio = (a: number, b: number) => (b ? (a / b).toFixed(1) : '-');
      const drops = (x: UdpEngineStats) =>
        JSON.stringify(Object.fromEntries(Object.entries(x.drops).filter(([, v]) => v > 0)));
      console.log(
        `    sender: ${s.txPackets} packets out, ${ratio(s.txPackets, s.tunReads)} per TUN read, ` +
          `${ratio(s.txPackets, s.udpSends)} per sendmmsg; drops ${drops(s)}; features ${JSON.stringify(s.features)}`,
      );
      console.log(
        `    receiver: ${d.rxPackets} packets in, ${ratio(d.udpDatagramsReceived, d.udpRecvs)} datagrams per recvmmsg, ` +
          `${ratio(d.rxPackets, d.tunWrites)} packets per TUN write; drops ${drops(d)}`,
      );
      console.log(`    kernel drops: ${JSON.stringify(r.kernelDrops)}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
