export * from './loop.js';
export * from './observed.js';
export * from './peers.js';
