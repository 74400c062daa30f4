import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { subnetLease } from '../../../testkit/fixtures/backend.js';
import { parseNetworkConfig, type WireguardBackendConfig } from '../../config/index.js';
import { parseCidr } from '../../ip/index.js';
import { keyDigest, parseWgDump, renderWgConfig } from '../../kernel/index.js';
import type { Lease, LeaseAttrs } from '../../lease/index.js';
import {
  generateWireguardPrivateKey,
  loadOrCreateWireguardKey,
  WireguardKeyFileError,
  wireguardKeyFile,
  wireguardPublicKey,
} from './key.js';
import {
  diffWgDevice,
  planWireguard,
  wireguardDevices,
  wireguardLeaseAttrs,
  wireguardScope,
} from './plan.js';

// `wg genkey` / `wg pubkey` output, fixed so the derivation is checked against wireguard-tools.
const PRIV = 'mNvE13wRScbPjZlViKWFQyH2mtC3R5wFEvCigqjeB1Q=';
const PUB = 'N4A2BTl5pQY0/Pb3UNOKQZmwAcfefnUIvD+fLMJ3iEM=';
const KEY2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY3 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';

function cfg(over: Partial<WireguardBackendConfig> = {}): WireguardBackendConfig {
  return {
    type: 'wireguard',
    listenPort: 51820,
    listenPortV6: 51821,
    mtu: 0,
    mode: 'separate',
    persistentKeepaliveInterval: 0,
    ...over,
  };
}

const wgLease = (n: number, key: string, extra: Partial<LeaseAttrs> = {}): Lease =>
  subnetLease(`10.5.${n}.0/24`, {
    publicIP: `192.168.1.${n}`,
    backendType: 'wireguard',
    backendData: { PublicKey: key, Port: 51820 },
    ...extra,
  });

describe('wireguard network config', () => {
  it('reads flannel keys with defaults', () => {
    const c = parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'wireguard' } });
    expect(c.backend).toEqual(cfg());
    const d = parseNetworkConfig({
      Network: '10.5.0.0/16',
      Backend: {
        Type: 'wireguard',
        PSK,
        ListenPort: 5000,
        Mode: 'auto',
        MTU: 1400,
        PersistentKeepaliveInterval: 25,
      },
    });
    expect(d.backend).toMatchObject({
      psk: PSK,
      listenPort: 5000,
      mode: 'auto',
      mtu: 1400,
      persistentKeepaliveInterval: 25,
    });
  });

  it('rejects a bad PSK without echoing it, and an unknown Mode', () => {
    const bad = 'not-a-key-but-secret';
    let message = '';
    try {
      parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'wireguard', PSK: bad } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('Backend.PSK');
    expect(message).not.toContain(bad);
    expect(() =>
      parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'wireguard', Mode: 'both' } }),
    ).toThrow(/Backend.Mode.*separate, auto, ipv4, ipv6/);
  });

  it('reads extension and alloc', () => {
    const e = parseNetworkConfig({
      Network: '10.5.0.0/16',
      Backend: { Type: 'extension', SubnetAddCommand: 'true' },
    });
    expect(e.backend).toMatchObject({ type: 'extension', subnetAddCommand: 'true', preStartupCommand: '' });
    expect(parseNetworkConfig({ Network: '10.5.0.0/16', Backend: { Type: 'alloc' } }).backend).toEqual({
      type: 'alloc',
    });
  });
});

describe('wireguard key file', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('derives the public key as wg pubkey does', () => {
    expect(wireguardPublicKey(PRIV)).toBe(PUB);
    const k = generateWireguardPrivateKey();
    expect(k).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });

  it('generates distinct private keys, clamped as wg genkey clamps them', () => {
    const keys = Array.from({ length: 50 }, () => generateWireguardPrivateKey());
    expect(new Set(keys).size).toBe(keys.length);
    for (const k of keys) {
      const raw = Buffer.from(k, 'base64');
      expect(raw).toHaveLength(32);
      expect((raw[0] ?? 0) & 7).toBe(0);
      expect((raw[31] ?? 0) & 0xc0).toBe(0x40);
      expect(wireguardPublicKey(k)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    }
  });

  it('generates a 0400 key file when missing and reads the same key back', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgkey-'));
    const file = join(dir, 'sub', 'wgkey');
    const first = await loadOrCreateWireguardKey(file);
    expect(first.generated).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o400);
    const again = await loadOrCreateWireguardKey(file);
    expect(again).toEqual({ ...first, generated: false });
    expect(readFileSync(file, 'utf8').trim()).toBe(first.privateKey);
  });

  it('refuses a malformed key file, naming the file and not its contents', async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgkey-'));
    const file = join(dir, 'wgkey');
    writeFileSync(file, 'secret-garbage\n');
    const err = await loadOrCreateWireguardKey(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WireguardKeyFileError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).not.toContain('secret-garbage');
    expect(readFileSync(file, 'utf8')).toBe('secret-garbage\n');
  });

  it('takes WIREGUARD_KEY_FILE', () => {
    expect(wireguardKeyFile({})).toBe('/run/flannel/wgkey');
    expect(wireguardKeyFile({ WIREGUARD_KEY_FILE: '/etc/wg/k' })).toBe('/etc/wg/k');
  });
});

describe('wg dump', () => {
  const dump = [
    `${PRIV}\t${PUB}\t51820\toff`,
    `${KEY2}\t${PSK}\t192.168.1.2:51820\t10.5.2.0/24\t1700000000\t100\t200\t25`,
    `${KEY3}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
  ].join('\n');

  it('parses device and peers, keeping neither private key nor PSK', () => {
    const d = parseWgDump(`${dump}\n`);
    expect(d).toEqual({
      publicKey: PUB,
      listenPort: 51820,
      peers: [
        {
          publicKey: KEY2,
          pskDigest: keyDigest(PSK),
          endpoint: '192.168.1.2:51820',
          allowedIps: ['10.5.2.0/24'],
          latestHandshake: 1700000000,
          rxBytes: 100,
          txBytes: 200,
          persistentKeepalive: 25,
        },
        {
          publicKey: KEY3,
          allowedIps: [],
          latestHandshake: 0,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepalive: 0,
        },
      ],
    });
    expect(JSON.stringify(d)).not.toContain(PRIV);
    expect(JSON.stringify(d)).not.toContain(PSK);
  });

  it('names the line of malformed output, not its contents', () => {
    expect(() => parseWgDump(`${PRIV}\t${PUB}\t51820`)).toThrow(/line 1: expected 4/);
    const err = (() => {
      try {
        parseWgDump(`${PRIV}\t${PUB}\tabc\toff`);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err?.message).toMatch(/listen-port is not a number/);
    expect(err?.message).not.toContain(PRIV);
  });

  it('renders one whole config for syncconf', () => {
    const text = renderWgConfig(
      {
        name: 'flannel-wg',
        listenPort: 51820,
        peers: [
          {
            publicKey: KEY2,
            endpoint: '192.168.1.2:51820',
            allowedIps: ['10.5.2.0/24'],
            persistentKeepalive: 25,
          },
        ],
      },
      { privateKey: PRIV, psk: PSK },
    );
    expect(text).toBe(
      `[Interface]\nPrivateKey = ${PRIV}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${KEY2}\nPresharedKey = ${PSK}\nAllowedIPs = 10.5.2.0/24\nEndpoint = 192.168.1.2:51820\nPersistentKeepalive = 25\n`,
    );
  });
});

describe('planWireguard', () => {
  const networks = { ipv4: parseCidr('10.5.0.0/16') };
  const own = wgLease(1, PUB);

  it('one peer per wireguard lease, address /32 and the Network route on flannel-wg', () => {
    const devices = wireguardDevices(cfg(), networks);
    const plan = planWireguard({
      cfg: cfg({ persistentKeepaliveInterval: 25 }),
      networks,
      devices,
      ownPublicIp: '192.168.1.1',
      own,
      peers: [
        own,
        wgLease(3, KEY3, { backendData: { PublicKey: KEY3 } }),
        wgLease(2, KEY2),
        subnetLease('10.5.4.0/24', { publicIP: '192.168.1.4', backendType: 'vxlan' }),
      ],
    });
    expect(plan.state.addresses).toEqual([{ dev: 'flannel-wg', cidr: '10.5.1.0/32' }]);
    expect(plan.state.routes).toEqual([{ dst: '10.5.0.0/16', dev: 'flannel-wg' }]);
    expect(plan.devices).toEqual([
      {
        name: 'flannel-wg',
        listenPort: 51820,
        peers: [
          {
            publicKey: KEY2,
            endpoint: '192.168.1.2:51820',
            allowedIps: ['10.5.2.0/24'],
            persistentKeepalive: 25,
          },
          // No Port in the lease: dialled on the local ListenPort.
          {
            publicKey: KEY3,
            endpoint: '192.168.1.3:51820',
            allowedIps: ['10.5.3.0/24'],
            persistentKeepalive: 25,
          },
        ],
      },
    ]);
    expect(plan.skipped.map((s) => s.reason)).toEqual(['backend type vxlan (this node uses wireguard)']);
    expect(wireguardScope(networks, devices, own)).toMatchObject({
      devices: [],
      entryDevices: ['flannel-wg'],
    });
  });

  it('skips a peer whose public key is malformed', () => {
    const plan = planWireguard({
      cfg: cfg(),
      networks,
      devices: wireguardDevices(cfg(), networks),
      own,
      peers: [wgLease(2, 'bogus')],
    });
    expect(plan.devices[0]?.peers).toEqual([]);
    expect(plan.skipped[0]?.reason).toMatch(/PublicKey is not a WireGuard public key/);
  });

  it('separate mode: two devices; auto mode: one device, IPv6 endpoint for an IPv6-only peer', () => {
    const dual = { ipv4: parseCidr('10.5.0.0/16'), ipv6: parseCidr('fd00:5::/48') };
    expect(wireguardDevices(cfg(), dual)).toEqual([
      { name: 'flannel-wg', port: 51820, families: [4] },
      { name: 'flannel-wg-v6', port: 51821, families: [6] },
    ]);
    const attrs = wireguardLeaseAttrs(wireguardDevices(cfg(), dual), PUB, '192.168.1.1', 'fd77::1');
    expect(attrs).toMatchObject({
      backendData: { PublicKey: PUB, Port: 51820 },
      backendV6Data: { PublicKey: PUB, Port: 51821 },
    });
    const auto = cfg({ mode: 'auto' });
    const ownDual: Lease = { ...wgLease(1, PUB), ipv6Subnet: parseCidr('fd00:5:0:1::/64') };
    const v6only: Lease = {
      ...subnetLease('10.5.2.0/24', {
        publicIP: '',
        publicIPv6: 'fd77::2',
        backendType: 'wireguard',
        backendV6Data: { PublicKey: KEY2, Port: 51820 },
      }),
      ipv6Subnet: parseCidr('fd00:5:0:2::/64'),
    };
    const plan = planWireguard({
      cfg: auto,
      networks: dual,
      devices: wireguardDevices(auto, dual),
      own: ownDual,
      peers: [v6only],
    });
    expect(plan.devices).toEqual([
      {
        name: 'flannel-wg',
        listenPort: 51820,
        peers: [
          {
            publicKey: KEY2,
            endpoint: '[fd77::2]:51820',
            allowedIps: ['10.5.2.0/24', 'fd00:5:0:2::/64'],
            persistentKeepalive: 0,
          },
        ],
      },
    ]);
    expect(plan.state.addresses).toEqual([
      { dev: 'flannel-wg', cidr: '10.5.1.0/32' },
      { dev: 'flannel-wg', cidr: 'fd00:5:0:1::/128' },
    ]);
  });
});

describe('diffWgDevice', () => {
  const spec = {
    name: 'flannel-wg',
    listenPort: 51820,
    peers: [
      { publicKey: KEY2, endpoint: '192.168.1.2:51820', allowedIps: ['10.5.2.0/24'], persistentKeepalive: 0 },
    ],
  };
  const peer = {
    publicKey: KEY2,
    endpoint: '192.168.1.2:51820',
    allowedIps: ['10.5.2.0/24'],
    persistentKeepalive: 0,
    latestHandshake: 0,
    rxBytes: 0,
    txBytes: 0,
  };

  it('is empty when in sync and names every difference otherwise', () => {
    expect(
      diffWgDevice({ spec, publicKey: PUB }, { publicKey: PUB, listenPort: 51820, peers: [peer] }),
    ).toEqual([]);
    expect(diffWgDevice({ spec, publicKey: PUB }, undefined)).toEqual(['device not configured']);
    expect(
      diffWgDevice(
        { spec, publicKey: PUB, pskDigest: keyDigest(PSK) },
        {
          publicKey: KEY3,
          listenPort: 1,
          peers: [
            { ...peer, endpoint: '192.168.1.9:51820', allowedIps: [] },
            { ...peer, publicKey: KEY3 },
          ],
        },
      ),
    ).toEqual([
      'private key differs',
      'listen port 1 (want 51820)',
      `peer ${KEY3} stale`,
      `peer ${KEY2} endpoint 192.168.1.9:51820`,
      `peer ${KEY2} allowed IPs none`,
      `peer ${KEY2} pre-shared key differs`,
    ]);
    expect(diffWgDevice({ spec, publicKey: PUB }, { publicKey: PUB, listenPort: 51820, peers: [] })).toEqual([
      `peer ${KEY2} missing`,
    ]);
  });
});
