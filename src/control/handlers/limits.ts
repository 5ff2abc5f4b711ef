// diagnose wad user list|clear, get/diagnose test proxyworker 1|4|4444|99, diagnose sys conserve [reset].

import { canonicalAddress } from '../../packet/address.js';
import type { DaemonContext } from '../context.js';
import { proxyWorkerOf, usersOf } from '../limits-format.js';
import { proxyMemoryOf, proxyVdomsOf, restartAccounting, sinceRestart } from '../proxyworker.js';
import type { Handler } from '../server.js';
import type { ControlViews } from '../views.js';

export function limitsHandlers(ctx: DaemonContext, views: ControlViews): Record<string, Handler> {
  const e = ctx.engine;
  const page4 = () => {
    const uptime = process.uptime();
    return sinceRestart(proxyWorkerOf(e, uptime), views.accountingRestart, uptime);
  };
  return {
    'user.list': () => {
      const users = usersOf(e, ctx.now());
      return { users, total: users.length };
    },
    'user.clear': (args) => {
      const now = ctx.now();
      const given = typeof args.name === 'string' && args.name !== '' ? args.name : undefined;
      // A user's name is its source address as decoded; '2001:DB8::0:1' names '2001:db8::1'.
      const name = given === undefined ? undefined : canonicalAddress(given) ?? given;
      const r = e.admission.clearUsers(name, now, e.size);
      ctx.apply(r.effects, now);
      return { cleared: r.cleared };
    },
    'proxyworker.stat': (args) => {
      const mode = String(args.mode ?? '4');
      if (mode !== '4') throw new Error(`proxyworker.stat answers page 4 only, not ${mode}: see proxyworker.memory (1), proxyworker.vdom (4444), proxyworker.restart (99)`);
      return page4();
    },
    'proxyworker.memory': () => proxyMemoryOf(e, process.memoryUsage()),
    'proxyworker.vdom': () => {
      const vdoms = proxyVdomsOf(e);
      return { vdoms, total: vdoms.length };
    },
    'proxyworker.restart': () => {
      const before = page4();
      views.accountingRestart = restartAccounting(e, proxyWorkerOf(e, 0), process.uptime());
      return { sessions: e.size, before, after: page4() };
    },
    'conserve.show': () => e.admission.view(),
    'conserve.reset': () => {
      const now = ctx.now();
      const r = e.admission.resetOneShot(now);
      ctx.apply(r.effects, now);
      return { reset: r.wasLatched, ...e.admission.view() };
    },
  };
}
