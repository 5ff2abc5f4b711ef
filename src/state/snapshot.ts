// The table snapshot on disk: written at start, every snapshot-interval and on shutdown, read on
// start together with the journal of the changes since (journal.ts).
// One JSON file, written to a temporary name and renamed, so a crash mid-write leaves the old
// snapshot or none, never half of one. A file that cannot be read or parsed is reported and the
// daemon starts with an empty table; it is moved aside so the next start does not trip on it.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineSnapshot } from '../engine/engine.js';

export const SNAPSHOT_FILE = 'sessions.json';

/** Buffers (helper line buffers) as base64 rather than JSON's array of numbers. */
function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return { $buffer: Buffer.from((value as { data: number[] }).data).toString('base64') };
  }
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && typeof (value as { $buffer?: unknown }).$buffer === 'string') {
    return Buffer.from((value as { $buffer: string }).$buffer, 'base64');
  }
  return value;
}

/** JSON with Buffers as base64: snapshots and journal records. */
export function encodeJson(v: unknown): string {
  return JSON.stringify(v, replacer);
}

export function decodeJson(text: string): unknown {
  return JSON.parse(text, reviver);
}

export function encodeSnapshot(s: EngineSnapshot): string {
  return encodeJson(s);
}

/** Parses and checks the shape; throws an Error that says what is wrong. */
export function decodeSnapshot(text: string): EngineSnapshot {
  let v: unknown;
  try {
    v = JSON.parse(text, reviver);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  const s = v as Partial<EngineSnapshot>;
  if (!s || typeof s !== 'object') throw new Error('not an object');
  if (s.version !== 1) throw new Error(`unknown snapshot version ${JSON.stringify(s.version)}`);
  if (!Number.isInteger(s.nextSerial) || !Array.isArray(s.sessions) || !Array.isArray(s.expectations) || !Array.isArray(s.helpers)) {
    throw new Error('missing nextSerial, sessions, expectations or helpers');
  }
  for (const [i, x] of s.sessions.entries()) {
    if (!x || !Number.isInteger(x.serial) || !x.orig || !x.reply || typeof x.expireAt !== 'number' || !Array.isArray(x.state) || !x.org || !x.rep) {
      throw new Error(`session ${i} is incomplete`);
    }
  }
  for (const [i, x] of s.expectations.entries()) {
    if (!x || !Number.isInteger(x.id) || !Number.isInteger(x.parent) || typeof x.dst !== 'string' || !Number.isInteger(x.dport)) throw new Error(`expectation ${i} is incomplete`);
  }
  return s as EngineSnapshot;
}

/**
 * A snapshot as the state directory holds it: the journal seq it covers (records up to it are
 * in it already) and whether a clean stop wrote it (its timers are exact, not up to an interval old).
 */
export type StoredSnapshot = EngineSnapshot & { journalSeq?: number; clean?: boolean };

/**
 * Written to a temporary file, synced, renamed over the old one, and the directory synced: the
 * journal is emptied right after, so the snapshot must be on disk before the records it replaces go.
 */
export function writeSnapshot(dir: string, s: StoredSnapshot): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, SNAPSHOT_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    const buf = Buffer.from(encodeSnapshot(s));
    if (writeSync(fd, buf) !== buf.length) throw new Error(`short write of ${tmp}`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const d = openSync(dir, 'r');
  try { fsyncSync(d); } finally { closeSync(d); }
  return path;
}

export type SnapshotRead =
  | { kind: 'none'; path: string }
  | { kind: 'ok'; path: string; snapshot: StoredSnapshot }
  | { kind: 'bad'; path: string; error: string; movedTo?: string };

/** Reads the snapshot, if any. A bad one is renamed to `<file>.bad` (kept for a look, not re-read). */
export function readSnapshot(dir: string): SnapshotRead {
  const path = join(dir, SNAPSHOT_FILE);
  if (!existsSync(path)) return { kind: 'none', path };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { kind: 'bad', path, error: `cannot read: ${(e as Error).message}` };
  }
  try {
    return { kind: 'ok', path, snapshot: decodeSnapshot(text) };
  } catch (e) {
    const movedTo = `${path}.bad`;
    try { renameSync(path, movedTo); } catch { return { kind: 'bad', path, error: (e as Error).message }; }
    return { kind: 'bad', path, error: (e as Error).message, movedTo };
  }
}
