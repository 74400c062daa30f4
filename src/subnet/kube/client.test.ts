import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KubeConfigError, loadKubeConfig } from './client.js';

function kubeconfig(server: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: c',
    '  cluster:',
    `    server: ${server}`,
    'users:',
    '- name: u',
    '  user:',
    '    token: abc',
    'contexts:',
    '- name: x',
    '  context: {cluster: c, user: u}',
    'current-context: x',
    '',
  ].join('\n');
}

function withKubeconfig(text: string, fn: (file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kubeconfig-'));
  try {
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, text);
    fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('loadKubeConfig', () => {
  it('uses --kubeconfig-file, with --kube-api-url replacing its server', () => {
    withKubeconfig(kubeconfig('https://10.0.0.1:6443'), (file) => {
      expect(loadKubeConfig({ kubeconfigFile: file, env: {} }).getCurrentCluster()?.server).toBe(
        'https://10.0.0.1:6443',
      );
      const overridden = loadKubeConfig({ kubeconfigFile: file, apiUrl: 'http://127.0.0.1:8001/', env: {} });
      expect(overridden.getCurrentCluster()?.server).toBe('http://127.0.0.1:8001');
      // Plain http has no TLS to verify; the client refuses http otherwise.
      expect(overridden.getCurrentCluster()?.skipTLSVerify).toBe(true);
      expect(overridden.getCurrentUser()?.token).toBe('abc');
    });
  });

  it('uses --kube-api-url alone when there is no kubeconfig and no in-cluster environment', () => {
    const kc = loadKubeConfig({ apiUrl: 'https://api.example.com:6443', env: {} });
    expect(kc.getCurrentCluster()?.server).toBe('https://api.example.com:6443');
    expect(kc.getCurrentCluster()?.skipTLSVerify).toBe(false);
  });

  it('says what is missing or wrong', () => {
    expect(() => loadKubeConfig({ env: {} })).toThrow(/give --kubeconfig-file or --kube-api-url/);
    expect(() => loadKubeConfig({ apiUrl: 'not a url', env: {} })).toThrow(KubeConfigError);
    expect(() => loadKubeConfig({ apiUrl: 'ftp://x', env: {} })).toThrow(/http:\/\/ or https:\/\//);
    expect(() => loadKubeConfig({ kubeconfigFile: '/nonexistent/kubeconfig', env: {} })).toThrow(
      /cannot load --kubeconfig-file \/nonexistent\/kubeconfig/,
    );
    withKubeconfig('apiVersion: v1\nkind: Config\nclusters: []\n', (file) => {
      expect(() => loadKubeConfig({ kubeconfigFile: file, env: {} })).toThrow(/no current context/);
    });
  });
});
