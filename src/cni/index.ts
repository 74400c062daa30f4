export { AtomicWriteError, type WriteFileOptions, writeFileIfChanged } from './atomic-file.js';
export {
  type BridgeConflist,
  type BridgeConflistInput,
  type BridgePluginConf,
  type CniRange,
  type CniRoute,
  ConflistError,
  DEFAULT_CONFLIST_PATH,
  formatConflist,
  type HostLocalIpam,
  type PortmapPluginConf,
  renderBridgeConflist,
  writeBridgeConflist,
} from './conflist.js';
export {
  type NodeFilesInput,
  type NodeFilesWritten,
  readPreviousSubnets,
  writeNodeFiles,
} from './node-files.js';
export {
  DEFAULT_SUBNET_FILE,
  parseSubnetEnv,
  readSubnetEnv,
  renderSubnetEnv,
  type SubnetEnv,
  SubnetEnvError,
  SubnetEnvParseError,
  writeSubnetEnv,
} from './subnet-env.js';
