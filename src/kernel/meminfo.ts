// System memory use for conserve mode: (MemTotal - MemAvailable) / MemTotal from /proc/meminfo,
// in percent. NFSESSIOND_MEMINFO names another file of the same format (tests feed it values).

import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';

export function parseMeminfo(text: string): number | undefined {
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const total = kb('MemTotal');
  const avail = kb('MemAvailable') ?? kb('MemFree');
  if (!total || avail === undefined) return undefined;
  return Math.round(((total - avail) * 1000) / total) / 10;
}

/** Memory use (%) with one decimal, or undefined when it cannot be read. */
export function readMemoryPercent(path = process.env.NFSESSIOND_MEMINFO ?? '/proc/meminfo'): number | undefined {
  try {
    return parseMeminfo(readFileSync(path, 'utf8'));
  } catch {
    const t = totalmem();
    return t > 0 ? Math.round(((t - freemem()) * 1000) / t) / 10 : undefined;
  }
}
