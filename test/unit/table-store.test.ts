// The table on disk while running and after a crash: the start-up compaction, journaled changes
// flushed in one write, a crash read back as snapshot + journal (same serials, policy ids and the
// expectation, timers that do not drop live sessions, fresh helper state), a clean stop read back
// exactly, and failing writes reported once per episode while the store keeps going.

import { mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Effect, PolicyMatch } from '../../src/engine/types.js';
import { JOURNAL_FILE, readJournal } from '../../src/state/journal.js';
import { SNAPSHOT_FILE, decodeSnapshot } from '../../src/state/snapshot.js';
import { readTable } from '../../src/state/table-read.js';
import { RETRY_MS, TableStore } from '../../src/state/table-store.js';
import { TcpConversation, tcpSyn, udp } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2';
const pol = (x: { dport: number }): PolicyMatch => ({ policyId: x.dport === 21 ? 9 : 12, action: 'accept', logTraffic: false, vd: 0 });
const engine = () => new SessionEngine(defaultEngineConfig({ policy: pol }));

function logCapture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { log, lines, msgs: () => lines.map((l) => l.msg) };
}

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** What the daemon's effect path journals for the table as it is: every session and expectation. */
function startEffects(e: SessionEngine): Effect[] {
  return [...[...e.sessions()].map((session): Effect => ({ kind: 'session-start', session })),
    ...[...e.expectations.all()].map((expectation): Effect => ({ kind: 'expect-add', expectation }))];
}

/** Two UDP sessions (client ports 5353 and 5354), each started and flushed at its time. */
function twoFlushes(e: SessionEngine, store: TableStore, at: [number, number]): void {
  for (const [i, now] of at.entries()) {
    const d = udp(e, { addr: C, port: 5353 + i }, { addr: S, port: 53 }, 'q', now);
    store.record({ kind: 'session-start', session: d.session! });
    store.flush(() => e.snapshot(now), now);
  }
}

t.test('a crash after a flush: the table comes back from the journal with its serials, policies and the expectation', async (t) => {
  const dir = tmp(t);
  const { log } = logCapture();
  const store = new TableStore(dir, log);
  const e = engine();
  t.ok(store.compact(e.snapshot(500), 500), 'the start-up compaction writes an empty table');
  const ctl = new TcpConversation(e, { addr: C, port: 40000 }, { addr: S, port: 21 });
  ctl.open(1000);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  udp(e, { addr: C, port: 5353 }, { addr: S, port: 53 }, 'q', 1200);
  tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 80 }, 1300);
  for (const x of startEffects(e)) store.record(x);
  store.flush(() => e.snapshot(2000), 2000);
  t.match(store.stats(), { records: 4, flushes: 1, compactions: 1, write_errors: 0, failing: 0 });
  t.equal(store.stats().bytes, readFileSync(join(dir, JOURNAL_FILE)).length);

  // SIGKILL: nothing more is written. The next start, 20 s later.
  const now = 22_000;
  const r = readTable(dir, now);
  if (r.kind !== 'ok') throw new Error(`expected a table, got ${r.kind}`);
  t.match(r, { crash: true, replay: { applied: 4, skipped: 0, dropped: 0, lastSeq: 4 }, freshHelpers: 1 });
  const syn = r.snapshot.sessions.find((s) => s.orig.dport === 80)!;
  t.equal(syn.expireAt, now + 10_000, 'the half-open session (10 s timer, recorded at its SYN) gets a full timer from the restore');
  t.equal(syn.timerBase, now);
  const back = engine();
  const { report } = back.restore(r.snapshot, now);
  t.match(report, { sessions: 3, expectations: 1, expiredSessions: 0, expiredExpectations: 0, helpersMissing: 0 });
  t.same([...back.sessions()].map((s) => [s.serial, s.policyId, s.orig.dport]).sort(), [[1, 9, 21], [2, 12, 53], [3, 12, 80]]);
  t.match([...back.expectations.all()], [{ id: 1, parent: 1, dst: S, dport: 10000 }]);
  t.ok(back.helperSlot(1), 'the control session keeps its FTP helper');
  t.equal(tcpSyn(back, { addr: C, port: 40002 }, { addr: S, port: 80 }, now).session?.serial, 4, 'serials go on after the restored ones');
});

t.test('a clean stop is read back exactly; records the snapshot holds are skipped', async (t) => {
  const dir = tmp(t);
  const store = new TableStore(dir, logCapture().log);
  const e = engine();
  store.compact(e.snapshot(500), 500);
  tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 80 }, 1000);
  for (const x of startEffects(e)) store.record(x);
  store.flush(() => e.snapshot(1500), 1500);
  const expireAt = e.bySerialNumber(1)!.expireAt;
  t.ok(store.compact(e.snapshot(1800), 1800, true));
  store.close();
  t.match(decodeSnapshot(readFileSync(join(dir, SNAPSHOT_FILE), 'utf8')), { journalSeq: 1, clean: true });
  t.equal(readJournal(dir), '', 'the journal is empty behind the final snapshot');
  const r = readTable(dir, 5000);
  if (r.kind !== 'ok') throw new Error(`expected a table, got ${r.kind}`);
  t.match(r, { crash: false, extended: 0, replay: { applied: 0 } });
  t.equal(r.snapshot.sessions[0].expireAt, expireAt, 'the timer stays as it was at the stop');
});

t.test('a crash between a snapshot and emptying the journal applies nothing twice', async (t) => {
  const dir = tmp(t);
  const store = new TableStore(dir, logCapture().log, 7);
  const e = engine();
  store.compact(e.snapshot(500), 500);
  udp(e, { addr: C, port: 5353 }, { addr: S, port: 53 }, 'q', 1000);
  for (const x of startEffects(e)) store.record(x);
  store.flush(() => e.snapshot(1500), 1500);
  const journal = readJournal(dir)!;
  t.match(journal, /^[0-9a-f]{8} 8 /, 'seqs go on from the one the start read');
  store.compact(e.snapshot(1600), 1600);
  // As if the process died after the rename and before the journal was emptied.
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, JOURNAL_FILE), journal);
  const r = readTable(dir, 2000);
  if (r.kind !== 'ok') throw new Error(`expected a table, got ${r.kind}`);
  t.match(r.replay, { applied: 0, skipped: 1 });
  t.equal(r.snapshot.sessions.length, 1);
});

t.test('a journal without its snapshot, and a bad record in the middle of one, are reported', async (t) => {
  const dir = tmp(t);
  const store = new TableStore(dir, logCapture().log);
  const e = engine();
  store.compact(e.snapshot(500), 500);
  twoFlushes(e, store, [1000, 1300]);
  const text = readJournal(dir)!;
  const first = text.indexOf('\n') + 1;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, JOURNAL_FILE), text.slice(0, first) + text.slice(first).replace('5354', '5355'));
  const r = readTable(dir, 2000);
  if (r.kind !== 'ok') throw new Error(`expected a table, got ${r.kind}`);
  t.match(r.replay, { applied: 1, dropped: 1, droppedOffset: first, droppedReason: 'line 2: checksum mismatch' });
  t.same(r.snapshot.sessions.map((s) => s.serial), [1]);
  unlinkSync(join(dir, SNAPSHOT_FILE));
  t.same(readTable(dir, 2000), { kind: 'none', path: join(dir, SNAPSHOT_FILE), journal: { path: join(dir, JOURNAL_FILE), error: 'no snapshot to apply it to: ignored' } });
});

t.test('a failing write is logged once per episode, counted, and retried as a compaction', async (t) => {
  const dir = tmp(t);
  const { log, lines, msgs } = logCapture();
  // Every write to /dev/full fails with ENOSPC: a full disk.
  symlinkSync('/dev/full', join(dir, JOURNAL_FILE));
  const store = new TableStore(dir, log);
  const e = engine();
  t.ok(store.compact(e.snapshot(500), 500), 'opening the journal works');
  twoFlushes(e, store, [1000, 2000]);
  t.match(store.stats(), { write_errors: 1, failing: 1, flushes: 0 }, 'within the retry interval: no second attempt');
  t.match(lines.filter((l) => l.level === 50), [{ what: 'journal write', err: /ENOSPC/, msg: /^table journal: writing failed/ }]);
  unlinkSync(join(dir, JOURNAL_FILE));
  store.flush(() => e.snapshot(1000 + RETRY_MS), 1000 + RETRY_MS);
  t.match(store.stats(), { write_errors: 1, failing: 0, compactions: 2 });
  t.equal(msgs().filter((m) => m === 'table journal: writes succeed again; the table on disk is current').length, 1);
  const r = readTable(dir, 7000);
  t.same(r.kind === 'ok' && r.snapshot.sessions.map((s) => s.serial), [1, 2], 'the compaction wrote what the failed flushes lost');

  // A snapshot that cannot be written: the journal stays as it was, the error is counted.
  symlinkSync('/dev/full', join(dir, `${SNAPSHOT_FILE}.${process.pid}.tmp`));
  t.notOk(store.compact(e.snapshot(8000), 8000));
  t.match(store.stats(), { write_errors: 2, failing: 1 });
  t.equal(lines.filter((l) => l.level === 50).length, 2, 'a new episode is logged again');
});
