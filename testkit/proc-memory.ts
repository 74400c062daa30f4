// What the kernel says a process costs: resident set now (VmRSS) and its peak (VmHWM), from /proc.
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
