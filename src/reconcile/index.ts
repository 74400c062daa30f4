export * from './lease-set.js';
export * from './loop.js';
export * from './observed.js';
export * from './pass.js';
