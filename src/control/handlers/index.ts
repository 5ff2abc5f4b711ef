// Every control command the daemon answers, gathered from the per-concern handler files.

import type { DaemonContext } from '../context.js';
import type { Handler } from '../server.js';
import { sessionHandlers } from './session.js';

export function allHandlers(ctx: DaemonContext): Record<string, Handler> {
  return {
    ...sessionHandlers(ctx),
    'daemon.status': () => ({ pid: process.pid, sessions: ctx.engine.size, mechanism: ctx.mechanism() }),
  };
}
