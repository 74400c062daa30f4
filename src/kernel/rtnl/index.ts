// Entry ops (routes, neighbours, FDB entries) written over rtnetlink by the native addon.
export { type EntryOp, encodeEntryOp, entryDevice, isEntryOp } from './encode.js';
export { loadRtnl, type RtnlAddon, type RtnlAnswer, type RtnlLoad } from './native.js';
export { describeRtnlAnswer, RTNL_CHUNK_OPS, RTNL_YIELD_MS, writeEntries } from './write.js';
