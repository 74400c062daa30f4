// weftd's node flags (its memory settings, docs/memory.md) reach every way users start it: the bin's shebang is the
// one source; the systemd unit, the image and the DaemonSet start weftd through the bin, never through a `node`
// command of their own, and carry in NODE_OPTIONS those of the flags node allows there (for a weftd started as
// `node …/weftd.js`; V8 tuning flags such as --heap-growing-percent are refused in NODE_OPTIONS).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

function shebangFlags(): string {
  const first = read('daemon/weftd.ts').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  if (!m?.[1]) throw new Error(`daemon/weftd.ts: expected "#!/usr/bin/env -S node FLAGS", found ${first}`);
  return m[1].trim();
}

function nodeAccepts(args: string[], nodeOptions = ''): boolean {
  const r = spawnSync(process.execPath, [...args, '-e', '0'], {
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
    encoding: 'utf8',
    timeout: 10_000,
  });
  return r.status === 0 && r.stderr === '';
}

describe("weftd's node flags", () => {
  const all = shebangFlags().split(/\s+/);
  /** What the unit, the image and the DaemonSet put in NODE_OPTIONS: the flags node allows there. */
  const flags = all.filter((f) => nodeAccepts([], f)).join(' ');

  it('are flags node accepts on its command line, the memory flags among them', () => {
    expect(nodeAccepts(all)).toBe(true);
    expect(all).toContain('--max-semi-space-size=1');
    expect(all).toContain('--heap-growing-percent=10');
    expect(flags).toBe('--max-semi-space-size=1');
  });

  it('are set by the systemd unit, which starts the bin', () => {
    const unit = read('contrib/systemd/weftd.service');
    expect(unit).toContain(`\nEnvironment=NODE_OPTIONS=${flags}\n`);
    expect(unit).toMatch(/\nExecStart=\/usr\/local\/bin\/weftd\s*\n/);
  });

  it('are set by the image, whose entrypoint is the bin', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toContain(`NODE_OPTIONS=${flags}\n`);
    expect(dockerfile).toContain('ENTRYPOINT ["weftd"]');
  });

  it('are set by the DaemonSet, which keeps the image entrypoint', () => {
    const manifest = read('contrib/kubernetes/weft.yaml');
    expect(manifest).toContain(`- name: NODE_OPTIONS\n              value: ${flags}\n`);
    const weftd = manifest.slice(manifest.indexOf('- name: weftd'));
    expect(weftd).not.toMatch(/^\s+command:/m);
  });
});
