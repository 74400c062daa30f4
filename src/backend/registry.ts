// Backends by name, as flannel's registry: `Backend.Type` in the network config picks one.
import type { BackendConfig } from '../config/index.js';
import { HostGwBackend } from './hostgw/index.js';
import { type Backend, type BackendFactory, UnknownBackendError } from './types.js';
import { VxlanBackend } from './vxlan/index.js';

const factories = new Map<string, BackendFactory>();

/** Registers (or replaces) the factory for a backend type. */
export function registerBackend(type: string, factory: BackendFactory): void {
  factories.set(type, factory);
}

export function registeredBackendTypes(): string[] {
  return [...factories.keys()].sort();
}

/** A new backend for the config's `Backend.Type`; UnknownBackendError when none is registered. */
export function createBackend(config: BackendConfig): Backend {
  const factory = factories.get(config.type);
  if (factory === undefined) throw new UnknownBackendError(config.type, registeredBackendTypes());
  return factory(config);
}

registerBackend('vxlan', (config) => {
  if (config.type !== 'vxlan') throw new UnknownBackendError(config.type, registeredBackendTypes());
  return new VxlanBackend(config);
});
registerBackend('host-gw', () => new HostGwBackend());
