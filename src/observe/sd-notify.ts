// sd_notify for a Type=notify systemd unit. Node has no AF_UNIX datagram sockets, so the datagram is sent
// by systemd's own `systemd-notify` (present wherever systemd is). Two details make that reliable:
// `--pid=<our pid>` attributes the message to the daemon's main PID (root may send credentials of another
// process), and systemd-notify (since v246) waits with a barrier until systemd has processed the message,
// so it no longer exits before systemd can look up its cgroup. The unit still sets NotifyAccess=all so a
// systemd without either behaviour accepts the message from the helper process.
import { CommandStartError, errorMessage, runCommand, sleep, type Task } from '../core/index.js';
import type { Logger } from '../log/index.js';
import type { HealthVerdict } from './health.js';

export class InvalidNotifyStateError extends Error {
  override name = 'InvalidNotifyStateError';
}

export type SdNotifyResult = { sent: true } | { sent: false; reason: string };

export interface SdNotifyOptions {
  /** Environment holding NOTIFY_SOCKET (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** The helper to run (default `systemd-notify` from PATH). */
  command?: string;
  /** Main PID the message is sent for (default `process.pid`). */
  pid?: number;
  /** Give up after this long (default 5 s: systemd-notify's barrier waits up to that for systemd). */
  timeoutMs?: number;
  /** Logs the outcome: debug when sent or not under systemd, warn when sending failed. */
  logger?: Logger;
}

function isLogger(value: unknown): value is Logger {
  const v = value as Partial<Logger> | undefined;
  return typeof v?.warn === 'function' && typeof v?.child === 'function';
}

/** One assignment per line, like `READY=1` or `STATUS=Routing 3 peers`. */
const ASSIGNMENT = /^[A-Z_][A-Z0-9_]*=[^\n\0]*$/;

/** Splits and checks a state string (`READY=1\nSTATUS=…`). Throws for anything that is not assignments. */
export function parseNotifyState(state: string): string[] {
  const lines = state.split('\n').filter((line) => line !== '');
  if (lines.length === 0)
    throw new InvalidNotifyStateError('sd_notify state is empty (expected e.g. "READY=1")');
  for (const line of lines) {
    if (!ASSIGNMENT.test(line)) {
      throw new InvalidNotifyStateError(
        `sd_notify state line ${JSON.stringify(line.slice(0, 60))} is not VARIABLE=value (upper-case name)`,
      );
    }
  }
  return lines;
}

/**
 * Sends `state` (e.g. `READY=1`, `STATUS=…`, `STOPPING=1`) to systemd when the process runs under a
 * Type=notify unit (NOTIFY_SOCKET set). Never throws for runtime failures: without NOTIFY_SOCKET, or when the
 * helper is missing or fails, it resolves `{ sent: false, reason }` (and logs it when given a logger), so a
 * caller may fire and forget. The second argument is the options or just a logger.
 */
export function notifySystemd(
  state: string,
  optionsOrLogger: SdNotifyOptions | Logger = {},
): Promise<SdNotifyResult> {
  const options: SdNotifyOptions = isLogger(optionsOrLogger) ? { logger: optionsOrLogger } : optionsOrLogger;
  const lines = parseNotifyState(state);
  const log = options.logger;
  return sendNotify(lines, options).then((result) => {
    if (log) {
      if (result.sent) log.debug({ state: lines }, 'notified systemd');
      else if ((options.env ?? process.env).NOTIFY_SOCKET)
        log.warn({ state: lines, reason: result.reason }, 'could not notify systemd');
      else log.debug({ reason: result.reason }, 'systemd notification skipped');
    }
    return result;
  });
}

function sendNotify(lines: string[], options: SdNotifyOptions): Promise<SdNotifyResult> {
  const env = options.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  if (!socket) {
    return Promise.resolve({
      sent: false,
      reason: 'NOTIFY_SOCKET is not set (not started by systemd as Type=notify)',
    });
  }
  const command = options.command ?? 'systemd-notify';
  const pid = options.pid ?? process.pid;
  const timeoutMs = options.timeoutMs ?? 5_000;
  return runCommand(command, [`--pid=${pid}`, ...lines], {
    env: { ...env, NOTIFY_SOCKET: socket },
    timeoutMs,
  }).then(
    (r): SdNotifyResult =>
      r.code === 0
        ? { sent: true }
        : {
            sent: false,
            reason: `${command} failed (exit code ${String(r.code)}): ${r.stderr.trim() || 'no output'}`,
          },
    (err: unknown): SdNotifyResult => {
      if (err instanceof CommandStartError && /not found/.test(err.message)) {
        return {
          sent: false,
          reason: `${command} not found: install systemd's systemd-notify, or run the unit as Type=exec (see README.md, "Run on bare metal with systemd")`,
        };
      }
      return { sent: false, reason: errorMessage(err) };
    },
  );
}

/** How often readiness is looked at for systemd. */
const READINESS_CHECK_MS = 1_000;

/**
 * systemd follows `/readyz`: `READY=1` the first time the node is ready, then a `STATUS=` line on every change
 * (systemd has no "not ready any more"; `systemctl status weftd` shows the status line and its reasons).
 * The same changes are logged. A Task: it beats on every look.
 */
export function readinessNotifierTask(
  health: { readyz(): HealthVerdict },
  logger: Logger,
  notify: (state: string) => Promise<SdNotifyResult> = (state) => notifySystemd(state, { logger }),
): Task {
  return {
    name: 'readiness',
    periodMs: READINESS_CHECK_MS,
    run: async ({ signal, beat }) => {
      let sentReady = false;
      let last: string | undefined;
      while (!signal.aborted) {
        const verdict = health.readyz();
        const status = verdict.ok ? 'ready' : `not ready: ${verdict.reasons.join('; ')}`;
        if (status !== last) {
          last = status;
          if (verdict.ok) logger.info(sentReady ? 'weftd ready again' : 'weftd ready');
          else logger.warn({ reasons: verdict.reasons }, 'weftd not ready');
          const ready = verdict.ok && !sentReady;
          if (ready) sentReady = true;
          await notify(`${ready ? 'READY=1\n' : ''}STATUS=${status.replace(/[\n\0]/g, ' ')}`);
        }
        beat();
        await sleep(READINESS_CHECK_MS, signal);
      }
    },
  };
}
