export * from './loop.js';
export * from './peers.js';
