// The daemon's flow trace: filter, `trace start N` / `trace stop`, and a bounded buffer of
// trace lines that the CLI reads with a cursor (`diagnose debug flow trace read [--follow]`).
//
// Why a buffer read by the CLI, and not lines printed to a console: the vendor prints trace
// lines to the admin console after `diagnose debug enable`; a daemon has no console. The trace
// runs in the daemon (the packets are there), the lines wait in a ring of the last 10000, and any
// number of CLI readers poll it with a sequence cursor over the ordinary request/response control
// protocol. Starting a trace and reading it are separate, so a trace started from a script keeps
// running when the reader goes away, and a reader that comes late still gets the lines.
// `diagnose debug enable` additionally copies each line to the daemon's log (journald), the
// closest thing a daemon has to the vendor's console.

import type { Decision, Packet } from '../engine/types.js';
import { compileFlowFilter, traceMessages, type FlowFilter } from './trace.js';

export interface TracerEnv {
  ifname(index: number): string;
  /** VDOM index of an ingress interface. */
  vdOf(indev: number): number;
  vdName(vd: number): string;
}

export interface TraceLine { seq: number; text: string }

export interface TraceStatus {
  active: boolean;
  remaining: number;
  traced: number;
  show_function_name: boolean;
  console: boolean;
  /** Sequence number of the newest line (0 = none yet). */
  last_seq: number;
  /** Sequence number before the current (or last) trace's first line. */
  start_seq: number;
}

export const TRACE_BUFFER_LINES = 10_000;

export class FlowTracer {
  /** True while packets are being traced; the daemon's packet path checks only this. */
  active = false;
  remaining = 0;
  traced = 0;
  showFunctionName = false;
  /** `diagnose debug enable`: also hand each line to `onConsole`. */
  console = false;
  onConsole?: (line: string) => void;
  private filterValue: FlowFilter = {};
  private match = compileFlowFilter({});
  private nextTraceId = 1;
  private lines: TraceLine[] = [];
  private seq = 0;
  /** Sequence number before the current (or last) trace's first line. */
  startSeq = 0;

  constructor(private readonly env: TracerEnv, private readonly capacity = TRACE_BUFFER_LINES) {}

  get filter(): FlowFilter { return this.filterValue; }

  setFilter(f: FlowFilter): void {
    this.filterValue = f;
    this.match = compileFlowFilter(f);
  }

  start(count: number): void {
    this.remaining = count;
    this.traced = 0;
    this.startSeq = this.seq;
    this.active = count > 0;
  }

  stop(): void {
    this.remaining = 0;
    this.active = false;
  }

  /** A trace is running and the packet matches its filter. */
  watches(p: Packet): boolean {
    return this.active && this.match(p.decoded.ok ? p.decoded.tuple : undefined, this.env.vdOf(p.indev));
  }

  /** One decided packet; traced when a trace is running and the packet matches the filter. */
  packet(p: Packet, d: Decision): void {
    if (!this.active) return;
    const vd = this.env.vdOf(p.indev);
    const t = p.decoded.ok ? p.decoded.tuple : undefined;
    if (!this.match(t, vd)) return;
    const texts = traceMessages(p, d, {
      traceId: this.nextTraceId++, showFunctionName: this.showFunctionName, vd, vdName: this.env.vdName, ifname: this.env.ifname,
    });
    for (const text of texts) this.push(text);
    this.traced++;
    if (--this.remaining <= 0) this.stop();
  }

  private push(text: string): void {
    this.lines.push({ seq: ++this.seq, text });
    if (this.lines.length > this.capacity) this.lines.splice(0, this.lines.length - this.capacity);
    if (this.console) this.onConsole?.(text);
  }

  /** Lines after `after` (a sequence number), at most `max`. */
  read(after: number, max = 1000): { lines: TraceLine[]; status: TraceStatus } {
    const first = this.lines.findIndex((l) => l.seq > after);
    const lines = first < 0 ? [] : this.lines.slice(first, first + max);
    return { lines, status: this.status() };
  }

  status(): TraceStatus {
    return {
      active: this.active, remaining: this.remaining, traced: this.traced, show_function_name: this.showFunctionName,
      console: this.console, last_seq: this.seq, start_seq: this.startSeq,
    };
  }

  /** `diagnose debug reset`: filter cleared, trace stopped, function names and console off. */
  reset(): void {
    this.stop();
    this.setFilter({});
    this.showFunctionName = false;
    this.console = false;
  }
}
