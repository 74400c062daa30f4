// contrib/kubernetes/weft.yaml: valid against the Kubernetes schemas (kubernetes-models), free of unknown
// fields (checked against the official client's model attribute maps, as `kubectl --validate=strict` would),
// and consistent with what weftd needs (RBAC for the calls the kube manager makes, flags weftd knows, the
// mounts and probes). Also the init container's install-cni-plugins script.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { describe, expect, it } from 'vitest';
import { parseNetworkConfigText } from '../../config/index.js';
import { WEFTD_FLAGS } from '../../config/options.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const MANIFEST = path.join(ROOT, 'contrib/kubernetes/weft.yaml');
const INSTALLER = path.join(ROOT, 'contrib/kubernetes/install-cni-plugins');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

type Doc = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
};

const docs = k8s.loadAllYaml(fs.readFileSync(MANIFEST, 'utf8')).filter((d) => d !== null) as Doc[];

function find<T = Doc>(kind: string): T {
  const doc = docs.find((d) => d.kind === kind);
  if (!doc) throw new Error(`weft.yaml has no ${kind}`);
  return doc as unknown as T;
}

/** Model classes by apiVersion/kind (kubernetes-models: the OpenAPI schemas, compiled validators). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
};

/** The official client's model for a kind, e.g. apps/v1 DaemonSet → V1DaemonSet. */
function modelTypeName(doc: Doc): string {
  const version = doc.apiVersion.split('/').at(-1) ?? '';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${doc.kind}`;
}

interface AttributeType {
  baseName: string;
  type: string;
}
type ModelClass = { getAttributeTypeMap(): AttributeType[] };

/** Fields the client's generated models do not know (typos, wrong nesting), with their paths. */
function unknownFields(value: unknown, type: string, at: string): string[] {
  if (value === null || value === undefined) return [];
  const list = /^Array<(.+)>$/.exec(type);
  if (list) {
    return Array.isArray(value)
      ? value.flatMap((v, i) => unknownFields(v, list[1] ?? '', `${at}[${i}]`))
      : [`${at} (not a list)`];
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1] ?? '', `${at}.${k}`));
  }
  const model = (k8s as unknown as Record<string, ModelClass | undefined>)[type];
  if (typeof model?.getAttributeTypeMap !== 'function') return [];
  if (typeof value !== 'object' || Array.isArray(value)) return [`${at} (not an object)`];
  const attributes = model.getAttributeTypeMap();
  return Object.entries(value as object).flatMap(([key, v]) => {
    const attribute = attributes.find((a) => a.baseName === key);
    return attribute ? unknownFields(v, attribute.type, `${at}.${key}`) : [`${at}.${key}`];
  });
}

describe('contrib/kubernetes/weft.yaml', () => {
  it('holds the namespace, RBAC, ConfigMap and DaemonSet', () => {
    expect(docs.map((d) => d.kind)).toEqual([
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'DaemonSet',
    ]);
  });

  it('validates against the Kubernetes schemas', () => {
    for (const doc of docs) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model, `${doc.apiVersion} ${doc.kind}`).toBeDefined();
      if (!Model) continue;
      expect(() => new Model(doc as never).validate(), `${doc.kind} ${doc.metadata.name}`).not.toThrow();
    }
  });

  it('has no fields the API does not know (strict validation)', () => {
    for (const doc of docs) {
      expect(unknownFields(doc, modelTypeName(doc), doc.kind), doc.kind).toEqual([]);
    }
    // The check itself catches typos.
    const typo = {
      ...find('DaemonSet'),
      spec: { template: { spec: { tolerations: [{ operatorr: 'Exists' }] } } },
    } as Doc;
    expect(unknownFields(typo, 'V1DaemonSet', 'DaemonSet')).toEqual([
      'DaemonSet.spec.template.spec.tolerations[0].operatorr',
    ]);
  });

  it('grants exactly the API access the kube subnet manager uses', () => {
    const role = find<{ rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }>(
      'ClusterRole',
    );
    const grants = role.rules.flatMap((r) =>
      r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups.join(',')}:${res}:${v}`)),
    );
    expect(grants.sort()).toEqual([
      ':nodes/status:patch',
      ':nodes:get',
      ':nodes:list',
      ':nodes:watch',
      ':pods:get',
    ]);
    const binding = find<{
      roleRef: { name: string };
      subjects: Array<{ kind: string; name: string; namespace: string }>;
    }>('ClusterRoleBinding');
    const sa = find('ServiceAccount');
    expect(binding.roleRef.name).toBe(find('ClusterRole').metadata.name);
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace },
    ]);
    expect(sa.metadata.namespace).toBe(find('Namespace').metadata.name);
  });

  it('ships a net-conf.json weft accepts and a cni-conf.json that is JSON', () => {
    const cm = find<{ data: Record<string, string> }>('ConfigMap');
    const config = parseNetworkConfigText(cm.data['net-conf.json'] ?? '', 'net-conf.json');
    expect(config.backend.type).toBe('vxlan');
    expect(config.unknownKeys).toEqual([]);
    const cni = JSON.parse(cm.data['cni-conf.json'] ?? '') as { plugins: Array<{ type: string }> };
    expect(cni.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
  });

  it('runs weftd with flags it knows, the mounts, probes and rights it needs', () => {
    interface Container {
      name: string;
      image: string;
      command?: string[];
      args?: string[];
      env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
      securityContext?: { capabilities?: { add?: string[] } };
      resources?: { requests?: Record<string, string> };
      volumeMounts?: Array<{ name: string; mountPath: string }>;
      livenessProbe?: { httpGet: { path: string; port: number } };
      readinessProbe?: { httpGet: { path: string; port: number } };
    }
    const ds = find<{
      metadata: { namespace: string };
      spec: {
        template: {
          spec: {
            hostNetwork: boolean;
            priorityClassName: string;
            serviceAccountName: string;
            tolerations: Array<{ operator: string }>;
            containers: Container[];
            initContainers: Container[];
            volumes: Array<{ name: string; hostPath?: { path: string }; configMap?: { name: string } }>;
          };
        };
      };
    }>('DaemonSet');
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.serviceAccountName).toBe(find('ServiceAccount').metadata.name);
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });

    const weftd = pod.containers.find((c) => c.name === 'weftd');
    if (!weftd) throw new Error('no weftd container');
    expect(weftd.image).toBe(`weft:${VERSION}`);
    const args = weftd.args ?? [];
    const known = new Set(WEFTD_FLAGS.map((f) => f.name));
    for (const arg of args) expect(known.has(arg.replace(/^--/, '').split('=')[0] ?? ''), arg).toBe(true);
    expect(args).toEqual(
      expect.arrayContaining([
        '--kube-subnet-mgr',
        '--ip-masq',
        '--cni-conf-file=/etc/cni/net.d/10-weft.conflist',
      ]),
    );
    const port = Number(args.find((a) => a.startsWith('--healthz-port='))?.split('=')[1]);
    expect(port).toBeGreaterThan(0);
    expect(weftd.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port });
    expect(weftd.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port });
    expect(weftd.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe(
      'spec.nodeName',
    );
    expect(weftd.securityContext?.capabilities?.add?.sort()).toEqual(['NET_ADMIN', 'NET_RAW']);
    expect(Object.keys(weftd.resources?.requests ?? {}).sort()).toEqual(['cpu', 'memory']);

    const hostPaths = new Map(pod.volumes.filter((v) => v.hostPath).map((v) => [v.name, v.hostPath?.path]));
    expect([...hostPaths.values()].sort()).toEqual([
      '/etc/cni/net.d',
      '/opt/cni/bin',
      '/run/flannel',
      '/run/xtables.lock',
    ]);
    const mounted = (c: Container): string[] =>
      (c.volumeMounts ?? []).map((m) => `${hostPaths.get(m.name) ?? m.name}→${m.mountPath}`);
    expect(mounted(weftd).sort()).toEqual([
      '/etc/cni/net.d→/etc/cni/net.d',
      '/run/flannel→/run/flannel',
      '/run/xtables.lock→/run/xtables.lock',
      'weft-cfg→/etc/kube-flannel/',
    ]);
    expect(pod.volumes.find((v) => v.name === 'weft-cfg')?.configMap?.name).toBe(
      find('ConfigMap').metadata.name,
    );

    const installer = pod.initContainers.find((c) => c.name === 'install-cni-plugins');
    expect(installer?.command).toEqual(['/usr/local/lib/weft/install-cni-plugins']);
    expect(installer && mounted(installer)).toEqual(['/opt/cni/bin→/opt/cni/bin']);
  });
});

describe('install-cni-plugins', () => {
  it('copies the missing plugins and keeps the ones the node has', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cni-install-'));
    try {
      const src = path.join(dir, 'src');
      const dest = path.join(dir, 'dest');
      fs.mkdirSync(src);
      fs.mkdirSync(dest);
      for (const p of ['bridge', 'host-local', 'portmap', 'loopback'])
        fs.writeFileSync(path.join(src, p), `image ${p}\n`);
      fs.writeFileSync(path.join(dest, 'bridge'), 'node bridge\n', { mode: 0o755 });
      const out = execFileSync('sh', [INSTALLER, src, dest], { encoding: 'utf8' });
      expect(out).toContain(`${dest}/bridge is present; kept`);
      expect(fs.readFileSync(path.join(dest, 'bridge'), 'utf8')).toBe('node bridge\n');
      for (const p of ['host-local', 'portmap', 'loopback']) {
        expect(fs.readFileSync(path.join(dest, p), 'utf8')).toBe(`image ${p}\n`);
        expect(fs.statSync(path.join(dest, p)).mode & 0o777).toBe(0o755);
      }
      expect(fs.readdirSync(dest).sort()).toEqual(['bridge', 'host-local', 'loopback', 'portmap']);
      expect(() => execFileSync('sh', [INSTALLER, path.join(dir, 'nope'), dest], { stdio: 'pipe' })).toThrow(
        /is not a directory/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
