// nfsessiond diagnose user list|clear [name|ip], diagnose test proxyworker 4,
// diagnose sys conserve [reset].

import type { Command } from 'commander';
import type { ConserveView } from '../../engine/admission.js';
import { formatConserve, formatProxyWorker, formatUsers, type ProxyWorkerView, type UserView } from '../limits-format.js';
import { daemonCommand } from './call.js';

export function registerLimits(diagnose: Command, sys: Command): void {
  const user = diagnose.command('user').description('users (one per source address and VDOM) and their limits');
  daemonCommand<{ users: UserView[]; total: number }>(user, 'list', 'list users (idle ones too, until they expire)', 'user.list', (r) => formatUsers(r.users));
  daemonCommand<{ cleared: number }>(user, 'clear [name]', 'forget every user, or the one with this name (source address); their sessions stay', 'user.clear',
    (r) => `cleared ${r.cleared} user(s)`, (_o, pos) => ({ name: pos[0] }));

  const test = diagnose.command('test').description('vendor test views');
  daemonCommand<ProxyWorkerView>(test, 'proxyworker <mode>', 'per-service sessions and accounting (mode 4), the layout of get test proxyworker 4', 'proxyworker.stat',
    formatProxyWorker, (_o, pos) => ({ mode: pos[0] }));

  const conserve = daemonCommand<ConserveView>(sys, 'conserve', 'conserve mode and fail-open state', 'conserve.show', formatConserve);
  daemonCommand<ConserveView & { reset: boolean }>(conserve, 'reset', 'restart inspection after av-failopen one-shot let sessions through', 'conserve.reset',
    (r) => `${r.reset ? 'one-shot fail-open reset: new sessions are inspected again' : 'one-shot fail-open was not latched'}\n${formatConserve(r)}`);
}
