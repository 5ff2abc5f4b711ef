// When a session's time runs out: the timeout its state gives it, which direction refreshes it,
// the adaptive scale under table pressure, and the rate sample refreshed along with the timer.

import { IPPROTO_TCP, IPPROTO_UDP } from '../packet/types.js';
import { adaptiveFactor, scaledExpiry } from './adaptive.js';
import type { EngineState } from './engine-state.js';
import { vdomLimit } from './limits.js';
import { tcpPhase } from './tcp-state.js';
import type { Direction, Session } from './types.js';

const RATE_WINDOW_MS = 1000;

/** One session limit under adaptive timeouts: the global one, or a VDOM's. */
export interface AdaptiveLimit { limit: 'global' | 'vdom'; vd?: number; sessions: number; max: number; factor: number }

/** Sets timeout and expireAt from the session's state: TCP transitions use the global timers. */
export function setTimer(st: EngineState, s: Session, now: number): void {
  setTimerFrom(st, s, now);
  if (st.table.holds(s)) st.table.file(s);
}

/** Computes timeout and expireAt counting from `base` (a refresh or state change), without filing. */
export function setTimerFrom(st: EngineState, s: Session, base: number): void {
  let timeout = s.ttl;
  if (s.orig.proto === IPPROTO_UDP && s.state[1] === 0 && !s.ttlFromRule) {
    // A UDP flow nobody has answered yet is the cheapest table filler there is: it gets the
    // short udp-idle-timer until a reply arrives, unless a session-ttl entry names its port.
    timeout = Math.min(timeout, st.config.udpIdleTimer);
  } else if (s.orig.proto === IPPROTO_TCP) {
    switch (tcpPhase(s.state)) {
      case 'opening': timeout = st.config.tcpHalfOpenTimer; break;
      case 'closing': timeout = st.config.tcpHalfCloseTimer; break;
      case 'time-wait':
      case 'closed': timeout = st.config.tcpTimeWaitTimer; break;
      default: break;
    }
  }
  s.timeout = timeout;
  s.timerBase = base;
  s.expireAt = base + timeout * 1000;
}

export function refreshes(s: Session, dir: Direction): boolean {
  return s.refreshDir === 'both' || (s.refreshDir === 'outgoing') === (dir === 'org');
}

export function established(s: Session): boolean {
  if (s.orig.proto === IPPROTO_TCP) return tcpPhase(s.state) === 'established';
  return s.state[1] === 1;
}

/** A TCP session past its establishment: its end is a close, not a timeout. */
export function closed(s: Session): boolean {
  return s.orig.proto === IPPROTO_TCP && tcpPhase(s.state) !== 'established' && tcpPhase(s.state) !== 'opening';
}

export function rate(s: Session, now: number): void {
  const r = s.rate;
  const dt = now - r.at;
  if (dt < RATE_WINDOW_MS) return;
  r.txBps = Math.round(((s.org.bytes - r.orgBytes) * 1000) / dt);
  r.rxBps = Math.round(((s.rep.bytes - r.replyBytes) * 1000) / dt);
  r.at = now;
  r.orgBytes = s.org.bytes;
  r.replyBytes = s.rep.bytes;
}

/**
 * The adaptive-timeout factor of a session of VDOM `vd` with `all` sessions (`inVd` of them in
 * `vd`) counted as gone already: of the global session limit and the VDOM's own, the one under
 * more pressure (either can refuse its next session). 1 without a limit or with
 * adaptive-timeout-start 0.
 */
export function factorWithout(st: EngineState, vd: number, all: number, inVd: number): number {
  const L = st.config.limits;
  if (!(L.adaptiveStart > 0)) return 1;
  const g = adaptiveFactor(L.adaptiveStart, L.adaptiveEnd, st.table.size - all, st.config.maxSessions);
  const max = vdomLimit(L, vd).session;
  return max > 0 ? Math.min(g, adaptiveFactor(L.adaptiveStart, L.adaptiveEnd, st.admission.sessionsIn(vd) - inVd, max)) : g;
}

/** When the session's time runs out with adaptive timeouts as they are now. */
export function effectiveExpiry(st: EngineState, s: Session): number {
  return scaledExpiry(s, factorWithout(st, s.vd, 0, 0));
}

/** The session limits adaptive timeouts count against, with their use and factor (none when off). */
export function adaptiveLimits(st: EngineState): AdaptiveLimit[] {
  const L = st.config.limits;
  if (!(L.adaptiveStart > 0)) return [];
  const out: AdaptiveLimit[] = [];
  const f = (n: number, max: number) => adaptiveFactor(L.adaptiveStart, L.adaptiveEnd, n, max);
  const size = st.table.size;
  if (st.config.maxSessions > 0) out.push({ limit: 'global', sessions: size, max: st.config.maxSessions, factor: f(size, st.config.maxSessions) });
  L.vdom.forEach((v, vd) => {
    if (v && v.session > 0) out.push({ limit: 'vdom', vd, sessions: st.admission.sessionsIn(vd), max: v.session, factor: f(st.admission.sessionsIn(vd), v.session) });
  });
  return out;
}
