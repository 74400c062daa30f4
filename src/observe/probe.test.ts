import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../ip/index.js';
import { silentLogger } from '../log/index.js';
import {
  encodeEchoRequest,
  forEachBounded,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMPV6_ECHO_REPLY,
  internetChecksum,
  jittered,
  PeerHealthTracker,
  PeerProber,
  parseEchoReply,
  probeTargetsForLeases,
  shuffled,
} from './probe.js';

const T0 = new Date('2025-03-01T12:00:00Z');

describe('PeerHealthTracker', () => {
  it('starts unknown, becomes healthy on a reply, unhealthy after N losses in a row, healthy after one reply', () => {
    const tracker = new PeerHealthTracker({ unhealthyAfter: 3 });
    tracker.setPeers([{ key: 'a', address: '10.5.1.0' }]);
    expect(tracker.get('a')?.health).toBe('unknown');

    expect(tracker.record('a', 0.5, T0)).toEqual({
      key: 'a',
      address: '10.5.1.0',
      from: 'unknown',
      to: 'healthy',
      consecutiveLosses: 0,
      rttMs: 0.5,
    });
    expect(tracker.record('a', null, T0)).toBeNull();
    expect(tracker.record('a', null, T0)).toBeNull();
    expect(tracker.get('a')?.health).toBe('healthy');
    expect(tracker.record('a', null, T0)).toMatchObject({
      from: 'healthy',
      to: 'unhealthy',
      consecutiveLosses: 3,
    });
    // Further losses are no new transition: logged once, not every interval.
    expect(tracker.record('a', null, T0)).toBeNull();
    expect(tracker.get('a')?.consecutiveLosses).toBe(4);
    const later = new Date(T0.getTime() + 5000);
    expect(tracker.record('a', 0.7, later)).toMatchObject({ from: 'unhealthy', to: 'healthy', rttMs: 0.7 });
    expect(tracker.record('a', 0.6, later)).toBeNull();
    const state = tracker.get('a');
    expect(state).toMatchObject({
      health: 'healthy',
      consecutiveLosses: 0,
      lastRttMs: 0.6,
      sent: 7,
      lost: 4,
    });
    expect(state?.lastReplyAt).toEqual(later);
    expect(state?.lossRatio).toBeCloseTo(4 / 7, 9);
  });

  it('turns an unknown peer unhealthy after N losses without ever having answered', () => {
    const tracker = new PeerHealthTracker({ unhealthyAfter: 2 });
    tracker.setPeers([{ key: 'a', address: '10.5.1.0' }]);
    expect(tracker.record('a', null, T0)).toBeNull();
    expect(tracker.record('a', null, T0)).toMatchObject({ from: 'unknown', to: 'unhealthy' });
    expect(tracker.get('a')?.lastReplyAt).toBeNull();
  });

  it('computes the loss ratio over the recent window only', () => {
    const tracker = new PeerHealthTracker({ lossWindow: 4 });
    tracker.setPeers([{ key: 'a', address: '10.5.1.0' }]);
    for (const rtt of [null, null, null, null, 1, 1]) tracker.record('a', rtt, T0);
    expect(tracker.get('a')?.lossRatio).toBe(0.5);
  });

  it('adds, drops and restarts peers on setPeers; ignores results for removed peers', () => {
    const tracker = new PeerHealthTracker();
    expect(
      tracker.setPeers([
        { key: 'a', address: '10.5.1.0' },
        { key: 'b', address: '10.5.2.0' },
      ]),
    ).toEqual({ added: ['a', 'b'], removed: [] });
    tracker.record('a', 1, T0);
    tracker.record('b', 1, T0);
    expect(
      tracker.setPeers([
        { key: 'a', address: '10.5.1.0' },
        { key: 'b', address: '10.5.22.0' },
        { key: 'c', address: '10.5.3.0' },
      ]),
    ).toEqual({ added: ['c'], removed: [] });
    expect(tracker.get('a')?.health).toBe('healthy');
    // A changed tunnel address is a different path: its health starts over.
    expect(tracker.get('b')).toMatchObject({ health: 'unknown', address: '10.5.22.0', sent: 0 });
    expect(tracker.setPeers([{ key: 'c', address: '10.5.3.0' }])).toEqual({ added: [], removed: ['a', 'b'] });
    expect(tracker.record('a', 1, T0)).toBeNull();
    expect([...tracker.states().keys()]).toEqual(['c']);
  });
});

describe('ICMP echo codec', () => {
  const raw = createRequire(import.meta.url)('raw-socket') as { createChecksum: (b: Buffer) => number };

  it('computes the internet checksum as raw-socket does', () => {
    for (const bytes of [
      [1],
      [0xff, 0xff],
      [8, 0, 0, 0, 0x12, 0x34, 0, 1, 0x61, 0x62, 0x63],
      [0x45, 0, 0, 0x54],
    ]) {
      const buffer = Buffer.from(bytes);
      expect(internetChecksum(buffer)).toBe(raw.createChecksum(buffer));
    }
    expect(internetChecksum(Buffer.alloc(0))).toBe(0xffff);
  });

  it('encodes an IPv4 echo request with a valid checksum', () => {
    const packet = encodeEchoRequest(4, 0x1234, 0xfffe, Buffer.from('weft-probe'));
    expect(packet.readUInt8(0)).toBe(ICMP_ECHO_REQUEST);
    expect(packet.readUInt16BE(4)).toBe(0x1234);
    expect(packet.readUInt16BE(6)).toBe(0xfffe);
    expect(packet.subarray(8).toString()).toBe('weft-probe');
    expect(internetChecksum(packet)).toBe(0);
  });

  it('leaves the ICMPv6 checksum to the kernel', () => {
    const packet = encodeEchoRequest(6, 7, 9, Buffer.from('x'));
    expect(packet.readUInt8(0)).toBe(128);
    expect(packet.readUInt16BE(2)).toBe(0);
  });

  function ipv4Packet(icmp: Buffer, ihl = 5): Buffer {
    const header = Buffer.alloc(ihl * 4);
    header.writeUInt8(0x40 | ihl, 0);
    header.writeUInt8(1, 9);
    return Buffer.concat([header, icmp]);
  }

  function echoReply(identifier: number, sequence: number, payload: string): Buffer {
    const icmp = encodeEchoRequest(4, identifier, sequence, Buffer.from(payload));
    icmp.writeUInt8(ICMP_ECHO_REPLY, 0);
    icmp.writeUInt16BE(0, 2);
    icmp.writeUInt16BE(internetChecksum(icmp), 2);
    return icmp;
  }

  it('parses an IPv4 echo reply behind its IP header (with options too)', () => {
    expect(parseEchoReply(4, ipv4Packet(echoReply(0xabcd, 42, 'token')))).toEqual({
      identifier: 0xabcd,
      sequence: 42,
      payload: Buffer.from('token'),
    });
    expect(parseEchoReply(4, ipv4Packet(echoReply(1, 2, 'x'), 6))?.sequence).toBe(2);
  });

  it('rejects requests, corrupt checksums, truncated and non-IPv4 packets', () => {
    const request = encodeEchoRequest(4, 1, 2, Buffer.from('x'));
    expect(parseEchoReply(4, ipv4Packet(request))).toBeNull();
    const corrupt = echoReply(1, 2, 'abc');
    corrupt.writeUInt8(0x00, 8);
    expect(parseEchoReply(4, ipv4Packet(corrupt))).toBeNull();
    expect(parseEchoReply(4, ipv4Packet(echoReply(1, 2, 'x')).subarray(0, 24))).toBeNull();
    expect(parseEchoReply(4, Buffer.alloc(10))).toBeNull();
    const v6Header = ipv4Packet(echoReply(1, 2, 'x'));
    v6Header.writeUInt8(0x65, 0);
    expect(parseEchoReply(4, v6Header)).toBeNull();
  });

  it('parses an ICMPv6 echo reply (no IP header on ICMPv6 raw sockets)', () => {
    const reply = encodeEchoRequest(6, 5, 6, Buffer.from('p'));
    reply.writeUInt8(ICMPV6_ECHO_REPLY, 0);
    expect(parseEchoReply(6, reply)).toEqual({ identifier: 5, sequence: 6, payload: Buffer.from('p') });
    expect(parseEchoReply(6, encodeEchoRequest(6, 5, 6, Buffer.from('p')))).toBeNull();
  });
});

describe('scheduling helpers', () => {
  it('forEachBounded never runs more than the limit at once and runs every item', async () => {
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    const items = Array.from({ length: 40 }, (_, i) => i);
    await forEachBounded(items, 16, async (i) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setImmediate(r));
      done.push(i);
      running--;
    });
    expect(peak).toBe(16);
    expect(done.sort((a, b) => a - b)).toEqual(items);
    await forEachBounded([], 4, async () => {
      throw new Error('never called');
    });
  });

  it('jittered stays within ±jitter of the interval', () => {
    expect(jittered(10_000, 0.1, () => 0)).toBe(9_000);
    expect(jittered(10_000, 0.1, () => 1)).toBe(11_000);
    expect(jittered(10_000, 0.1, () => 0.5)).toBe(10_000);
    expect(jittered(10_000, 5, () => 0)).toBe(0);
  });

  it('shuffled is a permutation and leaves its input alone', () => {
    const input = [1, 2, 3, 4, 5];
    let seed = 1;
    const random = (): number => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const out = shuffled(input, random);
    expect([...out].sort()).toEqual(input);
    expect(input).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('probeTargetsForLeases', () => {
  const leases = [
    {
      key: '10.5.2.0-24',
      subnet: parseCidr('10.5.2.0/24'),
      attrs: { publicIP: '192.168.64.2' },
      expiration: null,
    },
    {
      key: 'fd00:5:3::-64',
      ipv6Subnet: parseCidr('fd00:5:3::/64'),
      attrs: { publicIP: '' },
      expiration: null,
    },
    { key: 'broken', attrs: { publicIP: '192.168.64.9' }, expiration: null },
  ];

  it('probes the subnet network address (the tunnel device address) for vxlan and udp', () => {
    expect(probeTargetsForLeases(leases, 'vxlan')).toEqual([
      { key: '10.5.2.0-24', address: '10.5.2.0' },
      { key: 'fd00:5:3::-64', address: 'fd00:5:3::' },
    ]);
    expect(probeTargetsForLeases(leases, 'udp')[0]?.address).toBe('10.5.2.0');
  });

  it('probes the first address (the cni0 gateway) for host-gw, which has no tunnel device', () => {
    expect(probeTargetsForLeases(leases, 'host-gw').map((t) => t.address)).toEqual([
      '10.5.2.1',
      'fd00:5:3::1',
    ]);
  });
});

describe('PeerProber targets', () => {
  it('probes only addresses inside the overlay networks; rejects the rest', () => {
    const prober = new PeerProber({ logger: silentLogger(), overlayNetworks: [parseCidr('10.5.0.0/16')] });
    const rejected = prober.setPeers([
      { key: '10.5.1.0/24', address: '10.5.1.0' },
      { key: 'underlay', address: '192.168.64.2' },
      { key: 'junk', address: 'not-an-ip' },
      { key: '', address: '10.5.2.0' },
    ]);
    expect(rejected.map((r) => r.target.key)).toEqual(['underlay', 'junk', '']);
    expect(rejected[0]?.reason).toBe(
      'probe target 192.168.64.2 is outside the overlay (10.5.0.0/16); not probed',
    );
    expect([...prober.states().keys()]).toEqual(['10.5.1.0/24']);
  });

  it('reports removed peers so their metrics can be dropped', () => {
    const removed: string[] = [];
    const prober = new PeerProber({ logger: silentLogger(), onPeerRemoved: (k) => removed.push(k) });
    prober.setPeers([
      { key: 'a', address: '10.5.1.0' },
      { key: 'b', address: 'fd00:5:2::' },
    ]);
    prober.setPeers([{ key: 'b', address: 'fd00:5:2::' }]);
    expect(removed).toEqual(['a']);
  });

  it('resolves run() at once when probes are off', async () => {
    const prober = new PeerProber({ logger: silentLogger() });
    prober.setPeers([{ key: 'a', address: '10.5.1.0' }]);
    await prober.run(0, new AbortController().signal);
    expect(prober.states().get('a')?.sent).toBe(0);
  });
});
