// The table as plain data, written on shutdown and read on start (src/state/snapshot.ts), so a
// restart keeps sessions with their serials, policy ids, timers and counters, the pending
// expectations and each helper's parser state.

import type { EngineState } from './engine-state.js';
import type { Expectation } from './expectations.js';
import { helperStates, restoreHelper, type SavedHelper } from './helper-driver.js';
import { insert } from './lifecycle.js';
import type { Effect, Session } from './types.js';

/** Times are absolute (ms since the epoch). */
export interface EngineSnapshot {
  version: 1;
  savedAt: number;
  nextSerial: number;
  sessions: Session[];
  expectations: Expectation[];
  helpers: SavedHelper[];
}

/** What restore() did, for the start-up log. */
export interface RestoreReport { sessions: number; expectations: number; expiredSessions: number; expiredExpectations: number; helpersMissing: number }

export function snapshot(st: EngineState, now: number): EngineSnapshot {
  return { version: 1, savedAt: now, nextSerial: st.nextSerial, sessions: [...st.table.view()], expectations: [...st.expectations.all()], helpers: helperStates(st) };
}

/**
 * Loads a snapshot into an empty table. Sessions and expectations whose time ran out while the
 * daemon was down are dropped (their kernel entries deleted); pending expectations come back as
 * expect-add effects so the shell re-opens their kernel pinholes. Helper streams restart at the
 * next segment: control packets that passed during the restart were not seen.
 */
export function restore(st: EngineState, snap: EngineSnapshot, now: number): { effects: Effect[]; report: RestoreReport } {
  const effects: Effect[] = [];
  const report: RestoreReport = { sessions: 0, expectations: 0, expiredSessions: 0, expiredExpectations: 0, helpersMissing: 0 };
  st.nextSerial = Math.max(st.nextSerial, snap.nextSerial);
  for (const s of snap.sessions) {
    if (st.table.has(s.serial)) continue;
    if (s.expireAt <= now) {
      report.expiredSessions++;
      st.counters.sessionsEnded.ttl++;
      effects.push({ kind: 'ct-delete', serial: s.serial, orig: s.orig }, { kind: 'session-end', session: s, reason: 'ttl', at: now });
      continue;
    }
    s.timerAt = 0;
    s.offloadPending = false;
    s.kernelWait = 0;
    // The ruleset was removed at the stop, and with it the timeout objects the kernel entries
    // named: they run on the kernel's own timeouts now, so their activity is told by counters.
    delete s.kernelClass;
    insert(st, s);
    st.admission.track(s, now);
    report.sessions++;
  }
  for (const s of st.table.values()) {
    if (s.parent !== undefined && st.table.has(s.parent)) st.table.linkChild(s.parent, s.serial);
  }
  for (const h of snap.helpers) {
    if (!st.table.has(h.serial)) continue;
    if (!restoreHelper(st, h.serial, h.helper, h.state)) report.helpersMissing++;
  }
  for (const x of snap.expectations) {
    if (!st.table.has(x.parent) || (!x.tracksParent && x.expireAt <= now)) { report.expiredExpectations++; continue; }
    st.expectations.restore(x);
    effects.push({ kind: 'expect-add', expectation: x });
    report.expectations++;
  }
  return { effects, report };
}
