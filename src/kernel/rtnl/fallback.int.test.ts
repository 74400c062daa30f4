// Without the native addon, kernel entries go through the iproute2 batches (root). A copy of the built dist/
// with node_modules beside it but no native/ (as on a machine where the addon did not build) runs in a child
// process: entryWriter() names iproute2 and why, and a route, a neighbour and an FDB entry still land in a
// scratch namespace, as the kernel's own dumps show.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecked } from '../../../testkit/exec.js';
import { makeRunTempDir, removeRunTempDir } from '../../../testkit/run.js';
import { createScratchNamespace, type ScratchNamespace } from '../../../testkit/scratch-netns.js';
import { REPO_ROOT } from '../../../testkit/weft-cluster.js';
import type { KernelOp } from '../types.js';

const CHILD = `
import { pathToFileURL } from 'node:url';
const [kernelIndex, netns, opsJson] = process.argv.slice(2);
const k = await import(pathToFileURL(kernelIndex).href);
const writer = k.entryWriter();
const results = await k.applyKernelOps(JSON.parse(opsJson), { netns });
process.stdout.write(JSON.stringify({ writer, results: results.map((r) => ({ ok: r.ok, error: r.error })) }));
`;

describe('kernel entries without the native addon', () => {
  let dir: string;
  let ns: ScratchNamespace;

  beforeAll(async () => {
    dir = makeRunTempDir('noaddon');
    fs.cpSync(path.join(REPO_ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
    fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    fs.writeFileSync(path.join(dir, 'child.mjs'), CHILD);
    ns = await createScratchNamespace('192.168.0.1/16');
    await ns.ip([
      'link',
      'add',
      'flannel.1',
      'type',
      'vxlan',
      'id',
      '1',
      'dev',
      ns.ext,
      'dstport',
      '8472',
      'nolearning',
    ]);
    await ns.ip(['link', 'set', 'flannel.1', 'up']);
  });
  afterAll(() => {
    ns?.destroy();
    if (dir) removeRunTempDir(dir);
  });

  it('uses the iproute2 batches, says why, and the entries land in the kernel', async () => {
    const mac = '02:aa:00:00:00:07';
    const ops: KernelOp[] = [
      { kind: 'fdb-replace', fdb: { dev: 'flannel.1', mac, dst: '192.168.0.7' } },
      { kind: 'neighbor-replace', neighbor: { dev: 'flannel.1', ip: '10.20.7.0', mac } },
      {
        kind: 'route-replace',
        route: { dst: '10.20.7.0/24', via: '10.20.7.0', dev: 'flannel.1', onlink: true },
      },
    ];
    const { stdout } = await runChecked(
      process.execPath,
      [path.join(dir, 'child.mjs'), path.join(dir, 'dist/src/kernel/index.js'), ns.name, JSON.stringify(ops)],
      { timeoutMs: 30_000 },
    );
    const out = JSON.parse(stdout) as {
      writer: { writer: string; reason?: string };
      results: { ok: boolean; error?: string }[];
    };
    expect(out.writer.writer).toBe('iproute2');
    expect(out.writer.reason).toMatch(/^no loadable native\/build\/Release\/weft_udp\.node in /);
    expect(out.results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    const route = await runChecked('ip', ['-n', ns.name, 'route', 'show', '10.20.7.0/24']);
    expect(route.stdout).toMatch(/10\.20\.7\.0\/24 via 10\.20\.7\.0 dev flannel\.1 onlink/);
    const neigh = await runChecked('ip', ['-n', ns.name, 'neigh', 'show', 'dev', 'flannel.1']);
    expect(neigh.stdout).toContain(`10.20.7.0 lladdr ${mac} PERMANENT`);
    const fdb = await runChecked('bridge', ['-n', ns.name, 'fdb', 'show', 'dev', 'flannel.1']);
    expect(fdb.stdout).toContain(`${mac} dst 192.168.0.7 self permanent`);
  });
});
