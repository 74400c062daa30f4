export {
  EtcdEndpointSkippedError,
  type EtcdRpc,
  EtcdRpcClient,
  type EtcdRpcClientOptions,
  IDEMPOTENT_ETCD_METHODS,
  WatchStream,
} from './client.js';
export {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdProtocolError,
  GrpcError,
  GrpcStatus,
  isRecoverableError,
} from './errors.js';
export type {
  Compare,
  KeyValue,
  RangeRequest,
  RangeResponse,
  TxnRequest,
  TxnResponse,
  WatchEvent,
  WatchRequest,
  WatchResponse,
} from './messages.js';
