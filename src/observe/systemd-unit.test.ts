// contrib/systemd/weftd.service and weftd.env: the unit passes `systemd-analyze verify` (when systemd is
// installed) with no warning, carries the keys weft relies on (Type=notify with NotifyAccess=all for the
// systemd-notify helper, Wants= not Requires= on etcd), and every variable in the example environment file
// is a weftd flag.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { flagsFromEnv, WEFTD_FLAGS } from '../config/options.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const UNIT = path.join(ROOT, 'contrib/systemd/weftd.service');
const ENV_FILE = path.join(ROOT, 'contrib/systemd/weftd.env');

/** A unit file as section → key → values (a key may repeat). Comments and blank lines dropped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1] ?? '', current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

function has(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

const HAVE_SYSTEMD_ANALYZE = has('systemd-analyze');
if (!HAVE_SYSTEMD_ANALYZE) console.warn('systemd-analyze missing: the unit is only parsed, not verified');

describe('contrib/systemd/weftd.service', () => {
  const unitText = fs.readFileSync(UNIT, 'utf8');
  const unit = parseUnit(unitText);
  const get = (section: string, key: string): string[] => unit.get(section)?.get(key) ?? [];
  const words = (section: string, key: string): string[] => get(section, key).flatMap((v) => v.split(/\s+/));

  it('starts after the network and etcd, wanting but not requiring them', () => {
    expect(words('Unit', 'After')).toEqual(expect.arrayContaining(['network-online.target', 'etcd.service']));
    expect(words('Unit', 'Wants')).toEqual(expect.arrayContaining(['network-online.target', 'etcd.service']));
    expect(get('Unit', 'Requires')).toEqual([]);
    expect(get('Unit', 'BindsTo')).toEqual([]);
  });

  it('is Type=notify, accepts the helper notification, restarts on failure', () => {
    expect(get('Service', 'Type')).toEqual(['notify']);
    expect(get('Service', 'NotifyAccess')).toEqual(['all']);
    expect(get('Service', 'Restart')).toEqual(['on-failure']);
    expect(get('Service', 'ExecStart')[0]).toMatch(/\/weftd$/);
    expect(get('Service', 'EnvironmentFile')).toEqual(['-/etc/weft/weftd.env']);
    expect(get('Install', 'WantedBy')).toEqual(['multi-user.target']);
  });

  it.skipIf(!HAVE_SYSTEMD_ANALYZE)('passes systemd-analyze verify without a warning', () => {
    // verify checks that ExecStart exists: point it at a stand-in executable, change nothing else.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-unit-'));
    try {
      const stub = path.join(dir, 'weftd');
      fs.writeFileSync(stub, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      const copy = path.join(dir, 'weftd.service');
      const lines = unitText.split('\n');
      expect(lines.filter((l) => l.startsWith('ExecStart='))).toHaveLength(1);
      fs.writeFileSync(
        copy,
        lines.map((l) => (l.startsWith('ExecStart=') ? `ExecStart=${stub}` : l)).join('\n'),
      );
      const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 30_000 });
      expect(result.stderr.trim()).toBe('');
      expect(result.status).toBe(0);

      // The check has teeth: a misspelt key is reported.
      fs.writeFileSync(copy, fs.readFileSync(copy, 'utf8').replace('NotifyAccess=', 'NotifyAcess='));
      const bad = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 30_000 });
      expect(bad.stderr).toContain("Unknown key 'NotifyAcess'");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('contrib/systemd/weftd.env', () => {
  const text = fs.readFileSync(ENV_FILE, 'utf8');
  const flagEnvNames = new Map(
    WEFTD_FLAGS.map((f) => [`FLANNELD_${f.name.toUpperCase().replaceAll('-', '_')}`, f.name]),
  );

  it('names only weftd flags, set or commented out', () => {
    const names = [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? '');
    expect(names.length).toBeGreaterThan(5);
    for (const name of names) expect(flagEnvNames.has(name), name).toBe(true);
  });

  it('parses into weftd options as the daemon reads them', () => {
    const env: Record<string, string> = {};
    for (const m of text.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)) env[m[1] ?? ''] = m[2] ?? '';
    const values = flagsFromEnv(WEFTD_FLAGS, env);
    expect(values['etcd-endpoints']).toEqual(expect.stringContaining('2379'));
    expect(values['ip-masq']).toBe(true);
    expect(values['healthz-port']).toBe(10267);
  });
});
