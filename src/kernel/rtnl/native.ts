// The native rtnetlink primitive (native/src/rtnl.c through addon.c), typed: one NETLINK_ROUTE socket per call,
// requests sent in windows with NLM_F_ACK, one answer per request.
import { loadNativeAddon, NATIVE_ADDON_PATH } from '../../core/index.js';

/** A request's answer: 0, or the kernel's errno with strerror's text and its extended ack message ('' if none). */
export type RtnlAnswer = 0 | { errno: number; text: string; message: string };

export interface RtnlAddon {
  /** Numbers the requests in place (seq 1..n, NLM_F_ACK) and sends them; netns is a path (/run/netns/NAME). */
  rtnlTransact(requests: Uint8Array, netns?: string): RtnlAnswer[];
  /** Interface indexes by name in the namespace; 0 = no such device. */
  rtnlIfindexes(names: string[], netns?: string): number[];
}

export type RtnlLoad = { ok: true; addon: RtnlAddon } | { ok: false; reason: string };

let cached: RtnlLoad | undefined;

/** The addon's rtnetlink functions, or why they cannot be used (then entries are written by iproute2). */
export function loadRtnl(): RtnlLoad {
  if (cached !== undefined) return cached;
  const load = loadNativeAddon();
  if (!load.ok) {
    const cause = load.error instanceof Error ? `: ${load.error.message}` : '';
    cached = { ok: false, reason: `no loadable ${NATIVE_ADDON_PATH} in ${load.searched.join(', ')}${cause}` };
  } else {
    const addon = load.addon as Partial<RtnlAddon>;
    cached =
      typeof addon.rtnlTransact === 'function' && typeof addon.rtnlIfindexes === 'function'
        ? { ok: true, addon: addon as RtnlAddon }
        : {
            ok: false,
            reason: `${load.path} has no rtnetlink functions (an older build: npm run build:native)`,
          };
  }
  return cached;
}
