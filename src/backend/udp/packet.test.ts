import { describe, expect, it } from 'vitest';
import {
  buildNetUnreachable,
  decidePeerDatagram,
  decideTunPacket,
  decrementTtl,
  formatIpv4,
  internetChecksum,
  ipv4HeaderChecksumValid,
  onesComplementSum,
  type Peer,
  PeerTable,
  PrefixHostBitsError,
  PrefixTable,
  parseIpv4,
  parseIpv4Header,
  parseIpv4Prefix,
  updateChecksum,
} from './packet.js';

interface PacketOptions {
  source?: string;
  destination?: string;
  ttl?: number;
  protocol?: number;
  payload?: Uint8Array;
  ihl?: number;
  flagsAndOffset?: number;
  identification?: number;
}

/** A valid IPv4 packet with a correct header checksum. */
function ipv4Packet(options: PacketOptions = {}): Uint8Array {
  const ihl = options.ihl ?? 5;
  const payload = options.payload ?? new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const packet = new Uint8Array(ihl * 4 + payload.length);
  const view = new DataView(packet.buffer);
  packet[0] = 0x40 | ihl;
  view.setUint16(2, packet.length);
  view.setUint16(4, options.identification ?? 0x1234);
  view.setUint16(6, options.flagsAndOffset ?? 0x4000);
  packet[8] = options.ttl ?? 64;
  packet[9] = options.protocol ?? 17;
  view.setUint32(12, parseIpv4(options.source ?? '10.99.1.5'));
  view.setUint32(16, parseIpv4(options.destination ?? '10.99.2.7'));
  for (let i = 20; i < ihl * 4; i++) packet[i] = 1; // NOP options
  view.setUint16(10, internetChecksum(packet, 0, ihl * 4));
  packet.set(payload, ihl * 4);
  return packet;
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
function randomBytes(seed: number, length: number): Uint8Array {
  let state = seed >>> 0 || 1;
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  return bytes;
}

function peer(subnet: string, address: string, port = 8285): Peer {
  return { subnet: parseIpv4Prefix(subnet), address: parseIpv4(address), port };
}

describe('parseIpv4Header', () => {
  it('reads the fields of a valid packet', () => {
    const parsed = parseIpv4Header(ipv4Packet({ ttl: 7, protocol: 6, identification: 0xbeef }));
    expect(parsed).toEqual({
      ok: true,
      header: {
        headerLength: 20,
        totalLength: 32,
        identification: 0xbeef,
        dontFragment: true,
        moreFragments: false,
        fragmentOffset: 0,
        ttl: 7,
        protocol: 6,
        checksum: expect.any(Number),
        source: parseIpv4('10.99.1.5'),
        destination: parseIpv4('10.99.2.7'),
      },
    });
  });

  it('accepts options (IHL > 5) and trailing padding past the total length', () => {
    const packet = ipv4Packet({ ihl: 7 });
    const padded = new Uint8Array(packet.length + 6);
    padded.set(packet);
    const parsed = parseIpv4Header(padded);
    expect(parsed.ok && parsed.header.headerLength).toBe(28);
    expect(parsed.ok && parsed.header.totalLength).toBe(packet.length);
  });

  it('rejects malformed inputs with a reason', () => {
    expect(parseIpv4Header(new Uint8Array(0))).toEqual({ ok: false, reason: 'tooShort' });
    expect(parseIpv4Header(ipv4Packet().subarray(0, 19))).toEqual({ ok: false, reason: 'tooShort' });

    const v6 = ipv4Packet();
    v6[0] = 0x60;
    expect(parseIpv4Header(v6)).toEqual({ ok: false, reason: 'notIpv4' });

    const smallIhl = ipv4Packet();
    smallIhl[0] = 0x44;
    expect(parseIpv4Header(smallIhl)).toEqual({ ok: false, reason: 'badHeaderLength' });

    const ihlPastEnd = ipv4Packet({ payload: new Uint8Array(0) });
    ihlPastEnd[0] = 0x4f; // 60-byte header in a 20-byte packet
    expect(parseIpv4Header(ihlPastEnd)).toEqual({ ok: false, reason: 'badHeaderLength' });

    const longTotal = ipv4Packet();
    new DataView(longTotal.buffer).setUint16(2, longTotal.length + 1);
    expect(parseIpv4Header(longTotal)).toEqual({ ok: false, reason: 'badTotalLength' });

    const shortTotal = ipv4Packet();
    new DataView(shortTotal.buffer).setUint16(2, 19);
    expect(parseIpv4Header(shortTotal)).toEqual({ ok: false, reason: 'badTotalLength' });
  });

  it('never throws on random bytes', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const bytes = randomBytes(seed, seed % 70);
      const parsed = parseIpv4Header(bytes);
      if (parsed.ok) {
        expect(parsed.header.totalLength).toBeLessThanOrEqual(bytes.length);
        expect(parsed.header.headerLength).toBeGreaterThanOrEqual(20);
      }
    }
  });
});

describe('checksums', () => {
  it('computes the RFC 1071 example sum', () => {
    // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
    expect(onesComplementSum(new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0xddf2);
  });

  it('pads an odd length with a zero byte', () => {
    expect(onesComplementSum(new Uint8Array([0x12, 0x34, 0x56]))).toBe(0x1234 + 0x5600);
  });

  it('validates a header it computed and rejects a flipped bit', () => {
    const packet = ipv4Packet();
    expect(ipv4HeaderChecksumValid(packet, 20)).toBe(true);
    packet[15] = packet[15]! ^ 0x01;
    expect(ipv4HeaderChecksumValid(packet, 20)).toBe(false);
  });
});

describe('decrementTtl', () => {
  it('decrements the TTL and keeps the checksum equal to a full recompute', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const random = randomBytes(seed, 20);
      const packet = ipv4Packet({
        ttl: 2 + (random[0]! % 254),
        protocol: random[1]!,
        source: formatIpv4(new DataView(random.buffer).getUint32(4)),
        destination: formatIpv4(new DataView(random.buffer).getUint32(8)),
        identification: new DataView(random.buffer).getUint16(12),
        flagsAndOffset: new DataView(random.buffer).getUint16(14),
      });
      const ttl = packet[8]!;
      expect(decrementTtl(packet)).toBe(true);
      expect(packet[8]).toBe(ttl - 1);
      const incremental = new DataView(packet.buffer).getUint16(10);
      new DataView(packet.buffer).setUint16(10, 0);
      expect(incremental).toBe(internetChecksum(packet, 0, 20));
    }
  });

  it('handles the checksum wrap-around cases of RFC 1624', () => {
    // RFC 1624 section 4: HC 0xdd2f, m 0x5555 -> 0x3285 gives 0x0000 (equation 2 would give 0xffff).
    expect(updateChecksum(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
    expect(updateChecksum(0x0000, 0x4001, 0x3f01)).toBe(0x0100);
    // Changing a word to itself leaves any non-negative-zero checksum alone.
    expect(updateChecksum(0x1234, 0xabcd, 0xabcd)).toBe(0x1234);
  });

  it('refuses TTL 1 and 0 and leaves the packet untouched', () => {
    for (const ttl of [0, 1]) {
      const packet = ipv4Packet({ ttl });
      const before = Uint8Array.from(packet);
      expect(decrementTtl(packet)).toBe(false);
      expect(packet).toEqual(before);
    }
  });
});

describe('buildNetUnreachable', () => {
  const own = parseIpv4('10.99.1.0');

  it('answers with ICMP 3/0 from the tunnel address quoting the header and 8 bytes', () => {
    const original = ipv4Packet({
      source: '10.99.1.5',
      destination: '10.77.0.1',
      payload: randomBytes(7, 40),
    });
    const reply = buildNetUnreachable(original, own)!;
    expect(reply).toBeDefined();
    const parsed = parseIpv4Header(reply);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.header).toMatchObject({
      headerLength: 20,
      totalLength: 20 + 8 + 28,
      protocol: 1,
      ttl: 64,
      source: own,
      destination: parseIpv4('10.99.1.5'),
    });
    expect(ipv4HeaderChecksumValid(reply, 20)).toBe(true);
    expect(reply[20]).toBe(3);
    expect(reply[21]).toBe(0);
    expect([...reply.subarray(24, 28)]).toEqual([0, 0, 0, 0]);
    expect(onesComplementSum(reply, 20)).toBe(0xffff);
    expect(reply.subarray(28)).toEqual(original.subarray(0, 28));
  });

  it('quotes options and a payload shorter than 8 bytes whole', () => {
    const original = ipv4Packet({ ihl: 6, payload: new Uint8Array([9, 9, 9]) });
    const reply = buildNetUnreachable(original, own)!;
    expect(reply.length).toBe(20 + 8 + 24 + 3);
    expect(reply.subarray(28)).toEqual(original);
    expect(onesComplementSum(reply, 20)).toBe(0xffff);
  });

  it('never answers ICMP, fragments, or unanswerable sources', () => {
    expect(buildNetUnreachable(ipv4Packet({ protocol: 1 }), own)).toBeUndefined();
    expect(buildNetUnreachable(ipv4Packet({ flagsAndOffset: 0x2000 }), own)).toBeUndefined();
    expect(buildNetUnreachable(ipv4Packet({ flagsAndOffset: 0x0010 }), own)).toBeUndefined();
    expect(buildNetUnreachable(ipv4Packet({ source: '0.0.0.0' }), own)).toBeUndefined();
    expect(buildNetUnreachable(ipv4Packet({ source: '224.0.0.5' }), own)).toBeUndefined();
    expect(buildNetUnreachable(new Uint8Array(10), own)).toBeUndefined();
  });
});

describe('PrefixTable', () => {
  const table = new PrefixTable([
    { prefix: parseIpv4Prefix('10.0.0.0/8'), value: 'eight' },
    { prefix: parseIpv4Prefix('10.99.0.0/16'), value: 'sixteen' },
    { prefix: parseIpv4Prefix('10.99.2.0/24'), value: 'twenty-four' },
    { prefix: parseIpv4Prefix('10.99.2.77/32'), value: 'host' },
  ]);

  it('picks the longest matching prefix among overlapping ones', () => {
    expect(table.lookup(parseIpv4('10.99.2.5'))).toBe('twenty-four');
    expect(table.lookup(parseIpv4('10.99.3.5'))).toBe('sixteen');
    expect(table.lookup(parseIpv4('10.1.2.3'))).toBe('eight');
  });

  it('matches a /32 only on its address', () => {
    expect(table.lookup(parseIpv4('10.99.2.77'))).toBe('host');
    expect(table.lookup(parseIpv4('10.99.2.78'))).toBe('twenty-four');
  });

  it('returns undefined when nothing matches, and for an empty table', () => {
    expect(table.lookup(parseIpv4('192.168.1.1'))).toBeUndefined();
    expect(new PrefixTable([]).lookup(parseIpv4('10.0.0.1'))).toBeUndefined();
  });

  it('matches everything with /0 and handles the top bit of addresses', () => {
    const withDefault = new PrefixTable([
      { prefix: parseIpv4Prefix('0.0.0.0/0'), value: 'default' },
      { prefix: parseIpv4Prefix('200.1.0.0/16'), value: 'high' },
    ]);
    expect(withDefault.lookup(parseIpv4('200.1.9.9'))).toBe('high');
    expect(withDefault.lookup(parseIpv4('255.255.255.255'))).toBe('default');
  });

  it('rejects prefixes with host bits', () => {
    expect(
      () => new PrefixTable([{ prefix: { network: parseIpv4('10.0.0.1'), prefixLength: 24 }, value: 1 }]),
    ).toThrow(PrefixHostBitsError);
    expect(() => parseIpv4Prefix('10.0.0.1/24')).toThrow(/host bits/);
  });
});

describe('address parsing', () => {
  it('round-trips addresses and rejects bad text', () => {
    expect(formatIpv4(parseIpv4('255.0.10.1'))).toBe('255.0.10.1');
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.1.1.1', 'a.b.c.d', '1.2.3.-4']) {
      expect(() => parseIpv4(bad), bad).toThrow(/invalid IPv4 address/);
    }
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/x']) {
      expect(() => parseIpv4Prefix(bad), bad).toThrow(/invalid IPv4 prefix/);
    }
  });
});

describe('decideTunPacket', () => {
  const own = parseIpv4('10.99.1.0');
  const peerTwo = peer('10.99.2.0/24', '192.168.78.2');
  const table = new PeerTable([peerTwo, peer('10.99.3.0/24', '192.168.78.3')]);

  it('sends to the peer owning the destination with the TTL decremented', () => {
    const decision = decideTunPacket(ipv4Packet({ destination: '10.99.2.9', ttl: 10 }), table, own);
    expect(decision.action).toBe('send');
    if (decision.action !== 'send') return;
    expect(decision.peer).toBe(peerTwo);
    expect(decision.packet[8]).toBe(9);
    expect(ipv4HeaderChecksumValid(decision.packet, 20)).toBe(true);
  });

  it('answers an unroutable destination with net-unreachable, or drops it for ICMP', () => {
    const decision = decideTunPacket(ipv4Packet({ destination: '10.99.9.9' }), table, own);
    expect(decision).toMatchObject({ action: 'reply', reason: 'noRoute' });
    expect(decideTunPacket(ipv4Packet({ destination: '10.99.9.9', protocol: 1 }), table, own)).toEqual({
      action: 'drop',
      reason: 'noRoute',
    });
  });

  it('drops expired TTLs and malformed packets by reason', () => {
    expect(decideTunPacket(ipv4Packet({ destination: '10.99.2.9', ttl: 1 }), table, own)).toEqual({
      action: 'drop',
      reason: 'ttlExpired',
    });
    expect(decideTunPacket(new Uint8Array(5), table, own)).toEqual({ action: 'drop', reason: 'malformed' });
    const v6 = ipv4Packet();
    v6[0] = 0x60;
    expect(decideTunPacket(v6, table, own)).toEqual({ action: 'drop', reason: 'notIpv4' });
  });
});

describe('decidePeerDatagram', () => {
  const ownSubnet = parseIpv4Prefix('10.99.1.0/24');
  const table = new PeerTable([peer('10.99.2.0/24', '192.168.78.2'), peer('10.99.3.0/24', '192.168.78.3')]);
  const fromTwo = (datagram: Uint8Array, port = 8285) =>
    decidePeerDatagram(datagram, parseIpv4('192.168.78.2'), port, table, ownSubnet);

  it('delivers a packet from a known peer, sourced in its subnet, to our subnet', () => {
    const decision = fromTwo(ipv4Packet({ source: '10.99.2.4', destination: '10.99.1.3', ttl: 5 }));
    expect(decision.action).toBe('deliver');
    if (decision.action === 'deliver') expect(decision.packet[8]).toBe(4);
  });

  it('drops by reason, checking the sender first', () => {
    const good = ipv4Packet({ source: '10.99.2.4', destination: '10.99.1.3' });
    expect(decidePeerDatagram(good, parseIpv4('192.168.78.9'), 8285, table, ownSubnet)).toEqual({
      action: 'drop',
      reason: 'unknownPeer',
    });
    expect(fromTwo(good, 9999)).toEqual({ action: 'drop', reason: 'unknownPeer' });
    expect(fromTwo(new Uint8Array(3))).toEqual({ action: 'drop', reason: 'malformed' });
    const badChecksum = Uint8Array.from(good);
    badChecksum[10] = badChecksum[10]! ^ 0xff;
    expect(fromTwo(badChecksum)).toEqual({ action: 'drop', reason: 'malformed' });
    // Source in another peer's subnet, and in nobody's.
    expect(fromTwo(ipv4Packet({ source: '10.99.3.4', destination: '10.99.1.3' }))).toEqual({
      action: 'drop',
      reason: 'spoofedSource',
    });
    expect(fromTwo(ipv4Packet({ source: '172.16.0.1', destination: '10.99.1.3' }))).toEqual({
      action: 'drop',
      reason: 'spoofedSource',
    });
    expect(fromTwo(ipv4Packet({ source: '10.99.2.4', destination: '10.99.7.3' }))).toEqual({
      action: 'drop',
      reason: 'wrongDestination',
    });
    expect(fromTwo(ipv4Packet({ source: '10.99.2.4', destination: '10.99.1.3', ttl: 1 }))).toEqual({
      action: 'drop',
      reason: 'ttlExpired',
    });
  });
});
