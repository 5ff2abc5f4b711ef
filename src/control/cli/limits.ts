// nfsessiond diagnose wad user list|clear [name|ip] (also as diagnose user ...),
// get test proxyworker / diagnose test proxyworker, diagnose sys conserve [reset].

import type { Command } from 'commander';
import type { ConserveView } from '../../engine/admission.js';
import { formatConserve, formatUsers, type UserView } from '../limits-format.js';
import { daemonCommand } from './call.js';
import { registerProxyWorker } from './proxyworker.js';

function registerUsers(parent: Command, description: string): void {
  const user = parent.command('user').description(description);
  daemonCommand<{ users: UserView[]; total: number }>(user, 'list', 'list users (idle ones too, until they expire)', 'user.list', (r) => formatUsers(r.users));
  daemonCommand<{ cleared: number }>(user, 'clear [name|ip]', 'forget every user, or the one with this name (its source address); their sessions stay', 'user.clear',
    (r) => `cleared ${r.cleared} user(s)`, (_o, pos) => ({ name: pos[0] }));
}

export function registerLimits(diagnose: Command, sys: Command, get: Command): void {
  const wad = diagnose.command('wad').description('the users of the session limits (the vendor\'s proxy daemon views)');
  registerUsers(wad, 'users (one per source address and VDOM) and their limits');
  registerUsers(diagnose, 'the same as diagnose wad user');

  registerProxyWorker(get.command('test').description('vendor test views'));
  registerProxyWorker(diagnose.command('test').description('the same as get test'));

  const conserve = daemonCommand<ConserveView>(sys, 'conserve', 'conserve mode and fail-open state', 'conserve.show', formatConserve);
  daemonCommand<ConserveView & { reset: boolean }>(conserve, 'reset', 'restart inspection after av-failopen one-shot let sessions through', 'conserve.reset',
    (r) => `${r.reset ? 'one-shot fail-open reset: new sessions are inspected again' : 'one-shot fail-open was not latched'}\n${formatConserve(r)}`);
}
