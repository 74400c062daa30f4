// What each dependency and weft module costs in resident memory when it is imported (docs/memory.md):
//   - alone: each in a fresh `node --expose-gc` process, RSS after import and gc() minus RSS before;
//   - in weftd's order: one process (with weftd's `--max-semi-space-size=1`) importing them one after another, the
//     marginal RSS of each and the process's anonymous / file-backed split (smaps_rollup) after it.
//
//   npm run build && npm run build:dev && node dist-dev/bench/import-cost.js
//
// Nothing is started but node processes; weft's modules are imported from dist/ (they do not run).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// Not testkit's REPO_ROOT: importing the test kit would weigh on every child's baseline. This file runs from
// dist-dev/bench/.
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const dist = (file: string) => pathToFileURL(join(REPO_ROOT, 'dist', file)).href;
/** weft's own etcd client (its own HTTP/2 and HPACK, hand-written protobuf) beside the etcd3 package it replaced. */
const ETCD_CLIENT = dist('src/subnet/etcd/grpc/index.js');
const PACKAGES = [
  ETCD_CLIENT,
  'etcd3',
  '@grpc/grpc-js',
  '@kubernetes/client-node',
  'prom-client',
  'pino',
  'pino-pretty',
  'raw-socket',
  'js-yaml',
];
/** weftd's own import order: flags and the CLI (its parser is node:util's), the logger, metrics, the daemon, then one lease source. */
const WEFTD_ORDER = [
  dist('src/config/options.js'),
  dist('daemon/cli.js'),
  'pino',
  'prom-client',
  dist('src/daemon.js'),
  ETCD_CLIENT,
  dist('src/subnet/etcd/index.js'),
  dist('src/subnet/kube/index.js'),
  '@kubernetes/client-node',
];

const name = (spec: string) => (spec.startsWith('file:') ? spec.slice(spec.indexOf('/dist/') + 1) : spec);

function smaps(): { rss: number; anon: number } {
  const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const mib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]) / 1024;
  return { rss: mib('Rss'), anon: mib('Anonymous') };
}

async function child(specs: string[]): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const rows = [{ spec: 'start', ...smaps() }];
  for (const spec of specs) {
    await import(spec);
    gc();
    await new Promise((r) => setTimeout(r, 50));
    rows.push({ spec, ...smaps() });
  }
  process.stdout.write(JSON.stringify(rows));
}

function run(flags: string[], specs: string[]): Array<{ spec: string; rss: number; anon: number }> {
  const self = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, ['--expose-gc', ...flags, self, '--child', ...specs], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return JSON.parse(out) as Array<{ spec: string; rss: number; anon: number }>;
}

function main(): void {
  const f = (x: number) => x.toFixed(1).padStart(6);
  const lines = ['import-cost: RSS in MiB after import and gc()', '  alone, each in a fresh process:'];
  for (const spec of PACKAGES) {
    const [before, after] = run([], [spec]);
    if (!before || !after) throw new Error(`no reading for ${spec}`);
    lines.push(
      `    ${name(spec).padEnd(36)} ${f(after.rss)}  +${f(after.rss - before.rss)}  (bare ${f(before.rss)})`,
    );
  }
  lines.push("  in weftd's order, one process, --max-semi-space-size=1:");
  const rows = run(['--max-semi-space-size=1'], WEFTD_ORDER);
  for (const [i, r] of rows.entries()) {
    const delta = i === 0 ? '' : `+${f(r.rss - rows[i - 1]!.rss)}`;
    lines.push(
      `    ${name(r.spec).padEnd(36)} ${f(r.rss)}  ${delta.padEnd(7)}  anonymous ${f(r.anon)}, file-backed ${f(r.rss - r.anon)}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[2] === '--child') {
  child(process.argv.slice(3)).catch((err: unknown) => {
    process.stderr.write(`import-cost child: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else {
  main();
}
