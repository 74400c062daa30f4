// vitest globalSetup: once per test run, remove what earlier runs left behind when their process died.
import { sweepLeftovers } from './run.js';

export default function setup(): void {
  const report = sweepLeftovers();
  const removed =
    report.namespaces.length + report.processes.length + report.tempDirs.length + report.rootLinks.length;
  if (removed > 0) {
    console.warn(
      `weft harness: swept leftovers of dead runs ${report.prefixes.join(', ')}: ` +
        `${report.namespaces.length} namespaces, ${report.rootLinks.length} links, ` +
        `${report.processes.length} processes, ${report.tempDirs.length} temp dirs`,
    );
  }
}
