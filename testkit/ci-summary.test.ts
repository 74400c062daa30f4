// .ci/test-summary.mjs on hand-made vitest JSON reports: skipped tests are listed, and a root-only suite skipped
// where it must run is counted (CI fails on it) unless the allow-list names it with a reason.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = join(import.meta.dirname, '..', '.ci', 'test-summary.mjs');
const dir = mkdtempSync(join(tmpdir(), 'weft-ci-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const report = {
  numPassedTests: 3,
  numFailedTests: 1,
  numRuntimeErrorTestSuites: 0,
  testResults: [
    {
      name: join(process.cwd(), 'src/kernel/kernel.int.test.ts'),
      assertionResults: [
        { fullName: 'kernel layer in a namespace creates a device', status: 'skipped' },
        { fullName: 'kernel layer in a namespace parses', status: 'passed' },
      ],
    },
    {
      name: join(process.cwd(), 'src/observe/systemd-unit.test.ts'),
      assertionResults: [{ fullName: 'unit passes systemd-analyze verify', status: 'skipped' }],
    },
    {
      name: join(process.cwd(), 'e2e/vxlan.e2e.test.ts'),
      assertionResults: [
        { fullName: 'vxlan ping matrix', status: 'passed' },
        { fullName: 'vxlan mtu', status: 'failed' },
        { fullName: 'vxlan iperf', status: 'pending' },
      ],
    },
  ],
};

function summarize(root: boolean, allow = ''): { out: string; counts: number[] } {
  const reportFile = join(dir, 'vitest.json');
  const countsFile = join(dir, 'counts');
  const allowFile = join(dir, 'skip-allowed');
  writeFileSync(reportFile, JSON.stringify(report));
  writeFileSync(allowFile, allow);
  const out = execFileSync(process.execPath, [SCRIPT, reportFile, countsFile], {
    encoding: 'utf8',
    env: { ...process.env, WEFT_CI_EXPECT_ROOT: root ? '1' : '0', WEFT_CI_SKIP_ALLOWED: allowFile },
  });
  return { out, counts: readFileSync(countsFile, 'utf8').trim().split(' ').map(Number) };
}

describe('.ci/test-summary.mjs', () => {
  it('lists every skipped test; as root, skipped *.int / *.e2e tests are not allowed', () => {
    const { out, counts } = summarize(true);
    // passed, failed, skipped, disallowed
    expect(counts).toEqual([3, 1, 3, 2]);
    expect(out).toContain('skipped tests (3):');
    expect(out).toMatch(/kernel\.int\.test\.ts > kernel layer in a namespace creates a device — NOT ALLOWED/);
    expect(out).toMatch(/vxlan\.e2e\.test\.ts > vxlan iperf — NOT ALLOWED/);
    // A unit test skipped for a missing tool is listed, not failed.
    expect(out).toMatch(/systemd-unit\.test\.ts > unit passes systemd-analyze verify\n/);
  });

  it('not as root: root-only skips are listed but expected', () => {
    expect(summarize(false).counts).toEqual([3, 1, 3, 0]);
  });

  it('an allow-list entry with a reason lets one skip pass, and says why', () => {
    const { out, counts } = summarize(
      true,
      '# comment\ne2e/vxlan.e2e.test.ts | vxlan iperf | iperf3 is not packaged here\n',
    );
    expect(counts).toEqual([3, 1, 3, 1]);
    expect(out).toContain('vxlan iperf (allowed: iperf3 is not packaged here)');
  });
});
