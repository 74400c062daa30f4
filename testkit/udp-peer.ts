// A stand-in udp peer for the udp e2e tests, run inside a test namespace (`node dist-dev/testkit/udp-peer.js …`):
//
//   listen <address> <port> [seconds]            print one JSON line per datagram received, for at most `seconds`
//                                                (default 120): {"from":"a.b.c.d:p","bytes":n,"inner":{src,dst,protocol},
//                                                "text":"<short printable payload>"}
//   send <address> <port> <to> <toPort> <hex>…   send each hex string as one datagram from address:port, then exit
//   connect <host> <port>                        open a TCP connection, print {"connect":"ok"|"<error code>"|"timeout"}
//                                                (an ICMP net-unreachable makes it fail at once with ENETUNREACH)
//
// With `listen` on a node's UDP port it holds that port (the `auto` test makes vxlan's port taken this way).
// `ipv4UdpPacket` builds the inner packets the tests forge.
import { createSocket } from 'node:dgram';
import { connect as tcpConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { internetChecksum, parseIp } from '../src/ip/index.js';

function ipv4Number(text: string): number {
  const ip = parseIp(text);
  if (ip.family !== 4) throw new Error(`expected an IPv4 address, got ${text}`);
  return Number(ip.value);
}

/** A bare IPv4/UDP packet (valid header checksum, UDP checksum 0 = none) as flannel's udp backend carries it. */
export function ipv4UdpPacket(
  src: string,
  dst: string,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array,
  ttl = 64,
): Uint8Array {
  const total = 20 + 8 + payload.length;
  const p = new Uint8Array(total);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, total);
  v.setUint16(4, 0x5745); // identification
  v.setUint16(6, 0x4000); // DF
  p[8] = ttl;
  p[9] = 17;
  v.setUint32(12, ipv4Number(src));
  v.setUint32(16, ipv4Number(dst));
  v.setUint16(10, internetChecksum(p, 0, 20));
  v.setUint16(20, srcPort);
  v.setUint16(22, dstPort);
  v.setUint16(24, 8 + payload.length);
  p.set(payload, 28);
  return p;
}

function ipText(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

/** The inner packet's addresses and protocol when the datagram starts with an IPv4 header. */
function innerOf(message: Buffer): { src: string; dst: string; protocol: number } | undefined {
  if (message.length < 20 || message[0]! >> 4 !== 4) return undefined;
  return {
    src: ipText(message.readUInt32BE(12)),
    dst: ipText(message.readUInt32BE(16)),
    protocol: message[9]!,
  };
}

function port(text: string | undefined, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new Error(`${what}: expected a port 1..65535, got ${text}`);
  return n;
}

function listen(address: string, bindPort: number, seconds: number): void {
  const socket = createSocket({ type: 'udp4' });
  socket.on('message', (message, rinfo) => {
    const text =
      message.length <= 64 && /^[\x20-\x7e]*$/.test(message.toString('latin1'))
        ? message.toString('latin1')
        : undefined;
    const line = {
      from: `${rinfo.address}:${rinfo.port}`,
      bytes: message.length,
      inner: innerOf(message),
      text,
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  });
  socket.on('error', (err) => {
    process.stderr.write(`udp-peer: ${err.message}\n`);
    process.exit(1);
  });
  socket.bind({ address, port: bindPort, exclusive: true }, () => {
    process.stdout.write(`${JSON.stringify({ listening: `${address}:${bindPort}` })}\n`);
  });
  setTimeout(() => process.exit(0), seconds * 1000).unref();
  // Keep running until the timer or a signal.
  setInterval(() => undefined, 1 << 30);
}

function send(address: string, bindPort: number, to: string, toPort: number, hexes: string[]): void {
  const socket = createSocket({ type: 'udp4' });
  socket.on('error', (err) => {
    process.stderr.write(`udp-peer: ${err.message}\n`);
    process.exit(1);
  });
  socket.bind({ address, port: bindPort, exclusive: true }, async () => {
    for (const hex of hexes) {
      if (!/^([0-9a-f]{2})+$/i.test(hex)) throw new Error(`not a hex datagram: ${hex.slice(0, 20)}`);
      await new Promise<void>((resolve, reject) =>
        socket.send(Buffer.from(hex, 'hex'), toPort, to, (err) => (err ? reject(err) : resolve())),
      );
    }
    socket.close();
  });
}

function connect(host: string, toPort: number): void {
  const done = (result: string) => {
    process.stdout.write(`${JSON.stringify({ connect: result })}\n`);
    process.exit(0);
  };
  const socket = tcpConnect({ host, port: toPort });
  // 10 s: Linux sends a SYN at 0, 1, 3 and 7 s. An ICMP error that arrives while connect() still holds the socket
  // lock is kept as a soft error only (tcp_v4_err), and the connect then fails on a retransmission's ICMP; a 3 s
  // limit raced the third SYN (seen once per few CI runs as 'timeout').
  socket.setTimeout(10_000, () => done('timeout'));
  socket.once('connect', () => done('ok'));
  socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
}

function main(argv: string[]): void {
  const [command, address, bindPort, ...rest] = argv;
  if (command === 'listen' && address !== undefined) {
    const seconds = rest[0] === undefined ? 120 : Number(rest[0]);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600)
      throw new Error(`seconds: expected 1..3600, got ${rest[0]}`);
    listen(address, port(bindPort, 'port'), seconds);
    return;
  }
  if (command === 'send' && address !== undefined && rest.length >= 3) {
    const [to, toPort, ...hexes] = rest;
    send(address, port(bindPort, 'port'), to!, port(toPort, 'toPort'), hexes);
    return;
  }
  if (command === 'connect' && address !== undefined) {
    connect(address, port(bindPort, 'port'));
    return;
  }
  throw new Error(
    'usage: udp-peer listen <address> <port> [seconds] | send <address> <port> <to> <toPort> <hex>… | connect <host> <port>',
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
