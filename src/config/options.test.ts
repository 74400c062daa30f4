import { describe, expect, it } from 'vitest';
import { envNameOf, flagsFromEnv, OptionError, toDaemonOptions, WEFTD_FLAGS } from './options.js';
import { redactOptions } from './redact.js';

describe('weftd options', () => {
  it('has flannel defaults', () => {
    const o = toDaemonOptions({});
    expect(o.etcdEndpoints).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
    expect(o.etcdPrefix).toBe('/coreos.com/network');
    expect(o.subnetFile).toBe('/run/flannel/subnet.env');
    expect(o.subnetLeaseRenewMargin).toBe(60);
    expect(o.iptablesResync).toBe(5);
    expect(o.iptablesForwardRules).toBe(true);
    expect(o.ipMasq).toBe(false);
    expect(o.tunnelNotrack).toBe(false);
    expect(o.healthzIp).toBe('0.0.0.0');
    expect(o.healthzPort).toBe(0);
    expect(o.kubeAnnotationPrefix).toBe('flannel.alpha.coreos.com');
    expect(o.netConfigPath).toBe('/etc/kube-flannel/net-conf.json');
  });

  it('lists every flannel flag', () => {
    const names = WEFTD_FLAGS.map((f) => f.name);
    for (const flag of [
      'etcd-endpoints',
      'etcd-prefix',
      'etcd-keyfile',
      'etcd-certfile',
      'etcd-cafile',
      'etcd-username',
      'etcd-password',
      'kube-subnet-mgr',
      'kube-api-url',
      'kubeconfig-file',
      'kube-annotation-prefix',
      'net-config-path',
      'iface',
      'iface-regex',
      'iface-can-reach',
      'public-ip',
      'public-ipv6',
      'subnet-file',
      'subnet-lease-renew-margin',
      'ip-masq',
      'iptables-resync',
      'iptables-forward-rules',
      'healthz-ip',
      'healthz-port',
    ]) {
      expect(names).toContain(flag);
    }
  });

  it('reads FLANNELD_* and WEFT_* (WEFT_ wins)', () => {
    expect(envNameOf('FLANNELD', 'etcd-endpoints')).toBe('FLANNELD_ETCD_ENDPOINTS');
    const env = {
      FLANNELD_ETCD_ENDPOINTS: 'http://10.0.0.1:2379',
      FLANNELD_IFACE: 'eth0,eth1',
      FLANNELD_IP_MASQ: 'true',
      FLANNELD_HEALTHZ_PORT: '8471',
      FLANNELD_PUBLIC_IP: '192.0.2.1',
      WEFT_PUBLIC_IP: '192.0.2.9',
    };
    const values = flagsFromEnv(WEFTD_FLAGS, env);
    const o = toDaemonOptions(values);
    expect(o.etcdEndpoints).toEqual(['http://10.0.0.1:2379']);
    expect(o.iface).toEqual(['eth0', 'eth1']);
    expect(o.ipMasq).toBe(true);
    expect(o.healthzPort).toBe(8471);
    expect(o.publicIp).toBe('192.0.2.9');
    expect(toDaemonOptions(flagsFromEnv(WEFTD_FLAGS, { WEFT_TUNNEL_NOTRACK: 'true' })).tunnelNotrack).toBe(
      true,
    );
  });

  it.each([
    [{ 'subnet-lease-renew-margin': 0 }, 'subnet-lease-renew-margin', /between 1 and 1439/],
    [{ 'subnet-lease-renew-margin': 1440 }, 'subnet-lease-renew-margin', /between 1 and 1439/],
    [{ 'healthz-port': 70000 }, 'healthz-port', /between 0 and 65535/],
    [{ 'public-ip': 'fd00::1' }, 'public-ip', /not an IPv4/],
    [{ 'public-ipv6': '10.0.0.1' }, 'public-ipv6', /not an IPv6/],
    [{ 'etcd-endpoints': 'localhost:2379' }, 'etcd-endpoints', /http/],
    [{ 'etcd-prefix': 'coreos.com' }, 'etcd-prefix', /start with/],
    [{ 'iface-regex': ['eth[0-'] }, 'iface-regex', /regular expression/],
    [{ 'log-level': 'loud' }, 'log-level', /one of/],
    [{ 'iface-can-reach': 'example.com' }, 'iface-can-reach', /not an IP/],
  ])('rejects %j', (values, flag, message) => {
    let caught: unknown;
    try {
      toDaemonOptions(values);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OptionError);
    expect((caught as OptionError).flag).toBe(flag);
    expect((caught as Error).message).toMatch(message);
  });

  it('rejects a non-boolean env value', () => {
    expect(() => flagsFromEnv(WEFTD_FLAGS, { FLANNELD_IP_MASQ: 'maybe' })).toThrow(
      /FLANNELD_IP_MASQ.*not a boolean/,
    );
  });

  it('never exposes the etcd password, an inline key or URL credentials when logged', () => {
    const key = '-----BEGIN PRIVATE KEY-----\nKEYMARKER\n-----END PRIVATE KEY-----\n';
    const o = toDaemonOptions({
      'etcd-password': 's3cret',
      'etcd-endpoints': 'https://alice:PWMARKER@10.0.0.1:2379,https://bob:P@ss/W@10.0.0.2:2379',
      'etcd-keyfile': key,
      'etcd-certfile': '/etc/weft/etcd.crt',
      'kube-api-url': 'https://admin:KUBEMARKER@10.0.0.9:6443',
    });
    const text = JSON.stringify(redactOptions(o));
    for (const secret of ['s3cret', 'PWMARKER', 'P@ss', 'KEYMARKER', 'KUBEMARKER', 'alice']) {
      expect(text).not.toContain(secret);
    }
    // A key given as raw base64 by mistake is not shown either; a key path is.
    const raw = toDaemonOptions({ 'etcd-keyfile': 'MC4CAQAwBQYDK2VwBCIEIKEY/MARKER+' });
    expect(redactOptions(raw).etcdKeyfile).toBe('[redacted]');
    const path = toDaemonOptions({ 'etcd-keyfile': '/etc/etcd/client-key.pem' });
    expect(redactOptions(path).etcdKeyfile).toBe('/etc/etcd/client-key.pem');
    expect(redactOptions(o)).toMatchObject({
      etcdEndpoints: ['https://[redacted]@10.0.0.1:2379', 'https://[redacted]@10.0.0.2:2379'],
      etcdKeyfile: `[inline PEM, ${key.length} bytes, redacted]`,
      etcdCertfile: '/etc/weft/etcd.crt',
      etcdPassword: '[redacted]',
      kubeApiUrl: 'https://[redacted]@10.0.0.9:6443',
    });
  });

  it('echoes no URL credentials in its errors', () => {
    for (const ep of ['ftp://u:ECHOMARKER@h:1', 'u:ECHOMARKER@h:2379', 'http://u:ECHO MARKER@[::1']) {
      expect(() => toDaemonOptions({ 'etcd-endpoints': ep })).toThrow(OptionError);
      expect(() => toDaemonOptions({ 'etcd-endpoints': ep })).not.toThrow(/ECHO/);
    }
  });
});
