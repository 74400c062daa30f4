import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VXLAN_CONFIG, subnetLease, TEST_IFACE } from '../../testkit/fixtures/backend.js';
import { parseCidr } from '../ip/index.js';
import { SkippedPeerLog } from './peer-check.js';
import { planUdp } from './udp/plan.js';
import { planVxlan } from './vxlan/plan.js';

/** A lease exactly as flannel's udp backend writes it: `{"PublicIP":"…","PublicIPv6":null}`. */
const flannelUdpLease = subnetLease('10.5.9.0/24', { publicIP: '192.168.1.9' });

describe('a lease written by flannel’s udp backend (PublicIP only)', () => {
  it('is a udp peer on a weft udp node', () => {
    const own = subnetLease('10.5.1.0/24', { publicIP: '192.168.1.1' });
    const plan = planUdp({
      udp: { type: 'udp', port: 8285 },
      network: parseCidr('10.5.0.0/16'),
      iface: TEST_IFACE,
      own,
      peers: [flannelUdpLease],
    });
    expect(plan.skipped).toEqual([]);
    expect(plan.enginePeers).toEqual([{ subnet: '10.5.9.0/24', address: '192.168.1.9', port: 8285 }]);
  });

  it('is skipped on a weft vxlan node with a warning naming the lease and why, once per reason', () => {
    const own = subnetLease('10.5.1.0/24', {
      publicIP: '192.168.1.1',
      backendType: 'vxlan',
      backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' },
    });
    const { state, skipped } = planVxlan({
      vxlan: DEFAULT_VXLAN_CONFIG,
      networks: { ipv4: parseCidr('10.5.0.0/16') },
      iface: TEST_IFACE,
      own,
      peers: [flannelUdpLease],
    });
    expect(state.routes).toEqual([]);
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const log = new SkippedPeerLog();
    log.report(skipped, logger);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'peer lease not programmed',
        peer: '10.5.9.0-24',
        reason: expect.stringMatching(
          /no BackendType: a lease of flannel's udp backend.*this node uses vxlan/,
        ),
      }),
    ]);
    // The next pass skips it again for the same reason: debug, not another warning.
    log.report(skipped, logger);
    expect(lines.map((l) => l.level)).toEqual([40, 20]);
    // Gone and back: a warning again.
    log.report([], logger);
    log.report(skipped, logger);
    expect(lines.map((l) => l.level)).toEqual([40, 20, 40]);
  });
});
