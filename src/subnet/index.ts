export * from './etcd/index.js';
export * from './types.js';
