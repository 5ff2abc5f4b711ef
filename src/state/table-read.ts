// Reading the table back at start: the snapshot, then the journal records written after it, then
// the corrections a crash calls for (crash-restore.ts). Nothing here throws at a bad file: a bad
// snapshot is moved aside and reported, a bad journal record ends the replay and is reported.

import { JOURNAL_FILE, readJournal, replayJournal, type JournalReplay } from './journal.js';
import { readSnapshot, type StoredSnapshot } from './snapshot.js';
import { extendExpiry, freshHelperStates } from './crash-restore.js';
import { join } from 'node:path';

export type TableRead =
  | { kind: 'none'; journal?: JournalProblem }
  | { kind: 'bad'; path: string; error: string; movedTo?: string; journal?: JournalProblem }
  | {
    kind: 'ok';
    path: string;
    snapshot: StoredSnapshot;
    /** The daemon did not stop cleanly after writing it: timers and helper state were corrected. */
    crash: boolean;
    replay: JournalReplay;
    /** Sessions given a timeout from the restore, and helper states started fresh (crash-restore.ts). */
    extended: number;
    freshHelpers: number;
    journal?: JournalProblem;
  };

/** A journal that could not be used: unreadable, or left without the snapshot it extends. */
export interface JournalProblem { path: string; error: string }

export function readTable(dir: string, now: number): TableRead {
  const snap = readSnapshot(dir);
  const journalPath = join(dir, JOURNAL_FILE);
  let text: string | undefined;
  let journal: JournalProblem | undefined;
  try {
    text = readJournal(dir);
  } catch (e) {
    journal = { path: journalPath, error: `cannot read: ${(e as Error).message}` };
  }
  if (snap.kind !== 'ok') {
    // The journal holds changes since a snapshot; without that snapshot it is no table.
    if (text) journal = { path: journalPath, error: 'no snapshot to apply it to: ignored' };
    return { ...snap, ...(journal ? { journal } : {}) };
  }
  const replay = replayJournal(text ?? '', snap.snapshot, now);
  const s = replay.snapshot as StoredSnapshot;
  // A snapshot without journalSeq was written by a version without a journal, at a clean stop.
  const crash = replay.applied > 0 || (snap.snapshot.journalSeq !== undefined && !snap.snapshot.clean);
  const extended = crash ? extendExpiry(s, now) : 0;
  const freshHelpers = freshHelperStates(s);
  return { kind: 'ok', path: snap.path, snapshot: s, crash, replay, extended, freshHelpers, ...(journal ? { journal } : {}) };
}
