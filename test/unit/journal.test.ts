// The table journal's records: replayed onto a snapshot, a torn tail dropped and reported, records
// the snapshot already holds skipped; the daemon's open journal (Journal) batching and compaction.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { encodeRecord, Journal, JOURNAL_FILE, readJournal, replayJournal } from '../../src/state/journal.js';
import type { Session } from '../../src/engine/types.js';
import type { Expectation } from '../../src/engine/expectations.js';
import type { EngineSnapshot } from '../../src/engine/engine.js';

const session = (serial: number) => ({ serial, orig: { family: 4, proto: 17, src: '198.51.100.2', dst: '203.0.113.2', sport: 40000 + serial, dport: 53 }, reply: {}, expireAt: 9000, state: [0, 1], org: {}, rep: {} }) as unknown as Session;

t.test('replay: sessions put and ended, a torn tail dropped, seqs the snapshot holds skipped', async (t) => {
  const text = encodeRecord(1, { t: 'session', session: session(1) }) + encodeRecord(2, { t: 'session', session: session(2) }) +
    encodeRecord(3, { t: 'end', serial: 1 }) + encodeRecord(4, { t: 'serial', next: 9 });
  const r = replayJournal(text, undefined, 1000);
  t.same(r.snapshot.sessions.map((s) => s.serial), [2]);
  t.match(r, { applied: 4, skipped: 0, dropped: 0, lastSeq: 4 });
  t.equal(r.snapshot.nextSerial, 9);
  const torn = replayJournal(text + encodeRecord(5, { t: 'end', serial: 2 }).slice(0, 20), undefined, 1000);
  t.match(torn, { applied: 4, dropped: 1, droppedReason: 'line 5: checksum mismatch' });
  const flipped = replayJournal(text.replace('"sport":40002', '"sport":40003'), undefined, 1000);
  t.match(flipped, { applied: 1, dropped: 3, droppedReason: 'line 2: checksum mismatch' }, 'a changed byte stops the replay there');
  const base = { version: 1 as const, savedAt: 0, nextSerial: 3, sessions: [session(1), session(2)], expectations: [], helpers: [], journalSeq: 3 };
  const after = replayJournal(text, base, 1000);
  t.match(after, { applied: 1, skipped: 3 });
  t.same(after.snapshot.sessions.map((s) => s.serial), [1, 2], 'the end of session 1 was already in the snapshot');
});

t.test('replay: a corrupt record names its line and byte offset; the records before it are kept', async (t) => {
  const one = encodeRecord(1, { t: 'session', session: session(1) });
  const two = encodeRecord(2, { t: 'session', session: session(2) });
  const text = one + two.replace('"dport":53', '"dport":54') + encodeRecord(3, { t: 'end', serial: 1 });
  const r = replayJournal(text, undefined, 1000);
  t.match(r, { applied: 1, dropped: 2, droppedOffset: Buffer.byteLength(one), droppedReason: 'line 2: checksum mismatch', lastSeq: 1 });
  t.same(r.snapshot.sessions.map((s) => s.serial), [1]);
  t.match(replayJournal('not a record\n', undefined, 1000), { applied: 0, dropped: 1, droppedOffset: 0, droppedReason: 'line 1: no checksum' });
});

t.test('Journal: one write per flush, a session that came and went costs only its serial, compaction empties the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const j = new Journal(dir, 10);
  const x = { id: 4, parent: 1, dst: '203.0.113.2', dport: 2121 } as unknown as Expectation;
  j.sessionStarted(session(1));
  j.sessionStarted(session(2));
  j.sessionEnded(2);
  j.expectationAdded(x);
  t.equal(j.flush(), readFileSync(join(dir, JOURNAL_FILE)).length, 'flush returns the bytes written');
  t.equal(j.flush(), 0, 'nothing new: no write');
  j.sessionEnded(1);
  j.expectationEnded(4);
  j.flush();
  t.match(j.stats, { records: 5, flushes: 2, compactions: 0 });
  t.equal(j.lastSeq, 15);
  const text = readJournal(dir)!;
  t.same(text.split('\n').filter(Boolean).map((l) => l.split(' ')[1]), ['11', '12', '13', '14', '15']);
  const r = replayJournal(text, { version: 1, savedAt: 0, nextSerial: 1, sessions: [], expectations: [], helpers: [], journalSeq: 10 } as EngineSnapshot, 1000);
  t.match(r, { applied: 5, skipped: 0, dropped: 0, lastSeq: 15 });
  t.same(r.snapshot.sessions, [], 'session 1 ended, session 2 never written');
  t.equal(r.snapshot.nextSerial, 3, 'but the serial of session 2 is not handed out again');
  j.sessionStarted(session(3));
  j.compacted();
  t.equal(readJournal(dir), '', 'compaction empties the journal and drops what was pending');
  t.equal(j.flush(), 0);
  t.equal(j.stats.compactions, 1);
  j.close();
});
