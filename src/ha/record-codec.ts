// The body of a DATA message in binary: a session start or end is what the primary sends for
// every connection, so it is packed field by field (about 180 bytes for IPv4 instead of some
// 900 of JSON, and no string building), and a datagram carries several times more of them. Every
// other record, and a session with a field this codec does not know, goes as JSON inside the
// same framing: nothing is lost when the Session type grows before this file does.
//
//   body    = seq:u32 count:u16 record*
//   record  = kind:u8 payload
//     kind 1  session   (layout in writeSession; all integers big-endian, times as f64 ms)
//     kind 2  end       serial:f64
//     kind 3  json      length:u32 utf8 JSON (Buffers as {"$buffer": base64})

import type { Session } from '../engine/types.js';
import type { FlowTuple } from '../packet/types.js';
import { decodeJson, encodeJson } from '../state/snapshot.js';
import { textToWords, wordsToText } from '../engine/table/tuple-key.js';
import type { DataBody } from './channel.js';

const KIND_SESSION = 1;
const KIND_END = 2;
const KIND_JSON = 3;

/** Fields a binary session record carries; a session with any other goes as JSON. */
const KNOWN = new Set([
  'serial', 'orig', 'reply', 'policyId', 'vd', 'userId', 'serviceIndex', 'helper', 'parent', 'inheritedSerial', 'expected',
  'state', 'createdAt', 'expireAt', 'timerAt', 'timeout', 'ttl', 'ttlFromRule', 'refreshDir', 'org', 'rep', 'devOrg', 'devReply',
  'offloaded', 'offloadPending', 'kernelClass', 'ctId', 'timerBase', 'kernelWait', 'nat', 'kernelMisses', 'kernelSeen', 'rate', 'logTraffic',
]);
const TUPLE_KEYS = 6;
const REFRESH = ['both', 'outgoing', 'incoming'] as const;

/** Presence bits of the optional fields. */
const enum Has {
  USER = 1 << 0, SERVICE = 1 << 1, HELPER = 1 << 2, PARENT = 1 << 3, INHERITED = 1 << 4, EXPECTED = 1 << 5,
  KCLASS = 1 << 6, CTID = 1 << 7, TIMER_BASE = 1 << 8, KWAIT = 1 << 9, NAT = 1 << 10, KMISSES = 1 << 11, KSEEN = 1 << 12,
}
/** Boolean bits. */
const enum Bit { TTL_FROM_RULE = 1, OFFLOADED = 2, OFFLOAD_PENDING = 4, LOG_TRAFFIC = 8 }

class Writer {
  buf = Buffer.allocUnsafe(2048);
  at = 0;
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
  u8(v: number): void { this.room(1); this.buf[this.at++] = v; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16BE(v, this.at); this.at += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32BE(v >>> 0, this.at); this.at += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32BE(v | 0, this.at); this.at += 4; }
  f64(v: number): void { this.room(8); this.buf.writeDoubleBE(v, this.at); this.at += 8; }
  words(w: Int32Array, n: number): void { for (let i = 0; i < n; i++) this.i32(w[i]); }
  text(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u32(n);
    this.room(n);
    this.at += this.buf.write(s, this.at, 'utf8');
  }
}

class Reader {
  at = 0;
  constructor(private readonly b: Buffer) {}
  private need(n: number): void { if (this.at + n > this.b.length) throw new Error('truncated record'); }
  u8(): number { this.need(1); return this.b[this.at++]; }
  u16(): number { this.need(2); const v = this.b.readUInt16BE(this.at); this.at += 2; return v; }
  u32(): number { this.need(4); const v = this.b.readUInt32BE(this.at); this.at += 4; return v; }
  i32(): number { this.need(4); const v = this.b.readInt32BE(this.at); this.at += 4; return v; }
  f64(): number { this.need(8); const v = this.b.readDoubleBE(this.at); this.at += 8; return v; }
  text(): string { const n = this.u32(); this.need(n); const s = this.b.toString('utf8', this.at, this.at + n); this.at += n; return s; }
  get done(): boolean { return this.at === this.b.length; }
}

const scratch = new Int32Array(4);

function plainTuple(t: FlowTuple): boolean {
  return keyCount(t) === TUPLE_KEYS && (t.family === 4 || t.family === 6) && Number.isInteger(t.proto) && t.proto >= 0 && t.proto < 256
    && Number.isInteger(t.sport) && t.sport >= 0 && t.sport < 65536 && Number.isInteger(t.dport) && t.dport >= 0 && t.dport < 65536;
}

function writeTuple(w: Writer, t: FlowTuple): boolean {
  w.u8(t.family);
  w.u8(t.proto);
  w.u16(t.sport);
  w.u16(t.dport);
  const n = t.family === 4 ? 1 : 4;
  if (!textToWords(t.src, t.family, scratch)) return false;
  w.words(scratch, n);
  if (!textToWords(t.dst, t.family, scratch)) return false;
  w.words(scratch, n);
  return true;
}

function readTuple(r: Reader): FlowTuple {
  const family = r.u8();
  if (family !== 4 && family !== 6) throw new Error(`bad family ${family}`);
  const proto = r.u8();
  const sport = r.u16();
  const dport = r.u16();
  const n = family === 4 ? 1 : 4;
  for (let i = 0; i < n; i++) scratch[i] = r.i32();
  const src = wordsToText(scratch, 0, family);
  for (let i = 0; i < n; i++) scratch[i] = r.i32();
  const dst = wordsToText(scratch, 0, family);
  return { family, proto, src, dst, sport, dport };
}

const u32ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const u16ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff;
const u8ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xff;

/** Whether every field fits the binary layout exactly (else the session goes as JSON). */
function keyCount(o: object): number {
  let n = 0;
  for (const k in o) if (Object.hasOwn(o, k)) n++;
  return n;
}

function packable(s: Session): boolean {
  for (const k in s) if (!KNOWN.has(k)) return false;
  return plainTuple(s.orig) && plainTuple(s.reply) && u32ok(s.policyId) && u16ok(s.vd) && u8ok(s.state[0]) && u8ok(s.state[1]) && s.state.length === 2
    && u32ok(s.timeout) && u32ok(s.ttl) && REFRESH.includes(s.refreshDir) && u32ok(s.org.allowErr) && u32ok(s.rep.allowErr)
    && keyCount(s.org) === 3 && keyCount(s.rep) === 3 && keyCount(s.rate) === 5
    && s.devOrg.length === 2 && s.devReply.length === 2 && u32ok(s.devOrg[0]) && u32ok(s.devOrg[1]) && u32ok(s.devReply[0]) && u32ok(s.devReply[1])
    && (s.userId === undefined || (Number.isInteger(s.userId) && s.userId >= -0x80000000 && s.userId <= 0x7fffffff))
    && (s.serviceIndex === undefined || u8ok(s.serviceIndex)) && (s.kernelClass === undefined || u8ok(s.kernelClass))
    && (s.ctId === undefined || u32ok(s.ctId)) && (s.kernelMisses === undefined || u8ok(s.kernelMisses))
    && (s.kernelWait === undefined || u8ok(s.kernelWait))
    && (s.kernelSeen === undefined || (keyCount(s.kernelSeen) === 2 && u32ok(s.kernelSeen.orgPackets) && u32ok(s.kernelSeen.replyPackets)));
}

function writeSession(w: Writer, s: Session): boolean {
  const start = w.at;
  w.f64(s.serial);
  if (!writeTuple(w, s.orig) || !writeTuple(w, s.reply)) { w.at = start; return false; }
  w.u32(s.policyId);
  w.u16(s.vd);
  w.u8(s.state[0]);
  w.u8(s.state[1]);
  w.f64(s.createdAt);
  w.f64(s.expireAt);
  w.f64(s.timerAt);
  w.u32(s.timeout);
  w.u32(s.ttl);
  w.u8(REFRESH.indexOf(s.refreshDir));
  w.u8((s.ttlFromRule ? Bit.TTL_FROM_RULE : 0) | (s.offloaded ? Bit.OFFLOADED : 0) | (s.offloadPending ? Bit.OFFLOAD_PENDING : 0) | (s.logTraffic ? Bit.LOG_TRAFFIC : 0));
  for (const c of [s.org, s.rep]) { w.f64(c.bytes); w.f64(c.packets); w.u32(c.allowErr); }
  for (const d of [...s.devOrg, ...s.devReply]) w.u32(d);
  w.f64(s.rate.at); w.f64(s.rate.orgBytes); w.f64(s.rate.replyBytes); w.f64(s.rate.txBps); w.f64(s.rate.rxBps);
  let has = 0;
  if (s.userId !== undefined) has |= Has.USER;
  if (s.serviceIndex !== undefined) has |= Has.SERVICE;
  if (s.helper !== undefined) has |= Has.HELPER;
  if (s.parent !== undefined) has |= Has.PARENT;
  if (s.inheritedSerial !== undefined) has |= Has.INHERITED;
  if (s.expected !== undefined) has |= Has.EXPECTED;
  if (s.kernelClass !== undefined) has |= Has.KCLASS;
  if (s.ctId !== undefined) has |= Has.CTID;
  if (s.timerBase !== undefined) has |= Has.TIMER_BASE;
  if (s.kernelWait !== undefined) has |= Has.KWAIT;
  if (s.nat !== undefined) has |= Has.NAT;
  if (s.kernelMisses !== undefined) has |= Has.KMISSES;
  if (s.kernelSeen !== undefined) has |= Has.KSEEN;
  w.u16(has);
  if (has & Has.USER) w.i32(s.userId!);
  if (has & Has.SERVICE) w.u8(s.serviceIndex!);
  if (has & Has.HELPER) w.text(s.helper!);
  if (has & Has.PARENT) w.f64(s.parent!);
  if (has & Has.INHERITED) w.f64(s.inheritedSerial!);
  // Rare and shaped by helpers: JSON keeps them exact.
  if (has & Has.EXPECTED) w.text(encodeJson(s.expected));
  if (has & Has.KCLASS) w.u8(s.kernelClass!);
  if (has & Has.CTID) w.u32(s.ctId!);
  if (has & Has.TIMER_BASE) w.f64(s.timerBase!);
  if (has & Has.KWAIT) w.u8(s.kernelWait!);
  if (has & Has.NAT) w.text(encodeJson(s.nat));
  if (has & Has.KMISSES) w.u8(s.kernelMisses!);
  if (has & Has.KSEEN) { w.u32(s.kernelSeen!.orgPackets); w.u32(s.kernelSeen!.replyPackets); }
  return true;
}

function readSession(r: Reader): Session {
  const serial = r.f64();
  const orig = readTuple(r);
  const reply = readTuple(r);
  const policyId = r.u32();
  const vd = r.u16();
  const state: [number, number] = [r.u8(), r.u8()];
  const createdAt = r.f64();
  const expireAt = r.f64();
  const timerAt = r.f64();
  const timeout = r.u32();
  const ttl = r.u32();
  const refreshDir = REFRESH[r.u8()];
  if (!refreshDir) throw new Error('bad refresh direction');
  const bits = r.u8();
  const org = { bytes: r.f64(), packets: r.f64(), allowErr: r.u32() };
  const rep = { bytes: r.f64(), packets: r.f64(), allowErr: r.u32() };
  const devOrg: [number, number] = [r.u32(), r.u32()];
  const devReply: [number, number] = [r.u32(), r.u32()];
  const rate = { at: r.f64(), orgBytes: r.f64(), replyBytes: r.f64(), txBps: r.f64(), rxBps: r.f64() };
  const s: Session = {
    serial, orig, reply, policyId, vd, state, createdAt, expireAt, timerAt, timeout, ttl,
    ttlFromRule: (bits & Bit.TTL_FROM_RULE) !== 0, refreshDir, org, rep, devOrg, devReply,
    offloaded: (bits & Bit.OFFLOADED) !== 0, offloadPending: (bits & Bit.OFFLOAD_PENDING) !== 0, rate, logTraffic: (bits & Bit.LOG_TRAFFIC) !== 0,
  };
  const has = r.u16();
  if (has & Has.USER) s.userId = r.i32();
  if (has & Has.SERVICE) s.serviceIndex = r.u8();
  if (has & Has.HELPER) s.helper = r.text();
  if (has & Has.PARENT) s.parent = r.f64();
  if (has & Has.INHERITED) s.inheritedSerial = r.f64();
  if (has & Has.EXPECTED) s.expected = decodeJson(r.text()) as Session['expected'];
  if (has & Has.KCLASS) s.kernelClass = r.u8();
  if (has & Has.CTID) s.ctId = r.u32();
  if (has & Has.TIMER_BASE) s.timerBase = r.f64();
  if (has & Has.KWAIT) s.kernelWait = r.u8() as Session['kernelWait'];
  if (has & Has.NAT) s.nat = decodeJson(r.text()) as Session['nat'];
  if (has & Has.KMISSES) s.kernelMisses = r.u8();
  if (has & Has.KSEEN) s.kernelSeen = { orgPackets: r.u32(), replyPackets: r.u32() };
  return s;
}

/** A DATA message's body as bytes. */
export function encodeDataBody(body: DataBody): Buffer {
  const w = new Writer();
  w.u32(body.seq);
  w.u16(body.records.length);
  for (const rec of body.records) {
    const r = rec as { t: string; session?: Session; serial?: number };
    if (r.t === 'session' && r.session && Object.keys(r).length === 2 && packable(r.session)) {
      w.u8(KIND_SESSION);
      if (writeSession(w, r.session)) continue;
      w.at--;
    }
    if (r.t === 'end' && Object.keys(r).length === 2 && typeof r.serial === 'number') {
      w.u8(KIND_END);
      w.f64(r.serial);
      continue;
    }
    w.u8(KIND_JSON);
    w.text(encodeJson(rec));
  }
  return w.buf.subarray(0, w.at);
}

/** The body back; throws on anything malformed (the caller refuses the datagram). */
export function decodeDataBody(b: Buffer): DataBody {
  const r = new Reader(b);
  const seq = r.u32();
  const n = r.u16();
  const records: DataBody['records'] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    if (kind === KIND_SESSION) records.push({ t: 'session', session: readSession(r) });
    else if (kind === KIND_END) records.push({ t: 'end', serial: r.f64() });
    else if (kind === KIND_JSON) records.push(decodeJson(r.text()) as DataBody['records'][number]);
    else throw new Error(`unknown record kind ${kind}`);
  }
  if (!r.done) throw new Error('bytes after the last record');
  return { seq, records };
}
