/**
 * The RFC 1071 internet checksum of `buf`: the one's complement of the one's complement sum of its 16-bit
 * big-endian words (an odd last byte is padded with zero). Over data whose checksum field is filled in, a
 * correct packet gives 0. Pass a `subarray` to checksum part of a packet.
 */
export function internetChecksum(buf: Uint8Array): number {
  let sum = 0;
  const even = buf.length & ~1;
  for (let i = 0; i < even; i += 2) sum += ((buf[i] as number) << 8) | (buf[i + 1] as number);
  if (even !== buf.length) sum += (buf[even] as number) << 8;
  // Fold the carries: at most two folds for any length a packet can have.
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
