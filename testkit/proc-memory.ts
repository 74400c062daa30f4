// A process's memory as the kernel counts it, for benches that watch a weftd (or themselves) over time.
import { readFileSync } from 'node:fs';

export interface ProcessMemory {
  /** Resident set size now (VmRSS), MiB. */
  rss: number;
  /** Its high-water mark since the process started (VmHWM), MiB. */
  hwm: number;
}

/** VmRSS and VmHWM of `pid` (default: this process) from /proc/<pid>/status; NaN for a field it lacks. */
export function processMemory(pid: number | 'self' = 'self'): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024;
  return { rss: mib('VmRSS'), hwm: mib('VmHWM') };
}
