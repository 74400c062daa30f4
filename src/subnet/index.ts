export * from './etcd/index.js';
export * from './tasks.js';
export * from './types.js';
