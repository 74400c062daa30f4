// Reads vitest's JSON report and says what a bare "N passed, N failed" hides: which tests were skipped, and
// which of them were meant to run here. As root, every `*.int.test.ts` and `*.e2e.test.ts` test must run
// (they skip themselves only when not root); a skip there fails CI unless `.ci/skip-allowed` lists it with a
// reason. Usage: node .ci/test-summary.mjs <vitest.json> <counts-out>
// Prints the report on stdout and writes "passed failed skipped disallowed" to <counts-out>.
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

const [reportPath, countsPath] = process.argv.slice(2);
if (!reportPath || !countsPath) {
  console.error('usage: node .ci/test-summary.mjs <vitest.json> <counts-out>');
  process.exit(2);
}
const allowPath = process.env.WEFT_CI_SKIP_ALLOWED ?? new URL('./skip-allowed', import.meta.url).pathname;
// Root is where the root-only suites are meant to run; WEFT_CI_EXPECT_ROOT=1|0 overrides (tests of this script).
const expectRoot =
  process.env.WEFT_CI_EXPECT_ROOT !== undefined
    ? process.env.WEFT_CI_EXPECT_ROOT === '1'
    : process.getuid?.() === 0;

/** `.ci/skip-allowed`: `<file> | <test name substring> | <reason>` per line; `#` comments. */
function readAllowList(path) {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const entries = [];
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [file, name, reason] = line.split('|').map((s) => s.trim());
    if (!file || name === undefined || !reason) {
      console.error(
        `${path}:${n + 1}: expected "<file> | <test name substring> | <reason>", found ${JSON.stringify(raw)}`,
      );
      process.exit(2);
    }
    entries.push({ file, name, reason });
  }
  return entries;
}

const report = JSON.parse(readFileSync(reportPath, 'utf8'));
const allow = readAllowList(allowPath);
const skipped = [];
for (const file of report.testResults ?? []) {
  const path = relative(process.cwd(), file.name);
  for (const t of file.assertionResults ?? []) {
    if (t.status === 'skipped' || t.status === 'pending' || t.status === 'todo') {
      skipped.push({ file: path, name: t.fullName ?? t.title });
    }
  }
}

const mustRun = (s) => expectRoot && /\.(int|e2e)\.test\.ts$/.test(s.file);
const allowedBy = (s) => allow.find((a) => s.file.endsWith(a.file) && s.name.includes(a.name));
let disallowed = 0;
if (skipped.length > 0) {
  console.log(`skipped tests (${skipped.length}):`);
  for (const s of skipped) {
    const a = allowedBy(s);
    let note = '';
    if (a) note = ` (allowed: ${a.reason})`;
    else if (mustRun(s)) {
      note =
        ' — NOT ALLOWED: root-only suites must run as root (fix the cause, or list it in .ci/skip-allowed with a reason)';
      disallowed++;
    }
    console.log(`  ${s.file} > ${s.name}${note}`);
  }
}
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + (report.numRuntimeErrorTestSuites ?? 0);
writeFileSync(countsPath, `${passed} ${failed} ${skipped.length} ${disallowed}\n`);
