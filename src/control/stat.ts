// Builds the `diagnose sys session stat` view from the engine's table and counters.

import type { SessionEngine } from '../engine/engine.js';
import { tcpPhase } from '../engine/tcp-state.js';
import { IPPROTO_TCP } from '../packet/types.js';
import type { StatView } from './format.js';

const TCP_NAMES = ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN'];

export function statOf(engine: SessionEngine, now: number, queue?: Record<string, number>): StatView {
  const tcp: Record<string, number> = {};
  let ephemeral = 0;
  for (const s of engine.sessions()) {
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
    session_count: engine.size,
    setup_rate: engine.setupRate(now),
    exp_count: 0,
    clash: c.clash,
    memory_tension_drop: 0,
    ephemeral,
    ephemeral_limit: engine.config.maxSessions,
    removeable: 0,
    delete: c.deleted,
    flush: c.flushes,
    tcp_states: tcp,
    ses_limit: engine.config.maxSessions,
    ses6_limit: engine.config.maxSessions,
    counters: {
      malformed,
      policy_deny: c.policyDenied,
      tcp_without_syn: c.tcpWithoutSyn,
      icmp_err_unrelated: c.icmpErrorsUnrelated,
      table_full: c.tableFull,
      offload_fail: c.offloadFailures,
    },
    ...(queue ? { queue } : {}),
  };
}
