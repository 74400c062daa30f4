export * from './lease-set.js';
export * from './lease-watch.js';
export * from './loop.js';
export * from './node.js';
export * from './observed.js';
export * from './own-lease.js';
export * from './pass.js';
