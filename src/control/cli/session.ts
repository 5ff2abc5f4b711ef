// nfsessiond diagnose sys session filter|list|stat|full-stat|clear

import type { Command } from 'commander';
import { formatFilter, type SessionFilter } from '../filter.js';
import { formatSessionList, formatStat, type FullStatView, type StatView } from '../format.js';
import type { SessionView } from '../session-view.js';
import { formatExpectationList, type ExpectationView } from '../expectation-view.js';
import { daemonCommand } from './call.js';
import { argsCommand } from './debug.js';

export function registerSession(sys: Command): void {
  const session = sys.command('session').description('the session table');
  argsCommand<{ filter: SessionFilter }>(session, 'filter',
    'set the session filter: vd <n|-1>, sintf|dintf <name>, src|nsrc|dst <ip> [<ip-to>], proto|sport|nport|dport|policy|expire|duration <n> [<n-to>], negate <field>, clear [<field>]; no argument shows it',
    'session.filter', (r, args) => (args.length ? '' : formatFilter(r.filter)));
  daemonCommand<{ sessions?: SessionView[]; expectations?: ExpectationView[]; total: number }>(session, 'list [what]',
    "list the sessions matching the filter in the vendor record layout; 'list expectation' lists the expectation sessions (helper pinholes)",
    'session.list', (r) => (r.expectations ? formatExpectationList(r.expectations) : formatSessionList(r.sessions ?? [])),
    (_o, pos) => (pos[0] ? { what: pos[0] } : {}));
  daemonCommand<StatView>(session, 'stat', 'session table statistics (session figures through the filter)', 'session.stat', formatStat);
  daemonCommand<FullStatView>(session, 'full-stat', 'stat plus the table line, offloaded sessions and the kernel conntrack table', 'session.full-stat', formatStat);
  daemonCommand<{ cleared: number }>(session, 'clear', 'clear the sessions matching the filter (and their kernel conntrack entries)', 'session.clear', (r) => `cleared ${r.cleared} session(s)`);
}
