// A takeover: the peer's sessions and expectations, as they reached us over the sync link, become
// ours with the serials, policy ids, parent/child links and pending expectations they had there.
// It goes through the snapshot restore, the one way sessions enter the table from outside, with
// what a peer's record lacks made up here: helper parser state (not synced: each helper starts
// fresh and resyncs on the next segment) and the serial counter, which must start above every
// serial the peer used so ours never collide with its.

import type { EngineState } from './engine-state.js';
import { restore, type RestoreReport } from './engine-snapshot.js';
import type { Expectation } from './expectations.js';
import type { SavedHelper } from './helper-driver.js';
import type { Effect, Session } from './types.js';

export interface PeerTable {
  sessions: Iterable<Session>;
  expectations: Iterable<Expectation>;
  /** The highest serial the peer has used (it may exceed every session still held). */
  highestSerial: number;
}

export interface AdoptReport extends RestoreReport {
  /** Sessions we already held (a tuple or serial of our own): ours stay. */
  kept: number;
  nextSerial: number;
}

export function adoptPeer(st: EngineState, peer: PeerTable, now: number): { effects: Effect[]; report: AdoptReport } {
  const sessions: Session[] = [];
  const helpers: SavedHelper[] = [];
  let kept = 0;
  let highest = peer.highestSerial;
  for (const r of peer.sessions) {
    highest = Math.max(highest, r.serial);
    if (st.table.has(r.serial) || st.table.lookup(r.orig)) { kept++; continue; }
    // A copy: the synced record stays the peer's, whatever our engine does with the session.
    const s: Session = structuredClone(r);
    // The kernel here never had the peer's entry: the session's next packet makes a new one,
    // which the usual offload (a conntrack update once established) marks again. The peer's
    // timer-class index names nothing here.
    s.offloaded = false;
    delete s.ctId;
    // The record has the expiry of the session's start (refreshes are not synced), and the peer
    // still held the session (its end would have been synced): its timer runs from now.
    s.expireAt = Math.max(s.expireAt, now + s.timeout * 1000);
    sessions.push(s);
    if (s.helper) {
      const h = st.config.helpers.byName(s.helper);
      if (h) {
        try {
          helpers.push({ serial: s.serial, helper: s.helper, state: h.init({ orig: s.orig, reply: s.reply }) });
        } catch {
          // A helper that cannot start on this session leaves it without one: it still forwards.
        }
      }
    }
  }
  // An expectation goes with its parent: one whose parent stayed out (a serial of ours holds
  // that number) would otherwise hang off an unrelated session of ours.
  const adopted = new Set(sessions.map((s) => s.serial));
  const expectations: Expectation[] = [];
  let orphaned = 0;
  for (const x of peer.expectations) {
    if (adopted.has(x.parent)) expectations.push(structuredClone(x));
    else orphaned++;
  }
  const nextSerial = Math.max(st.nextSerial, highest + 1);
  const r = restore(st, { version: 1, savedAt: now, nextSerial, sessions, expectations, helpers }, now);
  return { effects: r.effects, report: { ...r.report, expiredExpectations: r.report.expiredExpectations + orphaned, kept, nextSerial: st.nextSerial } };
}
