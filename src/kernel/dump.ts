// dumpKernelState: reads the kernel state a scope owns, with a handful of `-json` reads run in parallel.
import { KernelCommandError, readTool, runTool } from './exec.js';
import { filterOwned } from './ownership.js';
import {
  parseFdbList,
  parseLinkList,
  parseNeighborList,
  parseRouteList,
  toAddressEntries,
  toObservedLink,
} from './parse.js';
import type { KernelCallOptions, KernelScope, KernelState, RouteEntry } from './types.js';

/**
 * Reads links and addresses (`ip -d -json addr show`), main-table routes of the scope's families, PERMANENT
 * neighbours, and the FDB of each VXLAN device in scope; returns only what the scope owns.
 */
export async function dumpKernelState(
  scope: KernelScope,
  opts: KernelCallOptions = {},
): Promise<KernelState> {
  const families = new Set(scope.networks.map((n) => n.family));
  const routeRead = (family: 4 | 6): Promise<RouteEntry[]> =>
    families.has(family)
      ? readTool('ip', [`-${family}`, '-json', 'route', 'show', 'table', 'main'], opts).then((t) =>
          parseRouteList(t, `ip -${family} -json route show table main`),
        )
      : Promise.resolve([]);
  // FDB reads start with the others (one round of processes): a device that does not exist fails its read,
  // which only matters when the link list says it does exist.
  const fdbReads = scope.devices.map((dev) =>
    runTool('bridge', ['-json', 'fdb', 'show', 'dev', dev], opts).then(
      (result) => ({ dev, result }),
      (error: unknown) => ({ dev, error }),
    ),
  );
  const [linkText, routes4, routes6, neighborText, fdbResults] = await Promise.all([
    readTool('ip', ['-d', '-json', 'addr', 'show'], opts),
    routeRead(4),
    routeRead(6),
    readTool('ip', ['-json', 'neigh', 'show', 'nud', 'permanent'], opts),
    Promise.all(fdbReads),
  ]);
  const wanted = new Set(scope.devices);
  const listed = parseLinkList(linkText).filter((l) => wanted.has(l.name));
  const links = listed.map(toObservedLink);
  const vxlanDevices = new Set(links.filter((l) => l.kind === 'vxlan').map((l) => l.name));
  const fdbLists = fdbResults
    .filter((read) => vxlanDevices.has(read.dev))
    .map((read) => {
      const command = `bridge -json fdb show dev ${read.dev}`;
      if ('error' in read) throw read.error;
      if (read.result.code !== 0) throw new KernelCommandError(command, read.result);
      return parseFdbList(read.result.stdout, read.dev, command);
    });
  const state: KernelState = {
    links,
    addresses: toAddressEntries(listed),
    routes: [...routes4, ...routes6],
    neighbors: parseNeighborList(neighborText),
    fdb: fdbLists.flat(),
  };
  return filterOwned(state, scope);
}
