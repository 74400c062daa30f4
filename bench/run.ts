// `npm run bench [-- name ...]`: runs the named benchmark scenarios (default: all), one after another, each in
// its own process so one scenario's memory and sockets never colour the next one's numbers.
// `npm run bench -- NAME --option value …`: one scenario with its own options (e.g. `leases --concurrency 1000`).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Modules in bench/ that other benches use, not scenarios of their own. */
const HELPERS = new Set(['run', 'leases-shared', 'leases-worker', 'etcd3-client']);

const here = fileURLToPath(new URL('.', import.meta.url));
const scenarios = readdirSync(here)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.replace(/\.js$/, ''))
  .filter((name) => !HELPERS.has(name))
  .sort();
const args = process.argv.slice(2);
const firstOption = args.findIndex((a) => a.startsWith('-'));
const wanted = firstOption < 0 ? args : args.slice(0, firstOption);
const options = firstOption < 0 ? [] : args.slice(firstOption);
const unknown = wanted.filter((w) => !scenarios.includes(w));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; available: ${scenarios.join(', ')}\n`);
  process.exit(2);
}
if (options.length > 0 && wanted.length !== 1) {
  process.stderr.write(`options (${options.join(' ')}) go to one benchmark: name exactly one before them\n`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length > 0 ? wanted : scenarios) {
  process.stdout.write(`\n=== bench/${name}${options.length > 0 ? ` ${options.join(' ')}` : ''}\n`);
  const r = spawnSync(process.execPath, [`${here}${name}.js`, ...options], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
