import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** weft's version from package.json (found from src/ and from dist/src/). */
export function weftVersion(): string {
  if (cached) return cached;
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'weft' && pkg.version) {
        cached = pkg.version;
        return cached;
      }
    } catch {
      // try the next layout
    }
  }
  return 'unknown';
}
