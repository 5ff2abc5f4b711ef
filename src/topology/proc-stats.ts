// What /proc says of a process the tests or benches started: its CPU time and resident memory.

import { readFileSync } from 'node:fs';

const CLK_TCK = 100;

/** User + system CPU time of a process (all its threads) in ms, from /proc/PID/stat; undefined when gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Resident memory of a process, KiB; undefined when gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
