// execute log display / execute log filter: the traffic records kept in memory.

import { applyLogFilterArgs, selectLogs } from '../../log/display.js';
import type { DaemonContext } from '../context.js';
import type { Handler } from '../server.js';
import type { ControlViews } from '../views.js';

export function logHandlers(_ctx: DaemonContext, views: ControlViews): Record<string, Handler> {
  return {
    'log.display': () => ({ ...selectLogs(views.trafficLog.toArray(), views.logFilter), kept: views.trafficLog.size, capacity: views.trafficLog.capacity }),
    'log.filter': (args) => {
      const a = Array.isArray(args.args) ? args.args.map(String) : [];
      views.logFilter = applyLogFilterArgs(views.logFilter, a);
      return { filter: views.logFilter };
    },
  };
}
