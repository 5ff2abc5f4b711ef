// Per-service accounting (seed 000, `get test proxyworker 4`): HTTP, SMTP, POP3, IMAP, FTP and
// NNTP sessions told apart by TCP destination port. Counted for tracked (inspected) sessions;
// refusals and fail-open bypasses are counted as errors of the service they were for.

import { IPPROTO_TCP, type FlowTuple } from '../packet/types.js';
import { SERVICES, type LimitsConfig, type ServiceName } from './limits.js';

export interface ServiceCounters {
  /** Live tracked sessions of the service. */
  current: number;
  /** Most live sessions seen at once. */
  peak: number;
  /** Sessions admitted (setup_ok). */
  setupOk: number;
  /** New sessions refused by a limit or conserve mode (setup_fail). */
  setupFail: number;
  /** Of setupFail: refused because memory was low (red with fail-open off/disabled, or extreme). */
  failMemory: number;
  /** Of setupFail: refused because a session or user limit was full. */
  failLimit: number;
  /** New sessions let through uninspected (fail-open pass / one-shot): not in the table. */
  bypassed: number;
  /** Bytes of ended sessions: client to server (original direction) and back. */
  bytesOrg: number;
  bytesReply: number;
}

const zero = (): ServiceCounters => ({ current: 0, peak: 0, setupOk: 0, setupFail: 0, failMemory: 0, failLimit: 0, bypassed: 0, bytesOrg: 0, bytesReply: 0 });

export class ServiceAccounting {
  readonly counters: Record<ServiceName, ServiceCounters> = Object.fromEntries(SERVICES.map((s) => [s, zero()])) as Record<ServiceName, ServiceCounters>;
  private byPort = new Map<number, ServiceName>();
  private portsFrom?: LimitsConfig['servicePorts'];

  /** The service of a tuple under the current port settings (TCP only: all six are TCP). */
  serviceOf(t: FlowTuple, cfg: LimitsConfig): ServiceName | undefined {
    if (t.proto !== IPPROTO_TCP) return undefined;
    if (this.portsFrom !== cfg.servicePorts) {
      this.byPort = new Map();
      for (const s of SERVICES) for (const p of cfg.servicePorts[s] ?? []) if (!this.byPort.has(p)) this.byPort.set(p, s);
      this.portsFrom = cfg.servicePorts;
    }
    return this.byPort.get(t.dport);
  }

  opened(s: ServiceName): void {
    const c = this.counters[s];
    c.setupOk++;
    c.current++;
    if (c.current > c.peak) c.peak = c.current;
  }

  closed(s: ServiceName, bytesOrg: number, bytesReply: number): void {
    const c = this.counters[s];
    if (c.current > 0) c.current--;
    c.bytesOrg += bytesOrg;
    c.bytesReply += bytesReply;
  }

  refused(s: ServiceName, memory: boolean): void {
    const c = this.counters[s];
    c.setupFail++;
    if (memory) c.failMemory++;
    else c.failLimit++;
  }

  bypassed(s: ServiceName): void { this.counters[s].bypassed++; }
}
