import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from './exec.js';
import {
  isRecordedProcessAlive,
  markerPath,
  type RunMarker,
  recordProcess,
  runPrefix,
  sweepLeftovers,
} from './run.js';

/** A `wt<4 hex>` prefix that is not this run's. */
function otherPrefix(): string {
  for (;;) {
    const p = `wt${randomBytes(2).toString('hex')}`;
    if (p !== runPrefix() && !fs.existsSync(markerPath(p))) return p;
  }
}

/** The PID of a process that has already exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

function writeMarker(marker: RunMarker): void {
  fs.mkdirSync(path.dirname(markerPath(marker.prefix)), { recursive: true });
  fs.writeFileSync(markerPath(marker.prefix), JSON.stringify(marker));
}

const made: string[] = [];
afterEach(async () => {
  for (const ns of made.splice(0)) await run('ip', ['netns', 'del', ns]);
});

describe('runPrefix', () => {
  it('is wt + 4 hex digits, stable within the process', () => {
    expect(runPrefix()).toMatch(/^wt[0-9a-f]{4}$/);
    expect(runPrefix()).toBe(runPrefix());
  });
});

describe('sweepLeftovers', () => {
  it("removes a dead run's namespaces, processes, temp dirs and marker, and keeps a live run's", async () => {
    const dead = otherPrefix();
    const live = otherPrefix();
    const deadNs = `${dead}n1`;
    const strayNs = `${dead}p7`; // not in the marker: found by its prefix in `ip netns list`
    const liveNs = `${live}n1`;
    for (const ns of [deadNs, strayNs, liveNs]) {
      made.push(ns);
      await run('ip', ['netns', 'add', ns]);
    }
    const deadDir = fs.mkdtempSync(path.join(os.tmpdir(), `${dead}-cluster-`));
    const liveDir = fs.mkdtempSync(path.join(os.tmpdir(), `${live}-cluster-`));
    const orphan = spawn('sleep', ['30'], { stdio: 'ignore' });
    const orphanExit = new Promise((resolve) => orphan.on('exit', resolve));
    await new Promise((resolve) => orphan.on('spawn', resolve));
    const orphanRecord = recordProcess(orphan.pid!);

    writeMarker({
      prefix: dead,
      owner: { pid: await deadPid(), startTime: null },
      namespaces: [deadNs],
      rootVeths: [],
      processes: [orphanRecord],
      tempDirs: [deadDir],
    });
    writeMarker({
      prefix: live,
      owner: recordProcess(process.pid),
      namespaces: [liveNs],
      rootVeths: [],
      processes: [],
      tempDirs: [liveDir],
    });

    try {
      const report = sweepLeftovers();
      expect(report.prefixes).toContain(dead);
      expect(report.prefixes).not.toContain(live);
      expect(report.namespaces).toEqual(expect.arrayContaining([deadNs, strayNs]));
      expect(report.processes).toContain(orphan.pid);
      await orphanExit;
      expect(isRecordedProcessAlive(orphanRecord)).toBe(false);

      const list = (await run('ip', ['netns', 'list'])).stdout;
      expect(list).not.toContain(deadNs);
      expect(list).not.toContain(strayNs);
      expect(list).toContain(liveNs);
      expect(fs.existsSync(deadDir)).toBe(false);
      expect(fs.existsSync(markerPath(dead))).toBe(false);
      expect(fs.existsSync(liveDir)).toBe(true);
      expect(fs.existsSync(markerPath(live))).toBe(true);
    } finally {
      orphan.kill('SIGKILL');
      fs.rmSync(liveDir, { recursive: true, force: true });
      fs.rmSync(markerPath(live), { force: true });
      fs.rmSync(deadDir, { recursive: true, force: true });
      fs.rmSync(markerPath(dead), { force: true });
    }
  });

  it('never sweeps this run', async () => {
    const ns = `${runPrefix()}z9`;
    made.push(ns);
    await run('ip', ['netns', 'add', ns]);
    const report = sweepLeftovers();
    expect(report.namespaces).not.toContain(ns);
    expect(fs.existsSync(`/run/netns/${ns}`)).toBe(true);
  });
});
