#!/usr/bin/env node
// `npm run demo`: flags → the demo or `--down`; Ctrl-C (and SIGTERM/SIGHUP) tears everything down.
import { constants } from 'node:os';
import { cleanupRunSync } from '../testkit/run.js';
import { DemoSession, EXIT_FAILED, EXIT_USAGE, runDemo, runDown } from './demo.js';
import { type DemoCommand, DemoUsageError, parseDemoArgs, USAGE } from './options.js';
import { statePath } from './state.js';
import { styleFor } from './terminal.js';

const io = { out: process.stdout, err: process.stderr, style: styleFor(process.stdout, process.env) };

function exitCodeOf(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** Installed before the harness creates anything, so the harness leaves these signals to us. */
function handleSignals(session: DemoSession): void {
  const onSignal = async (signal: NodeJS.Signals): Promise<void> => {
    const code = exitCodeOf(signal);
    if (session.interrupted !== undefined || session.detached) {
      // A second Ctrl-C: no more waiting.
      if (!session.detached) cleanupRunSync();
      session.releaseState();
      process.exit(code);
    }
    session.interrupted = signal;
    if (session.reporter.running) session.reporter.fail(signal === 'SIGINT' ? 'interrupted' : signal);
    io.out.write(
      `\n${io.style.yellow(`${signal === 'SIGINT' ? 'Interrupted' : `Got ${signal}`}: tearing down…`)}\n`,
    );
    session.reporter.begin('tear down');
    await session.teardown();
    session.reporter.done();
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, (s: NodeJS.Signals) => void onSignal(s));
  }
}

async function main(): Promise<number> {
  let command: DemoCommand;
  try {
    command = parseDemoArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof DemoUsageError) {
      io.err.write(`weft demo: ${err.message}\n(see npm run demo -- --help)\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (command.command === 'help') {
    io.out.write(USAGE);
    return 0;
  }
  if (command.command === 'down') return runDown(command, io);
  // Every namespace, temp dir and the harness's marker carry the demo's prefix (set before the harness
  // derives its prefix on first use).
  process.env.WEFT_RUN_PREFIX = command.prefix;
  const session = new DemoSession(io, statePath(command.stateDir, command.prefix));
  handleSignals(session);
  return runDemo(command, session);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    io.err.write(`weft demo: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanupRunSync();
    process.exit(EXIT_FAILED);
  },
);
