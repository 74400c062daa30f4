// A child process with piped stdio for benches and tests that speak to it line by line (monitors, writers).
import { type ChildProcess, spawn } from 'node:child_process';
import { registerProcess, unregisterProcess } from './run.js';

/** A child with piped stdio, registered with the harness so it is killed if this process dies first. */
export function spawnPiped(argv: string[]): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${argv.join(' ')}`);
  registerProcess(pid);
  child.on('exit', () => unregisterProcess(pid));
  child.stderr?.on('data', () => {
    // Drained; a monitor or writer that fails shows up as missing events or an error answer.
  });
  return child;
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the child has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}
