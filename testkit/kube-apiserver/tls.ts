// A self-signed serving certificate for the test API server, made by Debian's openssl. A real API server
// speaks HTTPS, and clients (kubectl, client-go) only send a bearer token over TLS: on plain http kubectl
// answers "the server has asked for the client to provide credentials" before sending a single token.
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { runChecked } from '../exec.js';

export interface ServingCert {
  /** PEM certificate (its own CA: the kubeconfig trusts exactly this certificate). */
  cert: string;
  key: string;
}

/** An EC P-256 certificate for `host` (IP or DNS name) plus localhost, valid two days. */
export async function makeServingCert(host: string, dir: string): Promise<ServingCert> {
  const keyFile = path.join(dir, 'apiserver.key');
  const certFile = path.join(dir, 'apiserver.crt');
  const names = new Set([`${isIP(host) ? 'IP' : 'DNS'}:${host}`, 'IP:127.0.0.1', 'DNS:localhost']);
  await runChecked(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=weft-test-apiserver',
      '-addext',
      `subjectAltName=${[...names].join(',')}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { timeoutMs: 15_000 },
  );
  return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') };
}
