export * from './network.js';
export * from './version.js';
