// The Dockerfile without Docker (no daemon, no registry here): its structure is parsed and checked, every
// file it copies from the context must survive .dockerignore, and the runtime stage's dependency step is
// exercised for real: the prod-deps stage's COPY and `npm ci --omit=dev` run in a temp dir laid out like the
// image's /opt/weft, dist/ and the native addon are added as the runtime stage copies them, and
// `node dist/daemon/weftd.js --version` must start from there.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRunTempDir, removeRunTempDir } from '../testkit/run.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Dockerfile → instructions: comments dropped, `\` continuations joined, keywords upper-cased. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? '';
    const start = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.trimEnd().endsWith('\\') && i + 1 < lines.length) {
      line = `${line.trimEnd().slice(0, -1)} `;
      i++;
      const next = lines[i] ?? '';
      if (!/^\s*#/.test(next)) line += next.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse ${JSON.stringify(line)}`);
    instructions.push({
      keyword: (m[1] ?? '').toUpperCase(),
      args: (m[2] ?? '').trim().replace(/\s+/g, ' '),
      line: start,
    });
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: FROM ${ins.args}`);
      const from = (m[1] ?? '').replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? `\${${name}}`);
      stages.push({ name: m[2] ?? String(stages.length), from, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before FROM`);
      const [name, value] = ins.args.split('=');
      args.set(name ?? '', value ?? '');
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return { args, stages };
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

function parseCopy(ins: Instruction): Copy {
  const words = ins.args.split(' ');
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() ?? '';
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop() ?? '';
  return { from, sources: words, dest };
}

/** .dockerignore as Docker applies it: the last matching pattern wins; a pattern matching a parent dir matches. */
function dockerignore(text: string): (file: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const exclude = !l.startsWith('!');
      const pattern = (exclude ? l : l.slice(1)).replace(/^\/+/, '').replace(/\/+$/, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i] ?? '';
        if (c === '*' && pattern[i + 1] === '*') {
          re += '.*';
          i++;
          if (pattern[i + 1] === '/') i++;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { exclude, regex: new RegExp(`^${re}$`) };
    });
  return (file) => {
    const parts = file.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) {
      if (candidates.some((c) => rule.regex.test(c))) excluded = rule.exclude;
    }
    return !excluded;
  };
}

function filesUnder(dir: string, base = dir): string[] {
  if (!fs.statSync(dir).isDirectory()) return [path.relative(base, dir)];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(full, base) : [path.relative(base, full)];
  });
}

function exec(
  cmd: string,
  args: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code =
          err === null
            ? 0
            : typeof (err as { code?: unknown }).code === 'number'
              ? (err as { code: number }).code
              : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const dockerfile = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const s = dockerfile.stages.find((x) => x.name === name);
  if (!s) throw new Error(`the Dockerfile has no stage ${name}`);
  return s;
};
const runs = (s: Stage): string[] => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
};
const inContext = dockerignore(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));

/** Carries out a stage's COPYs from the build context (after .dockerignore) into `into` (its WORKDIR). */
function copyStageContext(name: string, into: string): void {
  for (const copy of stage(name)
    .instructions.filter((i) => i.keyword === 'COPY')
    .map(parseCopy)) {
    if (copy.from !== undefined) continue;
    for (const source of copy.sources) {
      const target =
        copy.sources.length > 1 || copy.dest.endsWith('/')
          ? path.join(into, path.basename(source))
          : path.join(into, copy.dest);
      for (const file of filesUnder(path.join(ROOT, source), ROOT).filter(inContext)) {
        const dest = path.join(target, path.relative(source, file));
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.copyFileSync(path.join(ROOT, file), dest);
      }
    }
  }
}

describe('Dockerfile', () => {
  it('pins the Node 20 slim base image by full version tag and says why not by digest', () => {
    expect(dockerfile.args.get('NODE_IMAGE')).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
    expect(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).toMatch(
      /digest cannot be resolved offline/,
    );
    // Every stage starts from the pinned image or from an earlier stage.
    dockerfile.stages.forEach((s, i) => {
      const earlier = dockerfile.stages.slice(0, i).map((x) => x.name);
      expect([dockerfile.args.get('NODE_IMAGE'), ...earlier], s.name).toContain(s.from);
    });
    expect(dockerfile.stages.map((s) => s.name)).toEqual([
      'toolchain',
      'build',
      'prod-deps',
      'cni-plugins',
      'runtime',
    ]);
  });

  it('builds as the unprivileged node user and keeps the toolchain out of the runtime', () => {
    for (const name of ['build', 'prod-deps']) {
      const ins = stage(name).instructions;
      const user = ins.findIndex((i) => i.keyword === 'USER' && i.args === 'node');
      const firstRun = ins.findIndex((i) => i.keyword === 'RUN');
      expect(user, name).toBeGreaterThanOrEqual(0);
      expect(user, name).toBeLessThan(firstRun);
    }
    expect(runs(stage('build')).join(' ')).toContain('npm run build');
    expect(runs(stage('build')).join(' ')).toContain('node-gyp');
    expect(runs(stage('toolchain')).join(' ')).toMatch(/install .*python3 make g\+\+/);
    const runtime = stage('runtime');
    const apt = runs(runtime).find((r) => r.includes('apt-get install')) ?? '';
    expect(apt).toMatch(/\biproute2\b/);
    expect(apt).toMatch(/\biptables\b/);
    // "EnableNFTables": true needs nft in the image (Debian package nftables).
    expect(apt).toMatch(/\bnftables\b/);
    expect(apt).not.toMatch(/g\+\+|\bmake\b|python3/);
    expect(runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.args).toBe('["weftd"]');
  });

  it('takes node_modules from `npm ci --omit=dev` and dist/ plus the addon from the build stage', () => {
    expect(runs(stage('prod-deps')).some((r) => /^npm ci --omit=dev\b/.test(r))).toBe(true);
    const copies = stage('runtime')
      .instructions.filter((i) => i.keyword === 'COPY')
      .map(parseCopy);
    const fromStage = (from: string): string[] =>
      copies.filter((c) => c.from === from).flatMap((c) => c.sources);
    expect(fromStage('prod-deps')).toEqual(['/home/node/weft/node_modules']);
    expect(fromStage('build')).toEqual([
      '/home/node/weft/dist',
      '/home/node/weft/native/build/Release/weft_udp.node',
    ]);
    for (const c of copies) if (c.from) expect(dockerfile.stages.map((s) => s.name)).toContain(c.from);
  });

  it('copies only context files that exist and that .dockerignore lets through', () => {
    const included = dockerignore(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
    const sources = dockerfile.stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'COPY')
      .map(parseCopy)
      .filter((c) => c.from === undefined)
      .flatMap((c) => c.sources);
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      const full = path.join(ROOT, source);
      expect(fs.existsSync(full), `${source} exists`).toBe(true);
      const files = filesUnder(full, ROOT).filter((f) => !f.startsWith('native/build/'));
      expect(
        files.some((f) => included(f)),
        `${source} passes .dockerignore`,
      ).toBe(true);
    }
    // What must stay out: dependencies, build output, tests; what must go in: the sources.
    for (const out of [
      'node_modules/pino/package.json',
      'dist/daemon/weftd.js',
      'native/build/Release/weft_udp.node',
      'src/ip/ip.test.ts',
      '.git/HEAD',
    ]) {
      expect(included(out), out).toBe(false);
    }
    for (const inside of ['src/ip/cidr.ts', 'daemon/weftd.ts', 'native/binding.gyp', 'package-lock.json']) {
      expect(included(inside), inside).toBe(true);
    }
  });

  it('build stage: `npm run build` compiles the build context without errors', async () => {
    const dir = makeRunTempDir('imgbuild');
    try {
      copyStageContext('build', dir);
      // Stands in for the stage's `npm ci` (same lock, same packages): the repo's installed node_modules.
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
      expect(runs(stage('build')).some((r) => r.startsWith('npm run build'))).toBe(true);
      const [command, ...args] = (PACKAGE.scripts.build ?? '').split(' ');
      expect(command).toBe('tsc');
      const built = await exec(path.join(ROOT, 'node_modules/.bin/tsc'), args, dir, 300_000);
      expect(built.code, `tsc in the build stage fails:\n${built.stdout.slice(-3000)}`).toBe(0);
      expect(fs.existsSync(path.join(dir, 'dist/daemon/weftd.js'))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'dist/daemon/weftctl.js'))).toBe(true);
    } finally {
      removeRunTempDir(dir);
    }
  }, 600_000);

  it('runtime layout: `npm ci --omit=dev` then weftd --version starts', async () => {
    const dir = makeRunTempDir('image');
    try {
      const workdir = path.join(dir, 'opt-weft');
      const deps = path.join(dir, 'prod-deps');
      fs.mkdirSync(workdir);
      fs.mkdirSync(deps);
      // The prod-deps stage: its context COPYs, then its npm ci (plus --prefer-offline: use the npm cache).
      copyStageContext('prod-deps', deps);
      const npmCi = runs(stage('prod-deps')).find((r) => r.startsWith('npm ci')) ?? '';
      expect(npmCi).not.toMatch(/[;&|$`]/); // one plain command: safe to run as an argument list
      const argv = [...npmCi.split(' ').slice(1), '--prefer-offline'];
      const installed = await exec('npm', argv, deps, 300_000);
      const outOfSync = /can only install packages when your package.json and package-lock.json/.test(
        installed.stderr,
      );
      expect(
        installed.code,
        outOfSync
          ? `package-lock.json does not satisfy npm ci (so neither the image build nor a fresh setup can install): ${installed.stderr.match(/Missing: .*/g)?.join('; ')}`
          : installed.stderr.slice(-2000),
      ).toBe(0);
      expect(fs.existsSync(path.join(deps, 'node_modules/pino/package.json'))).toBe(true);
      expect(fs.existsSync(path.join(deps, 'node_modules/vitest'))).toBe(false); // no devDependencies

      // The runtime stage: package files, node_modules from prod-deps, dist and the addon from build.
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(workdir, 'package.json'));
      fs.copyFileSync(path.join(ROOT, 'package-lock.json'), path.join(workdir, 'package-lock.json'));
      fs.renameSync(path.join(deps, 'node_modules'), path.join(workdir, 'node_modules'));
      let dist = path.join(ROOT, 'dist');
      if (!fs.existsSync(path.join(dist, 'daemon/weftd.js'))) {
        // Not built yet (`npm test` builds first): compile into the temp dir, leaving the repo's dist alone.
        dist = path.join(dir, 'dist');
        await exec(
          path.join(ROOT, 'node_modules/.bin/tsc'),
          ['-p', 'tsconfig.build.json', '--outDir', dist],
          ROOT,
          300_000,
        );
      }
      if (!fs.existsSync(path.join(dist, 'daemon/weftd.js'))) {
        console.warn(
          'dockerfile test: dist/daemon/weftd.js could not be built; the --version step is skipped',
        );
        return;
      }
      fs.cpSync(dist, path.join(workdir, 'dist'), { recursive: true });
      const addon = path.join(ROOT, 'native/build/Release/weft_udp.node');
      if (fs.existsSync(addon)) {
        fs.mkdirSync(path.join(workdir, 'native/build/Release'), { recursive: true });
        fs.copyFileSync(addon, path.join(workdir, 'native/build/Release/weft_udp.node'));
      }
      const version = await exec(process.execPath, ['dist/daemon/weftd.js', '--version'], workdir, 60_000);
      expect(version.code, version.stderr).toBe(0);
      expect(version.stdout.trim()).toBe(VERSION);
    } finally {
      removeRunTempDir(dir);
    }
  }, 600_000);
});
