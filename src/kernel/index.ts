// The only code in weft that talks to the Linux kernel: iproute2 `-json` reads, `-force -batch -` writes of
// links and addresses, rtnetlink writes of routes, neighbours and FDB entries (rtnl/, the native addon).
export {
  type ApplyOptions,
  applyKernelOps,
  type EntryWriter,
  entryWriter,
  type GroupOptions,
  parseBatchErrors,
  SMALL_PLAN_OPS,
} from './apply.js';
export {
  canonicalInterfaceAddress,
  canonicalMacText,
  canonicalNetwork,
  isValidDeviceName,
  parseRouteDst,
} from './canonical.js';
export { dumpKernelState } from './dump.js';
export { KernelCommandError, KernelToolError } from './exec.js';
export {
  InterfaceSelectionError,
  type ListInterfacesOptions,
  listInterfaces,
  type SelectInterfaceOptions,
  selectInterface,
} from './interfaces.js';
export { filterOwned, outOfScope } from './ownership.js';
export { KernelOutputParseError } from './parse.js';
export { describeKernelOp, linkMismatch, planKernel } from './plan.js';
export { type DeltaPlan, planKernelDelta, RememberedKernelState } from './plan-delta.js';
export { InvalidKernelOpError, renderKernelOp } from './render.js';
export { ensureForwarding, ensureSysctl, readSysctl, SysctlError, writeSysctl } from './sysctl.js';
export type * from './types.js';
export { probeVxlanSupport, type VxlanSupport } from './vxlan-support.js';
export {
  type EnsureWgDeviceOptions,
  type EnsureWgDeviceResult,
  ensureWgDevice,
  keyDigest,
  parseWgDump,
  readWgDevice,
  renderWgConfig,
  syncWgDevice,
  type WgDeviceSpec,
  WgDumpParseError,
  type WgObservedDevice,
  type WgObservedPeer,
  type WgPeerSpec,
  WIREGUARD_SOCKET_DIR,
  WireguardDeviceError,
  type WireguardImplementation,
} from './wireguard.js';
