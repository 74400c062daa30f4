// The native udp engine between two network namespaces (needs root, the built addon, iproute2 and ping).
// Traffic stays inside namespaces this file creates; all of them are removed in afterAll.
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipv4UdpPacket } from '../../../testkit/udp-peer.js';
import {
  createTestbed,
  destroyTestbed,
  inNamespace,
  runCommand,
  startNode,
  type Testbed,
  testbedPrefix,
  waitFor,
} from '../../../testkit/udp-testbed.js';
import { DROP_REASON_LABELS } from './counters.js';
import { UdpEngineOptionError, type UdpEngineStats } from './engine.js';

/** A valid inner IPv4/UDP packet as hex (the engine does not look past the IP header). */
function innerPacket(source: string, destination: string, ttl = 64, payloadLength = 8): string {
  return Buffer.from(
    ipv4UdpPacket(source, destination, 40000, 9, new Uint8Array(payloadLength), ttl),
  ).toString('hex');
}

/** A port the tests send from as the peer: not the engine's own (which nothing else can bind). */
const OTHER_PORT = 40000;

// Sends raw datagrams from inside a namespace, bound to a given source address and port.
const SEND_DATAGRAMS = `
const dgram = require('node:dgram');
const [bindAddress, bindPort, toAddress, toPort, ...hexes] = process.argv.slice(1);
const socket = dgram.createSocket({ type: 'udp4' });
socket.bind({ address: bindAddress, port: Number(bindPort) }, async () => {
  for (const hex of hexes) {
    await new Promise((resolve, reject) =>
      socket.send(Buffer.from(hex, 'hex'), Number(toPort), toAddress, (e) => (e ? reject(e) : resolve())));
  }
  socket.close();
});
`;

async function sendDatagrams(ns: string, from: string, fromPort: number, to: string, hexes: string[]) {
  await inNamespace(ns, process.execPath, [
    '-e',
    SEND_DATAGRAMS,
    from,
    String(fromPort),
    to,
    '8285',
    ...hexes,
  ]);
}

async function ping(ns: string, destination: string, count = 3): Promise<{ ok: boolean; output: string }> {
  try {
    const output = await inNamespace(ns, 'ping', [
      '-n',
      '-c',
      String(count),
      '-i',
      '0.2',
      '-W',
      '2',
      destination,
    ]);
    return { ok: true, output };
  } catch (error) {
    const cause = (error as Error).cause as { stdout?: string } | undefined;
    return { ok: false, output: cause?.stdout ?? String(error) };
  }
}

// A TCP sink that hashes what it receives, and a source that hashes what it sends.
const TCP_SINK = `
const net = require('node:net');
const crypto = require('node:crypto');
const [host, port] = process.argv.slice(1);
const server = net.createServer((socket) => {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  socket.on('data', (data) => { hash.update(data); bytes += data.length; });
  socket.on('end', () => {
    process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex') }) + '\\n');
    socket.end();
    server.close();
  });
});
server.listen(Number(port), host, () => process.stdout.write('listening\\n'));
setTimeout(() => process.exit(2), 50000).unref();
`;
const TCP_SOURCE = `
const net = require('node:net');
const crypto = require('node:crypto');
const [host, port, total] = process.argv.slice(1);
const hash = crypto.createHash('sha256');
const socket = net.connect(Number(port), host, async () => {
  let sent = 0;
  while (sent < Number(total)) {
    const chunk = crypto.randomBytes(Math.min(65536, Number(total) - sent));
    hash.update(chunk);
    sent += chunk.length;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  socket.end(() => process.stdout.write(JSON.stringify({ bytes: sent, sha256: hash.digest('hex') }) + '\\n'));
});
setTimeout(() => process.exit(2), 50000).unref();
`;

/** Sends `bytes` random bytes over TCP from a to b across the tunnel; returns what each end hashed. */
async function tcpTransfer(testbed: Testbed, bytes: number): Promise<{ sent: string; received: string }> {
  const port = '5201';
  const sink: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', testbed.b.ns, process.execPath, '-e', TCP_SINK, testbed.b.tunnelAddress, port],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    let output = '';
    const lines = new Promise<void>((resolve, reject) => {
      sink.stdout!.on('data', (data: Buffer) => {
        output += data.toString();
        if (output.includes('listening')) resolve();
      });
      sink.on('exit', (code) => reject(new Error(`TCP sink exited early with ${code}`)));
    });
    await lines;
    const finished = new Promise<void>((resolve) => sink.on('exit', () => resolve()));
    const sent = await inNamespace(
      testbed.a.ns,
      process.execPath,
      ['-e', TCP_SOURCE, testbed.b.tunnelAddress, port, String(bytes)],
      55_000,
    );
    await finished;
    return { sent: sent.trim(), received: output.replace('listening', '').trim() };
  } finally {
    if (sink.pid !== undefined && sink.exitCode === null) process.kill(sink.pid, 'SIGTERM');
  }
}

// Sends one UDP datagram from inside a namespace (to the discard port).
const UDP_PROBE = `
const socket = require('node:dgram').createSocket('udp4');
socket.send('probe', 9, process.argv[1], () => socket.close());
`;

async function udpProbe(ns: string, destination: string): Promise<void> {
  await inNamespace(ns, process.execPath, ['-e', UDP_PROBE, destination]);
}

// Tries to bind a UDP socket to address:port (reuseAddr as given); prints "bound" or the error code.
const BIND_PROBE = `
const [address, port, reuse] = process.argv.slice(1);
const socket = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: reuse === 'true' });
socket.on('error', (e) => { process.stdout.write(e.code ?? e.message); process.exit(0); });
socket.bind({ address, port: Number(port) }, () => { process.stdout.write('bound'); socket.close(); });
`;

// Sends an ICMP destination-unreachable message (quoting a made-up UDP packet) to an address through the
// namespace's routing, from a raw ICMP socket.
const SEND_ICMP_ERROR = `
const raw = require('raw-socket');
const message = Buffer.alloc(8 + 28);
message[0] = 3; // destination unreachable
message[1] = 1; // host unreachable
message[8] = 0x45;
raw.writeChecksum(message, 2, raw.createChecksum(message));
const socket = raw.createSocket({ protocol: raw.Protocol.ICMP });
socket.send(message, 0, message.length, process.argv[1], (err) => { if (err) throw err; socket.close(); });
`;

/**
 * ICMP destination-unreachable messages the namespace's stack accepted (Icmp InDestUnreachs in
 * /proc/net/snmp). Net-unreachable is a soft error that UDP and TCP sockets do not report, so the
 * kernel's own counter is how a test sees that the engine's reply got in (and was not a martian).
 */
async function icmpDestUnreachsReceived(ns: string): Promise<number> {
  const snmp = await inNamespace(ns, 'cat', ['/proc/net/snmp']);
  const [names, values] = snmp.split('\n').filter((line) => line.startsWith('Icmp:'));
  const index = names!.split(/\s+/).indexOf('InDestUnreachs');
  return Number(values!.split(/\s+/)[index]);
}

const stats = (testbed: Testbed, side: 'a' | 'b'): UdpEngineStats => testbed[side].engine!.stats();

for (const vnetHdr of [true, false]) {
  describe(`udp engine between two namespaces (vnetHdr ${vnetHdr})`, () => {
    let testbed: Testbed;

    beforeAll(async () => {
      testbed = await createTestbed(testbedPrefix(), { vnetHdr });
    });

    afterAll(async () => {
      if (testbed) await destroyTestbed(testbed);
    });

    it('carries ping across the tunnel and counts packets both ways', async () => {
      const result = await ping(testbed.a.ns, testbed.b.tunnelAddress);
      expect(result.ok, result.output).toBe(true);
      const a = stats(testbed, 'a');
      const b = stats(testbed, 'b');
      expect(a.txPackets).toBeGreaterThanOrEqual(3);
      expect(a.rxPackets).toBeGreaterThanOrEqual(3);
      expect(b.rxPackets).toBeGreaterThanOrEqual(3);
      expect(a.txBytes).toBeGreaterThanOrEqual(3 * 84);
      expect(a.features.vnetHdr).toBe(vnetHdr);
      // The addon's drop reasons are exactly the ones counters.ts labels (the one list on the TS side).
      expect(Object.keys(a.drops).sort()).toEqual(Object.keys(DROP_REASON_LABELS).sort());
      expect(a.drops.notIpv4).toBe(0);
      expect(a.running).toBe(true);
      expect(a.peers).toBe(1);
    });

    it('moves a TCP stream intact (segmentation and merging keep checksums right)', async () => {
      const { sent, received } = await tcpTransfer(testbed, 16 * 1024 * 1024);
      expect(JSON.parse(received)).toEqual(JSON.parse(sent));
      expect(JSON.parse(received).bytes).toBe(16 * 1024 * 1024);
      expect(stats(testbed, 'a').drops.malformed).toBe(0);
      expect(stats(testbed, 'b').drops.malformed).toBe(0);
    });

    it('drops datagrams from unknown senders, with forged sources, malformed or misaddressed, by reason', async () => {
      const { a, b } = testbed;
      // A second underlay address in b: an unknown sender, whatever its port.
      await runCommand('ip', ['-n', b.ns, 'addr', 'add', '192.168.78.3/24', 'dev', `${testbed.prefix}vb`]);
      const before = stats(testbed, 'a');
      const good = innerPacket('10.99.2.5', a.tunnelAddress);
      await sendDatagrams(b.ns, '192.168.78.3', 8285, a.underlayAddress, [good, good]);
      await sendDatagrams(b.ns, '192.168.78.3', OTHER_PORT, a.underlayAddress, [good]);
      // From the peer's address (any port, as through NAT): forged inner source, garbage, wrong destination,
      // TTL 1, and one good packet that is delivered.
      await sendDatagrams(b.ns, b.underlayAddress, OTHER_PORT, a.underlayAddress, [
        innerPacket('10.99.3.5', a.tunnelAddress),
        innerPacket('172.16.0.1', a.tunnelAddress),
        'deadbeef',
        '60000000000000000000000000000000000000000000',
        innerPacket('10.99.2.5', '10.99.7.1'),
        innerPacket('10.99.2.5', a.tunnelAddress, 1),
        good,
      ]);
      const settled = await waitFor(() => {
        const x = stats(testbed, 'a');
        return x.drops.ttlExpired > before.drops.ttlExpired && x.rxPackets > before.rxPackets;
      });
      expect(settled).toBe(true);
      const after = stats(testbed, 'a');
      expect(after.drops.unknownPeer - before.drops.unknownPeer).toBe(3);
      expect(after.drops.spoofedSource - before.drops.spoofedSource).toBe(2);
      expect(after.drops.malformed - before.drops.malformed).toBe(1);
      expect(after.drops.notIpv4 - before.drops.notIpv4).toBe(1);
      expect(after.drops.wrongDestination - before.drops.wrongDestination).toBe(1);
      expect(after.drops.ttlExpired - before.drops.ttlExpired).toBe(1);
      expect(after.rxPackets - before.rxPackets).toBe(1);
      // And the tunnel still works after all that.
      expect((await ping(a.ns, b.tunnelAddress, 1)).ok).toBe(true);
    });

    it('holds its address and port alone: a second socket cannot bind it, even with SO_REUSEADDR', async () => {
      const { a } = testbed;
      for (const reuseAddr of [false, true]) {
        const result = await inNamespace(a.ns, process.execPath, [
          '-e',
          BIND_PROBE,
          a.underlayAddress,
          String(8285),
          String(reuseAddr),
        ]);
        expect(result.trim(), `reuseAddr ${reuseAddr}`).toBe('EADDRINUSE');
      }
      expect(stats(testbed, 'a').running).toBe(true);
    });

    it('survives random and mutated datagrams from a peer, accounting for every one', async () => {
      const { a, b } = testbed;
      let seed = 0x9e3779b9;
      const random = () => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) / 0x100000000;
      };
      const datagrams: string[] = [];
      for (let i = 0; i < 300; i++) {
        const valid = Buffer.from(
          innerPacket('10.99.2.5', a.tunnelAddress, 64, Math.floor(random() * 40)),
          'hex',
        );
        const kind = i % 3;
        if (kind === 0) {
          // Pure noise of any length, including empty.
          const noise = Buffer.alloc(Math.floor(random() * 80));
          for (let j = 0; j < noise.length; j++) noise[j] = Math.floor(random() * 256);
          datagrams.push(noise.toString('hex'));
        } else if (kind === 1) {
          // A valid packet with one header byte changed (checksum, length, version, IHL...).
          const at = Math.floor(random() * 20);
          valid[at] = valid[at]! ^ (1 + Math.floor(random() * 255));
          datagrams.push(valid.toString('hex'));
        } else {
          // A valid packet cut short.
          datagrams.push(valid.subarray(0, Math.floor(random() * valid.length)).toString('hex'));
        }
      }
      const before = stats(testbed, 'a');
      const accounted = (x: UdpEngineStats) =>
        x.rxPackets + Object.values(x.drops).reduce((sum, n) => sum + n, 0);
      await sendDatagrams(b.ns, b.underlayAddress, OTHER_PORT, a.underlayAddress, datagrams);
      expect(await waitFor(() => accounted(stats(testbed, 'a')) - accounted(before) >= 300)).toBe(true);
      const after = stats(testbed, 'a');
      // Every datagram is counted once: dropped by some reason or (a header byte flip that kept it valid)
      // delivered. None vanishes, none crashes the engine.
      expect(accounted(after) - accounted(before)).toBe(300);
      expect(after.drops.malformed - before.drops.malformed).toBeGreaterThan(150);
      expect(after.running).toBe(true);
      expect((await ping(a.ns, b.tunnelAddress, 1)).ok).toBe(true);
    });

    it('answers an unroutable destination with ICMP net-unreachable, a ping too (never an ICMP error)', async () => {
      const before = stats(testbed, 'a');
      const received = await icmpDestUnreachsReceived(testbed.a.ns);
      await udpProbe(testbed.a.ns, '10.99.5.1');
      expect(await waitFor(() => stats(testbed, 'a').icmpSent > before.icmpSent)).toBe(true);
      expect(await icmpDestUnreachsReceived(testbed.a.ns)).toBe(received + 1);
      const after = stats(testbed, 'a');
      expect(after.drops.noRoute).toBeGreaterThan(before.drops.noRoute);
      expect(after.icmpSent).toBe(before.icmpSent + 1);
      // A ping gets its answer at once instead of timing out.
      const unreachable = await ping(testbed.a.ns, '10.99.5.1', 1);
      expect(unreachable.ok).toBe(false);
      expect(unreachable.output).toContain('Destination Net Unreachable');
      expect(stats(testbed, 'a').icmpSent).toBe(after.icmpSent + 1);
      // An ICMP error to an unroutable destination is dropped unanswered.
      const icmpBefore = stats(testbed, 'a').icmpSent;
      const noRouteBefore = stats(testbed, 'a').drops.noRoute;
      await inNamespace(testbed.a.ns, process.execPath, ['-e', SEND_ICMP_ERROR, '10.99.5.1']);
      expect(await waitFor(() => stats(testbed, 'a').drops.noRoute > noRouteBefore)).toBe(true);
      expect(stats(testbed, 'a').icmpSent).toBe(icmpBefore);
    });

    it('applies peer changes without restarting', async () => {
      const { a, b } = testbed;
      a.engine!.setPeers([]);
      expect(stats(testbed, 'a').peers).toBe(0);
      expect((await ping(a.ns, b.tunnelAddress, 1)).ok).toBe(false);
      const received = await icmpDestUnreachsReceived(a.ns);
      await udpProbe(a.ns, b.tunnelAddress);
      expect(await waitFor(async () => (await icmpDestUnreachsReceived(a.ns)) === received + 1)).toBe(true);

      // A peer entry at a port nobody listens on: a sends there, nothing arrives.
      a.engine!.setPeers([{ ...b.asPeer, port: 9999 }]);
      expect((await ping(a.ns, b.tunnelAddress, 1)).ok).toBe(false);

      a.engine!.setPeers([b.asPeer]);
      const restored = await ping(a.ns, b.tunnelAddress);
      expect(restored.ok, restored.output).toBe(true);
      expect(stats(testbed, 'a').running).toBe(true);
    });

    it('rejects invalid peers with an error naming the entry', () => {
      expect(() =>
        testbed.a.engine!.setPeers([
          testbed.b.asPeer,
          { subnet: '10.99.3.1/24', address: '1.2.3.4', port: 1 },
        ]),
      ).toThrow(/peers\[1\]\.subnet/);
      expect(() => testbed.a.engine!.setPeers([{ subnet: '10.99.3.0/24', address: 'x', port: 1 }])).toThrow(
        UdpEngineOptionError,
      );
      expect(() =>
        testbed.a.engine!.setPeers([{ subnet: '10.99.3.0/24', address: '1.2.3.4', port: 0 }]),
      ).toThrow(/peers\[0\]: option "port" must be an integer in 1\.\.65535/);
      // The previous table stays in force.
      expect(stats(testbed, 'a').peers).toBe(1);
    });

    it('stops leaving the device in place, and a new engine re-attaches to it', async () => {
      const { a, b } = testbed;
      a.engine!.stop();
      a.engine!.stop(); // idempotent
      expect(a.engine!.stats().running).toBe(false);
      const link = await runCommand('ip', ['-n', a.ns, '-j', 'link', 'show', a.tunName]);
      expect(JSON.parse(link)[0].ifname).toBe(a.tunName);
      expect(() => a.engine!.setPeers([])).toThrow(/already stopped/);

      await startNode(testbed, a);
      a.engine!.setPeers([b.asPeer]);
      const result = await ping(a.ns, b.tunnelAddress);
      expect(result.ok, result.output).toBe(true);
    });
  });
}

describe('udp engine with a peer behind port-translating NAT', () => {
  let testbed: Testbed;

  beforeAll(async () => {
    // A fresh testbed: b's conntrack table holds no flow yet, so b's first datagram is translated.
    testbed = await createTestbed(testbedPrefix(), { vnetHdr: true });
  });

  afterAll(async () => {
    if (testbed) await destroyTestbed(testbed);
  });

  it("accepts the peer's datagrams from the translated source port; the inner-source check stays", async () => {
    const { a, b } = testbed;
    // b's outgoing tunnel datagrams leave from 192.168.78.2:20000-20099 instead of :8285, as a NAT in front
    // of b would send them.
    const rule = [
      '-p',
      'udp',
      '--sport',
      '8285',
      '-j',
      'SNAT',
      '--to-source',
      `${b.underlayAddress}:20000-20099`,
    ];
    await inNamespace(b.ns, 'iptables', ['-w', '-t', 'nat', '-A', 'POSTROUTING', ...rule]);
    const before = stats(testbed, 'a');
    await udpProbe(b.ns, a.tunnelAddress);
    expect(await waitFor(() => stats(testbed, 'a').rxPackets > before.rxPackets)).toBe(true);
    const after = stats(testbed, 'a');
    expect(after.rxPackets - before.rxPackets).toBe(1);
    expect(after.drops.unknownPeer).toBe(before.drops.unknownPeer);
    // The datagram really went through the translation.
    const counters = await inNamespace(b.ns, 'iptables', [
      '-w',
      '-t',
      'nat',
      '-L',
      'POSTROUTING',
      '-v',
      '-n',
      '-x',
    ]);
    const snat = counters.split('\n').find((line) => line.includes('SNAT'));
    expect(Number(snat?.trim().split(/\s+/)[0])).toBeGreaterThanOrEqual(1);
    // From the NAT's address, a pod address of another peer is still refused.
    await sendDatagrams(b.ns, b.underlayAddress, 20100, a.underlayAddress, [
      innerPacket('10.99.3.5', a.tunnelAddress),
    ]);
    expect(await waitFor(() => stats(testbed, 'a').drops.spoofedSource > after.drops.spoofedSource)).toBe(
      true,
    );
  });
});

describe('udp engine when the kernel refuses UDP GSO (a lowered path MTU)', () => {
  let testbed: Testbed;

  beforeAll(async () => {
    testbed = await createTestbed(testbedPrefix(), { vnetHdr: true });
  });

  afterAll(async () => {
    if (testbed) await destroyTestbed(testbed);
  });

  it('falls back for the refused sends only, keeps the stream intact, and uses GSO again later', async () => {
    const { a, b } = testbed;
    const veth = `${testbed.prefix}va`;
    // Segments of ~1450 bytes no longer fit the path to b: every GSO send to b gets EINVAL.
    await runCommand('ip', [
      '-n',
      a.ns,
      'route',
      'add',
      `${b.underlayAddress}/32`,
      'dev',
      veth,
      'mtu',
      '1200',
    ]);
    const { sent, received } = await tcpTransfer(testbed, 4 * 1024 * 1024);
    expect(JSON.parse(received)).toEqual(JSON.parse(sent));
    const refused = stats(testbed, 'a');
    expect(refused.gsoFallbacks).toBeGreaterThan(0);
    expect(refused.drops.sendFailed).toBe(0);
    expect(refused.running).toBe(true);

    // The path MTU is back: once the back-off has passed, GSO sends succeed again (not off until restart).
    await runCommand('ip', ['-n', a.ns, 'route', 'del', `${b.underlayAddress}/32`, 'dev', veth]);
    let recovered = false;
    for (let attempt = 0; attempt < 40 && !recovered; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = stats(testbed, 'a').gsoFallbacks;
      await tcpTransfer(testbed, 1024 * 1024);
      const now = stats(testbed, 'a');
      recovered = now.features.udpGso && now.gsoFallbacks === before;
    }
    expect(recovered).toBe(true);
  });
});
