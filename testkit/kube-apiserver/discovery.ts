// Discovery as the real API server serves it for the core group, so kubectl finds `nodes` (short name `no`),
// `nodes/status` and `pods`: /api (APIVersions), /apis (no groups here), /api/v1 (APIResourceList), /version.
// Also the Table form of nodes that `kubectl get` asks for (server-side printing), with kubectl's columns.
import type { Json } from './strategic-merge.js';

export const VERSION_INFO: Json = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.0-weft-test',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.22.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export function apiVersions(serverAddress: string): Json {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

export const API_GROUP_LIST: Json = { kind: 'APIGroupList', apiVersion: 'v1', groups: [] };

export const CORE_V1_RESOURCES: Json = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    {
      name: 'nodes',
      singularName: 'node',
      namespaced: false,
      kind: 'Node',
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      shortNames: ['no'],
    },
    {
      name: 'nodes/status',
      singularName: '',
      namespaced: false,
      kind: 'Node',
      verbs: ['get', 'patch', 'update'],
    },
    {
      name: 'pods',
      singularName: 'pod',
      namespaced: true,
      kind: 'Pod',
      verbs: ['get', 'list'],
      shortNames: ['po'],
      categories: ['all'],
    },
  ],
};

/** True when the client asked for `as=Table` (kubectl get's server-side printing). */
export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /;\s*as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

const NODE_COLUMNS: Json[] = [
  { name: 'Name', type: 'string', format: 'name', description: 'Name of the node', priority: 0 },
  { name: 'Status', type: 'string', format: '', description: 'The node conditions', priority: 0 },
  { name: 'Roles', type: 'string', format: '', description: 'The roles of the node', priority: 0 },
  { name: 'Age', type: 'string', format: '', description: 'Time since creation', priority: 0 },
  { name: 'Version', type: 'string', format: '', description: 'Kubelet version', priority: 0 },
  { name: 'Internal-IP', type: 'string', format: '', description: 'Internal address', priority: 1 },
];

interface NodeLike {
  metadata: { name: string; creationTimestamp?: unknown; [key: string]: unknown };
  status?: { conditions?: Array<Record<string, unknown>>; addresses?: unknown; [key: string]: unknown };
}

function age(created: unknown, now: number): string {
  const t = typeof created === 'string' ? Date.parse(created) : Number.NaN;
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

function row(node: NodeLike, now: number): Json {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const status = ready?.status === 'True' ? 'Ready' : 'NotReady';
  const addresses = Array.isArray(node.status?.addresses)
    ? (node.status?.addresses as Array<{ type?: string; address?: string }>)
    : [];
  const internal = addresses.find((a) => a.type === 'InternalIP')?.address ?? '<none>';
  return {
    cells: [
      node.metadata.name,
      status,
      '<none>',
      age(node.metadata.creationTimestamp, now),
      'v1.31.0',
      internal,
    ],
    object: {
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: node.metadata as unknown as Json,
    },
  };
}

/** A Table of nodes; `listMeta` as the list's (resourceVersion, continue, remainingItemCount). */
export function nodeTable(nodes: readonly NodeLike[], listMeta: Json, withColumns = true): Json {
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withColumns ? NODE_COLUMNS : [],
    rows: nodes.map((n) => row(n, now)),
  };
}
