// diagnose debug flow ...: the flow trace's filter, function names, start/stop and the reader;
// diagnose debug enable|disable|reset.

import type { DaemonContext } from '../context.js';
import type { Handler } from '../server.js';
import { applyFlowFilterArgs } from '../trace.js';
import type { ControlViews } from '../views.js';

const MAX_TRACE_COUNT = 1_000_000;

export function debugHandlers(_ctx: DaemonContext, views: ControlViews): Record<string, Handler> {
  const tr = views.tracer;
  return {
    'debug.flow.filter': (args) => {
      const a = Array.isArray(args.args) ? args.args.map(String) : [];
      tr.setFilter(applyFlowFilterArgs(tr.filter, a));
      return { filter: tr.filter };
    },
    'debug.flow.show': (args) => {
      if (args.what !== 'function-name') throw new Error(`show: only 'function-name' is supported`);
      if (args.value !== 'enable' && args.value !== 'disable') throw new Error("show function-name: expected 'enable' or 'disable'");
      tr.showFunctionName = args.value === 'enable';
      return tr.status();
    },
    'debug.flow.trace.start': (args) => {
      const n = Number(args.count);
      if (!Number.isInteger(n) || n < 1 || n > MAX_TRACE_COUNT) throw new Error(`trace start: expected a packet count 1-${MAX_TRACE_COUNT}`);
      tr.start(n);
      return tr.status();
    },
    'debug.flow.trace.stop': () => {
      tr.stop();
      return tr.status();
    },
    'debug.flow.trace.read': (args) => {
      const after = Number(args.after ?? 0);
      const max = args.max === undefined ? 1000 : Number(args.max);
      return tr.read(Number.isFinite(after) ? after : 0, Number.isInteger(max) && max >= 0 ? max : 1000);
    },
    'debug.enable': () => { tr.console = true; return tr.status(); },
    'debug.disable': () => { tr.console = false; return tr.status(); },
    'debug.reset': () => { tr.reset(); return tr.status(); },
  };
}
