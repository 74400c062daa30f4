// Finds and loads weft's one native addon (native/, built by node-gyp into native/build/Release): the udp data
// path and the rtnetlink writer. Walks up from this module so it works from src/ (vitest) and dist/ (built).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NATIVE_ADDON_PATH = path.join('native', 'build', 'Release', 'weft_udp.node');

export type NativeAddonLoad =
  | { ok: true; addon: unknown; path: string }
  | { ok: false; searched: string[]; error?: unknown };

let loaded: NativeAddonLoad | undefined;

/** Loads the addon once and remembers the outcome (a failed load is not retried). */
export function loadNativeAddon(): NativeAddonLoad {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  const searched: string[] = [];
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    const candidate = path.join(dir, NATIVE_ADDON_PATH);
    searched.push(dir);
    if (existsSync(candidate)) {
      try {
        loaded = { ok: true, addon: require(candidate) as unknown, path: candidate };
      } catch (error) {
        loaded = { ok: false, searched: [candidate], error };
      }
      return loaded;
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  loaded = { ok: false, searched };
  return loaded;
}
