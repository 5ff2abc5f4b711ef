// diagnose sys session ...: list, stat, clear.

import type { DaemonContext } from '../context.js';
import type { Handler } from '../server.js';
import { viewOf } from '../session-view.js';
import { statOf } from '../stat.js';

export function sessionHandlers(ctx: DaemonContext): Record<string, Handler> {
  return {
    'session.list': () => {
      const now = ctx.now();
      const sessions = [...ctx.engine.sessions()].map((s) => viewOf(s, now));
      return { sessions, total: sessions.length };
    },
    'session.stat': () => statOf(ctx.engine, ctx.now(), ctx.queueStats()),
    'session.clear': () => {
      const now = ctx.now();
      const fx = ctx.engine.clear(() => true, now);
      ctx.apply(fx, now);
      return { cleared: fx.filter((e) => e.kind === 'session-end').length };
    },
  };
}
