// GET a path from weftd's health server, with curl run inside a node namespace: by default the node's own
// server on that namespace's loopback; with `host`, another node's server seen from this one.
import type { ClusterNode } from './cluster.js';
import { HEALTHZ_PORT } from './weft-cluster.js';

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

export async function weftdGet(
  node: ClusterNode,
  path: string,
  port = HEALTHZ_PORT,
  host = '127.0.0.1',
): Promise<HttpAnswer> {
  const marker = '\n--weft-e2e--';
  const r = await node.exec(
    'curl',
    [
      '--silent',
      '--show-error',
      '--max-time',
      '10',
      '--write-out',
      `${marker}%{http_code} %{content_type}`,
      `http://${host}:${port}${path}`,
    ],
    { timeoutMs: 15_000 },
  );
  if (r.code !== 0)
    throw new Error(`curl ${path} in ${node.netns} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const at = r.stdout.lastIndexOf(marker);
  const trailer = r.stdout.slice(at + marker.length);
  const space = trailer.indexOf(' ');
  return {
    status: Number(trailer.slice(0, space)),
    contentType: trailer.slice(space + 1),
    body: r.stdout.slice(0, at),
  };
}
