// The table journal's records: replayed onto a snapshot, a torn tail dropped and reported, records
// the snapshot already holds skipped. (Not yet written by the daemon.)
import t from 'tap';
import { encodeRecord, replayJournal } from '../../src/state/journal.js';
import type { Session } from '../../src/engine/types.js';

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
