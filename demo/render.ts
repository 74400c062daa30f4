// What the demo shows, as pure functions of plain data: the leases, the ping matrix, the iperf3 figure,
// the per-node status summaries and the --keep instructions.
import type { StatusDoc } from '../src/observe/status.js';
import { makeStyle, padVisible, type Style } from './terminal.js';

const PLAIN = makeStyle(false);

export function heading(title: string, note: string, style: Style = PLAIN): string {
  return `\n${style.bold(title)}${note ? `  ${style.dim(note)}` : ''}\n`;
}

/** `etcdctl get` prints key and value lines in turn: shown as they are, keys highlighted. */
export function renderLeases(etcdctlOutput: string, style: Style = PLAIN): string {
  const lines = etcdctlOutput.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return '  (no leases)\n';
  return `${lines.map((l, i) => `  ${i % 2 === 0 ? style.cyan(l) : l}`).join('\n')}\n`;
}

/** How many `/coreos.com/network/subnets/…` keys an `etcdctl get` output holds. */
export function countLeaseKeys(etcdctlOutput: string): number {
  return etcdctlOutput.split('\n').filter((l) => l.startsWith('/coreos.com/network/subnets/')).length;
}

export interface MatrixPod {
  name: string;
  ip: string;
  node: string;
}

export interface PingCell {
  transmitted: number;
  received: number;
  /** Average RTT in ms, NaN when nothing came back. */
  rttMs: number;
}

export function pairKey(from: string, to: string): string {
  return `${from}>${to}`;
}

export function formatRtt(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

function cellText(cell: PingCell | undefined, style: Style): string {
  if (cell === undefined) return style.red('✗ n/a');
  if (cell.received === 0) return style.red('✗');
  if (cell.received < cell.transmitted) {
    return style.yellow(`! ${cell.received}/${cell.transmitted}`);
  }
  return `${style.green('✓')} ${formatRtt(cell.rttMs)}`;
}

export interface MatrixSummary {
  pairs: number;
  ok: number;
  partial: number;
  failed: number;
}

export function summarizeMatrix(
  pods: readonly MatrixPod[],
  cells: ReadonlyMap<string, PingCell>,
): MatrixSummary {
  const s: MatrixSummary = { pairs: 0, ok: 0, partial: 0, failed: 0 };
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      s.pairs++;
      const c = cells.get(pairKey(from.name, to.name));
      if (c === undefined || c.received === 0) s.failed++;
      else if (c.received < c.transmitted) s.partial++;
      else s.ok++;
    }
  }
  return s;
}

/**
 * Rows are the senders, columns the receivers: `✓ 0.08` (every ping answered, average RTT in ms),
 * `! 1/2` (some lost), `✗` (none answered), `·` for a pod and itself.
 */
export function renderPingMatrix(
  pods: readonly MatrixPod[],
  cells: ReadonlyMap<string, PingCell>,
  style: Style = PLAIN,
): string {
  const rowLabels = pods.map((p) => `${p.name}  ${p.ip}`);
  const labelWidth = Math.max('from \\ to'.length, ...rowLabels.map((l) => l.length)) + 2;
  const cellWidth = Math.max(8, ...pods.map((p) => p.name.length + 2));
  const out: string[] = [];
  out.push(
    `  ${'from \\ to'.padEnd(labelWidth)}${pods
      .map((p) => p.name.padEnd(cellWidth))
      .join('')
      .trimEnd()}`,
  );
  pods.forEach((from, i) => {
    const cellsText = pods.map((to) =>
      to === from ? style.dim('·') : cellText(cells.get(pairKey(from.name, to.name)), style),
    );
    const row = cellsText.map((c, k) => (k === cellsText.length - 1 ? c : padVisible(c, cellWidth))).join('');
    out.push(`  ${(rowLabels[i] ?? '').padEnd(labelWidth)}${row}`);
  });
  const s = summarizeMatrix(pods, cells);
  const verdict =
    s.ok === s.pairs
      ? style.green(`all ${s.pairs} pairs answered`)
      : style.red(`${s.ok}/${s.pairs} pairs answered, ${s.partial} with loss, ${s.failed} unreachable`);
  out.push(`  ${verdict}`);
  return `${out.join('\n')}\n`;
}

/** `9.41 Gbit/s`, `812 Mbit/s`. */
export function formatBitrate(gbps: number): string {
  if (gbps >= 1) return `${gbps.toFixed(2)} Gbit/s`;
  const mbps = gbps * 1000;
  return mbps >= 10 ? `${mbps.toFixed(0)} Mbit/s` : `${mbps.toFixed(2)} Mbit/s`;
}

export function renderIperf(
  from: MatrixPod,
  to: MatrixPod,
  gbps: number,
  seconds: number,
  backend: string,
  style: Style = PLAIN,
): string {
  return (
    `  ${from.name} (${from.ip} on ${from.node}) → ${to.name} (${to.ip} on ${to.node}): ` +
    `${style.bold(formatBitrate(gbps))}  ${style.dim(`TCP, ${seconds} s, ${backend}`)}\n`
  );
}

/** One line per node from its `weftctl status -o json`. */
export function renderStatusSummary(node: string, doc: StatusDoc, style: Style = PLAIN): string {
  const lease = doc.lease;
  const subnet = lease
    ? [lease.subnet, lease.ipv6Subnet].filter((s) => s !== null).join(',') || '-'
    : 'no lease';
  const publicIp = lease?.publicIP || '-';
  const b = doc.backend;
  const backend = b ? `${b.type}${b.device ? ` ${b.device}` : ''} MTU ${b.mtu}` : 'backend not started';
  const healthy = doc.peers.filter((p) => p.health === 'healthy').length;
  const peersText = `peers ${healthy}/${doc.peers.length} healthy`;
  const peers = healthy === doc.peers.length ? peersText : style.yellow(peersText);
  const rec = doc.lastReconcile;
  const reconcile =
    rec === null
      ? style.yellow('reconcile not run')
      : rec.ok
        ? `reconcile ok (${rec.ops} ops)`
        : style.red(`reconcile FAILED${rec.error ? `: ${rec.error}` : ''}`);
  return `  ${style.bold(node.padEnd(4))}${subnet.padEnd(16)}  ${publicIp.padEnd(15)}  ${backend}  ${peers}  ${reconcile}\n`;
}

export function renderStatusError(node: string, message: string, style: Style = PLAIN): string {
  return `  ${style.bold(node.padEnd(4))}${style.red(`weftctl status failed: ${message}`)}\n`;
}

export interface KeepHelpInput {
  backend: string;
  /** The overlay device on the nodes (flannel.1, flannel0), null for host-gw. */
  device: string | null;
  nodes: ReadonlyArray<{ name: string; netns: string; underlayIp: string; logFile: string }>;
  pods: readonly MatrixPod[];
  podNetns: ReadonlyMap<string, string>;
  etcdNetns: string;
  etcdEndpoint: string;
  underlayNetns: string;
  weftctl: string;
  healthzPort: number;
  /** How to end it, e.g. `npm run demo -- --down`. */
  downCommand: string;
}

/** What to type to look around a kept demo, and how to end it. */
export function renderKeepHelp(k: KeepHelpInput, style: Style = PLAIN): string {
  const n1 = k.nodes[0];
  const lines: string[] = [];
  const cmd = (c: string, why: string): void => {
    lines.push(`  ${c}`);
    lines.push(`      ${style.dim(why)}`);
  };
  lines.push(`  nodes      ${k.nodes.map((n) => `${n.netns} ${style.dim(n.underlayIp)}`).join('  ')}`);
  lines.push(
    `  etcd host  ${k.etcdNetns} ${style.dim(k.etcdEndpoint)}    underlay bridge  ${k.underlayNetns}`,
  );
  // One line of pods per node, so it stays readable on a terminal.
  k.nodes.forEach((n, i) => {
    const pods = k.pods.filter((p) => p.node === n.name);
    const list = pods.map((p) => `${k.podNetns.get(p.name) ?? '?'} ${style.dim(`${p.name} ${p.ip}`)}`);
    lines.push(`  ${i === 0 ? 'pods      ' : '          '} ${list.join('  ')}`);
  });
  lines.push('');
  if (n1) {
    if (k.device)
      cmd(`ip netns exec ${n1.netns} ip -d link show ${k.device}`, `node ${n1.name}'s ${k.backend} device`);
    cmd(`ip netns exec ${n1.netns} ip route`, `node ${n1.name}'s routes to the other nodes' pod subnets`);
    const a = k.pods[0];
    const b = k.pods.find((p) => p.node !== a?.node);
    if (a && b) {
      cmd(
        `ip netns exec ${k.podNetns.get(a.name) ?? '?'} ping -c 3 ${b.ip}`,
        `pod ${a.name} (on ${a.node}) → pod ${b.name} (on ${b.node})`,
      );
    }
    cmd(
      `ip netns exec ${n1.netns} etcdctl --endpoints=${k.etcdEndpoint} get --prefix /coreos.com/network/subnets`,
      'the leases in etcd (reachable from any node)',
    );
    cmd(
      `ip netns exec ${n1.netns} node ${k.weftctl} status --healthz-port ${k.healthzPort}`,
      `node ${n1.name}'s weftd: lease, backend, peers`,
    );
    cmd(
      `ip netns exec ${n1.netns} curl -s http://127.0.0.1:${k.healthzPort}/metrics`,
      `node ${n1.name}'s Prometheus metrics (also /healthz, /readyz, /status)`,
    );
    cmd(`tail -f ${n1.logFile}`, `node ${n1.name}'s weftd log`);
  }
  lines.push('');
  lines.push(`  Tear it down:  ${style.bold(k.downCommand)}`);
  return `${lines.join('\n')}\n`;
}
