import * as fs from 'node:fs';
import type * as https from 'node:https';
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

describe('loadKubeConfig reads what weft needs without @kubernetes/client-node', () => {
  const full = (dir: string): string =>
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: c',
      '  cluster:',
      '    server: https://10.0.0.1:6443/',
      '    certificate-authority: ca.pem',
      '    tls-server-name: api.internal',
      'users:',
      '- name: u',
      '  user:',
      `    client-certificate-data: ${Buffer.from('CERT').toString('base64')}`,
      `    client-key: ${path.join(dir, 'key.pem')}`,
      '    tokenFile: token',
      '- name: plugin',
      '  user:',
      '    exec: {apiVersion: client.authentication.k8s.io/v1, command: get-token}',
      'contexts:',
      '- name: x',
      '  context: {cluster: c, user: u}',
      '- name: y',
      '  context: {cluster: c, user: plugin}',
      'current-context: x',
      '',
    ].join('\n');

  it('applies the CA, client certificate and a token file relative to the kubeconfig, re-read as it rotates', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kubeconfig-'));
    try {
      fs.writeFileSync(path.join(dir, 'ca.pem'), 'CA');
      fs.writeFileSync(path.join(dir, 'key.pem'), 'KEY');
      fs.writeFileSync(path.join(dir, 'token'), 'first\n');
      const file = path.join(dir, 'kubeconfig');
      fs.writeFileSync(file, full(dir));
      const kc = loadKubeConfig({ kubeconfigFile: file, env: {} });
      expect(kc.getCurrentCluster().server).toBe('https://10.0.0.1:6443');
      const options: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      expect(String(options.ca)).toBe('CA');
      expect(String(options.cert)).toBe('CERT');
      expect(String(options.key)).toBe('KEY');
      expect(options.servername).toBe('api.internal');
      expect(options.headers).toEqual({ Authorization: 'Bearer first' });
      expect(kc.getCurrentUser().plugin).toBeUndefined();
      // An exec-plugin user is left to the library (loaded only then).
      fs.writeFileSync(file, full(dir).replace('current-context: x', 'current-context: y'));
      expect(loadKubeConfig({ kubeconfigFile: file, env: {} }).getCurrentUser().plugin).toBe('exec');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses the in-cluster ServiceAccount: CA and token from its directory, the service address from the env', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-sa-'));
    try {
      fs.writeFileSync(path.join(dir, 'ca.crt'), 'CA');
      fs.writeFileSync(path.join(dir, 'token'), 'sa-token');
      const kc = loadKubeConfig({
        env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
        serviceAccountDir: dir,
      });
      expect(kc.getCurrentCluster().server).toBe('https://[fd00::1]:443');
      const options: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      expect(options.headers).toEqual({ Authorization: 'Bearer sa-token' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(() =>
      loadKubeConfig({
        env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '1' },
        serviceAccountDir: '/nonexistent',
      }),
    ).toThrow(/is a ServiceAccount token mounted/);
  });
});
