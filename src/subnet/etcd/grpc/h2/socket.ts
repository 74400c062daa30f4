// The TCP or TLS socket under an HTTP/2 connection. TLS must agree on h2 by ALPN (etcd's Go server speaks
// HTTP/1.1 otherwise); Nagle is off, as grpc-js has it: a request is a HEADERS and a DATA frame, and the second
// must not wait for the first one's ACK.
import * as net from 'node:net';
import * as tls from 'node:tls';

export interface SocketTarget {
  host: string;
  port: number;
  /** The server name is `host` unless it is an IP address. */
  tls?: { secureContext: tls.SecureContext } | undefined;
  /** Names the peer in errors. */
  endpoint: string;
}

/** Connects; `fail` hears a TLS peer that did not agree to h2. */
export function connectSocket(target: SocketTarget, fail: (err: Error) => void): net.Socket {
  const { host, port } = target;
  let socket: net.Socket;
  if (target.tls) {
    const secure = tls.connect({
      host,
      port,
      secureContext: target.tls.secureContext,
      ALPNProtocols: ['h2'],
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
    });
    secure.once('secureConnect', () => {
      if (secure.alpnProtocol !== 'h2') {
        fail(new Error(`${target.endpoint} did not agree to HTTP/2 in the TLS handshake (ALPN)`));
      }
    });
    socket = secure;
  } else socket = net.connect({ host, port });
  socket.setNoDelay(true);
  return socket;
}
