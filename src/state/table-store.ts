// The running daemon's side of the table on disk: every change goes to the journal (flushed once
// a second with one write and one fsync), every snapshot-interval a compaction writes a fresh
// snapshot and empties the journal. A crash then loses at most the last second.
//
// A write that fails (a full disk, EIO) must not stop the data path: it is logged once per
// episode and counted. A failed flush may have left a torn record, and records appended after it
// would never be replayed (the replay stops there), so until writes succeed again each retry is a
// compaction, which starts the journal over behind a complete snapshot.

import type { Logger } from 'pino';
import type { EngineSnapshot } from '../engine/engine.js';
import type { Effect } from '../engine/types.js';
import { Journal } from './journal.js';
import { writeSnapshot } from './snapshot.js';

/** While writes fail, a compaction is retried at most this often (each writes the whole table). */
export const RETRY_MS = 5000;

export class TableStore {
  private journal?: Journal;
  /** The first error of the current failure episode; undefined while writes succeed. */
  private failing?: string;
  private lastTry = 0;
  private compactions = 0;
  private writeErrors = 0;
  /** What the start-up replay applied and dropped (for the stat view). */
  private replayed = 0;
  private dropped = 0;

  /** `seq`: the last journal seq the table read at start covers. */
  constructor(private readonly dir: string, private readonly log: Logger, private seq = 0) {}

  /** The replay at start, for the stats. */
  started(replayed: number, dropped: number): void {
    this.replayed = replayed;
    this.dropped = dropped;
  }

  get failed(): boolean { return this.failing !== undefined; }

  /** Journals the table changes among `effects`' kinds; other effects are not the table's. */
  record(e: Effect): void {
    const j = this.journal;
    if (!j) return;
    switch (e.kind) {
      case 'session-start': j.sessionStarted(e.session); break;
      case 'session-end': j.sessionEnded(e.session.serial); break;
      case 'expect-add': j.expectationAdded(e.expectation); break;
      case 'expect-end': j.expectationEnded(e.expectation.id); break;
    }
  }

  /** The 1 s tick: writes the buffered records; while failing, retries with a compaction. */
  flush(table: () => EngineSnapshot, now: number): void {
    if (this.failing !== undefined) {
      // The records of the changes are not needed: the compaction's snapshot holds them.
      this.journal?.clearPending();
      if (now - this.lastTry >= RETRY_MS) this.compact(table(), now);
      return;
    }
    try {
      this.journal?.flush();
    } catch (e) {
      this.fail('journal write', e as Error, now);
    }
  }

  /**
   * Writes `snap` as the new base, covering every journal seq so far, then empties the journal
   * (the first call opens it). `clean`: the table is final (a stop), its timers exact.
   */
  compact(snap: EngineSnapshot, now: number, clean = false): boolean {
    const seq = this.journal?.lastSeq ?? this.seq;
    try {
      writeSnapshot(this.dir, { ...snap, journalSeq: seq, ...(clean ? { clean: true } : {}) });
      if (this.journal) this.journal.compacted();
      else this.journal = new Journal(this.dir, seq);
    } catch (e) {
      this.fail('snapshot write', e as Error, now);
      return false;
    }
    this.compactions++;
    if (this.failing !== undefined) {
      this.log.warn({ stateDir: this.dir, writeErrors: this.writeErrors }, 'table journal: writes succeed again; the table on disk is current');
      this.failing = undefined;
    }
    return true;
  }

  private fail(what: string, err: Error, now: number): void {
    this.writeErrors++;
    this.lastTry = now;
    if (this.failing !== undefined) return;
    this.failing = err.message;
    this.log.error({ err: err.message, stateDir: this.dir, what },
      'table journal: writing failed; a crash now loses the changes since the last good write (retried, reported again only after it recovers)');
  }

  close(): void {
    try { this.journal?.close(); } catch { /* the stop goes on */ }
    this.journal = undefined;
  }

  /** Counters for the stat view and the metrics. */
  stats(): Record<string, number> {
    const j = this.journal?.stats;
    return {
      records: j?.records ?? 0,
      bytes: j?.bytes ?? 0,
      flushes: j?.flushes ?? 0,
      last_flush_us: j?.lastFlushUs ?? 0,
      compactions: this.compactions,
      replayed: this.replayed,
      dropped: this.dropped,
      write_errors: this.writeErrors,
      failing: this.failing !== undefined ? 1 : 0,
    };
  }
}
