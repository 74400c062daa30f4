export * from './backend.js';
export * from './key-reader.js';
export * from './network.js';
export * from './version.js';
