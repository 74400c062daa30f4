import type { DaemonOptions } from '../config/options.js';
import type { Logger } from '../log/index.js';
import type { SubnetManager, WatchHealthEvent } from './types.js';

export interface SubnetManagerHooks {
  onWatchEvent?: (event: WatchHealthEvent) => void;
  /** etcd lease timing for tests (a TTL of seconds instead of 24 h); flags never set it. */
  etcdLeaseTiming?: { leaseTtlSeconds: number; renewMarginSeconds: number; renewRetryMs: number };
}

/** The lease source the flags ask for: the Kubernetes API with `--kube-subnet-mgr`, else etcd. */
export async function createSubnetManager(
  options: DaemonOptions,
  logger: Logger,
  hooks: SubnetManagerHooks = {},
): Promise<SubnetManager> {
  if (options.kubeSubnetMgr) {
    const { KubeSubnetManager } = await import('./kube/index.js');
    return new KubeSubnetManager({
      kubeconfigFile: options.kubeconfigFile,
      apiUrl: options.kubeApiUrl,
      annotationPrefix: options.kubeAnnotationPrefix,
      netConfigPath: options.netConfigPath,
      logger,
      onWatchEvent: hooks.onWatchEvent,
    });
  }
  const { EtcdSubnetManager } = await import('./etcd/index.js');
  return new EtcdSubnetManager({
    endpoints: options.etcdEndpoints,
    prefix: options.etcdPrefix,
    tls:
      options.etcdCafile || options.etcdCertfile || options.etcdKeyfile
        ? { ca: options.etcdCafile, cert: options.etcdCertfile, key: options.etcdKeyfile }
        : undefined,
    username: options.etcdUsername,
    password: options.etcdPassword,
    renewMargin: options.subnetLeaseRenewMargin,
    // An idle watch is confirmed (and the lease-watch task beats) once per resync, at most every 30 s.
    watchProgressIntervalMs: Math.min(30_000, options.resyncInterval * 1000),
    ...hooks.etcdLeaseTiming,
    logger,
    onWatchEvent: hooks.onWatchEvent,
  });
}
