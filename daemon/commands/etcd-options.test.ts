import { describe, expect, it } from 'vitest';
import { OptionError } from '../../src/config/options.js';
import { parseFlags } from '../flags.js';
import { ETCD_OPTIONS, type EtcdArgs, etcdConnectionFromArgs } from './etcd-options.js';

async function parse(argv: string[]): Promise<EtcdArgs> {
  return parseFlags(argv, ETCD_OPTIONS, { withDefaults: true }).values as EtcdArgs;
}

describe('etcd options', () => {
  it("uses flannel's defaults", async () => {
    const c = etcdConnectionFromArgs(await parse([]), {});
    expect(c.prefix).toBe('/coreos.com/network');
    expect(c.client.endpoints).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
    expect(c.client.tls).toBeUndefined();
    expect(c.client.username).toBeUndefined();
  });

  it('reads every flag', async () => {
    const c = etcdConnectionFromArgs(
      await parse([
        '--etcd-endpoints=https://10.0.0.1:2379, https://10.0.0.2:2379',
        '--etcd-prefix=/weft/net/',
        '--etcd-cafile=/ca.pem',
        '--etcd-certfile=/cert.pem',
        '--etcd-keyfile=/key.pem',
        '--etcd-username=flannel',
        '--etcd-password=pw',
      ]),
      {},
    );
    expect(c).toEqual({
      prefix: '/weft/net',
      client: {
        endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
        tls: { ca: '/ca.pem', cert: '/cert.pem', key: '/key.pem' },
        username: 'flannel',
        password: 'pw',
      },
    });
  });

  it('falls back to FLANNELD_ETCD_* for flags not given; the command line wins', async () => {
    const env = { FLANNELD_ETCD_ENDPOINTS: 'http://10.9.9.9:2379', FLANNELD_ETCD_PREFIX: '/from/env' };
    expect(etcdConnectionFromArgs(await parse([]), env).client.endpoints).toEqual(['http://10.9.9.9:2379']);
    const c = etcdConnectionFromArgs(await parse(['--etcd-prefix=/from/flag']), env);
    expect(c.prefix).toBe('/from/flag');
  });

  it.each([
    [['--etcd-endpoints=127.0.0.1:2379'], /etcd-endpoints.*must use http|not a URL/],
    [['--etcd-endpoints=http://a:1,https://b:2'], /mixes http/],
    [['--etcd-endpoints=http://127.0.0.1'], /no port/],
    [['--etcd-prefix=coreos.com'], /--etcd-prefix: must start with "\/"/],
    [['--etcd-certfile=/c.pem'], /--etcd-keyfile: a client certificate needs both/],
    [['--etcd-password=pw'], /--etcd-password: given without --etcd-username/],
  ])('refuses %j naming the flag', async (argv, reason) => {
    const args = await parse(argv);
    expect(() => etcdConnectionFromArgs(args, {})).toThrow(OptionError);
    expect(() => etcdConnectionFromArgs(args, {})).toThrow(reason);
  });
});
