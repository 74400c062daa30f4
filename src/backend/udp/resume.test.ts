import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  adoptResumedEngine,
  parseResumeState,
  resumeStateFile,
  resumeUdpDataPath,
  saveResumeState,
  type UdpResumeState,
  UdpResumeStateError,
  udpStateDir,
} from './resume.js';

const state: UdpResumeState = {
  bindAddress: '192.168.77.11',
  port: 8285,
  ownSubnet: '10.244.1.0/24',
  vnetHdr: true,
  peers: [{ subnet: '10.244.2.0/24', address: '192.168.77.12', port: 8285 }],
};

describe('udp resume state', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('saves atomically, root-readable only, and parses back to the same table', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'weft-udp-state-'));
    await saveResumeState(state, dir);
    const file = resumeStateFile(state.bindAddress, state.port, dir);
    expect(path.basename(file)).toBe('weft-udp-192.168.77.11-8285.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(parseResumeState(await readFile(file, 'utf8'), file)).toEqual(state);
  });

  it('rejects a damaged or foreign file with a message naming the file and the field', () => {
    expect(() => parseResumeState('{', 'f.json')).toThrow(/f\.json: not JSON/);
    expect(() => parseResumeState('{"version":2}', 'f.json')).toThrow(/"version": 1/);
    const noPort = JSON.stringify({ ...state, version: 1, port: '8285' });
    expect(() => parseResumeState(noPort, 'f.json')).toThrow(UdpResumeStateError);
    const badPeer = JSON.stringify({ ...state, version: 1, peers: [{ subnet: 1 }] });
    expect(() => parseResumeState(badPeer, 'f.json')).toThrow(/peers\[0\] must be \{subnet, address, port\}/);
  });

  it('resumes nothing without flannel0 or a state file, and remembers where the backend saves', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'weft-udp-state-'));
    // No flannel0 in this (test) network namespace, or no file for a local address: nothing starts.
    expect(await resumeUdpDataPath(undefined, dir)).toBe(false);
    expect(udpStateDir()).toBe(dir);
    expect(adoptResumedEngine('192.168.77.11', 8285, true)).toBeUndefined();
  });
});
