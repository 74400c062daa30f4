// What every room needs once: abortable sleep, one backoff policy, error fields for logs, one way to run a
// program, and the Task contract.
export { Backoff, type BackoffOptions } from './backoff.js';
export {
  CommandFailedError,
  type CommandOptions,
  type CommandResult,
  CommandStartError,
  CommandTimeoutError,
  commandArgv,
  describeArgv,
  runCommand,
  runCommandChecked,
} from './command.js';
export { type ErrorFields, errorFields, errorMessage } from './errors.js';
export { loadNativeAddon, NATIVE_ADDON_PATH, type NativeAddonLoad } from './native-addon.js';
export { sleep, untilAborted } from './sleep.js';
export type { Task, TaskContext } from './task.js';
export {
  type StaleTask,
  staleTasks,
  type TaskStatus,
  TaskSupervisor,
  type TaskSupervisorOptions,
} from './tasks.js';
