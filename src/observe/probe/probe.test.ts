import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { captureLogs } from '../../../testkit/etcd-manager.js';
import { DEFAULT_VXLAN_CONFIG } from '../../../testkit/fixtures/backend.js';
import { HostGwBackend, UdpBackend, VxlanBackend } from '../../backend/index.js';
import { internetChecksum, parseCidr } from '../../ip/index.js';
import { silentLogger } from '../../log/index.js';
import {
  encodeEchoRequest,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMPV6_ECHO_REPLY,
  icmp6FilterPassing,
  icmpFilterPassing,
  jittered,
  PeerHealthTracker,
  PeerProber,
  parseEchoReply,
  probeTargetsForLeases,
  roundPeriodMs,
  shuffled,
} from './index.js';

const T0 = new Date('2025-03-01T12:00:00Z');

describe('PeerHealthTracker', () => {
  it('starts unknown, becomes healthy on a reply, unhealthy after N losses in a row, healthy after one reply', () => {
    const tracker = new PeerHealthTracker({ unhealthyAfter: 3 });
    tracker.setTargets([{ key: 'a', address: '10.5.1.0' }]);
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
    tracker.setTargets([{ key: 'a', address: '10.5.1.0' }]);
    expect(tracker.record('a', null, T0)).toBeNull();
    expect(tracker.record('a', null, T0)).toMatchObject({ from: 'unknown', to: 'unhealthy' });
    expect(tracker.get('a')?.lastReplyAt).toBeNull();
  });

  it('computes the loss ratio over the recent window only', () => {
    const tracker = new PeerHealthTracker({ lossWindow: 4 });
    tracker.setTargets([{ key: 'a', address: '10.5.1.0' }]);
    for (const rtt of [null, null, null, null, 1, 1]) tracker.record('a', rtt, T0);
    expect(tracker.get('a')?.lossRatio).toBe(0.5);
  });

  it('adds, drops and restarts targets on setTargets; ignores results for removed targets', () => {
    const tracker = new PeerHealthTracker();
    expect(
      tracker.setTargets([
        { key: 'a', address: '10.5.1.0' },
        { key: 'b', address: '10.5.2.0' },
      ]),
    ).toEqual({ added: ['a', 'b'], removed: [] });
    tracker.record('a', 1, T0);
    tracker.record('b', 1, T0);
    expect(
      tracker.setTargets([
        { key: 'a', address: '10.5.1.0' },
        { key: 'b', address: '10.5.22.0' },
        { key: 'c', address: '10.5.3.0' },
      ]),
    ).toEqual({ added: ['c'], removed: [] });
    expect(tracker.get('a')?.health).toBe('healthy');
    // A changed tunnel address is a different path: its health starts over.
    expect(tracker.get('b')).toMatchObject({ health: 'unknown', address: '10.5.22.0', sent: 0 });
    expect(tracker.setTargets([{ key: 'c', address: '10.5.3.0' }])).toEqual({
      added: [],
      removed: ['a', 'b'],
    });
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

  it('builds kernel filters that block every ICMP type but the echo reply', () => {
    const le = (b: Buffer, i: number): number =>
      endianness() === 'LE' ? b.readUInt32LE(i) : b.readUInt32BE(i);
    const v4 = icmpFilterPassing(ICMP_ECHO_REPLY);
    expect(v4).toHaveLength(4);
    expect(le(v4, 0)).toBe(0xfffffffe);
    const v6 = icmp6FilterPassing(ICMPV6_ECHO_REPLY);
    expect(v6).toHaveLength(32);
    // struct icmp6_filter: bit (type & 31) of word (type >> 5) set = block; 129 = word 4, bit 1.
    for (let word = 0; word < 8; word++) expect(le(v6, word * 4)).toBe(word === 4 ? 0xfffffffd : 0xffffffff);
  });

  it('parses an ICMPv6 echo reply (no IP header on ICMPv6 raw sockets)', () => {
    const reply = encodeEchoRequest(6, 5, 6, Buffer.from('p'));
    reply.writeUInt8(ICMPV6_ECHO_REPLY, 0);
    expect(parseEchoReply(6, reply)).toEqual({ identifier: 5, sequence: 6, payload: Buffer.from('p') });
    expect(parseEchoReply(6, encodeEchoRequest(6, 5, 6, Buffer.from('p')))).toBeNull();
  });
});

describe('scheduling helpers', () => {
  it('a round lasts the interval, or peers / budget seconds when that is longer', () => {
    expect(roundPeriodMs(10, 10_000, 100)).toBe(10_000);
    expect(roundPeriodMs(1000, 10_000, 100)).toBe(10_000);
    expect(roundPeriodMs(5000, 10_000, 100)).toBe(50_000);
    expect(roundPeriodMs(0, 1_000, 100)).toBe(1_000);
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

  const vxlan = new VxlanBackend(DEFAULT_VXLAN_CONFIG);

  it('probes the subnet network address (the tunnel device address) for vxlan and udp', () => {
    expect(probeTargetsForLeases(leases, vxlan)).toEqual([
      { key: '10.5.2.0-24', address: '10.5.2.0' },
      { key: 'fd00:5:3::-64', address: 'fd00:5:3::' },
    ]);
    expect(probeTargetsForLeases(leases, new UdpBackend({ type: 'udp', port: 8285 }))[0]?.address).toBe(
      '10.5.2.0',
    );
  });

  it('probes the first address (the cni0 gateway) for host-gw, which has no tunnel device', () => {
    expect(probeTargetsForLeases(leases, new HostGwBackend()).map((t) => t.address)).toEqual([
      '10.5.2.1',
      'fd00:5:3::1',
    ]);
  });
});

describe('PeerProber targets', () => {
  it('probes only addresses inside the overlay networks; rejects the rest', () => {
    const prober = new PeerProber({
      logger: silentLogger(),
      intervalMs: 1000,
      overlayNetworks: [parseCidr('10.5.0.0/16')],
    });
    const rejected = prober.setTargets([
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

  it('logs a rejected target when it appears or its address changes, not after every pass', () => {
    const logs = captureLogs('warn');
    const prober = new PeerProber({
      logger: logs.logger,
      intervalMs: 1000,
      overlayNetworks: [parseCidr('10.5.0.0/16')],
    });
    const good = { key: '10.5.1.0/24', address: '10.5.1.0' };
    for (let pass = 0; pass < 3; pass++) {
      const rejected = prober.setTargets([good, { key: 'underlay', address: '192.168.64.2' }]);
      expect(rejected.map((r) => r.target.key)).toEqual(['underlay']);
    }
    expect(logs.matching(/outside the overlay/)).toHaveLength(1);
    prober.setTargets([good, { key: 'underlay', address: '192.168.64.3' }]);
    expect(logs.matching(/outside the overlay/)).toHaveLength(2);
    // Moved into the overlay: accepted and probed, with its canonical address.
    prober.setTargets([good, { key: 'underlay', address: '10.5.2.0' }]);
    expect([...prober.states().keys()].sort()).toEqual(['10.5.1.0/24', 'underlay']);
  });

  it('reports removed targets so their metrics can be dropped', () => {
    const removed: string[] = [];
    const prober = new PeerProber({
      logger: silentLogger(),
      intervalMs: 1000,
      onTargetRemoved: (k) => removed.push(k),
    });
    prober.setTargets([
      { key: 'a', address: '10.5.1.0' },
      { key: 'b', address: 'fd00:5:2::' },
    ]);
    prober.setTargets([{ key: 'b', address: 'fd00:5:2::' }]);
    expect(removed).toEqual(['a']);
  });

  it('resolves run() at once, without a beat, when probes are off', async () => {
    const prober = new PeerProber({ logger: silentLogger(), intervalMs: 0 });
    prober.setTargets([{ key: 'a', address: '10.5.1.0' }]);
    let beats = 0;
    await prober.run({ signal: new AbortController().signal, beat: () => beats++ });
    expect(prober.states().get('a')?.sent).toBe(0);
    expect(beats).toBe(0);
  });

  it('is a Task whose beat period grows with the targets once the budget sets the pace', () => {
    const prober = new PeerProber({
      logger: silentLogger(),
      intervalMs: 1000,
      timeoutMs: 500,
      maxProbesPerSecond: 10,
      jitter: 0,
    });
    expect(prober.name).toBe('peer-prober');
    prober.setTargets([{ key: 'a', address: '10.5.1.0' }]);
    expect(prober.periodMs).toBe(1000 + 500);
    prober.setTargets(Array.from({ length: 50 }, (_, i) => ({ key: `p${i}`, address: `10.5.${i}.0` })));
    expect(prober.periodMs).toBe(5000 + 500);
  });
});
