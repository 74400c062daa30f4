import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino must never print: etcd credentials, key material, kube tokens. A safety net: the options are logged
 * only through `redactOptions` (config/options.ts), which also strips URL credentials and inline PEM.
 */
export const REDACTED_PATHS = [
  'password',
  'etcdPassword',
  '*.password',
  '*.etcdPassword',
  'credentials',
  '*.credentials',
  'token',
  '*.token',
  'privateKey',
  '*.privateKey',
  'psk',
  '*.psk',
  'etcdKeyfileContent',
];

export interface CreateLoggerOptions {
  level?: string;
  name?: string;
  /** Pretty-print (pino-pretty). Default: when stdout is a terminal. */
  pretty?: boolean;
  /** Write to this stream instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
}

/** pino JSON logs; pretty only on a terminal; secrets redacted. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const base: LoggerOptions = {
    name: options.name ?? 'weftd',
    level: options.level ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = options.pretty ?? (process.stdout.isTTY === true && !options.destination);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  if (options.destination) return pino(base, options.destination as pino.DestinationStream);
  return pino(base);
}

/** A logger that drops everything (library defaults, tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
