// Builds the `diagnose sys session stat` view from the engine's table and counters.

import type { SessionEngine } from '../engine/engine.js';
import type { Session } from '../engine/types.js';
import { tcpPhase } from '../engine/tcp-state.js';
import { IPPROTO_TCP } from '../packet/types.js';
import type { AdaptiveStat, FullStatView, StatView } from './format.js';

const TCP_NAMES = ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN'];

/**
 * The stat view; with `match` (the session filter) the per-session figures (session_count, TCP
 * states, ephemeral) count only matching sessions, while the event counters stay global.
 */
export function statOf(engine: SessionEngine, now: number, queue?: Record<string, number>, match?: (s: Session) => boolean): StatView {
  const tcp: Record<string, number> = {};
  let ephemeral = 0;
  let count = 0;
  for (const s of engine.sessions()) {
    if (match && !match(s)) continue;
    count++;
    if (s.orig.proto === IPPROTO_TCP) {
      const name = TCP_NAMES[s.state[0]] ?? 'NONE';
      tcp[name] = (tcp[name] ?? 0) + 1;
      if (tcpPhase(s.state) === 'opening') ephemeral++;
    } else if (s.state[1] === 0) {
      ephemeral++;
    }
  }
  const c = engine.counters;
  const malformed = Object.values(c.malformed).reduce((a, b) => a + b, 0);
  return {
    session_count: count,
    setup_rate: engine.setupRate(now),
    exp_count: engine.expectations.size,
    clash: c.clash,
    memory_tension_drop: engine.admission.counters.refusedMemory,
    ephemeral,
    ephemeral_limit: engine.config.maxSessions,
    removeable: 0,
    delete: c.deleted,
    flush: c.flushes,
    tcp_states: tcp,
    ses_limit: engine.config.maxSessions,
    ses6_limit: engine.config.maxSessions,
    ...(engine.config.limits.adaptiveStart > 0 ? { adaptive: adaptiveOf(engine) } : {}),
    counters: {
      malformed,
      policy_deny: c.policyDenied,
      tcp_without_syn: c.tcpWithoutSyn,
      icmp_err_unrelated: c.icmpErrorsUnrelated,
      table_full: c.tableFull,
      offload_fail: c.offloadFailures,
      limit_drop: engine.admission.counters.refusedLimit,
      failopen_bypass: engine.admission.counters.bypassed,
    },
    packets: { decided: c.packets, accepted: c.accepted, dropped: c.dropped, new_sessions: c.sessionsCreated },
    conserve: conserveLine(engine),
    ...(queue ? { queue } : {}),
  };
}

/**
 * `full-stat`: the stat view plus the table line. Our table is a hash map without fixed buckets
 * or chains: table_size is the session limit (0 = unlimited), max_depth 1, used the sessions in
 * it. npu_session_count counts sessions offloaded to the kernel; `kernel` is the kernel's own
 * conntrack table (nf_conntrack_buckets, _max, _count) when readable.
 */
export function fullStatOf(engine: SessionEngine, now: number, queue?: Record<string, number>, match?: (s: Session) => boolean,
  kernel?: FullStatView['kernel']): FullStatView {
  const base = statOf(engine, now, queue, match);
  let offloaded = 0;
  for (const s of engine.sessions()) if (s.offloaded && (!match || match(s))) offloaded++;
  return {
    table: { table_size: engine.config.maxSessions, max_depth: engine.size ? 1 : 0, used: engine.size },
    ...base,
    npu_session_count: offloaded,
    ...(kernel ? { kernel } : {}),
  };
}

/** Adaptive timeouts: table-wide like the event counters, whatever the filter. */
function adaptiveOf(engine: SessionEngine): AdaptiveStat {
  const L = engine.config.limits;
  const limits = engine.adaptiveLimits().map((l) => ({
    limit: l.limit, ...(l.vd !== undefined ? { vdom: engine.admission.vdomName(l.vd) } : {}), sessions: l.sessions, max: l.max, factor: l.factor,
  }));
  return { start: L.adaptiveStart, end: L.adaptiveEnd, factor: Math.min(1, ...limits.map((l) => l.factor)), expired: engine.counters.adaptiveExpired, limits };
}

/** The conserve line of the stat view (admission.ts has the rules). */
function conserveLine(engine: SessionEngine): NonNullable<StatView['conserve']> {
  const v = engine.admission.view();
  return { mode: v.conserve ? 'on' : 'off', reasons: v.reasons, memory: v.memory, failopen: v.failopen_session ? v.failopen : 'disable', one_shot: v.one_shot_latched, enter: v.enter, leave: v.leave, bypass_flows: v.bypass_flows };
}
