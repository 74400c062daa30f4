// What a mode does not use is never loaded (docs/memory.md): @kubernetes/client-node costs a weftd ~42 MiB of RSS,
// so it is reached only through the dynamic import of kube mode; etcd mode uses weft's own etcd client
// (src/subnet/etcd/grpc, over its own HTTP/2 connection in grpc/h2) and src/ never imports the etcd3 package (a devDependency for tests).
// Checked on the static import graph as TypeScript emits it (imports used only as types are erased).
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

/** The bare packages the emitted JavaScript of `entry` and everything it imports statically loads at once. */
function staticPackages(entry: string): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const queue = [path.join(ROOT, entry)];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const js = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    // Static `import … from 'x'`, `import 'x'` and `export … from 'x'`; `import('x')` is lazy and not followed.
    for (const m of js.matchAll(/^\s*(?:import|export)\s[^;]*?(?:from\s*)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1] ?? '';
      if (spec.startsWith('.')) queue.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:'))
        packages.add(
          spec
            .split('/')
            .slice(0, spec.startsWith('@') ? 2 : 1)
            .join('/'),
        );
    }
  }
  return packages;
}

describe('lazy imports', () => {
  it('src/ never imports the etcd3 package or grpc-js (weft has its own etcd client); tests may', () => {
    const importing: string[] = [];
    let scanned = 0;
    for (const entry of fs.readdirSync(path.join(ROOT, 'src'), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || entry.name.endsWith('.test.ts') || !entry.name.endsWith('.ts')) continue;
      scanned += 1;
      const text = fs.readFileSync(path.join(entry.parentPath, entry.name), 'utf8');
      // Static, type-only and dynamic imports alike.
      if (/(?:from|import)\s*\(?\s*['"](?:etcd3|@grpc\/[^'"]+)['"]/.test(text)) importing.push(entry.name);
    }
    expect(scanned).toBeGreaterThan(100);
    expect(importing).toEqual([]);
  });

  it('the daemon loads neither lease client library before its mode is chosen', () => {
    const packages = staticPackages('src/daemon.ts');
    expect(packages).toContain('pino'); // the walk works
    expect(packages).not.toContain('etcd3');
    expect(packages).not.toContain('@kubernetes/client-node');
  });

  it('kube mode never loads etcd3, etcd mode never loads the kubernetes client', () => {
    expect(staticPackages('src/subnet/kube/index.ts')).not.toContain('etcd3');
    expect(staticPackages('src/subnet/kube/index.ts')).not.toContain('@kubernetes/client-node');
    expect(staticPackages('src/subnet/etcd/index.ts')).toContain('pino'); // the walk reaches the logger
    expect(staticPackages('src/subnet/etcd/index.ts')).not.toContain('@kubernetes/client-node');
  });

  it("weftd's command line loads none of the packages before the daemon (its parser is node:util's parseArgs)", () => {
    for (const entry of ['daemon/weftd.ts', 'daemon/commands/dispatch.ts']) {
      const packages = staticPackages(entry);
      for (const pkg of ['yargs', 'pino', 'prom-client', 'etcd3', '@kubernetes/client-node', 'js-yaml']) {
        expect(packages).not.toContain(pkg);
      }
    }
    expect(staticPackages('daemon/commands/leases.ts')).toContain('pino'); // the walk reaches packages from daemon/
  });
});
