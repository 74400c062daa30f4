// What a failed etcd call throws. The classes weft decides on: authentication failed and permission denied are
// permanent (no retry fixes them); an invalid auth token is refreshed; the transport codes are recoverable.

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** Codes after which the same call may succeed later or on another member (as the etcd3 package had them). */
const RECOVERABLE: ReadonlySet<number> = new Set([
  GrpcStatus.CANCELLED,
  GrpcStatus.UNKNOWN,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.RESOURCE_EXHAUSTED,
  GrpcStatus.ABORTED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNAVAILABLE,
]);

/** A call that ended with a non-OK status (from etcd, or from the transport). */
export class GrpcError extends Error {
  override name = 'GrpcError';
  /** True when the request never left this process: sending it elsewhere cannot write twice. */
  readonly neverSent: boolean;

  constructor(
    readonly code: number,
    message: string,
    options: { neverSent?: boolean } = {},
  ) {
    super(message);
    this.neverSent = options.neverSent === true;
  }

  get recoverable(): boolean {
    return RECOVERABLE.has(this.code);
  }
}

/** etcd refused the username or password. */
export class EtcdAuthenticationFailedError extends GrpcError {
  override name = 'EtcdAuthenticationFailedError';
}

/** The user may not do this. */
export class EtcdPermissionDeniedError extends GrpcError {
  override name = 'EtcdPermissionDeniedError';
}

/** The token expired or the auth store changed: authenticate again. */
export class EtcdInvalidAuthTokenError extends GrpcError {
  override name = 'EtcdInvalidAuthTokenError';
}

/** An answer that is not a valid message: the call failed (it is not known whether it took effect). */
export class EtcdProtocolError extends GrpcError {
  override name = 'EtcdProtocolError';
}

/** The error class for etcd's status message (etcd's api/v3rpc/rpctypes/error.go). */
export function classifyEtcdError(err: GrpcError): GrpcError {
  const m = err.message;
  const make = (ctor: typeof GrpcError): GrpcError => new ctor(err.code, m, { neverSent: err.neverSent });
  if (m.includes('etcdserver: authentication failed')) return make(EtcdAuthenticationFailedError);
  if (m.includes('etcdserver: permission denied')) return make(EtcdPermissionDeniedError);
  if (
    m.includes('etcdserver: invalid auth token') ||
    m.includes('etcdserver: revision of auth store is old') ||
    (err.code === GrpcStatus.UNAUTHENTICATED && m.includes('token'))
  ) {
    return make(EtcdInvalidAuthTokenError);
  }
  return err;
}

/** Whether the call may succeed when tried again (later, or on another member). */
export function isRecoverableError(err: unknown): boolean {
  return err instanceof GrpcError && err.recoverable;
}
