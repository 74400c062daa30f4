// What of the daemon's options may be shown (logs, error messages): no passwords, no credentials in URLs, no key
// material. The options reach a log line only through `redactOptions`.
import type { DaemonOptions } from './options.js';

const REDACTED = '[redacted]';

/**
 * A URL (or text that tried to be one) without its credentials: `http://user:pw@host:2379` →
 * `http://[redacted]@host:2379`. Everything between the scheme and the last `@` goes, so a password holding an
 * unencoded `@` or `/` in a malformed URL (or one without a scheme) is hidden too.
 */
export function redactUrlCredentials(text: string): string {
  const at = text.lastIndexOf('@');
  if (at < 0) return text;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text)?.[0] ?? '';
  return `${scheme}${REDACTED}${text.slice(at)}`;
}

/** True when a TLS setting holds the PEM text itself rather than a path (`--etcd-keyfile` accepts both). */
export function isInlinePem(value: string): boolean {
  return value.includes('-----BEGIN') || value.includes('\n');
}

/**
 * A TLS setting as it may be shown: a path as given; inline PEM as a placeholder, never the text. For the
 * private key (`secret`), also anything that could be raw key material typed in by mistake: a value without a
 * `.` or with whitespace is not shown (base64 and hex never hold a `.`; a key path like `/etc/etcd/key.pem` does).
 */
export function redactTlsSetting(value: string | undefined, secret: boolean): string | undefined {
  if (value === undefined) return undefined;
  if (isInlinePem(value)) return `[inline PEM, ${value.length} bytes${secret ? ', redacted' : ''}]`;
  if (secret && (!value.includes('.') || /\s/.test(value))) return REDACTED;
  return value;
}

/**
 * Options as they may be logged or shown: passwords replaced, credentials in URLs removed, inline PEM key
 * material replaced by a placeholder. The only shape of the options that ever reaches a log line.
 */
export function redactOptions(options: DaemonOptions): Record<string, unknown> {
  return {
    ...options,
    etcdEndpoints: options.etcdEndpoints.map(redactUrlCredentials),
    etcdKeyfile: redactTlsSetting(options.etcdKeyfile, true),
    etcdCertfile: redactTlsSetting(options.etcdCertfile, false),
    etcdCafile: redactTlsSetting(options.etcdCafile, false),
    etcdPassword: options.etcdPassword === undefined ? undefined : REDACTED,
    kubeApiUrl: options.kubeApiUrl === undefined ? undefined : redactUrlCredentials(options.kubeApiUrl),
  };
}
