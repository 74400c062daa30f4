import { describe, expect, it } from 'vitest';
import { createEtcdClient, EtcdClientConfigError } from './client.js';

const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;

describe('createEtcdClient', () => {
  it('refuses TLS material OpenSSL cannot use at once, naming the setting and not the material', () => {
    const key = pem('PRIVATE KEY', 'c2VjcmV0LWtleS1tYXRlcmlhbA==');
    const attempt = (tls: { ca?: string; cert?: string; key?: string }) => {
      try {
        createEtcdClient({ endpoints: ['https://127.0.0.1:2379'], tls }).close();
        return undefined;
      } catch (err) {
        return err as Error;
      }
    };
    const bad = attempt({ cert: pem('CERTIFICATE', 'AAAA'), key });
    expect(bad).toBeInstanceOf(EtcdClientConfigError);
    expect(bad?.message).toMatch(/^etcd-keyfile: the client key and certificate .* are not a usable pair/);
    expect(bad?.message).not.toContain('c2VjcmV0');
    expect(attempt({ cert: pem('CERTIFICATE', 'AAAA') })?.message).toMatch(/needs both/);
  });

  it('refuses a CA bundle without a readable certificate at start, saying which one', () => {
    const attempt = (ca: string) => () =>
      createEtcdClient({ endpoints: ['https://127.0.0.1:2379'], tls: { ca } });
    expect(attempt(pem('CERTIFICATE', 'AAAA'))).toThrow(
      /^etcd-cafile: certificate 1 of 1 is not a readable X\.509 certificate/,
    );
    expect(attempt(`${pem('CERTIFICATE', 'bm90IGEgY2VydA==')}${pem('CERTIFICATE', 'AAAA')}`)).toThrow(
      /certificate 1 of 2/,
    );
    expect(attempt(pem('PRIVATE KEY', 'AAAA'))).toThrow(
      /^etcd-cafile: holds no "-----BEGIN CERTIFICATE-----" block/,
    );
  });

  it('checks endpoints and the password without a username', () => {
    expect(() => createEtcdClient({ endpoints: ['127.0.0.1:2379'] })).toThrow(EtcdClientConfigError);
    expect(() => createEtcdClient({ endpoints: ['http://127.0.0.1:2379'], password: 'x' })).toThrow(
      /etcd-password: given without --etcd-username/,
    );
    expect(() => createEtcdClient({ endpoints: ['http://a:1', 'https://b:2'] })).toThrow(/mixes/);
  });
});
