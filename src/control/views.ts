// Operator state the daemon holds for its views, one of each as on the vendor box: the session
// filter (`diagnose sys session filter`), the flow trace (`diagnose debug flow`), the in-memory
// traffic log with its display filter (`execute log display` / `execute log filter`), the last
// restart of the per-service accounting (`get test proxyworker 99`).

import type { TrafficRecord } from '../log/traffic.js';
import type { LogFilter } from '../log/display.js';
import { Ring } from '../log/ring.js';
import type { SessionFilter } from './filter.js';
import type { AccountingRestart } from './proxyworker.js';
import { FlowTracer, type TracerEnv } from './tracer.js';

export const DEFAULT_LOG_MEMORY_RECORDS = 1000;

export class ControlViews {
  sessionFilter: SessionFilter = {};
  logFilter: LogFilter = {};
  readonly tracer: FlowTracer;
  trafficLog: Ring<TrafficRecord>;
  accountingRestart?: AccountingRestart;

  constructor(env: TracerEnv, logRecords = DEFAULT_LOG_MEMORY_RECORDS) {
    this.tracer = new FlowTracer(env);
    this.trafficLog = new Ring(logRecords);
  }

  /** A reload may change the number of records kept; the newest ones stay. */
  resizeTrafficLog(records: number): void {
    if (records === this.trafficLog.capacity) return;
    const next = new Ring<TrafficRecord>(records);
    for (const r of this.trafficLog.toArray()) next.push(r);
    next.total = this.trafficLog.total;
    this.trafficLog = next;
  }
}
