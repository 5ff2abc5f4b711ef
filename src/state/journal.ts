// The table's changes between two snapshots, so a crash (SIGKILL, OOM, watchdog) loses at most
// the last flush (about a second): sessions and expectations that came and went. The journal is
// an append-only file next to the snapshot, one record per line:
//   <crc32 hex of the rest> <seq> <json>
// flushed in batches with one write and one fsync. The snapshot records the last seq it
// contains, so after a crash between writing a snapshot and emptying the journal the records it
// already holds are not applied twice. A line whose checksum does not match (a write torn by the
// crash) ends the replay: it and everything after it are dropped and reported.
//
// What is journaled is the set: a session when it starts (as it is at the flush), its end, an
// expectation's creation and end. Timers and counters of long-lived sessions move with every
// packet and are not journaled: they come from the last snapshot (written every compaction
// interval), and offloaded sessions are read again from the kernel after a restore.

import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { EngineSnapshot } from '../engine/engine.js';
import type { Session } from '../engine/types.js';
import type { Expectation } from '../engine/expectations.js';
import { decodeJson, encodeJson } from './snapshot.js';

export const JOURNAL_FILE = 'sessions.journal';

export type JournalRecord =
  | { t: 'session'; session: Session }
  | { t: 'end'; serial: number }
  | { t: 'expect'; expectation: Expectation }
  | { t: 'expect-end'; id: number }
  | { t: 'serial'; next: number };

export interface JournalReplay {
  /** The snapshot with the journal applied. */
  snapshot: EngineSnapshot;
  applied: number;
  /** Records the snapshot already held (seq not after its journalSeq). */
  skipped: number;
  /** Lines dropped at a torn or corrupt tail, where they start (bytes into the file), and why. */
  dropped: number;
  droppedOffset?: number;
  droppedReason?: string;
  lastSeq: number;
}

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

/** One line of the file (exported for tests). */
export function encodeRecord(seq: number, r: JournalRecord): string {
  const body = `${seq} ${encodeJson(r)}`;
  return `${hex8(crc32(body))} ${body}\n`;
}

/** The snapshot's last journal seq (0 for a snapshot written without a journal). */
export function snapshotSeq(s: EngineSnapshot): number {
  const v = (s as EngineSnapshot & { journalSeq?: unknown }).journalSeq;
  return typeof v === 'number' && Number.isInteger(v) ? v : 0;
}

/** Applies the journal text to a base snapshot (an empty table when there is none). */
export function replayJournal(text: string, base: EngineSnapshot | undefined, now: number): JournalReplay {
  const snap: EngineSnapshot = base
    ? { ...base, sessions: [...base.sessions], expectations: [...base.expectations], helpers: [...base.helpers] }
    : { version: 1, savedAt: now, nextSerial: 1, sessions: [], expectations: [], helpers: [] };
  const after = base ? snapshotSeq(base) : 0;
  const sessions = new Map(snap.sessions.map((s) => [s.serial, s]));
  const expectations = new Map(snap.expectations.map((x) => [x.id, x]));
  const out: JournalReplay = { snapshot: snap, applied: 0, skipped: 0, dropped: 0, lastSeq: after };
  const lines = text.split('\n');
  // A file that ends without a newline ends in a torn write: its last line is read like the
  // others, so a record cut short fails its checksum and is dropped and reported there, while one
  // cut just before its newline is whole and applied (not also counted as dropped).
  if (lines[lines.length - 1] === '') lines.pop();
  let prev = -1;
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const start = offset;
    offset += Buffer.byteLength(line) + 1;
    const bad = (why: string) => {
      out.dropped = lines.length - i;
      out.droppedOffset = start;
      out.droppedReason = `line ${i + 1}: ${why}`;
    };
    const sp = line.indexOf(' ');
    if (sp !== 8) { bad('no checksum'); break; }
    const body = line.slice(9);
    if (hex8(crc32(body)) !== line.slice(0, 8)) { bad('checksum mismatch'); break; }
    const sp2 = body.indexOf(' ');
    const seq = Number(body.slice(0, sp2));
    if (!Number.isInteger(seq) || seq <= prev) { bad(`sequence ${body.slice(0, sp2)} out of order`); break; }
    prev = seq;
    let r: JournalRecord;
    try {
      r = decodeJson(body.slice(sp2 + 1)) as JournalRecord;
      if (!validRecord(r)) throw new Error('not a journal record');
    } catch (e) {
      bad((e as Error).message);
      break;
    }
    out.lastSeq = Math.max(out.lastSeq, seq);
    if (seq <= after) { out.skipped++; continue; }
    out.applied++;
    switch (r.t) {
      case 'session':
        sessions.set(r.session.serial, r.session);
        snap.nextSerial = Math.max(snap.nextSerial, r.session.serial + 1);
        break;
      case 'end':
        sessions.delete(r.serial);
        break;
      case 'expect':
        expectations.set(r.expectation.id, r.expectation);
        break;
      case 'expect-end':
        expectations.delete(r.id);
        break;
      case 'serial':
        snap.nextSerial = Math.max(snap.nextSerial, r.next);
        break;
    }
  }
  snap.sessions = [...sessions.values()];
  // An expectation whose parent is gone went with it.
  snap.expectations = [...expectations.values()].filter((x) => sessions.has(x.parent));
  return out;
}

function validRecord(r: JournalRecord): boolean {
  if (!r || typeof r !== 'object') return false;
  switch (r.t) {
    case 'session': return !!r.session && Number.isInteger(r.session.serial) && !!r.session.orig && !!r.session.reply && typeof r.session.expireAt === 'number' && Array.isArray(r.session.state);
    case 'end': return Number.isInteger(r.serial);
    case 'expect': return !!r.expectation && Number.isInteger(r.expectation.id) && Number.isInteger(r.expectation.parent);
    case 'expect-end': return Number.isInteger(r.id);
    case 'serial': return Number.isInteger(r.next);
    default: return false;
  }
}

export function readJournal(dir: string): string | undefined {
  const path = join(dir, JOURNAL_FILE);
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

export interface JournalStats {
  records: number;
  bytes: number;
  flushes: number;
  compactions: number;
  /** The last flush's write + fsync (µs). */
  lastFlushUs: number;
}

/**
 * The open journal of a running daemon. Changes are collected as they happen and written by
 * flush(): a session that started and ended between two flushes costs nothing on disk.
 */
export class Journal {
  private fd: number;
  private seq: number;
  private readonly started = new Map<number, Session>();
  private readonly ended: number[] = [];
  private readonly expects = new Map<number, Expectation>();
  private readonly expectEnds: number[] = [];
  private nextSerial = 0;
  readonly stats: JournalStats = { records: 0, bytes: 0, flushes: 0, compactions: 0, lastFlushUs: 0 };

  /** Opens the journal empty (its content is in the snapshot just written, up to `seq`). */
  constructor(private readonly dir: string, seq: number) {
    this.seq = seq;
    this.fd = openSync(join(dir, JOURNAL_FILE), 'w', 0o600);
  }

  get lastSeq(): number { return this.seq; }

  sessionStarted(s: Session): void { this.started.set(s.serial, s); }

  sessionEnded(serial: number): void {
    if (this.started.delete(serial)) {
      // Nothing of it reaches the file, but its serial must not be handed out again after a crash.
      this.nextSerial = Math.max(this.nextSerial, serial + 1);
    } else this.ended.push(serial);
  }

  expectationAdded(x: Expectation): void { this.expects.set(x.id, x); }

  expectationEnded(id: number): void {
    if (!this.expects.delete(id)) this.expectEnds.push(id);
  }

  /** The serial counter moves even when every session of a second ended within it. */
  serials(next: number): void { this.nextSerial = next; }

  /** Writes what changed since the last flush, in one write, and fsyncs. */
  flush(): number {
    let text = '';
    let n = 0;
    const add = (r: JournalRecord) => { text += encodeRecord(++this.seq, r); n++; };
    for (const s of this.started.values()) add({ t: 'session', session: s });
    for (const serial of this.ended) add({ t: 'end', serial });
    for (const x of this.expects.values()) add({ t: 'expect', expectation: x });
    for (const id of this.expectEnds) add({ t: 'expect-end', id });
    if (this.nextSerial) add({ t: 'serial', next: this.nextSerial });
    this.clearPending();
    if (!n) return 0;
    const buf = Buffer.from(text);
    const t0 = process.hrtime.bigint();
    const written = writeSync(this.fd, buf);
    // A short write (a full disk) leaves a torn record: the caller compacts to start clean.
    if (written !== buf.length) throw new Error(`short write: ${written} of ${buf.length} bytes`);
    fsyncSync(this.fd);
    this.stats.lastFlushUs = Number((process.hrtime.bigint() - t0) / 1000n);
    this.stats.records += n;
    this.stats.bytes += buf.length;
    this.stats.flushes++;
    return buf.length;
  }

  /** After a snapshot that holds everything up to lastSeq: start an empty journal. */
  compacted(): void {
    this.clearPending();
    // Opened before the old descriptor is closed: a failing open leaves a journal to write to.
    const fd = openSync(join(this.dir, JOURNAL_FILE), 'w', 0o600);
    closeSync(this.fd);
    this.fd = fd;
    this.stats.compactions++;
  }

  /** Forgets the changes not yet written (a snapshot that holds them is to follow). */
  clearPending(): void {
    this.started.clear();
    this.ended.length = 0;
    this.expects.clear();
    this.expectEnds.length = 0;
    this.nextSerial = 0;
  }

  close(): void {
    closeSync(this.fd);
  }
}
