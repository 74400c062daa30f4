// Whether this kernel can create VXLAN devices (the `auto` backend falls back to udp when it cannot).
import { randomBytes } from 'node:crypto';
import { readTool, runTool } from './exec.js';
import { parseLinkList } from './parse.js';
import type { KernelCallOptions } from './types.js';

export interface VxlanSupport {
  supported: boolean;
  /** The kernel's message when not supported. */
  reason?: string;
}

/**
 * True when a VXLAN device named `existing` is already there, else creates a throw-away VXLAN device
 * (`weftprobe<4 hex>`) and deletes it again. Without `port` the device is never brought up, so it binds no
 * socket. With `port` it gets that dstport and is brought up: bringing a VXLAN device up is what binds its UDP
 * port, so a port another process holds fails the probe ("Address already in use") as it would fail the
 * real device — creating the device alone succeeds then.
 */
export async function probeVxlanSupport(
  opts: KernelCallOptions & { existing?: string; port?: number } = {},
): Promise<VxlanSupport> {
  if (opts.existing !== undefined) {
    const text = await readTool('ip', ['-d', '-json', 'link', 'show'], opts);
    const found = parseLinkList(text, 'ip -d -json link show').find((l) => l.name === opts.existing);
    if (found?.infoKind === 'vxlan') return { supported: true };
  }
  const name = `weftprobe${randomBytes(2).toString('hex')}`;
  const port = opts.port === undefined ? '0' : String(opts.port);
  const add = await runTool(
    'ip',
    ['link', 'add', name, 'type', 'vxlan', 'id', '1', 'dstport', port, 'nolearning'],
    opts,
  );
  if (add.code !== 0)
    return { supported: false, reason: add.stderr.trim() || `ip link add exited ${add.code}` };
  let result: VxlanSupport = { supported: true };
  if (opts.port !== undefined) {
    const up = await runTool('ip', ['link', 'set', 'dev', name, 'up'], opts);
    if (up.code !== 0) {
      const why = up.stderr.trim() || `ip link set up exited ${up.code}`;
      result = { supported: false, reason: `a VXLAN device on UDP port ${port} cannot come up: ${why}` };
    }
  }
  await runTool('ip', ['link', 'del', name], opts);
  return result;
}
