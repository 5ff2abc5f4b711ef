// diagnose user list|clear, diagnose test proxyworker 4, diagnose sys conserve [reset].

import type { DaemonContext } from '../context.js';
import { proxyWorkerOf, usersOf } from '../limits-format.js';
import type { Handler } from '../server.js';

export function limitsHandlers(ctx: DaemonContext): Record<string, Handler> {
  const e = ctx.engine;
  return {
    'user.list': () => {
      const users = usersOf(e, ctx.now());
      return { users, total: users.length };
    },
    'user.clear': (args) => {
      const now = ctx.now();
      const name = typeof args.name === 'string' && args.name !== '' ? args.name : undefined;
      const r = e.admission.clearUsers(name, now, e.size);
      ctx.apply(r.effects, now);
      return { cleared: r.cleared };
    },
    'proxyworker.stat': (args) => {
      const mode = String(args.mode ?? '4');
      if (mode !== '4') throw new Error(`proxyworker ${mode}: only 4 (sessions per service) is available`);
      return proxyWorkerOf(e, process.uptime());
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
