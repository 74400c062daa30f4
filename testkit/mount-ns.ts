// Per-node mount namespaces for simulated nodes that run wireguard-go: its socket folder `/var/run/wireguard`
// is one folder for every network namespace of the machine, so two nodes' `flannel-wg.sock` would collide.
// Each such node gets a persistent mount namespace (bound to `MARKER_DIR/mnt/<netns>`) with a tmpfs on
// /run/wireguard; its commands run as `nsenter --mount=<file> ip netns exec <netns> …` (both exec, so a PID
// is the command's own). The file is named after the node's network namespace: deleting that namespace
// through run.ts also kills what still runs in it (a detached wireguard-go) and
// unmounts the mount namespace, after a crash too.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MARKER_DIR } from './run.js';

export const MOUNT_NS_DIR = path.join(MARKER_DIR, 'mnt');
/** What the node's tmpfs covers (`/var/run` is a link to `/run` on Debian). */
export const WIREGUARD_RUN_DIR = '/run/wireguard';

function isMountPoint(dir: string): boolean {
  try {
    const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    return text.split('\n').some((line) => line.split(' ')[4] === dir);
  } catch {
    return false;
  }
}

/** `MOUNT_NS_DIR` as a private bind mount: a namespace file can only be bound below a private mount. */
function ensureMountNsDir(): void {
  fs.mkdirSync(MOUNT_NS_DIR, { recursive: true });
  if (!isMountPoint(MOUNT_NS_DIR)) {
    execFileSync('mount', ['--bind', MOUNT_NS_DIR, MOUNT_NS_DIR], { stdio: 'ignore' });
  }
  execFileSync('mount', ['--make-private', MOUNT_NS_DIR], { stdio: 'ignore' });
}

export function mountNsFile(netns: string): string {
  return path.join(MOUNT_NS_DIR, netns);
}

/** Creates the mount namespace of node `netns` with its own tmpfs on /run/wireguard; returns its file. */
export function createNodeMountNs(netns: string): string {
  ensureMountNsDir();
  fs.mkdirSync(WIREGUARD_RUN_DIR, { recursive: true });
  const file = mountNsFile(netns);
  fs.writeFileSync(file, '');
  execFileSync(
    'unshare',
    [
      `--mount=${file}`,
      '--propagation',
      'private',
      '--',
      'mount',
      '-t',
      'tmpfs',
      '-o',
      'mode=0700',
      `${netns}-wg`,
      WIREGUARD_RUN_DIR,
    ],
    { stdio: 'ignore', timeout: 10_000 },
  );
  return file;
}

/** The argv prefix that runs a command in the node's mount and network namespaces. */
export function nodeNsArgv(mountNs: string, netns: string): string[] {
  return ['nsenter', `--mount=${mountNs}`, 'ip', 'netns', 'exec', netns];
}
