export * from './cidr.js';
export * from './mac.js';
