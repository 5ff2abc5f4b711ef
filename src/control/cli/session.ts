// nfsessiond diagnose sys session list|stat|clear

import type { Command } from 'commander';
import { formatSessionList, formatStat, type StatView } from '../format.js';
import type { SessionView } from '../session-view.js';
import { daemonCommand } from './call.js';

export function registerSession(sys: Command): void {
  const session = sys.command('session').description('the session table');
  daemonCommand<{ sessions: SessionView[]; total: number }>(session, 'list', 'list sessions in the vendor record layout', 'session.list', (r) => formatSessionList(r.sessions));
  daemonCommand<StatView>(session, 'stat', 'session table statistics', 'session.stat', formatStat);
  daemonCommand<{ cleared: number }>(session, 'clear', 'clear sessions (and their kernel conntrack entries)', 'session.clear', (r) => `cleared ${r.cleared} session(s)`);
}
