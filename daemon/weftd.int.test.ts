import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The CLI as users run it: the built weftd (npm test builds first).
const WEFTD = fileURLToPath(new URL('../dist/daemon/weftd.js', import.meta.url));

function weftd(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [WEFTD, ...args],
      { env: { PATH: process.env.PATH, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe.skipIf(!existsSync(WEFTD))('weftd command line', () => {
  it('--help lists flannel’s flags, grouped', async () => {
    const r = await weftd(['--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      '--etcd-endpoints',
      '--etcd-prefix',
      '--etcd-keyfile',
      '--etcd-certfile',
      '--etcd-cafile',
      '--etcd-username',
      '--etcd-password',
      '--kube-subnet-mgr',
      '--kube-api-url',
      '--kubeconfig-file',
      '--kube-annotation-prefix',
      '--net-config-path',
      '--iface',
      '--iface-regex',
      '--iface-can-reach',
      '--public-ip',
      '--public-ipv6',
      '--subnet-file',
      '--subnet-lease-renew-margin',
      '--ip-masq',
      '--iptables-resync',
      '--iptables-forward-rules',
      '--healthz-ip',
      '--healthz-port',
      '--log-level',
    ]) {
      expect(r.stdout).toContain(flag);
    }
    for (const group of [
      'etcd:',
      'Kubernetes:',
      'Interface selection:',
      'Firewall:',
      'Health and metrics:',
    ]) {
      expect(r.stdout).toContain(group);
    }
    expect(r.stdout).toContain('http://127.0.0.1:4001,http://127.0.0.1:2379');
  });

  it('--version prints the package version', async () => {
    const r = await weftd(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.each([
    [
      ['--subnet-lease-renew-margin=0'],
      /--subnet-lease-renew-margin: expected an integer between 1 and 1439/,
    ],
    [['--public-ip=not-an-ip'], /--public-ip: "not-an-ip" is not an IPv4 address/],
    [['--healthz-port=99999'], /--healthz-port/],
    [['--no-such-flag'], /Unknown argument/],
    [['--etcd-endpoints=localhost:2379'], /--etcd-endpoints/],
  ])('exits 2 with a one-line reason for %j', async (args, message) => {
    const r = await weftd(args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('reads a bad value from FLANNELD_* env and names it', async () => {
    const r = await weftd([], { FLANNELD_IP_MASQ: 'maybe' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/FLANNELD_IP_MASQ/);
  });

  it('a flag on the command line wins over the environment', async () => {
    // The env value is invalid; the valid flag must take precedence, so parsing gets past it and only the bad
    // --iface-regex given afterwards is reported.
    const r = await weftd(['--public-ip=192.0.2.1', '--iface-regex=[x'], { FLANNELD_PUBLIC_IP: 'bad' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--iface-regex/);
  });
});
