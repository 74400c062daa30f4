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
 * (`weftprobe<4 hex>`, never brought up, so it binds no socket) and deletes it again.
 */
export async function probeVxlanSupport(
  opts: KernelCallOptions & { existing?: string } = {},
): Promise<VxlanSupport> {
  if (opts.existing !== undefined) {
    const text = await readTool('ip', ['-d', '-json', 'link', 'show'], opts);
    const found = parseLinkList(text, 'ip -d -json link show').find((l) => l.name === opts.existing);
    if (found?.infoKind === 'vxlan') return { supported: true };
  }
  const name = `weftprobe${randomBytes(2).toString('hex')}`;
  const add = await runTool(
    'ip',
    ['link', 'add', name, 'type', 'vxlan', 'id', '1', 'dstport', '0', 'nolearning'],
    opts,
  );
  if (add.code !== 0)
    return { supported: false, reason: add.stderr.trim() || `ip link add exited ${add.code}` };
  await runTool('ip', ['link', 'del', name], opts);
  return { supported: true };
}
