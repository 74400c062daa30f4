// The node's WireGuard private key: flannel's file (`/run/flannel/wgkey`, or `WIREGUARD_KEY_FILE`), generated
// when missing (mode 0400), read back at every start so the public key in the lease stays the same. A file that
// holds something else is an error naming the file — never silently replaced, since peers know the old key.
// The key never appears in an error or a log.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isWireguardKey } from '../../config/index.js';

export const DEFAULT_WIREGUARD_KEY_FILE = '/run/flannel/wgkey';

/** The key file flannel reads: `WIREGUARD_KEY_FILE` when set, else `/run/flannel/wgkey`. */
export function wireguardKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.WIREGUARD_KEY_FILE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_WIREGUARD_KEY_FILE;
}

export interface WireguardKeyPair {
  /** base64; a secret. */
  privateKey: string;
  /** base64, as `wg pubkey` prints it. */
  publicKey: string;
  /** Whether this start generated it. */
  generated: boolean;
}

/** The key file exists but does not hold a WireGuard private key, or cannot be read or written. */
export class WireguardKeyFileError extends Error {
  override name = 'WireguardKeyFileError';
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`WireGuard key file ${file}: ${problem}`);
  }
}

/** PKCS#8 DER prefix of a raw X25519 private key (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The public key (base64) of a base64 private key, as `wg pubkey` computes it. */
export function wireguardPublicKey(privateKey: string): string {
  const raw = Buffer.from(privateKey, 'base64');
  const key = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, raw]),
    format: 'der',
    type: 'pkcs8',
  });
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('X25519 public key export returned no key');
  return Buffer.from(x, 'base64url').toString('base64');
}

/**
 * A new private key (base64): 32 random bytes, clamped, as `wg genkey` makes it. Not generateKeyPairSync +
 * a JWK export: in Node 20 a GC during that export can run the key job's destructor, which waits for the lock
 * the export holds (a hang seen about once in five runs of 5000 keys in bench/wireguard-peers).
 */
export function generateWireguardPrivateKey(): string {
  const raw = randomBytes(32);
  raw[0] = (raw[0] ?? 0) & 248;
  raw[31] = ((raw[31] ?? 0) & 127) | 64;
  return raw.toString('base64');
}

/** Reads the key file, or creates it (mode 0400, written atomically) when it does not exist. */
export async function loadOrCreateWireguardKey(file: string): Promise<WireguardKeyPair> {
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') {
      throw new WireguardKeyFileError(file, `cannot be read (${code ?? 'error'}); fix its permissions`);
    }
  }
  if (text !== undefined) {
    const key = text.trim();
    if (!isWireguardKey(key)) {
      throw new WireguardKeyFileError(
        file,
        `does not hold a WireGuard private key (expected 44 characters of base64 as \`wg genkey\` prints, found ${key.length} characters); fix it, or remove the file to have a new key generated (peers then learn the new public key from the lease)`,
      );
    }
    return { privateKey: key, publicKey: wireguardPublicKey(key), generated: false };
  }
  const privateKey = generateWireguardPrivateKey();
  await writeKeyFile(file, privateKey);
  return { privateKey, publicKey: wireguardPublicKey(privateKey), generated: true };
}

async function writeKeyFile(file: string, privateKey: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    // Created 0400 from the start: the key is never readable by others, not even for a moment.
    const handle = await open(temp, 'wx', 0o400);
    try {
      await handle.writeFile(`${privateKey}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw new WireguardKeyFileError(
      file,
      `cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}
