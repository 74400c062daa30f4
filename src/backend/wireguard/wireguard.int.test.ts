// The wg kernel calls against real wireguard-go (or kernel WireGuard where the kernel has it) and real `wg` in
// a private network namespace: create, adopt, whole-config sync, read back, repair of a peer removed by hand.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchNamespace, type ScratchNamespace } from '../../../testkit/scratch-netns.js';
import { runCommand } from '../../core/index.js';
import {
  ensureWgDevice,
  keyDigest,
  readWgDevice,
  syncWgDevice,
  type WgDeviceSpec,
} from '../../kernel/index.js';
import { generateWireguardPrivateKey, wireguardPublicKey } from './key.js';
import { diffWgDevice } from './plan.js';

describe('wireguard device through wg in a private namespace', () => {
  let ns: ScratchNamespace;
  let dev: string;
  const priv = generateWireguardPrivateKey();
  const psk = generateWireguardPrivateKey();
  const peerA = wireguardPublicKey(generateWireguardPrivateKey());
  const peerB = wireguardPublicKey(generateWireguardPrivateKey());
  const spec: WgDeviceSpec = {
    name: '',
    listenPort: 51999,
    peers: [
      {
        publicKey: peerA,
        endpoint: '192.168.99.2:51820',
        allowedIps: ['10.9.2.0/24'],
        persistentKeepalive: 0,
      },
      {
        publicKey: peerB,
        endpoint: '192.168.99.3:51820',
        allowedIps: ['10.9.3.0/24'],
        persistentKeepalive: 25,
      },
    ],
  };

  beforeAll(async () => {
    ns = await createScratchNamespace('192.168.99.1/24');
    dev = `${ns.name}w`;
    spec.name = dev;
  });

  afterAll(async () => {
    // Deleting the device ends its wireguard-go (and removes its socket).
    await ns?.ip(['link', 'del', dev]).catch(() => undefined);
    ns?.destroy();
  });

  it('creates the device with the MTU and up, then adopts it', async () => {
    const first = await ensureWgDevice(dev, { netns: ns.name, mtu: 1420 });
    expect(first.created).toBe(true);
    const link = JSON.parse(await ns.ip(['-json', 'link', 'show', 'dev', dev])) as Array<{
      mtu: number;
      flags: string[];
    }>;
    expect(link[0]).toMatchObject({ mtu: 1420, flags: expect.arrayContaining(['UP']) });
    const again = await ensureWgDevice(dev, { netns: ns.name, mtu: 1420 });
    expect(again).toEqual({ implementation: first.implementation, created: false });
  });

  it('applies a whole config in one syncconf and reads it back as in sync', async () => {
    const wanted = { spec, publicKey: wireguardPublicKey(priv), pskDigest: keyDigest(psk) };
    expect(diffWgDevice(wanted, await readWgDevice(dev, { netns: ns.name }))).not.toEqual([]);
    await syncWgDevice(spec, { privateKey: priv, psk }, { netns: ns.name });
    const observed = await readWgDevice(dev, { netns: ns.name });
    expect(observed?.publicKey).toBe(wanted.publicKey);
    expect(observed?.listenPort).toBe(51999);
    expect(diffWgDevice(wanted, observed)).toEqual([]);
  });

  it('sees a peer removed by hand and restores it with the next sync', async () => {
    const wanted = { spec, publicKey: wireguardPublicKey(priv), pskDigest: keyDigest(psk) };
    const rm = await runCommand('wg', ['set', dev, 'peer', peerA, 'remove'], { netns: ns.name });
    expect(rm.code).toBe(0);
    expect(diffWgDevice(wanted, await readWgDevice(dev, { netns: ns.name }))).toEqual([
      `peer ${peerA} missing`,
    ]);
    await syncWgDevice(spec, { privateKey: priv, psk }, { netns: ns.name });
    expect(diffWgDevice(wanted, await readWgDevice(dev, { netns: ns.name }))).toEqual([]);
  });

  it('removes a stale peer when the wanted config drops it', async () => {
    const smaller = { ...spec, peers: spec.peers.slice(1) };
    await syncWgDevice(smaller, { privateKey: priv }, { netns: ns.name });
    const observed = await readWgDevice(dev, { netns: ns.name });
    expect(observed?.peers.map((p) => p.publicKey)).toEqual([peerB]);
    expect(observed?.peers[0]?.pskDigest).toBeUndefined();
  });
});
