// A session's way into the table and out of it: the new session's fields, its entry (timer,
// limits, setup rate) and its end, which closes its expectations and, if configured, its children.

import type { FlowTuple } from '../packet/types.js';
import { ttlFor } from './engine-config.js';
import type { EngineState } from './engine-state.js';
import { reverseTuple } from './flow-key.js';
import { detachHelper, endExpectation } from './helper-driver.js';
import { setTimer } from './timers.js';
import type { Effect, PolicyMatch, Session, SessionEndReason } from './types.js';

export function newSession(st: EngineState, t: FlowTuple, pol: PolicyMatch, state: [number, number], indev: number, outdev: number, length: number, now: number): Session {
  const ttl = pol.sessionTtl ? { ...ttlFor(st.config, t, pol.vd), timeout: pol.sessionTtl, fromRule: true } : ttlFor(st.config, t, pol.vd);
  return {
    serial: st.nextSerial++,
    orig: t,
    reply: reverseTuple(t),
    policyId: pol.policyId,
    vd: pol.vd,
    state,
    createdAt: now,
    expireAt: now,
    timerAt: 0,
    timeout: ttl.timeout,
    ttl: ttl.timeout,
    ttlFromRule: ttl.fromRule,
    refreshDir: ttl.refreshDir,
    org: { bytes: length, packets: 1, allowErr: 0 },
    rep: { bytes: 0, packets: 0, allowErr: 0 },
    devOrg: [indev, outdev],
    devReply: [0, 0],
    offloaded: false,
    offloadPending: false,
    rate: { at: now, orgBytes: length, replyBytes: 0, txBps: 0, rxBps: 0 },
    logTraffic: pol.logTraffic,
  };
}

/** A new session takes its place: timer, table, limits, counters. */
export function enter(st: EngineState, s: Session, now: number): void {
  setTimer(st, s, now);
  insert(st, s);
  st.admission.track(s, now);
  st.counters.sessionsCreated++;
  countSetup(st, now);
}

/** Puts a session in the table; one already holding its tuple gives way, as the vendor's clash counter describes. */
export function insert(st: EngineState, s: Session): void {
  const old = st.table.insert(s);
  if (old) {
    st.counters.clash++;
    st.admission.release(old, s.createdAt);
  }
}

export function end(st: EngineState, s: Session, reason: SessionEndReason, now: number, kernelDelete: boolean): Effect[] {
  if (!st.table.holds(s)) return [];
  st.admission.release(s, now);
  st.table.remove(s);
  st.counters.sessionsEnded[reason]++;
  const effects: Effect[] = [];
  if (kernelDelete) effects.push({ kind: 'ct-delete', serial: s.serial, orig: s.orig });
  effects.push({ kind: 'session-end', session: s, reason, at: now });
  // Its expectations close with it (seed 004); its children only if configured.
  for (const x of st.expectations.ofParent(s.serial)) endExpectation(st, x, reason === 'clear' ? 'clear' : 'parent-closed', now, effects);
  detachHelper(st, s.serial);
  st.table.unlinkChild(s);
  const kids = st.table.takeChildren(s.serial);
  if (kids && st.config.expectations.clearChildren) {
    for (const k of kids) {
      const c = st.table.get(k);
      if (c) effects.push(...end(st, c, 'parent-closed', now, true));
    }
  }
  effects.push(...st.admission.settle(now, st.table.size));
  return effects;
}

/** Operator clear: ends the matching sessions and deletes their kernel entries. */
export function clear(st: EngineState, match: (s: Session) => boolean, now: number): Effect[] {
  const effects: Effect[] = [];
  for (const s of [...st.table.select(match)]) {
    st.counters.deleted++;
    effects.push(...end(st, s, 'clear', now, true));
  }
  st.counters.flushes++;
  return effects;
}

function countSetup(st: EngineState, now: number): void {
  const sec = Math.floor(now / 1000);
  const w = st.setupWindow;
  if (sec !== w.second) {
    w.last = sec === w.second + 1 ? w.count : 0;
    w.second = sec;
    w.count = 0;
  }
  w.count++;
}

/** Sessions created during the last complete second. */
export function setupRate(st: EngineState, now: number): number {
  const w = st.setupWindow;
  const sec = Math.floor(now / 1000);
  if (sec === w.second) return w.last;
  return sec === w.second + 1 ? w.count : 0;
}
