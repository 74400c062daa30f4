// The C engine's own tests, run from here so `npm test` runs them: the unit runner (native/test/unit.c, built
// with ASan + UBSan) reports one line per C case, and each becomes a test below; then a bounded, seeded
// libFuzzer run over the parsers, offloads and peer table (native/test/fuzz_*.c, fixed seed corpus).
// Needs make, a C compiler and clang with libFuzzer (scripts/setup.sh installs clang and libclang-rt-14-dev).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandResult, runCommand } from '../../core/index.js';

const TEST_DIR = path.resolve(import.meta.dirname, '../../../native/test');

/** `ok <name>` / `not ok <name>: <where> <check>` lines of the runner. */
function parseRunner(stdout: string): Map<string, string | undefined> {
  const cases = new Map<string, string | undefined>();
  for (const line of stdout.split('\n')) {
    const failed = /^not ok (\w+): (.*)$/.exec(line);
    if (failed) cases.set(failed[1]!, failed[2]!);
    else if (/^ok \w+$/.test(line)) cases.set(line.slice(3), undefined);
  }
  return cases;
}

const unit = await runCommand('make', ['-s', '-C', TEST_DIR, 'unit'], {
  timeoutMs: 120_000,
  packageHint: 'make',
});
const unitCases = parseRunner(unit.stdout);

describe('native engine unit runner (native/test/unit.c, ASan + UBSan)', () => {
  it('builds and runs every case', () => {
    // A build failure, a sanitizer report or a crash shows here with the runner's output.
    expect(unit.stdout).toMatch(/^# passed \d+ failed 0$/m);
    expect(unit.code, `${unit.stdout}\n${unit.stderr}`).toBe(0);
    expect(unitCases.size).toBeGreaterThanOrEqual(20);
  });
  for (const [name, failure] of unitCases) {
    it(name.replaceAll('_', ' '), () => {
      expect(failure, failure).toBeUndefined();
    });
  }
});

const FUZZ_TARGETS = readdirSync(TEST_DIR)
  .filter((f) => /^fuzz_\w+\.c$/.test(f))
  .map((f) => f.slice('fuzz_'.length, -2));

describe('native engine fuzzing (libFuzzer + ASan + UBSan, seeded, bounded)', () => {
  let fuzz: CommandResult;

  beforeAll(async () => {
    fuzz = await runCommand('make', ['-s', '-C', TEST_DIR, 'fuzz'], {
      timeoutMs: 120_000,
      packageHint: 'clang libclang-rt-14-dev',
    });
  }, 130_000);

  afterAll(() => {
    if (fuzz?.code !== 0) process.stderr.write(`${fuzz?.stdout ?? ''}\n${fuzz?.stderr ?? ''}\n`);
  });

  it('finds fuzz targets for the parsers, offloads, the peer table and the rtnetlink acks', () => {
    expect(FUZZ_TARGETS.sort()).toEqual(['gro', 'ipv4_icmp', 'peer_table', 'rtnl_msg', 'vnet_gso']);
  });

  for (const target of FUZZ_TARGETS) {
    it(`${target}: no crash, sanitizer report or broken invariant`, () => {
      expect(fuzz.stdout, fuzz.stderr).toContain(`fuzz ${target} ok`);
      const section = fuzz.stdout.split(`fuzz ${target}:`)[1]?.split(`fuzz ${target} ok`)[0] ?? '';
      const executed = Number(/stat::number_of_executed_units: (\d+)/.exec(section)?.[1] ?? 0);
      expect(executed).toBeGreaterThan(1000);
    });
  }
});
