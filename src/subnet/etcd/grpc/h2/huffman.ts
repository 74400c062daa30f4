// The HPACK Huffman code (RFC 7541 Appendix B). The code is canonical: it follows from the 257 code lengths
// alone (codes assigned in order of length, then symbol), so only the lengths are written down here and the
// codes are generated at module load. Decoding walks a nibble-at-a-time state table built from those codes:
// one table lookup per 4 input bits, at most one symbol out per lookup (the shortest code is 5 bits).

/** Code length in bits of each symbol 0..255, then EOS (256). RFC 7541 Appendix B. */
// biome-ignore format: a table, 16 symbols a row
export const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //         0x20 ' ' .. '/'
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //              0x30 '0' .. '?'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //                0x40 '@' .. 'O'
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //             0x50 'P' .. '_'
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //                0x60 '`' .. 'o'
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //            0x70 'p' .. 0x7f
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
  30, //                                                            EOS
];

export const EOS = 256;

/** The canonical codes (as numbers, MSB first, `HUFFMAN_LENGTHS[sym]` bits wide), generated from the lengths. */
export const HUFFMAN_CODES: readonly number[] = (() => {
  const order = HUFFMAN_LENGTHS.map((_, sym) => sym).sort(
    (a, b) => (HUFFMAN_LENGTHS[a] as number) - (HUFFMAN_LENGTHS[b] as number) || a - b,
  );
  const codes: number[] = new Array(HUFFMAN_LENGTHS.length).fill(0);
  let code = 0;
  let prevLen = HUFFMAN_LENGTHS[order[0] as number] as number;
  for (const sym of order) {
    const len = HUFFMAN_LENGTHS[sym] as number;
    code *= 2 ** (len - prevLen); // 30-bit codes: plain arithmetic, no sign bit trouble
    prevLen = len;
    codes[sym] = code;
    code += 1;
  }
  return codes;
})();

// Decoder state table. States are the 256 internal nodes of the code's binary trie (root = 0). For a state s and
// an input nibble n, STEP[s * 16 + n] packs: next state (bits 0-7), "a symbol was completed" (bit 8), that symbol
// (bits 9-16) and "the EOS code was completed" (bit 17). ACCEPT[s] says whether a string may end in state s: the
// bits since the last symbol are all ones and at most 7 of them (RFC 7541 section 5.2's padding rule).
const EMIT = 1 << 8;
const FAIL = 1 << 17;
const STEP = new Uint32Array(256 * 16);
/** 0: may not end here; 1: may end here; 2: all-ones padding but longer than 7 bits (for the error message). */
const ACCEPT = new Uint8Array(256);

(() => {
  // The trie: child[node * 2 + bit] is a node id (>= 0) or a leaf, -(symbol + 1).
  const child = new Int32Array(256 * 2).fill(0x7fffffff);
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_LENGTHS[sym] as number;
    const code = HUFFMAN_CODES[sym] as number;
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) & 1;
      const slot = node * 2 + bit;
      if (i === 0) {
        child[slot] = -(sym + 1);
        break;
      }
      let next = child[slot] as number;
      if (next === 0x7fffffff) {
        next = nodes++;
        child[slot] = next;
        depth[next] = (depth[node] as number) + 1;
        allOnes[next] = allOnes[node] === 1 && bit === 1 ? 1 : 0;
      }
      node = next;
    }
  }
  if (nodes !== 256 || child.includes(0x7fffffff))
    throw new Error('huffman: the code lengths are not a complete code');
  for (let s = 0; s < 256; s++) {
    ACCEPT[s] = allOnes[s] === 1 ? ((depth[s] as number) <= 7 ? 1 : 2) : 0;
    for (let n = 0; n < 16; n++) {
      let node = s;
      let out = 0;
      for (let i = 3; i >= 0; i--) {
        const next = child[node * 2 + ((n >> i) & 1)] as number;
        if (next >= 0) {
          node = next;
          continue;
        }
        const sym = -next - 1;
        if (sym === EOS) out |= FAIL;
        else out |= EMIT | (sym << 9);
        node = 0;
      }
      STEP[s * 16 + n] = out | node;
    }
  }
})();

/** A Huffman string that does not decode; the message says why (and where, for an EOS symbol). */
export class HuffmanError extends Error {
  override name = 'HuffmanError';
}

let scratch = Buffer.allocUnsafe(256);

/**
 * Decodes `src[start, end)` as HPACK Huffman code into a string, one byte per char ('latin1').
 * Throws HuffmanError on the EOS symbol, padding longer than 7 bits, or padding that is not all ones.
 */
export function huffmanDecode(src: Buffer, start: number, end: number): string {
  // Every symbol is at least 5 bits, so n bytes decode to at most floor(8n / 5) symbols.
  const max = Math.floor(((end - start) * 8) / 5);
  if (scratch.length < max) scratch = Buffer.allocUnsafe(Math.max(max, scratch.length * 2));
  const out = scratch;
  let len = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i] as number;
    let step = STEP[(state << 4) | (byte >> 4)] as number;
    if (step & FAIL) throw new HuffmanError(`EOS symbol inside the string (byte ${i})`);
    if (step & EMIT) out[len++] = step >> 9;
    state = step & 0xff;
    step = STEP[(state << 4) | (byte & 0xf)] as number;
    if (step & FAIL) throw new HuffmanError(`EOS symbol inside the string (byte ${i})`);
    if (step & EMIT) out[len++] = step >> 9;
    state = step & 0xff;
  }
  const accept = ACCEPT[state];
  if (accept !== 1) {
    throw new HuffmanError(
      accept === 2 ? 'padding longer than 7 bits' : 'padding is not all ones (not an EOS prefix)',
    );
  }
  return out.toString('latin1', 0, len);
}

/** The Huffman-coded length in bytes of `s` (chars taken as latin1 bytes). */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff] as number;
  return Math.ceil(bits / 8);
}

/** Huffman-codes `s` (chars taken as latin1 bytes), padding the last byte with ones (the EOS prefix). */
export function huffmanEncode(s: string): Buffer {
  const out = Buffer.allocUnsafe(huffmanLength(s));
  let acc = 0; // pending bits, fewer than 8 of them between symbols
  let n = 0;
  let pos = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let len = HUFFMAN_LENGTHS[sym] as number;
    const code = HUFFMAN_CODES[sym] as number;
    while (len > 0) {
      const take = Math.min(len, 8 - n);
      len -= take;
      acc = (acc << take) | (Math.floor(code / 2 ** len) & ((1 << take) - 1));
      n += take;
      if (n === 8) {
        out[pos++] = acc;
        acc = 0;
        n = 0;
      }
    }
  }
  if (n > 0) out[pos] = (acc << (8 - n)) | ((1 << (8 - n)) - 1);
  return out;
}
