export * from './attrs.js';
export * from './key.js';
export * from './lease.js';
export * from './types.js';
