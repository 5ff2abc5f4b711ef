// diagnose sys ha status / get system ha status: the HA status (and for diagnose the peer's table
// held here), or standalone.

import type { DaemonContext } from '../context.js';
import type { Handler } from '../server.js';

export function haHandlers(ctx: DaemonContext): Record<string, Handler> {
  return {
    'ha.status': (args) => {
      const st = ctx.haStatus?.();
      if (!st) return { mode: 'standalone' };
      return args.tables ? { ...st, peer_table: ctx.haPeerTable?.() } : st;
    },
  };
}
