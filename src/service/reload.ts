// `nfsessiond reload --pid PID [--config FILE]`: what the unit's ExecReload runs. The file is
// checked first, so `systemctl reload` fails visibly on a bad file (the daemon would keep its
// running config and only log the errors); then the daemon gets SIGHUP. Signalling from our own
// program keeps the unit free of tools a minimal root may lack (/bin/kill comes with procps).

import { loadConfigFile } from '../config/load.js';

export function reloadDaemon(opts: { pid: string; config?: string }, kill: (pid: number, sig: NodeJS.Signals) => void = process.kill): string {
  const pid = Number(opts.pid);
  if (!/^\d+$/.test(opts.pid) || !Number.isSafeInteger(pid) || pid <= 1) throw new Error(`reload: --pid must be the daemon's process id (an integer > 1), got '${opts.pid}'`);
  if (opts.config) loadConfigFile(opts.config);
  try {
    kill(pid, 'SIGHUP');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ESRCH' ? `reload: no process ${pid} (is the daemon running?)` : `reload: cannot signal ${pid}: ${(e as Error).message}`);
  }
  return `reload: SIGHUP sent to ${pid}${opts.config ? ` (${opts.config}: OK)` : ''}`;
}
