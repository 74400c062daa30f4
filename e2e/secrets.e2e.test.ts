// Issue 13 item 7: nothing secret reaches a log line, /status, /metrics, /healthz or an error message. A real
// weftd runs with credentials in its etcd endpoint (and a net-conf without Backend plus an unknown key, whose
// warnings must each appear once); then weftd is started with every kind of secret flag in ways that fail, and
// every byte each run wrote is searched for the markers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastRunLog, waitFor } from '../testkit/dataplane.js';
import { HEALTHZ_PORT, startWeftCluster, WEFTD, type WeftCluster } from '../testkit/weft-cluster.js';

const SECRETS = {
  endpointPassword: 'SECRET-EP-7c1d',
  etcdPassword: 'SECRET-PW-44ab',
  inlineKey: 'SECRET-KEY-90fe',
  keyNotPem: 'SECRET-RAWKEY-d2e8',
};
const MARKERS = Object.values(SECRETS);
const INLINE_KEY = `-----BEGIN PRIVATE KEY-----\n${SECRETS.inlineKey}\n-----END PRIVATE KEY-----\n`;
// Not a certificate at all: whatever the TLS stack says about it must not echo the key next to it.
const INLINE_CERT = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n';

/** The markers found in `text` (none expected). */
function leaked(text: string): string[] {
  return MARKERS.filter((m) => text.includes(m));
}

/** `http://host:port` with credentials in its userinfo. */
function withUserinfo(endpoint: string, scheme = 'http'): string {
  return endpoint.replace(/^https?:\/\//, `${scheme}://weftuser:${SECRETS.endpointPassword}@`);
}

describe('secrets never reach logs, /status, /metrics or error messages', () => {
  let c: WeftCluster;
  let etcd = '';
  const outputs = new Map<string, string>();

  beforeAll(async () => {
    c = await startWeftCluster({
      nodes: 1,
      // No Backend (flanneld would pick udp) and a key weft does not know: one warning each.
      netConf: { Network: '10.244.0.0/16', Colour: 'blue' },
      beforeWeftd: async (cluster) => {
        etcd = cluster.etcdEndpoint;
      },
      subnetManagerArgs: () => [`--etcd-endpoints=${withUserinfo(etcd)}`],
    });
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('a running weftd with credentials in its etcd endpoint shows none in /healthz, /readyz, /status, /metrics', async () => {
    const node = c.net.nodes[0]!;
    for (const path of ['/healthz', '/readyz', '/status', '/metrics']) {
      const r = await waitFor(`${path} to answer`, async () => {
        const res = await node.exec('curl', [
          '-sS',
          '--max-time',
          '5',
          `http://127.0.0.1:${HEALTHZ_PORT}${path}`,
        ]);
        return res.code === 0 && res.stdout !== '' ? res : undefined;
      });
      outputs.set(path, r.stdout);
      expect(leaked(r.stdout), path).toEqual([]);
    }
    expect(outputs.get('/metrics')).toMatch(/^weft_/m);
  });

  it('its log shows the endpoint without the password, and warns once each about the missing Backend and unknown keys', async () => {
    await c.weftNodes[0]!.weftd!.stop('SIGTERM', 10_000);
    const text = readFileSync(c.weftNodes[0]!.logFile, 'utf8');
    expect(leaked(text)).toEqual([]);
    const records = lastRunLog(c, 0);
    const starting = records.find((r) => r.msg === 'weftd starting') as {
      options: { etcdEndpoints: string[] };
    };
    expect(starting.options.etcdEndpoints).toEqual([withUserinfo(etcd).replace(/\/\/.*@/, '//[redacted]@')]);
    const warnings = records.filter((r) => r.level === 40).map((r) => String(r.msg));
    expect(warnings.filter((m) => m.includes('keys weft does not know'))).toHaveLength(1);
    expect(warnings.filter((m) => m.includes('flanneld picks udp'))).toHaveLength(1);
  });

  /** Starts weftd on the node with `args` replacing the fixture's, lets it fail (bounded), returns its output. */
  async function failingStart(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    const w = c.weftNodes[0]!;
    const logFile = join(c.net.tempDir, `secrets-${name}.log`);
    const flagName = (a: string) => a.split('=')[0]!;
    const given = new Set(args.map(flagName));
    const base = c.weftdArgs(w).filter((a) => !given.has(flagName(a)) && !a.startsWith('--etcd-endpoints'));
    const handle = await w.node.spawn(process.execPath, [WEFTD, ...base, ...args], {
      logFile,
      env: { ...env, WEFT_TEST: '1' },
    });
    try {
      // Until it exits, or has said what is wrong (a warning or worse after "weftd starting").
      await waitFor(
        `weftd (${name}) to fail`,
        async () => {
          if (handle.exited) return true;
          const text = readFileSync(logFile, 'utf8');
          return /"level":(40|50|60)/.test(text) || undefined;
        },
        15_000,
      );
    } finally {
      if (!handle.exited) await handle.stop('SIGTERM', 5_000);
    }
    const text = readFileSync(logFile, 'utf8');
    outputs.set(name, text);
    return text;
  }

  it('failing starts with secret flags echo none of them', async () => {
    const runs: Array<[string, string[], NodeJS.ProcessEnv?]> = [
      [
        'inline-key-tls',
        [
          `--etcd-endpoints=${withUserinfo(etcd, 'https')}`,
          `--etcd-keyfile=${INLINE_KEY}`,
          `--etcd-certfile=${INLINE_CERT}`,
          '--etcd-username=weftuser',
          `--etcd-password=${SECRETS.etcdPassword}`,
        ],
      ],
      [
        'key-not-pem',
        [`--etcd-endpoints=${etcd}`, `--etcd-certfile=${INLINE_CERT}`, `--etcd-keyfile=${SECRETS.keyNotPem}`],
      ],
      ['endpoint-without-port', [`--etcd-endpoints=${withUserinfo(etcd).replace(/:\d+$/, '')}`]],
      ['endpoint-bad-scheme', [`--etcd-endpoints=${withUserinfo(etcd, 'ftp')}`]],
      // etcd has no auth enabled: the login fails; the password came from the environment, as flannel allows.
      [
        'password-env',
        [`--etcd-endpoints=${etcd}`, '--etcd-username=weftuser'],
        { FLANNELD_ETCD_PASSWORD: SECRETS.etcdPassword },
      ],
    ];
    for (const [name, args, env] of runs) {
      const text = await failingStart(name, args, env);
      expect(text, `${name} printed nothing`).not.toBe('');
      expect(leaked(text), `${name}:\n${text.slice(-2000)}`).toEqual([]);
    }
    // The failures said what was wrong, without the values.
    expect(outputs.get('key-not-pem')).toMatch(/etcd-keyfile.*cannot read the file it names \(ENOENT\)/);
    expect(outputs.get('endpoint-without-port')).toMatch(/\[redacted\]@.*has no port/);
    expect(outputs.get('endpoint-bad-scheme')).toMatch(/\[redacted\]@.*must use http/);
    expect(outputs.get('inline-key-tls')).toMatch(/"msg":"weftd failed"/);
    expect(outputs.get('password-env')).toMatch(/authentication is not enabled/);
  });
});
