// `npm run demo` (entry: cli.ts). What tests and other tools may use.
export {
  DemoSession,
  downCommand,
  EXIT_BUSY,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  preflightProblems,
  runDemo,
  runDown,
} from './demo.js';
export {
  BACKENDS,
  DEFAULT_DEMO_PREFIX,
  DEFAULT_STATE_DIR,
  type DemoBackend,
  type DemoCommand,
  type DemoDownOptions,
  type DemoRunOptions,
  DemoUsageError,
  parseDemoArgs,
  USAGE,
} from './options.js';
export {
  type DemoState,
  DemoStateFileError,
  type DemoStatus,
  parseDemoState,
  readDemoStatus,
  statePath,
} from './state.js';
export { isDemoNamespace, namespaceTeardownOrder, type TeardownReport, teardownDemo } from './teardown.js';
