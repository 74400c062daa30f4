// weftd's command line as flannel users write it (flanneld's manifests, systemd units, docs), through the same
// function weftd runs: flags and FLANNELD_*/WEFT_* → DaemonOptions.
import { describe, expect, it } from 'vitest';
import { type DaemonOptions, OptionError, WEFTD_FLAGS } from '../src/config/options.js';
import { weftdCommandLine } from './cli.js';
import { FlagError } from './flags.js';

function options(argv: string[], env: NodeJS.ProcessEnv = {}): DaemonOptions {
  const line = weftdCommandLine(argv, env);
  if (line.kind !== 'run') throw new Error(`expected options, got ${line.kind}`);
  return line.options;
}

describe('weftd command line', () => {
  it("reads kube-flannel.yml's arguments", () => {
    const o = options(['--ip-masq', '--kube-subnet-mgr', '--iface=eth1']);
    expect(o).toMatchObject({ ipMasq: true, kubeSubnetMgr: true, iface: ['eth1'] });
  });

  it('reads a flanneld systemd unit’s arguments, Go’s single-dash form included', () => {
    const o = options([
      '-etcd-endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379',
      '-etcd-prefix=/atomic.io/network',
      '-etcd-cafile',
      '/etc/ssl/etcd/ca.pem',
      '-etcd-certfile=/etc/ssl/etcd/client.pem',
      '-etcd-keyfile=/etc/ssl/etcd/client-key.pem',
      '-public-ip',
      '192.0.2.10',
      '-iface=eth0',
      '-ip-masq=true',
      '-subnet-file=/run/flannel/other.env',
      '-subnet-lease-renew-margin=30',
      '-iptables-resync=10',
      '-healthz-port=8471',
    ]);
    expect(o).toMatchObject({
      etcdEndpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      etcdPrefix: '/atomic.io/network',
      etcdCafile: '/etc/ssl/etcd/ca.pem',
      etcdCertfile: '/etc/ssl/etcd/client.pem',
      etcdKeyfile: '/etc/ssl/etcd/client-key.pem',
      publicIp: '192.0.2.10',
      iface: ['eth0'],
      ipMasq: true,
      subnetFile: '/run/flannel/other.env',
      subnetLeaseRenewMargin: 30,
      iptablesResync: 10,
      healthzPort: 8471,
    });
  });

  it('takes every flag of WEFTD_FLAGS in --flag=value form', () => {
    const sample: Record<FlagSpecType, string> = { string: 'x', number: '7', boolean: 'true', array: 'eth0' };
    const known: Record<string, string> = {
      'etcd-endpoints': 'http://127.0.0.1:2379',
      'etcd-prefix': '/p',
      'public-ip': '192.0.2.1',
      'public-ipv6': 'fd00::1',
      'iface-can-reach': '192.0.2.2',
      'healthz-ip': '127.0.0.1',
      'log-level': 'debug',
      'iface-regex': 'eth[0-9]',
      'probe-interval': '0',
    };
    const argv = WEFTD_FLAGS.map((f) => `--${f.name}=${known[f.name] ?? sample[f.type]}`);
    const o = options(argv);
    expect(o).toMatchObject({
      etcdPrefix: '/p',
      kubeSubnetMgr: true,
      ipMasq: true,
      tunnelNotrack: true,
      exposeStatus: true,
      iptablesForwardRules: true,
      iface: ['eth0'],
      ifaceRegex: ['eth[0-9]'],
      healthzPort: 7,
      resyncInterval: 7,
      probeInterval: 0,
      extensionCommandTimeout: 7,
      logLevel: 'debug',
      cniConfFile: 'x',
    });
  });

  it('turns booleans off in every form', () => {
    for (const argv of [
      ['--iptables-forward-rules=false'],
      ['--iptables-forward-rules', 'false'],
      ['-iptables-forward-rules=false'],
      ['--no-iptables-forward-rules'],
      ['--iptables-forward-rules=0'],
    ]) {
      expect(options(argv).iptablesForwardRules).toBe(false);
    }
    expect(options([]).iptablesForwardRules).toBe(true);
  });

  it('collects repeated and comma-separated --iface / --iface-regex in order', () => {
    expect(options(['--iface', 'eth0', '--iface=10.0.0.1', '-iface', 'eth2,eth3']).iface).toEqual([
      'eth0',
      '10.0.0.1',
      'eth2',
      'eth3',
    ]);
    expect(options(['--iface-regex=^en', '--iface-regex', '^eth']).ifaceRegex).toEqual(['^en', '^eth']);
  });

  it("keeps flannel's defaults when nothing is given", () => {
    const o = options([]);
    expect(o).toMatchObject({
      etcdEndpoints: ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'],
      etcdPrefix: '/coreos.com/network',
      subnetFile: '/run/flannel/subnet.env',
      cniConfFile: '/etc/cni/net.d/10-weft.conflist',
      iface: [],
      ifaceRegex: [],
      healthzPort: 0,
      resyncInterval: 30,
      probeInterval: 10,
    });
  });

  it('the command line wins over WEFT_*, which wins over FLANNELD_*, which wins over the defaults', () => {
    const env = { FLANNELD_HEALTHZ_PORT: '1', WEFT_HEALTHZ_PORT: '2', FLANNELD_ETCD_PREFIX: '/env' };
    expect(options([], env)).toMatchObject({ healthzPort: 2, etcdPrefix: '/env' });
    expect(options(['--healthz-port=3'], env)).toMatchObject({ healthzPort: 3, etcdPrefix: '/env' });
    expect(options(['--no-ip-masq'], { FLANNELD_IP_MASQ: 'true' }).ipMasq).toBe(false);
    expect(options(['--cni-conf-file='], {}).cniConfFile).toBe('');
  });

  it('names the flag of a bad value, an unknown flag or a missing value', () => {
    expect(() => options(['--healthz-port=abc'])).toThrow(
      new FlagError('--healthz-port: "abc" is not a number'),
    );
    expect(() => options(['--ip-masq=maybe'])).toThrow(FlagError);
    expect(() => options(['--no-such-flag'])).toThrow(new FlagError('Unknown argument: no-such-flag'));
    expect(() => options(['--etcd-endpoints'])).toThrow(new FlagError('--etcd-endpoints: needs a value'));
    expect(() => options(['--subnet-lease-renew-margin=0'])).toThrow(OptionError);
    expect(() => options([], { FLANNELD_IP_MASQ: 'maybe' })).toThrow(/FLANNELD_IP_MASQ/);
  });

  it('answers --help with every flag in its group, and --version', () => {
    const help = weftdCommandLine(['--help'], {});
    expect(help.kind).toBe('help');
    const text = help.kind === 'help' ? help.text : '';
    for (const f of WEFTD_FLAGS) expect(text).toContain(`--${f.name}`);
    expect(text).toContain('FLANNELD_<FLAG>');
    expect(text).not.toContain('[default: undefined]');
    expect(weftdCommandLine(['-h'], {}).kind).toBe('help');
    expect(weftdCommandLine(['--version'], {}).kind).toBe('version');
  });
});

type FlagSpecType = (typeof WEFTD_FLAGS)[number]['type'];
