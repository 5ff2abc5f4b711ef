// Every control command the daemon answers, gathered from the per-concern handler files.

import type { DaemonContext } from '../context.js';
import type { Handler } from '../server.js';
import type { ControlViews } from '../views.js';
import { debugHandlers } from './debug.js';
import { haHandlers } from './ha.js';
import { limitsHandlers } from './limits.js';
import { logHandlers } from './log.js';
import { sessionHandlers } from './session.js';

export function allHandlers(ctx: DaemonContext, views: ControlViews): Record<string, Handler> {
  return {
    ...sessionHandlers(ctx, views),
    ...debugHandlers(ctx, views),
    ...limitsHandlers(ctx, views),
    ...logHandlers(ctx, views),
    ...haHandlers(ctx),
    'daemon.status': () => ({ pid: process.pid, sessions: ctx.engine.size, mechanism: ctx.mechanism() }),
  };
}
