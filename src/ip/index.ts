export * from './checksum.js';
export * from './cidr.js';
export * from './mac.js';
