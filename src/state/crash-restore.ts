// A table read back after a crash is not the table at the crash: sessions come from a snapshot
// up to snapshot-interval old and from journal records written when they started, and no record
// holds a refresh. Two things are put right before the engine loads it.

import type { EngineSnapshot } from '../engine/engine.js';
import { HELPERS } from '../helpers/registry.js';

/**
 * Expiry: a session's recorded expireAt predates every packet that refreshed it since, so the
 * engine would drop live sessions whose recorded time ran out (a TCP stream journaled at its SYN
 * with the half-open timer). When it last saw a packet is unknown; the kernel knows which
 * connections still exist, and the start-up reconcile ends every restored session the kernel
 * no longer holds. So each session gets at least one full timeout counted from the restore (what
 * its next packet would give it anyway): a dead one costs a table slot for one timeout at most,
 * while dropping a live one would cut the flow (a mid-stream segment of an unknown session).
 * Returns how many sessions were extended.
 */
export function extendExpiry(snap: EngineSnapshot, now: number): number {
  let n = 0;
  for (const s of snap.sessions) {
    const floor = now + s.timeout * 1000;
    if (s.expireAt >= floor) continue;
    s.expireAt = floor;
    s.timerBase = now;
    n++;
  }
  return n;
}

/**
 * Helper state: a session journaled at its start has none on disk (the snapshot holds parser
 * state, records do not). It gets its helper's initial state, as a new session would, so the
 * helper parses the control connection's next commands instead of the session losing its helper;
 * the restore restarts every helper's streams at the next segment anyway. Returns how many.
 */
export function freshHelperStates(snap: EngineSnapshot): number {
  const have = new Set(snap.helpers.map((h) => h.serial));
  let n = 0;
  for (const s of snap.sessions) {
    if (!s.helper || have.has(s.serial)) continue;
    const helper = HELPERS[s.helper];
    if (!helper) continue;
    try {
      snap.helpers.push({ serial: s.serial, helper: s.helper, state: helper.init({ orig: s.orig, reply: s.reply }) });
      n++;
    } catch {
      // The engine reports a session whose helper cannot be restored (helpersMissing).
    }
  }
  return n;
}
