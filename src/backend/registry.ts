// Backends by name, as flannel's registry: `Backend.Type` in the network config picks one.
import { type BackendConfig, vxlanPort } from '../config/index.js';
import { probeVxlanSupport } from '../kernel/index.js';
import { AllocBackend } from './alloc/index.js';
import { ExtensionBackend } from './extension/index.js';
import { HostGwBackend } from './hostgw/index.js';
import { type Backend, type BackendFactory, UnknownBackendError } from './types.js';
import { UdpBackend } from './udp/index.js';
import { VxlanBackend } from './vxlan/index.js';
import { WireguardBackend } from './wireguard/index.js';

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
  // The probe brings a throw-away device up on the configured port: a port someone else holds makes vxlan
  // unavailable here (so `auto` falls back to udp) instead of failing every reconcile pass later.
  const port = vxlanPort(config);
  return new VxlanBackend(config, { probe: (existing) => probeVxlanSupport({ existing, port }) });
});
registerBackend('host-gw', () => new HostGwBackend());
registerBackend('udp', (config) => {
  if (config.type !== 'udp') throw new UnknownBackendError(config.type, registeredBackendTypes());
  return new UdpBackend(config);
});
registerBackend('wireguard', (config) => {
  if (config.type !== 'wireguard') throw new UnknownBackendError(config.type, registeredBackendTypes());
  return new WireguardBackend(config);
});
registerBackend('extension', (config) => {
  if (config.type !== 'extension') throw new UnknownBackendError(config.type, registeredBackendTypes());
  return new ExtensionBackend(config);
});
registerBackend('alloc', () => new AllocBackend());
