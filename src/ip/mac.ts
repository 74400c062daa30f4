import { createHash } from 'node:crypto';

export class InvalidMacError extends Error {
  override name = 'InvalidMacError';
}

/** Parses a 48-bit MAC ("aa:bb:cc:dd:ee:ff", either case) to its canonical lower-case text. */
export function parseMac(text: unknown): string {
  if (typeof text !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) {
    throw new InvalidMacError(
      `expected a MAC address like "aa:bb:cc:dd:ee:ff", found ${JSON.stringify(text)}`,
    );
  }
  return text.toLowerCase();
}

export function isMac(text: unknown): text is string {
  try {
    parseMac(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * A stable VTEP MAC: locally administered (bit 1 of the first octet set), unicast (bit 0 clear), derived from
 * the public IP and VNI. flannel picks a random MAC and loses it on restart, leaving stale FDB/ARP entries on
 * peers (flannel #533, #1788); a derived MAC survives restarts and reboots.
 */
export function stableVtepMac(publicIp: string, vni: number, salt = 'weft-vtep'): string {
  const digest = createHash('sha256').update(`${salt}|${publicIp}|${vni}`).digest();
  const bytes = [...digest.subarray(0, 6)];
  bytes[0] = ((bytes[0] ?? 0) & 0xfc) | 0x02;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
