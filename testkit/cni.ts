// Invoking the real CNI plugins (Debian's containernetworking-plugins in /usr/lib/cni) the way a
// runtime does, per the CNI spec: environment variables for the call, the plugin's network config on
// stdin, a conflist run in order for ADD (each plugin after the first gets `prevResult`) and in reverse
// for DEL. Plugins can be run inside a node namespace, so bridges land there, not in the root namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type RunResult, run } from './exec.js';

export const DEFAULT_CNI_PATH = '/usr/lib/cni';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

/** One plugin entry of a conflist (its own keys are passed through untouched). */
export interface CniPluginConfig {
  type: string;
  [key: string]: unknown;
}

/** A network configuration list, as in /etc/cni/net.d/*.conflist. */
export interface CniConflist {
  cniVersion: string;
  name: string;
  plugins: CniPluginConfig[];
  [key: string]: unknown;
}

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR, e.g. `10.244.1.2/24`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

/** The parsed result of an ADD (the last plugin's result). */
export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: unknown;
  /** The result JSON exactly as the plugin printed it. */
  raw: Record<string, unknown>;
}

export class CniConfigError extends Error {
  constructor(message: string) {
    super(`invalid CNI config: ${message}`);
    this.name = 'CniConfigError';
  }
}

/** A plugin reported failure: carries the plugin's error JSON (code, msg, details). */
export class CniPluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: CniCommand,
    readonly code: number | null,
    readonly msg: string,
    readonly details: string | undefined,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      `CNI plugin ${plugin} ${command} failed` +
        (code !== null ? ` with code ${code}` : ` (exit ${exitCode})`) +
        `: ${msg}${details ? ` (${details})` : ''}${stderr.trim() ? `; stderr: ${stderr.trim()}` : ''}`,
    );
    this.name = 'CniPluginError';
  }
}

export interface CniInvocation {
  /** The pod's namespace: a name under /run/netns or an absolute path. */
  netns: string;
  containerId: string;
  /** Interface name inside the pod (default eth0). */
  ifname?: string;
  /** Run the plugins inside this namespace (`ip netns exec`), e.g. the node's. */
  hostNetns?: string;
  /** Plugin search path (default /usr/lib/cni). */
  cniPath?: string;
  /** CNI_ARGS pairs. */
  args?: Record<string, string>;
  /** Runtime config by capability name (e.g. portMappings): given to plugins that declare it. */
  capabilityArgs?: Record<string, unknown>;
  timeoutMs?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses and validates a conflist (object or JSON text). A single network config (with `type`, no
 * `plugins`) is accepted as a list of one.
 */
export function parseConflist(input: unknown): CniConflist {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new CniConfigError(`not JSON: ${(err as Error).message}`);
    }
  }
  if (!isRecord(value)) throw new CniConfigError('expected an object');
  if (typeof value.cniVersion !== 'string' || value.cniVersion === '') {
    throw new CniConfigError('`cniVersion` must be a non-empty string');
  }
  if (typeof value.name !== 'string' || value.name === '') {
    throw new CniConfigError('`name` must be a non-empty string');
  }
  if (value.plugins === undefined && typeof value.type === 'string') {
    const { cniVersion, name, ...plugin } = value;
    return { cniVersion, name, plugins: [plugin as CniPluginConfig] };
  }
  if (!Array.isArray(value.plugins) || value.plugins.length === 0) {
    throw new CniConfigError('`plugins` must be a non-empty array');
  }
  value.plugins.forEach((p, i) => {
    if (!isRecord(p) || typeof p.type !== 'string' || !/^[\w.-]+$/.test(p.type)) {
      throw new CniConfigError(`plugins[${i}].type must be a plugin binary name`);
    }
  });
  return value as CniConflist;
}

function netnsPath(netns: string): string {
  return netns.startsWith('/') ? netns : `/run/netns/${netns}`;
}

function findPlugin(type: string, cniPath: string): string {
  for (const dir of cniPath.split(':')) {
    const candidate = path.join(dir, type);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new CniConfigError(`plugin "${type}" not found in CNI_PATH ${cniPath}`);
}

/** The config one plugin sees: its own keys plus the list's name and cniVersion (and prevResult, runtimeConfig). */
function pluginConfig(
  list: CniConflist,
  plugin: CniPluginConfig,
  prevResult: Record<string, unknown> | undefined,
  capabilityArgs: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  const caps = isRecord(plugin.capabilities) ? plugin.capabilities : {};
  const runtimeConfig: Record<string, unknown> = {};
  for (const [capability, value] of Object.entries(capabilityArgs ?? {})) {
    if (caps[capability] === true) runtimeConfig[capability] = value;
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  return conf;
}

function pluginError(plugin: string, command: CniCommand, result: RunResult): CniPluginError {
  try {
    const parsed: unknown = JSON.parse(result.stdout);
    if (isRecord(parsed) && typeof parsed.msg === 'string') {
      return new CniPluginError(
        plugin,
        command,
        typeof parsed.code === 'number' ? parsed.code : null,
        parsed.msg,
        typeof parsed.details === 'string' && parsed.details !== '' ? parsed.details : undefined,
        result.code,
        result.stderr,
      );
    }
  } catch {
    // Not the spec's error JSON: report what the plugin printed.
  }
  return new CniPluginError(
    plugin,
    command,
    null,
    result.stdout.trim() || 'no error output',
    undefined,
    result.code,
    result.stderr,
  );
}

/** Runs one plugin binary for one command; resolves with its parsed stdout JSON (or {} when empty). */
export async function invokePlugin(
  command: CniCommand,
  config: Record<string, unknown>,
  inv: CniInvocation,
): Promise<Record<string, unknown>> {
  const type = String(config.type);
  const cniPath = inv.cniPath ?? DEFAULT_CNI_PATH;
  const binary = findPlugin(type, cniPath);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: netnsPath(inv.netns),
    CNI_IFNAME: inv.ifname ?? 'eth0',
    CNI_PATH: cniPath,
  };
  if (inv.args && Object.keys(inv.args).length > 0) {
    env.CNI_ARGS = Object.entries(inv.args)
      .map(([k, v]) => `${k}=${v}`)
      .join(';');
  }
  const [cmd, argv] = inv.hostNetns ? ['ip', ['netns', 'exec', inv.hostNetns, binary]] : [binary, []];
  const result = await run(cmd, argv, {
    env,
    input: JSON.stringify(config),
    timeoutMs: inv.timeoutMs ?? 30_000,
  });
  if (result.code !== 0) throw pluginError(type, command, result);
  const out = result.stdout.trim();
  if (out === '') return {};
  try {
    const parsed: unknown = JSON.parse(out);
    if (!isRecord(parsed)) throw new Error('not an object');
    return parsed;
  } catch (err) {
    throw new CniPluginError(type, command, null, `unparsable result: ${(err as Error).message}`, out, 0, '');
  }
}

/** Normalizes a result JSON (0.3.x–1.0.0) into `CniResult`, rejecting malformed fields. */
export function parseCniResult(raw: Record<string, unknown>): CniResult {
  const interfaces: CniInterface[] = [];
  if (raw.interfaces !== undefined) {
    if (!Array.isArray(raw.interfaces)) throw new CniConfigError('result.interfaces must be an array');
    for (const [i, itf] of raw.interfaces.entries()) {
      if (!isRecord(itf) || typeof itf.name !== 'string') {
        throw new CniConfigError(`result.interfaces[${i}] needs a name`);
      }
      interfaces.push({
        name: itf.name,
        ...(typeof itf.mac === 'string' ? { mac: itf.mac } : {}),
        ...(typeof itf.sandbox === 'string' ? { sandbox: itf.sandbox } : {}),
      });
    }
  }
  const ips: CniIpConfig[] = [];
  if (raw.ips !== undefined) {
    if (!Array.isArray(raw.ips)) throw new CniConfigError('result.ips must be an array');
    for (const [i, ip] of raw.ips.entries()) {
      if (!isRecord(ip) || typeof ip.address !== 'string') {
        throw new CniConfigError(`result.ips[${i}] needs an address`);
      }
      ips.push({
        address: ip.address,
        ...(typeof ip.gateway === 'string' ? { gateway: ip.gateway } : {}),
        ...(typeof ip.interface === 'number' ? { interface: ip.interface } : {}),
      });
    }
  }
  const routes: CniRoute[] = [];
  if (Array.isArray(raw.routes)) {
    for (const r of raw.routes) {
      if (isRecord(r) && typeof r.dst === 'string') {
        routes.push({ dst: r.dst, ...(typeof r.gw === 'string' ? { gw: r.gw } : {}) });
      }
    }
  }
  return {
    cniVersion: typeof raw.cniVersion === 'string' ? raw.cniVersion : '',
    interfaces,
    ips,
    routes,
    dns: raw.dns,
    raw,
  };
}

/** ADD: runs the plugins in order, each after the first with the previous result; returns the last. */
export async function cniAdd(conflist: CniConflist | string, inv: CniInvocation): Promise<CniResult> {
  const list = parseConflist(conflist);
  let prev: Record<string, unknown> | undefined;
  for (const plugin of list.plugins) {
    const out = await invokePlugin('ADD', pluginConfig(list, plugin, prev, inv.capabilityArgs), inv);
    // A plugin that prints nothing (allowed for pass-through plugins) keeps the previous result.
    prev = Object.keys(out).length > 0 ? out : prev;
  }
  return parseCniResult(prev ?? {});
}

/**
 * DEL: runs the plugins in reverse order. `prevResult` (the ADD result, as a runtime caches it) is given
 * to every plugin when known.
 */
export async function cniDel(
  conflist: CniConflist | string,
  inv: CniInvocation,
  prevResult?: CniResult | Record<string, unknown>,
): Promise<void> {
  const list = parseConflist(conflist);
  const prev = prevResult === undefined ? undefined : 'raw' in prevResult ? prevResult.raw : prevResult;
  for (const plugin of [...list.plugins].reverse()) {
    await invokePlugin(
      'DEL',
      pluginConfig(list, plugin, prev as Record<string, unknown>, inv.capabilityArgs),
      inv,
    );
  }
}

/** CHECK: runs the plugins in order, each with the ADD result as prevResult. */
export async function cniCheck(conflist: CniConflist | string, inv: CniInvocation, prevResult: CniResult) {
  const list = parseConflist(conflist);
  for (const plugin of list.plugins) {
    await invokePlugin('CHECK', pluginConfig(list, plugin, prevResult.raw, inv.capabilityArgs), inv);
  }
}

/** Brings `lo` up in the pod namespace with the real `loopback` plugin (its own one-plugin network). */
export async function cniLoopback(
  inv: Omit<CniInvocation, 'ifname'>,
  command: 'ADD' | 'DEL' = 'ADD',
): Promise<void> {
  await invokePlugin(
    command,
    { cniVersion: '1.0.0', name: 'loopback', type: 'loopback' },
    { ...inv, ifname: 'lo' },
  );
}
