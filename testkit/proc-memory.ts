// What the kernel says a process costs, from /proc: resident set now (VmRSS) and its peak (VmHWM), and the CPU
// time it has used.
import { readFileSync } from 'node:fs';

export interface ProcMemory {
  /** VmRSS in MiB. */
  rssMiB: number;
  /** VmHWM (the peak of VmRSS since the process started) in MiB. */
  hwmMiB: number;
}

/** Reads `/proc/<pid>/status` (default: this process); NaN for a field the kernel did not print. */
export function procMemory(pid: number | 'self' = 'self'): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

/** USER_HZ: what /proc/<pid>/stat counts CPU time in (100 on every Linux architecture Node runs on). */
const TICKS_PER_SECOND = 100;

/** CPU time (utime + stime) a process has used, in ms; NaN when it cannot be read (the process is gone). */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
