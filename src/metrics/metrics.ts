// Prometheus metrics of the daemon (prom-client). Almost everything is read from the engine and
// the kernel when scraped (collect callbacks), so the packet path pays nothing for it; only the
// verdict latency histogram and the reload counter are updated as things happen.
//
//   nfsessiond_sessions{protocol,state,vdom}            gauge: sessions in the table
//   nfsessiond_sessions_offloaded                        gauge: of them, carried by the kernel
//   nfsessiond_sessions_created_total                    counter: rate() of it is the setup rate
//   nfsessiond_session_setup_rate                        gauge: sessions set up in the last whole second (the stat view's setup_rate)
//   nfsessiond_sessions_ended_total{reason}              counter
//   nfsessiond_session_setup_failures_total{reason}      counter: new flows refused
//   nfsessiond_expectations{helper}                      gauge: expectation sessions waiting
//   nfsessiond_conserve_mode                             gauge 0/1
//   nfsessiond_conserve_transitions_total{event}         counter: enter / leave
//   nfsessiond_failopen{mode}                            gauge 1 for the active av-failopen mode ("disable" when av-failopen-session is off)
//   nfsessiond_failopen_one_shot_latched                 gauge 0/1
//   nfsessiond_failopen_bypassed_total                   counter: flows let through uninspected
//   nfsessiond_failopen_bypass_flows                     gauge
//   nfsessiond_memory_use_percent                        gauge: the last conserve-mode sample
//   nfsessiond_adaptive_timeout_factor{limit,vdom}       gauge: adaptive-timeout scale of each session limit (1 = none)
//   nfsessiond_adaptive_expired_total                    counter: sessions ended by a scaled-down timer
//   nfsessiond_queue_dropped_total{queue}                counter: kernel dropped, queue full
//   nfsessiond_queue_user_dropped_total{queue}           counter: kernel dropped, netlink socket full
//   nfsessiond_queue_waiting{queue}                      gauge: packets waiting for a verdict
//   nfsessiond_packets_total{verdict}                    counter: packets the daemon decided
//   nfsessiond_verdict_latency_seconds                   histogram, per packet
//   nfsessiond_config_reloads_total{result}              counter: ok / rejected
//   nfsessiond_info{version,mechanism}                   gauge 1
//   nfsessiond_journal_*                                 the table journal (journal-metrics.ts)
// plus prom-client's default process and Node.js metrics (CPU, memory, event loop lag, GC).

import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { SessionEngine } from '../engine/engine.js';
import { tcpPhase } from '../engine/tcp-state.js';
import type { KernelQueueCounters } from '../kernel/datapath.js';
import { registerJournalMetrics, type JournalSource } from './journal-metrics.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../packet/types.js';

const TCP_STATES = ['none', 'established', 'syn_sent', 'syn_recv', 'fin_wait', 'time_wait', 'close', 'close_wait', 'last_ack', 'listen'];
const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp', 47: 'gre', 50: 'esp' };

export const protocolName = (p: number): string => PROTOCOLS[p] ?? String(p);

/** Buckets of the verdict latency (seconds): 10 µs to 100 ms. */
export const LATENCY_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

/** The least an expectation must have for the per-helper gauge. */
export interface ExpectationLike { helper: string }

export interface MetricsSources {
  engine: () => SessionEngine;
  vdName: (vd: number) => string;
  /** Kernel counters of the daemon's queues (/proc/net/netfilter/nfnetlink_queue). */
  queues: () => KernelQueueCounters[];
  /** Expectation sessions in the table; the engine's expectation table when it has one. */
  expectations?: () => Iterable<ExpectationLike>;
  mechanism?: () => string | undefined;
  version?: string;
  /** Brings the table up to date before a scrape (offloaded sessions move in the kernel alone). */
  beforeScrape?: () => Promise<void>;
  /** The table journal's counters (journal-metrics.ts). */
  journal?: JournalSource;
}

/**
 * The expectations of an engine that has an expectation table (`engine.expectations.all()`),
 * else none. Duck-typed so the metrics do not depend on the engine's helper code being there.
 */
export function engineExpectations(engine: SessionEngine): Iterable<ExpectationLike> {
  const table = (engine as unknown as { expectations?: { all?: () => Iterable<ExpectationLike> } }).expectations;
  return typeof table?.all === 'function' ? table.all() : [];
}

/** State label of a session: the TCP state name, or new / established (reply seen) for the rest. */
export function sessionState(proto: number, state: readonly [number, number] | number[]): string {
  if (proto === IPPROTO_TCP) return TCP_STATES[state[0]] ?? 'none';
  return state[1] === 0 ? 'new' : 'established';
}

/**
 * A histogram without labels that takes `n` equal observations at once, in O(buckets) per call
 * and with no label hashing: the packets of one burst share one latency, so the packet path pays
 * one call per burst. prom-client's registry formats it like its own Histogram (get()).
 */
export class BurstHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(readonly name: string, readonly help: string, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number, n = 1): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    if (i < b.length) this.counts[i] += n;
    this.sum += value * n;
    this.count += n;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> } {
    const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = [];
    let acc = 0;
    this.bounds.forEach((le, i) => {
      acc += this.counts[i];
      values.push({ value: acc, labels: { le }, metricName: `${this.name}_bucket` });
    });
    values.push({ value: this.count, labels: { le: '+Inf' }, metricName: `${this.name}_bucket` });
    values.push({ value: this.sum, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: this.count, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly latency = new BurstHistogram('nfsessiond_verdict_latency_seconds',
    'Per queued packet: from the start of the burst it was read in until the burst\'s verdicts were handed to the kernel (time spent waiting in the kernel queue before is not included).',
    LATENCY_BUCKETS);
  private readonly reloads: Counter<'result'>;
  private burstStart = 0n;
  private burstPackets = 0;

  constructor(private readonly src: MetricsSources, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'nfsessiond_info', help: 'Build and kernel mechanism of the running daemon (value 1).', labelNames: ['version', 'mechanism'], registers,
      collect() { this.reset(); this.set({ version: src.version ?? 'unknown', mechanism: src.mechanism?.() ?? 'none' }, 1); },
    });

    new Gauge({
      name: 'nfsessiond_sessions', help: 'Sessions in the table by protocol, state and VDOM.', labelNames: ['protocol', 'state', 'vdom'], registers,
      collect() {
        this.reset();
        const counts = new Map<string, { protocol: string; state: string; vdom: string; n: number }>();
        for (const s of src.engine().sessions()) {
          const protocol = protocolName(s.orig.proto);
          const state = sessionState(s.orig.proto, s.state);
          const vdom = src.vdName(s.vd);
          const k = `${protocol}|${state}|${vdom}`;
          const e = counts.get(k);
          if (e) e.n++;
          else counts.set(k, { protocol, state, vdom, n: 1 });
        }
        for (const e of counts.values()) this.set({ protocol: e.protocol, state: e.state, vdom: e.vdom }, e.n);
      },
    });
    new Gauge({
      name: 'nfsessiond_sessions_offloaded', help: 'Sessions whose packets the kernel carries alone (offloaded).', registers,
      collect() {
        let n = 0;
        for (const s of src.engine().sessions()) if (s.offloaded) n++;
        this.set(n);
      },
    });
    new Counter({
      name: 'nfsessiond_sessions_created_total', help: 'Sessions set up since start (rate() of it is the setup rate).', registers,
      collect() { this.reset(); this.inc(src.engine().counters.sessionsCreated); },
    });
    new Gauge({
      name: 'nfsessiond_session_setup_rate', help: 'Sessions set up during the last whole second (setup_rate of diagnose sys session stat).', registers,
      collect() { this.set(src.engine().setupRate(Date.now())); },
    });
    new Counter({
      name: 'nfsessiond_sessions_ended_total', help: 'Sessions that left the table, by reason.', labelNames: ['reason'], registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(src.engine().counters.sessionsEnded)) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'nfsessiond_session_setup_failures_total',
      help: 'New flows refused: policy_deny (a deny policy or the implicit deny), tcp_without_syn, limit (session table, VDOM or user limit full), memory (conserve mode / memory extreme), malformed (undecodable packets).',
      labelNames: ['reason'], registers,
      collect() {
        this.reset();
        const e = src.engine();
        const c = e.counters;
        const a = e.admission.counters;
        const malformed = Object.values(c.malformed).reduce((x, y) => x + y, 0);
        // Flows let through uninspected by fail-open are not failures (nfsessiond_failopen_bypassed_total).
        for (const [reason, n] of [['policy_deny', c.policyDenied], ['tcp_without_syn', c.tcpWithoutSyn],
          ['limit', a.refusedLimit], ['memory', a.refusedMemory], ['malformed', malformed]] as const) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: 'nfsessiond_expectations', help: 'Expectation sessions (pinholes opened by session helpers) waiting, by helper.', labelNames: ['helper'], registers,
      collect() {
        this.reset();
        const by = new Map<string, number>();
        for (const x of src.expectations?.() ?? engineExpectations(src.engine())) by.set(x.helper, (by.get(x.helper) ?? 0) + 1);
        for (const [helper, n] of by) this.set({ helper }, n);
      },
    });

    new Gauge({
      name: 'nfsessiond_conserve_mode', help: 'Conserve mode (1 = on): a limit is full or memory use is above the red threshold.', registers,
      collect() { this.set(src.engine().admission.view().conserve ? 1 : 0); },
    });
    new Counter({
      name: 'nfsessiond_conserve_transitions_total', help: 'Times conserve mode was entered / left.', labelNames: ['event'], registers,
      collect() {
        this.reset();
        const v = src.engine().admission.view();
        this.inc({ event: 'enter' }, v.enter);
        this.inc({ event: 'leave' }, v.leave);
      },
    });
    new Gauge({
      name: 'nfsessiond_failopen', help: 'The fail-open mode in force (1 on the active one): pass, off, one-shot, or disable when av-failopen-session is off.',
      labelNames: ['mode'], registers,
      collect() {
        this.reset();
        const v = src.engine().admission.view();
        const active = v.failopen_session ? v.failopen : 'disable';
        for (const mode of ['pass', 'off', 'one-shot', 'disable']) this.set({ mode }, mode === active ? 1 : 0);
      },
    });
    new Gauge({
      name: 'nfsessiond_failopen_one_shot_latched', help: 'av-failopen one-shot latched (1): new sessions pass uninspected until `diagnose sys conserve reset`.', registers,
      collect() { this.set(src.engine().admission.view().one_shot_latched ? 1 : 0); },
    });
    new Counter({
      name: 'nfsessiond_failopen_bypassed_total', help: 'New flows let through uninspected (fail-open).', registers,
      collect() { this.reset(); this.inc(src.engine().admission.counters.bypassed); },
    });
    new Gauge({
      name: 'nfsessiond_failopen_bypass_flows', help: 'Flows currently let through uninspected and remembered.', registers,
      collect() { this.set(src.engine().admission.view().bypass_flows); },
    });
    new Gauge({
      name: 'nfsessiond_memory_use_percent', help: 'System memory use (%) of the last sample (conserve mode thresholds).', registers,
      collect() { this.set(src.engine().admission.view().memory); },
    });

    new Gauge({
      name: 'nfsessiond_adaptive_timeout_factor',
      help: 'Adaptive timeouts: the factor scaling session lifetimes, per session limit (limit="global", or limit="vdom" with its vdom); 1 = unscaled, also while adaptive-timeout-start is 0 or no limit is configured.',
      labelNames: ['limit', 'vdom'], registers,
      collect() {
        this.reset();
        const e = src.engine();
        const limits = e.adaptiveLimits();
        if (!limits.some((l) => l.limit === 'global')) this.set({ limit: 'global' }, 1);
        for (const l of limits) this.set(l.limit === 'global' ? { limit: 'global' } : { limit: 'vdom', vdom: src.vdName(l.vd ?? 0) }, l.factor);
      },
    });
    new Counter({
      name: 'nfsessiond_adaptive_expired_total', help: 'Sessions ended by an adaptive (scaled-down) timer before their own would have run out.', registers,
      collect() { this.reset(); this.inc(src.engine().counters.adaptiveExpired); },
    });

    new Counter({
      name: 'nfsessiond_queue_dropped_total', help: 'Packets the kernel dropped because the NFQUEUE was full (queue_dropped).', labelNames: ['queue'], registers,
      collect() { this.reset(); for (const q of src.queues()) this.inc({ queue: String(q.queue) }, q.queueDropped); },
    });
    new Counter({
      name: 'nfsessiond_queue_user_dropped_total', help: 'Packets the kernel dropped because the daemon\'s netlink socket was full (user_dropped).', labelNames: ['queue'], registers,
      collect() { this.reset(); for (const q of src.queues()) this.inc({ queue: String(q.queue) }, q.userDropped); },
    });
    new Gauge({
      name: 'nfsessiond_queue_waiting', help: 'Packets waiting in the kernel queue for a verdict.', labelNames: ['queue'], registers,
      collect() { this.reset(); for (const q of src.queues()) this.set({ queue: String(q.queue) }, q.waiting); },
    });
    new Counter({
      name: 'nfsessiond_packets_total', help: 'Queued packets the daemon decided, by verdict.', labelNames: ['verdict'], registers,
      collect() {
        this.reset();
        const c = src.engine().counters;
        this.inc({ verdict: 'accept' }, c.accepted);
        this.inc({ verdict: 'drop' }, c.dropped);
      },
    });

    if (src.journal) registerJournalMetrics(registers, src.journal);

    this.registry.registerMetric(this.latency as unknown as Metric);
    this.reloads = new Counter({ name: 'nfsessiond_config_reloads_total', help: 'Config reloads (SIGHUP), by result: ok or rejected (the running config stays).', labelNames: ['result'], registers });
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'rejected' }, 0);
  }

  /**
   * Called for every packet as it is decided. The first packet of a burst starts the clock; a
   * microtask (it runs once the burst's synchronous decide-and-flush is over) stops it and
   * records the burst's duration once per packet of the burst.
   */
  packetDecided(): void {
    if (this.burstPackets++ === 0) {
      this.burstStart = process.hrtime.bigint();
      queueMicrotask(this.endBurst);
    }
  }

  private readonly endBurst = (): void => {
    const seconds = Number(process.hrtime.bigint() - this.burstStart) / 1e9;
    const n = this.burstPackets;
    this.burstPackets = 0;
    this.latency.observe(seconds, n);
  };

  /** Records the outcome of a config reload. */
  reloaded(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'rejected' });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async text(): Promise<string> {
    // A failed refresh still serves the table as last known.
    await this.src.beforeScrape?.().catch(() => undefined);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Expectations waiting in the engine's table (0 while the engine has none). */
export function expectationCount(engine: SessionEngine): number {
  const table = (engine as unknown as { expectations?: { size?: number } }).expectations;
  return typeof table?.size === 'number' ? table.size : 0;
}
