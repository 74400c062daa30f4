// The Internet checksum (RFC 1071) over a byte range: ICMP messages the prober builds and checks, IPv4 headers.
// The one implementation in weft's TypeScript (the C engine has its own, in native/).

/**
 * One's complement sum of `length` bytes from `offset`, folded to 16 bits, NOT inverted. `initial` chains sums
 * (a pseudo-header first, then the payload).
 */
export function onesComplementSum(
  bytes: Uint8Array,
  offset = 0,
  length = bytes.length - offset,
  initial = 0,
): number {
  let sum = initial;
  const end = offset + length;
  let i = offset;
  for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * The Internet checksum of a byte range: the inverted one's complement sum. Over data that carries its own
 * correct checksum it is 0 (how a receiver verifies).
 */
export function internetChecksum(bytes: Uint8Array, offset = 0, length = bytes.length - offset): number {
  return ~onesComplementSum(bytes, offset, length) & 0xffff;
}
