// nfsessiond execute log display|filter: the traffic records the daemon keeps in memory.

import type { Command } from 'commander';
import { formatLogDisplay, formatLogFilter, type LogDisplay, type LogFilter } from '../../log/display.js';
import { daemonCommand } from './call.js';
import { argsCommand } from './debug.js';

export function registerExecute(program: Command): void {
  const execute = program.command('execute').description('operations on the running daemon');
  const log = execute.command('log').description('the traffic log kept in memory (system nfsessiond log-memory-records)');
  daemonCommand<LogDisplay>(log, 'display', 'show traffic records, newest first, through the log filter', 'log.display', formatLogDisplay);
  argsCommand<{ filter: LogFilter }>(log, 'filter',
    'field <name> [<value>], view-lines <5-1000>, start-line <n>, reset; no argument shows the filter',
    'log.filter', (r, args) => (args.length ? '' : formatLogFilter(r.filter)));
}
