import { describe, expect, it } from 'vitest';
import { subnetLease } from '../../../testkit/fixtures/backend.js';
import { extensionBackendData, planExtensionPeers } from './index.js';

describe('extension backend', () => {
  it('keeps a JSON object from PreStartupCommand as BackendData and stores other text under Output', () => {
    expect(extensionBackendData('{"Gateway":"10.0.0.1"}\n')).toEqual({ Gateway: '10.0.0.1' });
    expect(extensionBackendData('started\n')).toEqual({ Output: 'started' });
    expect(extensionBackendData('  \n')).toBeUndefined();
  });

  it("gives each extension peer flannel's environment and its BackendData on stdin", () => {
    const own = subnetLease('10.5.1.0/24', { publicIP: '192.168.1.1', backendType: 'extension' });
    const peer = subnetLease('10.5.2.0/24', {
      publicIP: '192.168.1.2',
      backendType: 'extension',
      backendData: { Output: 'started' },
    });
    const other = subnetLease('10.5.3.0/24', { publicIP: '192.168.1.3', backendType: 'vxlan' });
    const json = subnetLease('10.5.4.0/24', {
      publicIP: '192.168.1.4',
      backendType: 'extension',
      backendData: { A: 1 },
    });
    const runs = planExtensionPeers(own, [json, other, own, peer]);
    expect(runs.map((r) => [r.key, r.env, r.stdin])).toEqual([
      [
        '10.5.2.0-24',
        { SUBNET: '10.5.2.0/24', IPV6SUBNET: '', PUBLIC_IP: '192.168.1.2', PUBLIC_IPV6: '' },
        'started',
      ],
      [
        '10.5.4.0-24',
        { SUBNET: '10.5.4.0/24', IPV6SUBNET: '', PUBLIC_IP: '192.168.1.4', PUBLIC_IPV6: '' },
        '{"A":1}',
      ],
    ]);
    // A changed lease changes the fingerprint (SubnetAddCommand runs again).
    const moved = subnetLease('10.5.2.0/24', { publicIP: '192.168.1.9', backendType: 'extension' });
    expect(planExtensionPeers(own, [moved])[0]!.fingerprint).not.toBe(runs[0]!.fingerprint);
  });
});
