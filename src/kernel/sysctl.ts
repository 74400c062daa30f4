// sysctl values under /proc/sys. /proc/sys/net is per network namespace: the current process's namespace, or
// with `netns`, `ip netns exec <netns> sysctl` (tests).
import { readFile, writeFile } from 'node:fs/promises';
import { errorMessage, runCommand } from '../core/index.js';
import type { KernelCallOptions } from './types.js';

export class SysctlError extends Error {
  override name = 'SysctlError';
}

/** `net.ipv4.ip_forward` or `net/ipv4/conf/flannel.1/rp_filter` (slashes let a key hold a dotted device name). */
const SYSCTL_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.@+=/-]*$/;

/** The /proc/sys-relative path of a key. */
export function sysctlPath(key: string): string {
  if (!SYSCTL_KEY.test(key) || key.split(/[./]/).some((part) => part === '' || part === '..')) {
    throw new SysctlError(`sysctl key ${JSON.stringify(key)} is not valid (e.g. net.ipv4.ip_forward)`);
  }
  return key.includes('/') ? key : key.replaceAll('.', '/');
}

async function sysctlInNetns(netns: string, args: string[], timeoutMs = 10_000): Promise<string> {
  let result: Awaited<ReturnType<typeof runCommand>>;
  try {
    result = await runCommand('sysctl', args, { netns, timeoutMs, packageHint: 'procps' });
  } catch (err) {
    throw new SysctlError(`sysctl ${args.join(' ')} in ${netns} could not run: ${errorMessage(err)}`);
  }
  if (result.code !== 0) {
    throw new SysctlError(
      `sysctl ${args.join(' ')} in ${netns} failed: ${result.stderr.trim() || `exit ${result.code}`}`,
    );
  }
  return result.stdout;
}

/** Reads a sysctl value (trimmed). */
export async function readSysctl(key: string, opts: KernelCallOptions = {}): Promise<string> {
  const path = sysctlPath(key);
  if (opts.netns !== undefined) return (await sysctlInNetns(opts.netns, ['-n', path], opts.timeoutMs)).trim();
  try {
    return (await readFile(`/proc/sys/${path}`, 'utf8')).trim();
  } catch (err) {
    throw new SysctlError(`cannot read sysctl ${key} (/proc/sys/${path}): ${errorMessage(err)}`);
  }
}

/** Writes a sysctl value. */
export async function writeSysctl(key: string, value: string, opts: KernelCallOptions = {}): Promise<void> {
  const path = sysctlPath(key);
  if (!/^[A-Za-z0-9_. -]{1,64}$/.test(value)) {
    throw new SysctlError(`sysctl value ${JSON.stringify(value)} for ${key} is not a plain value`);
  }
  if (opts.netns !== undefined) {
    await sysctlInNetns(opts.netns, ['-q', '-w', `${path}=${value}`], opts.timeoutMs);
    return;
  }
  try {
    await writeFile(`/proc/sys/${path}`, `${value}\n`);
  } catch (err) {
    throw new SysctlError(`cannot write sysctl ${key}=${value} (/proc/sys/${path}): ${errorMessage(err)}`);
  }
}

/** Sets a sysctl only when it differs; tells whether it changed. */
export async function ensureSysctl(
  key: string,
  value: string,
  opts: KernelCallOptions = {},
): Promise<{ changed: boolean; previous: string }> {
  const previous = await readSysctl(key, opts);
  if (previous === value) return { changed: false, previous };
  await writeSysctl(key, value, opts);
  return { changed: true, previous };
}

/**
 * Turns on IP forwarding for the families the node routes (IPv4 always, IPv6 when asked). Returns the keys that
 * could not be set, with the reason: the caller logs them; a node without forwarding still holds its lease.
 */
export async function ensureForwarding(
  ipv6: boolean,
  opts: KernelCallOptions = {},
): Promise<Array<{ key: string; error: string }>> {
  const keys = ['net.ipv4.ip_forward', ...(ipv6 ? ['net.ipv6.conf.all.forwarding'] : [])];
  const failed: Array<{ key: string; error: string }> = [];
  for (const key of keys) {
    await ensureSysctl(key, '1', opts).catch((err: unknown) =>
      failed.push({ key, error: errorMessage(err) }),
    );
  }
  return failed;
}
