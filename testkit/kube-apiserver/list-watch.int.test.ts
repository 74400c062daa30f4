// The test API server's list and watch follow the real one's documented semantics (kubernetes.io, "API
// concepts": paging, resourceVersion × resourceVersionMatch, bookmarks, 410 Gone), and a real client proves
// the rest: Debian's kubectl, run with the kubeconfig the server writes.
import * as https from 'node:https';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../exec.js';
import { type FakeApiServer, makeNode, startFakeApiServer } from './server.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  lines: Array<{ type: string; object: Record<string, unknown> }>;
}

interface ListBody {
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: Array<{ metadata: { name: string; annotations?: Record<string, string>; resourceVersion: string } }>;
}

/** One GET with the server's CA and token; a watch is read for `watchMs` and then cut. */
function get(server: FakeApiServer, path: string, watchMs = 0): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${server.url}${path}`,
      { ca: server.ca, headers: { Authorization: `Bearer ${server.token}`, Accept: 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        const done = (): void => {
          const lines = watchMs
            ? text
                .split('\n')
                .filter((l) => l.trim() !== '')
                .map((l) => JSON.parse(l) as Answer['lines'][number])
            : [];
          resolve({ status: res.statusCode ?? 0, body: watchMs ? {} : JSON.parse(text), lines });
        };
        res.on('end', done);
        if (watchMs) {
          setTimeout(() => {
            req.destroy();
            done();
          }, watchMs);
        }
      },
    );
    req.on('error', (err) => {
      if (!watchMs) reject(err);
    });
  });
}

const list = async (server: FakeApiServer, query: string): Promise<ListBody> => {
  const answer = await get(server, `/api/v1/nodes?${query}`);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body as unknown as ListBody;
};

const names = (body: ListBody): string[] => body.items.map((n) => n.metadata.name);

describe('test API server: list and watch semantics of a real API server', () => {
  let server: FakeApiServer;

  beforeEach(async () => {
    server = await startFakeApiServer({ bookmarkIntervalMs: 0, historyLimit: 50 });
    for (let i = 1; i <= 7; i++) server.nodes.add(makeNode(`node-${i}`, { podCIDR: `10.5.${i}.0/24` }));
  });

  afterEach(async () => {
    await server.stop();
  });

  it('pages with limit and continue, every page from the first page’s snapshot', async () => {
    const first = await list(server, 'limit=3');
    expect(names(first)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(first.metadata.remainingItemCount).toBe(4);
    expect(first.metadata.continue).toBeTruthy();
    // Changes after the first page are not in the later pages: one consistent list.
    server.nodes.annotate('node-5', { changed: 'yes' });
    server.nodes.add(makeNode('node-45'));
    server.nodes.delete('node-6');
    const second = await list(server, `limit=3&continue=${first.metadata.continue}`);
    expect(names(second)).toEqual(['node-4', 'node-5', 'node-6']);
    expect(second.items[1]?.metadata.annotations?.changed).toBeUndefined();
    expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const third = await list(server, `limit=3&continue=${second.metadata.continue}`);
    expect(names(third)).toEqual(['node-7']);
    expect(third.metadata.continue).toBeUndefined();
    // A new list sees the changes.
    expect(names(await list(server, 'limit=100'))).toEqual([
      'node-1',
      'node-2',
      'node-3',
      'node-4',
      'node-45',
      'node-5',
      'node-7',
    ]);
  });

  it('answers a continue token whose version was compacted away with 410 Expired', async () => {
    const first = await list(server, 'limit=2');
    server.nodes.annotate('node-1', { x: '1' });
    server.nodes.compact();
    const answer = await get(server, `/api/v1/nodes?limit=2&continue=${first.metadata.continue}`);
    expect(answer.status).toBe(410);
    expect(answer.body).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
    expect(String(answer.body.message)).toContain('The provided continue parameter is too old');
  });

  it('reads at resourceVersion × resourceVersionMatch as documented', async () => {
    const before = await list(server, '');
    const rv = Number(before.metadata.resourceVersion);
    server.nodes.annotate('node-2', { later: 'yes' });
    // Exact: the list as it was.
    const exact = await list(server, `resourceVersion=${rv}&resourceVersionMatch=Exact`);
    expect(exact.metadata.resourceVersion).toBe(String(rv));
    expect(exact.items[1]?.metadata.annotations?.later).toBeUndefined();
    // NotOlderThan: at least that version (here: the newest).
    const newer = await list(server, `resourceVersion=${rv}&resourceVersionMatch=NotOlderThan`);
    expect(newer.items[1]?.metadata.annotations?.later).toBe('yes');
    // "0": any version, from the cache, which ignores limit.
    expect(names(await list(server, 'resourceVersion=0&limit=2'))).toHaveLength(7);
    // The legacy rule: a resourceVersion with a limit and no match is Exact.
    const legacy = await list(server, `resourceVersion=${rv}&limit=2`);
    expect(legacy.metadata.resourceVersion).toBe(String(rv));

    const status = async (query: string): Promise<[number, string]> => {
      const a = await get(server, `/api/v1/nodes?${query}`);
      return [a.status, String(a.body.reason)];
    };
    expect(await status('resourceVersionMatch=Exact')).toEqual([400, 'BadRequest']);
    expect(await status('resourceVersion=0&resourceVersionMatch=Exact')).toEqual([400, 'BadRequest']);
    expect(await status('resourceVersionMatch=Newest&resourceVersion=1')).toEqual([400, 'BadRequest']);
    expect(await status(`continue=${before.metadata.continue ?? 'x'}&resourceVersion=5`)).toEqual([
      400,
      'BadRequest',
    ]);
    expect(await status(`resourceVersion=${rv + 1000}&resourceVersionMatch=NotOlderThan`)).toEqual([
      504,
      'Timeout',
    ]);
    server.nodes.compact();
    server.nodes.annotate('node-3', { x: '1' });
    expect(await status(`resourceVersion=${rv}&resourceVersionMatch=Exact`)).toEqual([410, 'Expired']);
  });

  it('sends bookmarks to watches that allow them, and WatchList’s initial-events-end bookmark', async () => {
    const rv = server.nodes.resourceVersion;
    const watching = get(
      server,
      `/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}`,
      600,
    );
    const plain = get(server, `/api/v1/nodes?watch=true&resourceVersion=${rv}`, 600);
    await new Promise((r) => setTimeout(r, 150));
    server.nodes.annotate('node-1', { x: '1' });
    server.sendBookmarks();
    const seen = (await watching).lines;
    expect(seen.map((l) => l.type)).toEqual(['MODIFIED', 'BOOKMARK']);
    const meta = seen[1]?.object.metadata as { resourceVersion: string };
    expect(meta.resourceVersion).toBe(String(server.nodes.resourceVersion));
    expect((await plain).lines.map((l) => l.type)).toEqual(['MODIFIED']);

    const initial = await get(
      server,
      '/api/v1/nodes?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan',
      300,
    );
    expect(initial.lines.filter((l) => l.type === 'ADDED')).toHaveLength(7);
    const end = initial.lines[7];
    expect(end?.type).toBe('BOOKMARK');
    expect(
      (end?.object.metadata as { annotations?: Record<string, string> } | undefined)?.annotations,
    ).toEqual({
      'k8s.io/initial-events-end': 'true',
    });
    // A watch the server ends at its timeout gets a last bookmark to resume from.
    const timed = await get(
      server,
      '/api/v1/nodes?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=' +
        server.nodes.resourceVersion,
      1500,
    );
    expect(timed.lines.map((l) => l.type)).toEqual(['BOOKMARK']);
  });

  it('answers a watch from a compacted version with an ERROR event carrying 410 Expired', async () => {
    const rv = server.nodes.resourceVersion;
    server.nodes.annotate('node-1', { x: '1' });
    server.nodes.compact();
    const answer = await get(server, `/api/v1/nodes?watch=true&resourceVersion=${rv}`, 300);
    expect(answer.lines).toHaveLength(1);
    expect(answer.lines[0]?.type).toBe('ERROR');
    expect(answer.lines[0]?.object).toMatchObject({ code: 410, reason: 'Expired' });
  });
});

describe('test API server: kubectl works against it with the kubeconfig it writes', () => {
  let server: FakeApiServer;
  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await run('kubectl', args, {
      env: { ...process.env, KUBECONFIG: server.kubeconfigPath },
      timeoutMs: 30_000,
    });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };

  beforeEach(async () => {
    server = await startFakeApiServer({ bookmarkIntervalMs: 0 });
    for (let i = 1; i <= 5; i++) {
      server.nodes.add(makeNode(`node-${i}`, { podCIDR: `10.5.${i}.0/24`, internalIP: `192.0.2.${i}` }));
    }
  });

  afterEach(async () => {
    await server.stop();
  });

  it('discovers the API and lists nodes, also in chunks', async () => {
    expect(await kubectl('api-resources')).toMatch(/^nodes\s+no\s+v1\s+false\s+Node$/m);
    const table = await kubectl('get', 'nodes');
    expect(table.split('\n')[0]).toMatch(/^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION/);
    expect(table).toMatch(/^node-5\s+Ready\s/m);
    const before = server.requests.length;
    const chunked = await kubectl('get', 'nodes', '--chunk-size=2', '-o', 'name');
    expect(chunked.trim().split('\n')).toEqual([1, 2, 3, 4, 5].map((i) => `node/node-${i}`));
    const lists = server.requests.slice(before).filter((r) => r.path === '/api/v1/nodes' && !r.watch);
    expect(lists.map((r) => [r.query.limit, r.query.continue !== undefined])).toEqual([
      ['2', false],
      ['2', true],
      ['2', true],
    ]);
  });

  it('annotates a node, patches its status subresource and deletes it', async () => {
    await kubectl('annotate', 'node', 'node-2', 'flannel.alpha.coreos.com/public-ip-overwrite=198.51.100.2');
    expect(
      server.nodes.get('node-2')?.metadata.annotations?.['flannel.alpha.coreos.com/public-ip-overwrite'],
    ).toBe('198.51.100.2');
    await kubectl(
      'patch',
      'node',
      'node-2',
      '--subresource=status',
      '-p',
      '{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","reason":"Test"}]}}',
    );
    const conditions = server.nodes.get('node-2')?.status?.conditions ?? [];
    expect(conditions.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      'NetworkUnavailable=False',
      'Ready=True',
    ]);
    expect(
      await kubectl(
        'get',
        'node',
        'node-2',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="NetworkUnavailable")].reason}',
      ),
    ).toBe('Test');
    expect(await kubectl('delete', 'node', 'node-3')).toContain('node "node-3" deleted');
    expect(server.nodes.names()).not.toContain('node-3');
  });

  it('follows changes with get --watch', async () => {
    const watching = run('kubectl', ['get', 'nodes', '--watch', '--request-timeout=4s', '-o', 'name'], {
      env: { ...process.env, KUBECONFIG: server.kubeconfigPath },
      timeoutMs: 10_000,
    });
    for (let i = 0; i < 100 && server.openWatches() === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(server.openWatches()).toBe(1);
    server.nodes.add(makeNode('node-9'));
    server.nodes.delete('node-1');
    const out = (await watching).stdout.trim().split('\n');
    expect(out.slice(0, 5)).toEqual([1, 2, 3, 4, 5].map((i) => `node/node-${i}`));
    expect(out.slice(5)).toEqual(['node/node-9', 'node/node-1']);
  });
});
