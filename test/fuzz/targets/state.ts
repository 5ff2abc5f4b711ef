// Targets: the table snapshot and journal loaders. decodeSnapshot accepts a snapshot or throws
// a plain Error saying what is wrong (never a TypeError from poking at a bad shape);
// replayJournal never throws, reports what it dropped and where, and what it returns is a
// table whose expectations all have their parent session.

import fc from 'fast-check';
import type { EngineSnapshot } from '../../../src/engine/engine.js';
import { encodeRecord, replayJournal, type JournalRecord } from '../../../src/state/journal.js';
import { decodeSnapshot, encodeJson } from '../../../src/state/snapshot.js';
import { ensure } from '../check.js';
import { mutated } from '../mutate.js';
import type { FuzzTarget } from '../target.js';

// Shapes as the engine writes them (only what the loaders look at is exact).
const tuple = (n: number) => ({ family: 4, proto: 17, src: '198.51.100.2', dst: '203.0.113.2', sport: 40000 + n, dport: 53 });
const session = (serial: number) => ({ serial, orig: tuple(serial), reply: tuple(serial + 1), expireAt: 9000, state: [0, 1], org: { packets: 1, bytes: 60 }, rep: {}, helperState: { lines: Buffer.from('partial') } });
const expectation = (id: number, parent: number) => ({ id, parent, dst: '203.0.113.2', dport: 2121 + id, proto: 6 });

const snapshotArb = fc.tuple(fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 4 }), fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 8 })), { maxLength: 3 }), fc.option(fc.integer({ min: 0, max: 6 })))
  .map(([serials, xs, seq]) => ({
    version: 1, savedAt: 1000, nextSerial: 10, sessions: [...new Set(serials)].map(session),
    expectations: xs.map(([id, parent]) => expectation(id, parent)), helpers: [], ...(seq !== null ? { journalSeq: seq } : {}),
  }));

/** Any JSON in the places the loader inspects. */
const junk = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, 0, '', [], {}, { $buffer: 'AAAA' }, { $buffer: 5 }));

const snapshotText = fc.oneof(
  { arbitrary: snapshotArb.map((s) => encodeJson(s)), weight: 3 },
  // One field of a good snapshot replaced by junk.
  {
    arbitrary: fc.tuple(snapshotArb, fc.constantFrom('version', 'nextSerial', 'sessions', 'expectations', 'helpers', 'session', 'expectation'), junk).map(([s, k, v]) => {
      const o = s as Record<string, unknown>;
      if (k === 'session') o.sessions = [v, ...s.sessions];
      else if (k === 'expectation') o.expectations = [v];
      else o[k] = v;
      return encodeJson(o);
    }),
    weight: 3,
  },
  { arbitrary: snapshotArb.chain((s) => mutated([Buffer.from(encodeJson(s))], 4)).map((b) => b.toString('utf8')), weight: 3 },
  { arbitrary: fc.integer({ min: 1, max: 20000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`), weight: 1 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
);

function runSnapshot(text: string): void {
  let s: EngineSnapshot;
  try {
    s = decodeSnapshot(text);
  } catch (e) {
    ensure(e instanceof Error && e.constructor === Error && e.message.length > 0, () => `threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return;
  }
  ensure(s.version === 1 && Array.isArray(s.sessions) && Array.isArray(s.expectations), 'accepted a snapshot without its shape');
  for (const x of s.sessions) ensure(Number.isInteger(x.serial) && !!x.orig && !!x.reply, 'accepted an incomplete session');
}

const recordArb: fc.Arbitrary<JournalRecord> = fc.oneof(
  fc.integer({ min: 1, max: 8 }).map((n) => ({ t: 'session', session: session(n) }) as unknown as JournalRecord),
  fc.integer({ min: 1, max: 8 }).map((n) => ({ t: 'end', serial: n }) as JournalRecord),
  fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 })).map(([id, p]) => ({ t: 'expect', expectation: expectation(id, p) }) as unknown as JournalRecord),
  fc.integer({ min: 1, max: 8 }).map((id) => ({ t: 'expect-end', id }) as JournalRecord),
  fc.integer({ min: 1, max: 20 }).map((next) => ({ t: 'serial', next }) as JournalRecord),
  // Checksummed, so only the shape check stands between it and the table.
  junk.map((v) => v as unknown as JournalRecord),
);

export interface JournalInput { text: string; base?: EngineSnapshot }

const journalText = fc.tuple(fc.array(fc.tuple(fc.integer({ min: -1, max: 3 }), recordArb), { maxLength: 8 }), fc.boolean())
  .map(([rs, torn]) => {
    let seq = 0;
    const text = rs.map(([d, r]) => encodeRecord((seq += d), r)).join('');
    return torn && text.length ? text.slice(0, text.length - 1 - (seq % 7)) : text;
  });

const journalArb: fc.Arbitrary<JournalInput> = fc.record({
  text: fc.oneof(
    { arbitrary: journalText, weight: 4 },
    { arbitrary: journalText.chain((t) => mutated([Buffer.from(t || '\n')], 4)).map((b) => b.toString('utf8')), weight: 3 },
    { arbitrary: fc.string({ maxLength: 60 }), weight: 1 },
  ),
  base: fc.option(snapshotArb.map((s) => decodeSnapshot(encodeJson(s))), { nil: undefined }),
});

function runJournal({ text, base }: JournalInput): void {
  const r = replayJournal(text, base, 5000);
  const lines = text.split('\n').length;
  ensure(r.applied >= 0 && r.skipped >= 0 && r.dropped >= 0 && r.applied + r.skipped + r.dropped <= lines, `applied ${r.applied} skipped ${r.skipped} dropped ${r.dropped} of ${lines} lines`);
  if (r.dropped) {
    ensure(typeof r.droppedReason === 'string' && r.droppedReason.length > 0, 'dropped records without a reason');
    ensure(r.droppedOffset === undefined || (r.droppedOffset >= 0 && r.droppedOffset <= Buffer.byteLength(text)), `dropped offset ${r.droppedOffset}`);
  }
  const serials = new Set(r.snapshot.sessions.map((s) => s.serial));
  ensure(serials.size === r.snapshot.sessions.length, 'two sessions with one serial');
  for (const x of r.snapshot.expectations) ensure(serials.has(x.parent), `expectation ${x.id} without its parent ${x.parent}`);
  ensure(Number.isInteger(r.snapshot.nextSerial), `nextSerial ${r.snapshot.nextSerial}`);
}

export const snapshotTarget: FuzzTarget<string> = {
  name: 'snapshot',
  invariants: [
    'decodeSnapshot returns a snapshot of version 1 with its arrays, or throws a plain Error with a message',
    'what it accepts has integer session serials with orig and reply',
  ],
  sources: ['src/state/snapshot.ts'],
  arbitrary: () => snapshotText,
  run: runSnapshot,
};

export const journalTarget: FuzzTarget<JournalInput> = {
  name: 'journal',
  invariants: [
    'replayJournal never throws, on any text and any valid base snapshot',
    'applied + skipped + dropped <= lines; dropped records come with a reason and a byte offset inside the file',
    'the result has one session per serial, every expectation has its parent, nextSerial is an integer',
  ],
  sources: ['src/state/journal.ts', 'src/state/snapshot.ts'],
  arbitrary: () => journalArb,
  run: runJournal,
};
