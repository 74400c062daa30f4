// The test API server answers the real @kubernetes/client-node the way a real API server does, for the
// calls weft makes.
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeApiServer, makeNode, startFakeApiServer } from './server.js';
import { jsonMergePatch, strategicMerge } from './strategic-merge.js';

function client(server: FakeApiServer): { api: CoreV1Api; kc: KubeConfig } {
  const kc = new KubeConfig();
  kc.loadFromFile(server.kubeconfigPath);
  return { api: kc.makeApiClient(CoreV1Api), kc };
}

async function status(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

interface Seen {
  phase: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; code?: number; reason?: string };
}

/** Runs a watch with the library's own Watch class until `done` fires; returns what it saw. */
function watchWithLibrary(
  kc: KubeConfig,
  query: Record<string, string>,
): { seen: Seen[]; ended: Promise<unknown>; stop: () => void } {
  const seen: Seen[] = [];
  let controller: AbortController | undefined;
  const ended = new Promise<unknown>((resolve) => {
    new Watch(kc)
      .watch('/api/v1/nodes', query, (phase, object) => seen.push({ phase, object }), resolve)
      .then((c) => {
        controller = c;
      });
  });
  return { seen, ended, stop: () => controller?.abort() };
}

async function until(probe: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('test API server', () => {
  let server: FakeApiServer;
  beforeEach(async () => {
    server = await startFakeApiServer({ bookmarkIntervalMs: 0 });
  });
  afterEach(async () => {
    await server.stop();
  });

  it('lists and gets nodes with resourceVersions from one global counter; 404 for unknown ones', async () => {
    const { api } = client(server);
    server.nodes.add(makeNode('a', { podCIDR: '10.5.1.0/24' }));
    server.nodes.add(makeNode('b', { podCIDR: '10.5.2.0/24' }));
    const list = await api.listNode();
    expect(list.items.map((n) => n.metadata?.name)).toEqual(['a', 'b']);
    expect(list.metadata?.resourceVersion).toBe('1002');
    expect(list.items.map((n) => n.metadata?.resourceVersion)).toEqual(['1001', '1002']);
    const b = await api.readNode({ name: 'b' });
    expect(b.spec?.podCIDRs).toEqual(['10.5.2.0/24']);
    expect(await status(api.readNode({ name: 'nope' }))).toBe(404);
    const one = await api.listNode({ fieldSelector: 'metadata.name=a' });
    expect(one.items.map((n) => n.metadata?.name)).toEqual(['a']);
  });

  it('requires the kubeconfig token', async () => {
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: 'c', server: server.url, skipTLSVerify: true }, { name: 'anonymous' });
    expect(await status(kc.makeApiClient(CoreV1Api).listNode())).toBe(401);
  });

  it('PATCH nodes/<n>/status: strategic merge of annotations (null deletes) and conditions (by type); spec kept', async () => {
    const { api } = client(server);
    server.nodes.add(makeNode('a', { podCIDR: '10.5.1.0/24', annotations: { keep: 'me', drop: 'me' } }));
    const patched = await api.patchNodeStatus(
      {
        name: 'a',
        body: {
          metadata: { annotations: { added: 'yes', drop: null } },
          spec: { podCIDR: '10.9.9.0/24' },
          status: { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp' }] },
        },
      },
      strategic,
    );
    expect(patched.metadata?.annotations).toEqual({ keep: 'me', added: 'yes' });
    expect(patched.spec?.podCIDR).toBe('10.5.1.0/24');
    expect(patched.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual([
      'Ready=True',
      'NetworkUnavailable=False',
    ]);
    // Merging by type updates in place.
    await api.patchNodeStatus(
      { name: 'a', body: { status: { conditions: [{ type: 'Ready', status: 'False' }] } } },
      strategic,
    );
    const node = server.nodes.get('a');
    expect(node?.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual([
      'Ready=False',
      'NetworkUnavailable=False',
    ]);
    expect(server.requests.filter((r) => r.method === 'PATCH').map((r) => r.contentType)).toEqual([
      'application/strategic-merge-patch+json',
      'application/strategic-merge-patch+json',
    ]);
  });

  it('a resourceVersion in the patch is a precondition (409 when stale)', async () => {
    const { api } = client(server);
    server.nodes.add(makeNode('a'));
    const stale = { metadata: { resourceVersion: '1', annotations: { x: 'y' } } };
    expect(await status(api.patchNodeStatus({ name: 'a', body: stale }, strategic))).toBe(409);
  });

  it('injects 409/500 answers and hanging requests on demand', async () => {
    const { api } = client(server);
    server.nodes.add(makeNode('a'));
    server.faults.failNext(1, 500);
    server.faults.failNext(1, 409, { method: 'PATCH' });
    expect(await status(api.readNode({ name: 'a' }))).toBe(500);
    expect(await status(api.readNode({ name: 'a' }))).toBe(200);
    expect(
      await status(
        api.patchNodeStatus({ name: 'a', body: { metadata: { annotations: { a: 'b' } } } }, strategic),
      ),
    ).toBe(409);
    expect(server.faults.pending()).toBe(0);

    server.faults.hangNext(1);
    const hung = api.readNode({ name: 'a' });
    await until(() => server.requests.some((r) => r.outcome === 'hang'), 'the hang');
    const outcome = Promise.race([
      hung.then(() => 'answered'),
      new Promise((r) => setTimeout(() => r('pending'), 200)),
    ]);
    expect(await outcome).toBe('pending');
    await server.stop(); // a stopped server drops the hung request
    await expect(hung).rejects.toThrow();
  });

  it('streams watch events from a resourceVersion, with bookmarks, to the library Watch class', async () => {
    const { kc } = client(server);
    server.nodes.add(makeNode('a'));
    const from = String(server.nodes.resourceVersion);
    server.nodes.add(makeNode('b')); // after `from`: replayed
    const w = watchWithLibrary(kc, { resourceVersion: from, allowWatchBookmarks: 'true' });
    await until(() => server.openWatches() === 1, 'the watch');
    server.nodes.annotate('a', { x: '1' });
    server.nodes.delete('b');
    server.sendBookmarks();
    await until(() => w.seen.length === 4, 'four events');
    expect(w.seen.map((s) => `${s.phase} ${s.object.metadata?.name ?? ''}`)).toEqual([
      'ADDED b',
      'MODIFIED a',
      'DELETED b',
      'BOOKMARK ',
    ]);
    expect(w.seen[3]?.object.metadata?.resourceVersion).toBe(String(server.nodes.resourceVersion));
    server.closeWatches();
    await w.ended;
  });

  it('answers a watch from a version older than its history with an ERROR event carrying a 410 Status', async () => {
    await server.stop();
    server = await startFakeApiServer({ historyLimit: 2, bookmarkIntervalMs: 0 });
    const { kc } = client(server);
    for (const name of ['a', 'b', 'c', 'd']) server.nodes.add(makeNode(name));
    const w = watchWithLibrary(kc, { resourceVersion: '1001' });
    await w.ended;
    expect(w.seen).toHaveLength(1);
    expect(w.seen[0]?.phase).toBe('ERROR');
    expect(w.seen[0]?.object).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
    // Within the history it works.
    const ok = watchWithLibrary(kc, { resourceVersion: '1002' });
    await until(() => ok.seen.length === 2, 'the replay');
    expect(ok.seen.map((s) => s.object.metadata?.name)).toEqual(['c', 'd']);
    ok.stop();
  });

  it('keeps its store across restart(); forgetHistory makes old versions 410', async () => {
    const { api, kc } = client(server);
    server.nodes.add(makeNode('a'));
    await server.restart();
    expect((await api.listNode()).items.map((n) => n.metadata?.name)).toEqual(['a']);
    await server.restart({ forgetHistory: true });
    const w = watchWithLibrary(kc, { resourceVersion: '1000' });
    await w.ended;
    expect(w.seen[0]?.object).toMatchObject({ code: 410 });
  });
});

describe('patch semantics', () => {
  it('strategic merge: $patch directives and merge keys', () => {
    const node = {
      metadata: { annotations: { a: '1' } },
      status: {
        conditions: [
          { type: 'Ready', status: 'True' },
          { type: 'X', status: 'True' },
        ],
      },
    };
    expect(
      strategicMerge(node, {
        status: { conditions: [{ type: 'X', $patch: 'delete' }], $setElementOrder: null },
      }),
    ).toEqual({
      metadata: { annotations: { a: '1' } },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    expect(strategicMerge(node, { metadata: { annotations: { $patch: 'replace', b: '2' } } })).toMatchObject({
      metadata: { annotations: { b: '2' } },
    });
    expect(() => strategicMerge(node, { status: { conditions: [{ status: 'x' }] } })).toThrow(
      /merge key "type"/,
    );
  });

  it('JSON merge patch replaces lists', () => {
    expect(jsonMergePatch({ l: [1, 2], m: { a: 1, b: 2 } }, { l: [3], m: { a: null } })).toEqual({
      l: [3],
      m: { b: 2 },
    });
  });
});
