// HPACK against the spec's own examples (RFC 7541 Appendix C), the Huffman code against Appendix B's facts,
// malformed blocks, seeded random input, and encodeHeaders round trips. The node:http2 oracle is in
// hpack.http2.test.ts.
import { describe, expect, it } from 'vitest';
import { prng } from '../../../../../testkit/prng.js';
import { encodeHeaders, type HeaderList, HpackDecoder, HpackError } from './hpack.js';
import { EOS, HUFFMAN_CODES, HUFFMAN_LENGTHS, huffmanDecode, huffmanEncode } from './huffman.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const sizeOf = (entries: HeaderList) => entries.reduce((n, [k, v]) => n + k.length + v.length + 32, 0);

type Example = { id: string; block: string; headers: HeaderList; table: HeaderList };

/** Runs examples in sequence on one decoder, checking the header list and the dynamic table after each. */
function runExamples(maxTableSize: number, examples: Example[]): void {
  const decoder = new HpackDecoder(maxTableSize);
  for (const ex of examples) {
    expect(decoder.decode(hex(ex.block)), ex.id).toEqual(ex.headers);
    expect(decoder.tableEntries(), ex.id).toEqual(ex.table);
    expect(decoder.tableSize, ex.id).toBe(sizeOf(ex.table));
  }
}

const REQ1: HeaderList = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/'],
  [':authority', 'www.example.com'],
];
const REQ2: HeaderList = [...REQ1, ['cache-control', 'no-cache']];
const REQ3: HeaderList = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/index.html'],
  [':authority', 'www.example.com'],
  ['custom-key', 'custom-value'],
];
const T1: HeaderList = [[':authority', 'www.example.com']];
const T2: HeaderList = [['cache-control', 'no-cache'], ...T1];
const T3: HeaderList = [['custom-key', 'custom-value'], ...T2];

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOC = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESP1: HeaderList = [
  [':status', '302'],
  ['cache-control', 'private'],
  ['date', DATE1],
  ['location', LOC],
];
const RESP2: HeaderList = [[':status', '307'], ...RESP1.slice(1)];
const RESP3: HeaderList = [
  [':status', '200'],
  ['cache-control', 'private'],
  ['date', DATE2],
  ['location', LOC],
  ['content-encoding', 'gzip'],
  ['set-cookie', COOKIE],
];
const RT1: HeaderList = [
  ['location', LOC],
  ['date', DATE1],
  ['cache-control', 'private'],
  [':status', '302'],
];
const RT2: HeaderList = [[':status', '307'], ...RT1.slice(0, 3)];
const RT3: HeaderList = [
  ['set-cookie', COOKIE],
  ['content-encoding', 'gzip'],
  ['date', DATE2],
];

describe('RFC 7541 Appendix C', () => {
  it('C.2: literal with indexing, without indexing, never indexed; indexed field', () => {
    runExamples(4096, [
      {
        id: 'C.2.1',
        block: '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572',
        headers: [['custom-key', 'custom-header']],
        table: [['custom-key', 'custom-header']],
      },
    ]);
    expect(new HpackDecoder().decode(hex('040c 2f73 616d 706c 652f 7061 7468'))).toEqual([
      [':path', '/sample/path'],
    ]);
    const never = new HpackDecoder();
    expect(never.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual([['password', 'secret']]);
    expect(never.tableSize).toBe(0);
    expect(new HpackDecoder().decode(hex('82'))).toEqual([[':method', 'GET']]);
  });

  it('C.3: requests without Huffman, one decoder', () => {
    runExamples(4096, [
      { id: 'C.3.1', block: '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', headers: REQ1, table: T1 },
      { id: 'C.3.2', block: '8286 84be 5808 6e6f 2d63 6163 6865', headers: REQ2, table: T2 },
      {
        id: 'C.3.3',
        block: '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
        headers: REQ3,
        table: T3,
      },
    ]);
  });

  it('C.4: requests with Huffman, one decoder', () => {
    runExamples(4096, [
      { id: 'C.4.1', block: '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', headers: REQ1, table: T1 },
      { id: 'C.4.2', block: '8286 84be 5886 a8eb 1064 9cbf', headers: REQ2, table: T2 },
      {
        id: 'C.4.3',
        block: '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
        headers: REQ3,
        table: T3,
      },
    ]);
  });

  it('C.5: responses without Huffman, evictions in a 256-octet table', () => {
    runExamples(256, [
      {
        id: 'C.5.1',
        block: `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
        headers: RESP1,
        table: RT1,
      },
      { id: 'C.5.2', block: '4803 3330 37c1 c0bf', headers: RESP2, table: RT2 },
      {
        id: 'C.5.3',
        block: `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
        headers: RESP3,
        table: RT3,
      },
    ]);
  });

  it('C.6: responses with Huffman, evictions in a 256-octet table', () => {
    runExamples(256, [
      {
        id: 'C.6.1',
        block: `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
        headers: RESP1,
        table: RT1,
      },
      { id: 'C.6.2', block: '4883 640e ffc1 c0bf', headers: RESP2, table: RT2 },
      {
        id: 'C.6.3',
        block: `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
        headers: RESP3,
        table: RT3,
      },
    ]);
  });
});

describe('dynamic table', () => {
  it('a size update evicts down to the new size; an entry larger than the table empties it', () => {
    const d = new HpackDecoder(256);
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')); // 55 octets
    d.decode(hex('4003 6162 6301 78')); // abc: x, 36 octets
    expect(d.tableSize).toBe(91);
    d.decode(hex('3f21')); // size update to 31 + 33 = 64: only the newest entry fits
    expect(d.tableCapacity).toBe(64);
    expect(d.tableEntries()).toEqual([['abc', 'x']]);
    const big = Buffer.concat([hex('4003 6465 6620'), Buffer.alloc(32, 0x41)]); // def: 32 x 'A', 70 > 64
    expect(d.decode(big)).toEqual([['def', 'A'.repeat(32)]]);
    expect(d.tableEntries()).toEqual([]);
    expect(d.tableSize).toBe(0);
    expect(() => d.decode(hex('be'))).toThrow(HpackError);
    d.decode(hex('20 3f e1 01')); // two updates at the start of a block: 0, then 256
    expect(d.tableCapacity).toBe(256);
  });
});

describe('Huffman code (RFC 7541 Appendix B)', () => {
  it('the 257 lengths make a complete prefix code (Kraft sum exactly 1)', () => {
    expect(HUFFMAN_LENGTHS).toHaveLength(257);
    const sum = HUFFMAN_LENGTHS.reduce((s, len) => s + 2 ** (30 - len), 0);
    expect(sum).toBe(2 ** 30);
    const seen = new Set(HUFFMAN_CODES.map((c, sym) => `${c}/${HUFFMAN_LENGTHS[sym]}`));
    expect(seen.size).toBe(257);
  });

  it('the generated codes match the RFC', () => {
    const code = (sym: number) => [HUFFMAN_CODES[sym], HUFFMAN_LENGTHS[sym]];
    expect(code(0x30)).toEqual([0x0, 5]); // '0'
    expect(code(0x20)).toEqual([0x14, 6]); // ' '
    expect(code(0x61)).toEqual([0x3, 5]); // 'a'
    expect(code(0x00)).toEqual([0x1ff8, 13]);
    expect(code(0x01)).toEqual([0x7fffd8, 23]);
    expect(code(0x09)).toEqual([0xffffea, 24]);
    expect(code(0x0a)).toEqual([0x3ffffffc, 30]);
    expect(code(0x16)).toEqual([0x3ffffffe, 30]);
    expect(code(0x7f)).toEqual([0xffffffc, 28]);
    expect(code(0xd0)).toEqual([0x7fff2, 19]);
    expect(code(0xff)).toEqual([0x3ffffee, 26]);
    expect(code(EOS)).toEqual([0x3fffffff, 30]);
  });

  it('encodes the strings of C.4 as the RFC does, and decodes random byte strings back', () => {
    expect(huffmanEncode('www.example.com').toString('hex')).toBe('f1e3c2e5f23a6ba0ab90f4ff');
    expect(huffmanEncode('no-cache').toString('hex')).toBe('a8eb10649cbf');
    expect(huffmanEncode('custom-value').toString('hex')).toBe('25a849e95bb8e8b4bf');
    const rand = prng(7541);
    for (let i = 0; i < 500; i++) {
      let s = '';
      const len = Math.floor(rand() * 40);
      for (let j = 0; j < len; j++) s += String.fromCharCode(Math.floor(rand() * 256));
      const bytes = huffmanEncode(s);
      expect(huffmanDecode(bytes, 0, bytes.length)).toBe(s);
    }
  });
});

describe('malformed blocks throw HpackError', () => {
  const cases: Array<[string, string, RegExp, number?]> = [
    ['truncated integer', '82 ff 80', /truncated integer at byte 1/],
    ['integer above 2^31', 'ff ff ff ff ff 0f', /integer above 2147483647 at byte 0/],
    ['truncated string', '04 05 6162', /truncated string at byte 1: length 5 but 2 bytes left/],
    ['string missing', '04', /string expected at byte 1/],
    ['padding not all ones', '04 81 00', /bad Huffman string at byte 1: padding is not all ones/],
    ['padding longer than 7 bits', '04 82 1f ff', /bad Huffman string at byte 1: padding longer than 7 bits/],
    ['EOS in a string', '04 84 ffff ffff', /bad Huffman string at byte 1: EOS symbol inside the string/],
    ['index 0', '82 80', /index 0 at byte 1/],
    ['index beyond the tables', '82 be', /index 62 at byte 1 is beyond the tables \(61 static \+ 0 dynamic/],
    ['literal name index beyond the tables', '7f 00 01 61', /index 63 at byte 0 is beyond the tables/],
    ['size update above the maximum', '3f e2 1f', /size update to 4097 above the maximum 4096 at byte 0/],
    ['size update after a field', '82 20', /size update after a header field at byte 1/],
    ['size update above a small maximum', '3f 02', /size update to 33 above the maximum 32/, 32],
  ];
  for (const [what, block, message, max] of cases) {
    it(what, () => {
      const d = new HpackDecoder(max);
      let thrown: unknown;
      try {
        d.decode(hex(block));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(HpackError);
      expect((thrown as Error).name).toBe('HpackError');
      expect((thrown as Error).message).toMatch(message);
    });
  }

  it('random and mutated blocks only ever throw HpackError (seeded, bounded)', () => {
    const rand = prng(0x48504143);
    const seeds = [
      hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'),
      hex('4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6'),
      hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'),
    ];
    const persistent = new HpackDecoder(256);
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 20_000; i++) {
      let block: Buffer;
      if (i % 2 === 0) {
        block = Buffer.alloc(Math.floor(rand() * 48));
        for (let j = 0; j < block.length; j++) block[j] = Math.floor(rand() * 256);
      } else {
        block = Buffer.from(seeds[i % seeds.length] as Buffer);
        for (let k = 0; k < 3; k++) block[Math.floor(rand() * block.length)] = Math.floor(rand() * 256);
        block = block.subarray(0, Math.floor(rand() * (block.length + 1)));
      }
      const d = i % 3 === 0 ? persistent : new HpackDecoder(i % 5 === 0 ? 64 : 4096);
      try {
        d.decode(block);
        decoded++;
      } catch (err) {
        if (!(err instanceof HpackError)) throw err;
        rejected++;
      }
      expect(d.tableSize).toBe(sizeOf(d.tableEntries()));
      expect(d.tableSize).toBeLessThanOrEqual(d.tableCapacity);
    }
    expect(decoded).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
  });
});

describe('encodeHeaders', () => {
  it('writes literals without indexing: static name index or literal name, raw strings', () => {
    // :method (index 2) GET; then x-a: b with a literal name.
    expect(
      encodeHeaders([
        [':method', 'GET'],
        ['x-a', 'b'],
      ]).toString('hex'),
    ).toBe(`0203${Buffer.from('GET').toString('hex')}0003${Buffer.from('x-a').toString('hex')}0162`);
    // content-type is static index 31: 4-bit prefix 15, then 16.
    expect(encodeHeaders([['content-type', '']]).toString('hex')).toBe('0f1000');
    expect(() => encodeHeaders([['x', '\u0100']])).toThrow(RangeError);
    expect(encodeHeaders([])).toHaveLength(0);
  });

  it('round-trips random header lists through HpackDecoder, and leaves its table empty', () => {
    const rand = prng(16);
    const names = [':authority', ':method', ':path', 'content-type', 'te', 'grpc-timeout', 'user-agent', 'x'];
    const d = new HpackDecoder();
    for (let i = 0; i < 300; i++) {
      const list: HeaderList = [];
      const n = Math.floor(rand() * 12);
      for (let j = 0; j < n; j++) {
        let name = names[Math.floor(rand() * names.length)] as string;
        if (rand() < 0.3) name = `x-${'k'.repeat(Math.floor(rand() * 300))}`;
        let value = '';
        const len = rand() < 0.05 ? 20_000 : Math.floor(rand() * 200);
        for (let k = 0; k < len; k++) value += String.fromCharCode(Math.floor(rand() * 256));
        list.push([name, value]);
      }
      expect(d.decode(encodeHeaders(list))).toEqual(list);
      expect(d.tableSize).toBe(0);
    }
  });
});
