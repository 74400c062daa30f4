import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseExposition, sampleValue } from '../../testkit/exposition.js';
import { WeftMetrics } from './metrics.js';

async function scrape(metrics: WeftMetrics) {
  return parseExposition(await metrics.render());
}

describe('WeftMetrics exposition', () => {
  it('parses as Prometheus text with default process metrics and every weft family typed', async () => {
    const metrics = new WeftMetrics({ version: '1.2.3' });
    metrics.probeResult('10.5.1.0/24', 0.5);
    metrics.udpCounters({ txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4, drops: { no_route: 1 } });
    metrics.reconcileObserved(0.02, [{ kind: 'route', ok: true }]);
    const families = await scrape(metrics);
    expect(families.has('process_cpu_seconds_total')).toBe(true);
    expect(families.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(sampleValue(families, 'weft_build_info', { version: '1.2.3' })).toBe(1);
    const weft = [...families.values()].filter((f) => f.name.startsWith('weft_'));
    expect(weft.length).toBeGreaterThanOrEqual(25);
    for (const family of weft) {
      // Counters end in _total; everything else names its unit or is a plain count/flag.
      if (family.type === 'COUNTER') expect(family.name).toMatch(/_total$/);
      else expect(family.name).not.toMatch(/_total$/);
      expect(family.help.length).toBeGreaterThan(10);
    }
  });

  it('keeps its own registry: two instances do not collide', async () => {
    const a = new WeftMetrics({ defaultMetrics: false });
    const b = new WeftMetrics({ defaultMetrics: false });
    a.firewallRepair();
    expect(sampleValue(await scrape(a), 'weft_firewall_repairs_total')).toBe(1);
    expect(sampleValue(await scrape(b), 'weft_firewall_repairs_total')).toBe(0);
  });
});

describe('lease metrics', () => {
  it('exports the expiry and the remaining time, and clears them for a reservation or a lost lease', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    let f = await scrape(metrics);
    expect(sampleValue(f, 'weft_lease_held')).toBe(0);
    expect(sampleValue(f, 'weft_lease_expiry_timestamp_seconds')).toBeUndefined();

    const expiry = new Date(Date.now() + 3600_000);
    metrics.leaseHeld('10.5.52.0/24', expiry);
    f = await scrape(metrics);
    expect(sampleValue(f, 'weft_lease_held')).toBe(1);
    const subnet = { subnet: '10.5.52.0/24' };
    expect(sampleValue(f, 'weft_lease_expiry_timestamp_seconds', subnet)).toBe(expiry.getTime() / 1000);
    const remaining = sampleValue(f, 'weft_lease_remaining_seconds', subnet) ?? Number.NaN;
    expect(remaining).toBeGreaterThan(3500);
    expect(remaining).toBeLessThanOrEqual(3600);

    metrics.leaseHeld('10.5.52.0/24', null);
    f = await scrape(metrics);
    expect(sampleValue(f, 'weft_lease_reservation')).toBe(1);
    expect(sampleValue(f, 'weft_lease_expiry_timestamp_seconds')).toBeUndefined();
    expect(sampleValue(f, 'weft_lease_remaining_seconds')).toBeUndefined();

    metrics.leaseHeld('10.5.52.0/24', expiry);
    metrics.leaseLost();
    f = await scrape(metrics);
    expect(sampleValue(f, 'weft_lease_held')).toBe(0);
    expect(sampleValue(f, 'weft_lease_reservation')).toBe(0);
    expect(sampleValue(f, 'weft_lease_remaining_seconds')).toBeUndefined();
  });

  it('counts renewals, failures and acquisitions', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    metrics.leaseAcquired();
    metrics.leaseRenewed();
    metrics.leaseRenewed();
    metrics.leaseRenewalFailed();
    const f = await scrape(metrics);
    expect(sampleValue(f, 'weft_lease_acquisitions_total')).toBe(1);
    expect(sampleValue(f, 'weft_lease_renewals_total')).toBe(2);
    expect(sampleValue(f, 'weft_lease_renewal_failures_total')).toBe(1);
  });
});

describe('reconcile metrics', () => {
  it('records durations, results and kernel operations by kind', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    metrics.reconcileObserved(0.004, [
      { kind: 'route', ok: true },
      { kind: 'route', ok: true },
      { kind: 'fdb', ok: true },
      { kind: 'neigh', ok: false },
    ]);
    metrics.reconcileObserved(0.2, []);
    metrics.reconcileObserved(1.5, [], true);
    metrics.staleRemoved('route', 3);
    metrics.staleRemoved('fdb', 0);
    metrics.setPeers(7);
    const f = await scrape(metrics);
    const histogram = f.get('weft_reconcile_duration_seconds');
    expect(histogram?.type).toBe('HISTOGRAM');
    const sample = histogram?.metrics[0];
    expect(Number(sample?.count)).toBe(3);
    expect(Number(sample?.sum)).toBeCloseTo(1.704, 6);
    expect(Number(sample?.buckets?.['0.005'])).toBe(1);
    expect(Number(sample?.buckets?.['0.25'])).toBe(2);
    expect(Number(sample?.buckets?.['+Inf'])).toBe(3);
    expect(sampleValue(f, 'weft_reconciles_total', { result: 'ok' })).toBe(1);
    expect(sampleValue(f, 'weft_reconciles_total', { result: 'failed' })).toBe(2);
    expect(sampleValue(f, 'weft_kernel_ops_applied_total', { kind: 'route' })).toBe(2);
    expect(sampleValue(f, 'weft_kernel_ops_applied_total', { kind: 'fdb' })).toBe(1);
    expect(sampleValue(f, 'weft_kernel_ops_failed_total', { kind: 'neigh' })).toBe(1);
    expect(sampleValue(f, 'weft_kernel_ops_failed_total', { kind: 'route' })).toBeUndefined();
    expect(sampleValue(f, 'weft_stale_entries_removed_total', { kind: 'route' })).toBe(3);
    expect(sampleValue(f, 'weft_stale_entries_removed_total', { kind: 'fdb' })).toBeUndefined();
    expect(sampleValue(f, 'weft_peers')).toBe(7);
    expect(sampleValue(f, 'weft_last_reconcile_timestamp_seconds')).toBeGreaterThan(1_600_000_000);
  });

  it('counts watch reconnects and re-lists by source, and firewall repairs', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    metrics.watchReconnect('etcd');
    metrics.watchReconnect('etcd');
    metrics.watchReconnect('kube');
    metrics.watchRelist('etcd');
    metrics.firewallRepair();
    const f = await scrape(metrics);
    expect(sampleValue(f, 'weft_watch_reconnects_total', { source: 'etcd' })).toBe(2);
    expect(sampleValue(f, 'weft_watch_reconnects_total', { source: 'kube' })).toBe(1);
    expect(sampleValue(f, 'weft_watch_relists_total', { source: 'etcd' })).toBe(1);
    expect(sampleValue(f, 'weft_firewall_repairs_total')).toBe(1);
  });
});

describe('udp counters', () => {
  it('turns the data path running totals into counter increases, surviving a data path restart', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    metrics.udpCounters({ txPackets: 10, txBytes: 1000, rxPackets: 5, rxBytes: 500, drops: { no_route: 2 } });
    metrics.udpCounters({
      txPackets: 15,
      txBytes: 1600,
      rxPackets: 5,
      rxBytes: 500,
      drops: { no_route: 3, ttl_expired: 1 },
    });
    let f = await scrape(metrics);
    expect(sampleValue(f, 'weft_udp_packets_total', { direction: 'tx' })).toBe(15);
    expect(sampleValue(f, 'weft_udp_bytes_total', { direction: 'tx' })).toBe(1600);
    expect(sampleValue(f, 'weft_udp_packets_total', { direction: 'rx' })).toBe(5);
    expect(sampleValue(f, 'weft_udp_drops_total', { reason: 'no_route' })).toBe(3);
    expect(sampleValue(f, 'weft_udp_drops_total', { reason: 'ttl_expired' })).toBe(1);

    // The data path restarted: its totals start again from zero; the counters keep going up.
    metrics.udpCounters({ txPackets: 4, txBytes: 400, rxPackets: 1, rxBytes: 100, drops: { no_route: 1 } });
    f = await scrape(metrics);
    expect(sampleValue(f, 'weft_udp_packets_total', { direction: 'tx' })).toBe(19);
    expect(sampleValue(f, 'weft_udp_bytes_total', { direction: 'tx' })).toBe(2000);
    expect(sampleValue(f, 'weft_udp_packets_total', { direction: 'rx' })).toBe(6);
    expect(sampleValue(f, 'weft_udp_drops_total', { reason: 'no_route' })).toBe(4);
    expect(f.get('weft_udp_packets_total')?.type).toBe('COUNTER');
  });

  it('ignores negative and non-finite totals', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    metrics.udpCounters({ txPackets: -1, txBytes: Number.NaN, rxPackets: 0, rxBytes: 0, drops: {} });
    const f = await scrape(metrics);
    expect(sampleValue(f, 'weft_udp_packets_total', { direction: 'tx' })).toBe(0);
    expect(sampleValue(f, 'weft_udp_bytes_total', { direction: 'tx' })).toBe(0);
  });
});

describe('probe metrics', () => {
  it('tracks per-peer probes, losses, RTT, loss ratio and health, and forgets removed peers', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    const a = '10.5.1.0/24';
    const b = '10.5.2.0/24';
    metrics.probeResult(a, 1.5, 0);
    // The loss counter exists (at 0) from the first answered probe, so loss-rate queries see it.
    expect(sampleValue(await scrape(metrics), 'weft_peer_probe_losses_total', { peer: a })).toBe(0);
    metrics.probeResult(a, null, 0.5);
    metrics.peerHealth(a, 'healthy');
    metrics.probeResult(b, null, 1);
    metrics.peerHealth(b, 'unhealthy');
    let f = await scrape(metrics);
    expect(sampleValue(f, 'weft_peer_probes_total', { peer: a })).toBe(2);
    expect(sampleValue(f, 'weft_peer_probe_losses_total', { peer: a })).toBe(1);
    expect(sampleValue(f, 'weft_peer_probe_rtt_seconds', { peer: a })).toBeCloseTo(0.0015, 9);
    expect(sampleValue(f, 'weft_peer_probe_loss_ratio', { peer: a })).toBe(0.5);
    expect(sampleValue(f, 'weft_peer_healthy', { peer: a })).toBe(1);
    expect(sampleValue(f, 'weft_peer_healthy', { peer: b })).toBe(0);
    expect(sampleValue(f, 'weft_peer_probe_rtt_seconds', { peer: b })).toBeUndefined();

    metrics.peerHealth(a, 'unknown');
    metrics.forgetPeer(b);
    f = await scrape(metrics);
    expect(sampleValue(f, 'weft_peer_healthy', { peer: a })).toBeUndefined();
    for (const name of [
      'weft_peer_probes_total',
      'weft_peer_probe_losses_total',
      'weft_peer_probe_loss_ratio',
    ]) {
      expect(sampleValue(f, name, { peer: b })).toBeUndefined();
      expect(sampleValue(f, name, { peer: a })).toBeDefined();
    }
  });

  it('caps the per-peer series; the aggregates count every peer', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false, maxPeerSeries: 3 });
    for (let i = 0; i < 10; i++) {
      const peer = `10.5.${i}.0-24`;
      metrics.probeResult(peer, i % 2 === 0 ? 1 : null, 0);
      metrics.peerHealth(peer, i % 2 === 0 ? 'healthy' : 'unhealthy');
    }
    let f = await scrape(metrics);
    expect(f.get('weft_peer_probes_total')?.metrics).toHaveLength(3);
    expect(f.get('weft_peer_healthy')?.metrics).toHaveLength(3);
    expect(sampleValue(f, 'weft_probe_detail_peers')).toBe(3);
    expect(sampleValue(f, 'weft_probes_sent_total')).toBe(10);
    expect(sampleValue(f, 'weft_probes_lost_total')).toBe(5);
    expect(sampleValue(f, 'weft_peers_unhealthy')).toBe(5);
    const rtt = f.get('weft_probe_rtt_seconds')?.metrics[0];
    expect(rtt?.count).toBe('5');
    expect(rtt?.buckets?.['0.001']).toBe('5');
    // A peer with detail goes away: its slot goes to the next peer that reports.
    metrics.forgetPeer('10.5.0.0-24');
    metrics.forgetPeer('10.5.1.0-24');
    metrics.probeResult('10.5.9.0-24', 2, 0);
    f = await scrape(metrics);
    expect(sampleValue(f, 'weft_peer_probes_total', { peer: '10.5.9.0-24' })).toBe(1);
    expect(sampleValue(f, 'weft_probe_detail_peers')).toBe(2);
    expect(sampleValue(f, 'weft_peers_unhealthy')).toBe(4);
  });

  it('leaves the per-peer series out when asked (clients on other hosts)', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false });
    metrics.probeResult('10.5.1.0-24', 1, 0);
    const text = await metrics.render({ peerDetail: false });
    expect(text).not.toContain('peer="');
    const f = parseExposition(text);
    expect(sampleValue(f, 'weft_probes_sent_total')).toBe(1);
    expect(f.has('weft_peer_probes_total')).toBe(false);
    expect(parseExposition(await metrics.render()).has('weft_peer_probes_total')).toBe(true);
  });
});

/** Prometheus' own linter (Debian package `prometheus`), when installed. */
const hasPromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

describe('promtool', () => {
  it.skipIf(!hasPromtool)('finds nothing to complain about in weft_* families', async () => {
    const metrics = new WeftMetrics({ defaultMetrics: false, version: '1.0.0', maxPeerSeries: 2 });
    metrics.leaseHeld('10.5.1.0/24', new Date(Date.now() + 3_600_000));
    for (let i = 0; i < 5; i++) {
      metrics.probeResult(`10.5.${i}.0-24`, i % 2 === 1 ? null : 0.4, 0.1);
      metrics.peerHealth(`10.5.${i}.0-24`, i % 2 === 1 ? 'unhealthy' : 'healthy');
    }
    metrics.reconcileObserved(0.01, [{ kind: 'route', ok: true }]);
    metrics.udpCounters({ txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4, drops: { no_route: 1 } });
    // Exit 0 and no output: every family passes (promtool prints one line per problem).
    const out = execFileSync('promtool', ['check', 'metrics'], {
      input: await metrics.render(),
      encoding: 'utf8',
    });
    expect(out).toBe('');
  });
});
