// Replay: captures through the daemon's own engine. Every packet goes to the same SessionEngine
// with the same config path as the daemon (parseConfig + engineConfigFor), with its capture
// timestamp as the engine's time; engine.tick() runs each time capture time crosses a whole
// second, as the daemon's timer does once a second. Offload requests are confirmed as the
// kernel would confirm them. At the end the report holds the session table in the
// `diagnose sys session list` layout, expectations (open, used by which child, refused, and every
// one created with how it ended), per-service accounting and the verdict counts.
//
// Interfaces: a capture has none, so the replay names two fixed indexes for the policy lookup
// and the dev= fields: 1 for packets travelling in a session's original direction (they enter
// through interface 1 and leave through 2) and 2 for replies (2 -> 1). Their names (what
// srcintf/dstintf of policies match) are --org-if / --reply-if, by default the first two
// `config system interface` entries, else port1 and port2. A flow's original direction is the
// one of its first packet, as the engine sees it.
//
// Memory: files are read in chunks (src/capture/pcap.ts); a packet's bytes are a view into the
// reader's buffer while the engine decides it. Only the session table (and fragments waiting
// for reassembly) grows with the capture.

import type { DaemonConfig } from '../config/load.js';
import { engineConfigFor } from '../config/load.js';
import { SessionEngine } from '../engine/engine.js';
import type { Effect, Packet, Session } from '../engine/types.js';
import { decode } from '../packet/decode.js';
import { writeSync } from 'node:fs';
import { formatSession, formatStat, type StatView } from '../control/format.js';
import { viewOf, type SessionView } from '../control/session-view.js';
import { statOf } from '../control/stat.js';
import { formatProxyWorker, proxyWorkerOf, type ProxyWorkerView } from '../control/limits-format.js';
import { Defragmenter, type DefragCounters } from './defrag.js';
import { l3Start, LINK_NAMES, linkSupported } from './link.js';
import { PcapFileReader, type CapturedPacket } from './pcap.js';

export const ORG_IF = 1;
export const REPLY_IF = 2;
/** dev= of replies: in through 2, out through 1 (shared, never mutated). */

export interface ReplayOptions {
  files: string[];
  config: DaemonConfig;
  /** Stop at this capture time (ms since epoch) and show the table then; default the last packet's time. */
  atMs?: number;
  /** Show the table this many ms after the last packet (timers run on). */
  afterEndMs?: number;
  orgIf?: string;
  replyIf?: string;
  /** Read chunk size (bytes). */
  chunkSize?: number;
}

/** What the expectation table looks like from here (src/engine/expectations.ts), read structurally. */
interface ExpectationLike {
  id: number; parent: number; serial: number; policyId: number; vd: number; helper: string; kind: string;
  proto: number; src: string; sport: number; dst: string; dport: number; createdAt: number; expireAt: number;
  tracksParent: boolean; lifetime: number; sessionTimeout?: number; childHelper?: string; tag?: string;
}
interface ExpectationTableLike {
  size: number;
  all(): Iterable<ExpectationLike>;
  uses?: Array<{ expectation: ExpectationLike; child: number; at: number }>;
  refusals?: Array<{ at: number; helper: string; parent: number; reason: string; detail: string }>;
  counters?: { created: number; ended: Record<string, number>; refused: Record<string, number> };
}

export interface ExpectationView {
  id: number;
  helper: string;
  kind: string;
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** Serial of the session whose helper asked for it (the control session). */
  parent: number;
  /** Serial a child inherits. */
  serial: number;
  policy_id: number;
  vd: number;
  /** Seconds left (negative once past its nominal end when it lives as long as its parent). */
  expire: number;
  tracks_parent: boolean;
  created: number;
}

export interface ExpectationUseView { expectation: ExpectationView; child: number; at: number }
/** An expectation created during the replay and how it ended (no `end`: still open at `at`). */
export interface ExpectationCreatedView {
  expectation: ExpectationView;
  end?: { reason: string; at: number; child?: number };
}
export interface RefusalView { at: number; helper: string; parent: number; reason: string; detail: string }

export interface ReplayStats {
  files: Array<{ path: string; format: string; link_types: string[]; packets: number; bytes: number; truncated: boolean }>;
  packets: number;
  /** Packets handed to the engine (reassembled datagrams count once). */
  decided: number;
  non_ip: number;
  unsupported_link: number;
  defrag: DefragCounters;
  first_ts: number;
  last_ts: number;
  /** The time the table is shown at (ms since epoch). */
  at: number;
  ticks: number;
  sessions_created: number;
  sessions_ended: Record<string, number>;
  interfaces: { org: string; reply: string };
}

export interface ReplayReport {
  replay: ReplayStats;
  sessions: SessionView[];
  total: number;
  expectations: ExpectationView[];
  expectation_uses: ExpectationUseView[];
  /** Every expectation created, oldest first (the newest EXPECTATION_LOG kept); `expire` is its lifetime. */
  expectations_created: ExpectationCreatedView[];
  refusals: RefusalView[];
  expectation_counters?: { created: number; ended: Record<string, number>; refused: Record<string, number> };
  accounting: ProxyWorkerView;
  verdicts: { accept: number; drop: number; reasons: Record<string, number> };
  stat: StatView;
}

function expectationTable(engine: SessionEngine): ExpectationTableLike | undefined {
  const x = (engine as unknown as { expectations?: unknown }).expectations;
  if (x && typeof (x as ExpectationTableLike).all === 'function') return x as ExpectationTableLike;
  return undefined;
}

function expectationView(x: ExpectationLike, now: number): ExpectationView {
  return {
    id: x.id, helper: x.helper, kind: x.kind, proto: x.proto, src: x.src, sport: x.sport, dst: x.dst, dport: x.dport,
    parent: x.parent, serial: x.serial, policy_id: x.policyId, vd: x.vd,
    expire: Math.ceil((x.expireAt - now) / 1000), tracks_parent: x.tracksParent, created: x.createdAt,
  };
}

/** Expectations the created list keeps (the newest). */
export const EXPECTATION_LOG = 1000;

/** Runs captures through a SessionEngine. Usable step by step (feed) or over files (run). */
export class Replayer {
  readonly engine: SessionEngine;
  readonly defrag = new Defragmenter();
  readonly verdictReasons = new Map<string, number>();
  readonly ended: Record<string, number> = {};
  /** Created expectations by id (insertion order, bounded) with their end once it came. */
  readonly expectationLog = new Map<number, { x: ExpectationLike; end?: { reason: string; at: number; child?: number } }>();
  readonly ifnames: { org: string; reply: string };
  packets = 0;
  decided = 0;
  nonIp = 0;
  unsupportedLink = 0;
  ticks = 0;
  firstTs = NaN;
  lastTs = NaN;
  private nextTick = -Infinity;
  private readonly pkt: Packet = { indev: ORG_IF, outdev: REPLY_IF, mark: 0, mirrorReplyDevs: true, decoded: { ok: false, reason: 'empty' } };

  constructor(readonly config: DaemonConfig, names: { org?: string; reply?: string } = {}) {
    const declared = Object.keys(config.policies.interfaceVdom);
    this.ifnames = { org: names.org ?? declared[0] ?? 'port1', reply: names.reply ?? declared[1] ?? 'port2' };
    this.engine = new SessionEngine(engineConfigFor(config, (i) => this.ifname(i)));
  }

  ifname(i: number): string {
    return i === ORG_IF ? this.ifnames.org : i === REPLY_IF ? this.ifnames.reply : `if${i}`;
  }

  /** Runs the engine's timers up to `now` (the daemon ticks once a second). */
  advance(now: number): void {
    if (now < this.nextTick) return;
    this.apply(this.engine.tick(now));
    this.defrag.tick(now);
    this.ticks++;
    this.nextTick = Math.floor(now / 1000) * 1000 + 1000;
  }

  /** One captured frame. */
  feed(rec: CapturedPacket): void {
    const ts = rec.tsMs;
    this.packets++;
    if (this.packets === 1) this.firstTs = ts;
    this.lastTs = ts;
    this.advance(ts);
    const l3 = l3Start(rec.linkType, rec.buf, rec.offset, rec.capLen);
    if (l3.family === 0) {
      if (linkSupported(rec.linkType)) this.nonIp++;
      else this.unsupportedLink++;
      return;
    }
    let data: Buffer = rec.buf.subarray(l3.offset, l3.offset + l3.length);
    const whole = this.defrag.offer(data, 0, data.length, l3.family, ts);
    if (whole === null) return;
    if (whole) data = whole;
    this.decide(data, ts);
  }

  /** One whole L3 packet at time `ts`. */
  decide(data: Buffer, ts: number): void {
    const p = this.pkt;
    p.decoded = decode(data);
    p.data = data;
    // Every packet is handed in as entering through interface 1: the policy of a new session
    // (whose first packet defines the original direction) sees 1 -> 2, and a reply gets the
    // mirror pair, as if it had entered through interface 2.
    const d = this.engine.handlePacket(p, ts);
    this.decided++;
    this.verdictReasons.set(d.reason, (this.verdictReasons.get(d.reason) ?? 0) + 1);
    if (d.effects.length) this.apply(d.effects);
  }

  private apply(effects: Effect[]): void {
    for (const e of effects) {
      if (e.kind === 'offload') this.engine.offloadResult(e.serial, true);
      else if (e.kind === 'session-end') this.ended[e.reason] = (this.ended[e.reason] ?? 0) + 1;
      else if (e.kind === 'expect-add') {
        const log = this.expectationLog;
        log.set(e.expectation.id, { x: e.expectation });
        if (log.size > EXPECTATION_LOG) log.delete(log.keys().next().value!);
      } else if (e.kind === 'expect-end') {
        const l = this.expectationLog.get(e.expectation.id);
        if (l) l.end = { reason: e.reason, at: e.at, ...(e.child !== undefined ? { child: e.child } : {}) };
      }
    }
  }

  /** Reads the files (merged by timestamp when there are several) up to `stopAt`. */
  run(files: string[], stopAt = Infinity, chunkSize?: number): ReplayStats['files'] {
    const readers = files.map((f) => new PcapFileReader(f, chunkSize));
    const info = files.map((path) => ({ path, format: '', link_types: new Set<string>(), packets: 0, bytes: 0, truncated: false }));
    try {
      if (readers.length === 1) {
        const r = readers[0];
        const i0 = info[0];
        let lastLink = -1;
        for (let rec = r.next(); rec; rec = r.next()) {
          if (rec.tsMs > stopAt) break;
          if (rec.linkType !== lastLink) { lastLink = rec.linkType; i0.link_types.add(LINK_NAMES[lastLink] ?? String(lastLink)); }
          i0.packets++;
          this.feed(rec);
        }
      } else {
        const heads = readers.map((r) => r.next());
        for (;;) {
          let best = -1;
          for (let i = 0; i < heads.length; i++) {
            const h = heads[i];
            if (h && (best < 0 || h.tsMs < heads[best]!.tsMs)) best = i;
          }
          if (best < 0) break;
          const rec = heads[best]!;
          if (rec.tsMs > stopAt) break;
          info[best].link_types.add(LINK_NAMES[rec.linkType] ?? String(rec.linkType));
          info[best].packets++;
          this.feed(rec);
          heads[best] = readers[best].next();
        }
      }
    } finally {
      readers.forEach((r, i) => {
        info[i].format = r.parser.format ?? '';
        info[i].bytes = r.bytesRead;
        info[i].truncated = r.parser.truncated;
        r.close();
      });
    }
    return info.map((x) => ({ ...x, link_types: [...x.link_types] }));
  }

  /** The report at time `now` (runs the timers up to it first). */
  report(now: number, files: ReplayStats['files'] = []): ReplayReport {
    if (Number.isFinite(now)) {
      this.advance(now);
      // The last tick may have been earlier within the same second: timers due by `now` run too.
      this.apply(this.engine.tick(now));
    }
    const e = this.engine;
    const sessions: SessionView[] = [];
    // No router here: `gwy=` keeps its placeholder; `use=` is counted in the replayed table.
    for (const s of e.sessions()) sessions.push(viewOf(s, now, e.config.offload, 1, e));
    sessions.sort((a, b) => a.serial - b.serial);
    const xt = expectationTable(e);
    const reasons: Record<string, number> = {};
    for (const [k, v] of [...this.verdictReasons].sort((a, b) => b[1] - a[1])) reasons[k] = v;
    return {
      replay: {
        files,
        packets: this.packets,
        decided: this.decided,
        non_ip: this.nonIp,
        unsupported_link: this.unsupportedLink,
        defrag: { ...this.defrag.counters, incomplete: this.defrag.counters.incomplete + this.heldFragments() },
        first_ts: this.firstTs,
        last_ts: this.lastTs,
        at: now,
        ticks: this.ticks,
        sessions_created: e.counters.sessionsCreated,
        sessions_ended: { ...this.ended },
        interfaces: { ...this.ifnames },
      },
      sessions,
      total: sessions.length,
      expectations: xt ? [...xt.all()].map((x) => expectationView(x, now)).sort((a, b) => a.id - b.id) : [],
      expectation_uses: xt?.uses ? xt.uses.map((u) => ({ expectation: expectationView(u.expectation, u.at), child: u.child, at: u.at })) : [],
      expectations_created: [...this.expectationLog.values()].map((l) => ({ expectation: expectationView(l.x, l.x.createdAt), ...(l.end ? { end: { ...l.end } } : {}) })),
      refusals: xt?.refusals ? xt.refusals.map((r) => ({ ...r })) : [],
      ...(xt?.counters ? { expectation_counters: JSON.parse(JSON.stringify(xt.counters)) as NonNullable<ReplayReport['expectation_counters']> } : {}),
      accounting: proxyWorkerOf(e, Number.isFinite(this.firstTs) ? Math.max(0, (now - this.firstTs) / 1000) : 0),
      verdicts: { accept: e.counters.accepted, drop: e.counters.dropped, reasons },
      stat: statOf(e, now),
    };
  }

  /** Fragments still waiting at the end never completed: the report counts them as incomplete. */
  private heldFragments(): number {
    return this.defrag.heldFragments();
  }
}

/** Replays files and builds the report (the `nfsessiond replay` command). */
export function replayFiles(opts: ReplayOptions): ReplayReport {
  const r = new Replayer(opts.config, { org: opts.orgIf, reply: opts.replyIf });
  const files = r.run(opts.files, opts.atMs ?? Infinity, opts.chunkSize);
  let at = opts.atMs ?? r.lastTs;
  if (opts.afterEndMs !== undefined) at = (Number.isFinite(r.lastTs) ? r.lastTs : 0) + opts.afterEndMs;
  if (!Number.isFinite(at)) at = 0;
  return r.report(at, files);
}

/** `--at`: end | +SECONDS (after the last packet) | epoch seconds | an ISO-8601 date. */
export function parseAt(text: string | undefined): { atMs?: number; afterEndMs?: number } {
  if (text === undefined || text === 'end') return {};
  const plus = /^\+(\d+(?:\.\d+)?)s?$/.exec(text);
  if (plus) return { afterEndMs: Number(plus[1]) * 1000 };
  if (/^\d+(\.\d+)?$/.test(text)) return { atMs: Number(text) * 1000 };
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`--at ${text}: expected 'end', '+SECONDS' (after the last packet), epoch seconds or an ISO-8601 time`);
  return { atMs: t };
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');
const PROTO: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmp6', 132: 'sctp' };

const ep = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

export function formatExpectation(x: ExpectationView): string {
  return `expectation: id=${x.id} helper=${x.helper} kind=${x.kind} proto=${x.proto}(${PROTO[x.proto] ?? x.proto}) ${ep(x.src, x.sport)}->${ep(x.dst, x.dport)} ` +
    `parent=${hex8(x.parent)} serial=${hex8(x.serial)} policy_id=${x.policy_id} vd=${x.vd} expire=${x.expire}${x.tracks_parent ? ' (tracks parent)' : ''}`;
}

const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : '-');

/** The text report as one string (see writeReplayReport). */
export function formatReplayReport(r: ReplayReport): string {
  const parts: string[] = [];
  writeReplayReport(r, (t) => parts.push(t));
  return parts.join('');
}

/**
 * The text report: the same sections as --json, in the daemon's view layouts where there is
 * one. Written piece by piece (a session at a time) so a large table is never one string.
 */
export function writeReplayReport(r: ReplayReport, write: (text: string) => void): void {
  const out: string[] = [];
  const flush = () => { if (out.length) write(`${out.join('\n')}\n`); out.length = 0; };
  write('=== sessions (diagnose sys session list)\n');
  for (const v of r.sessions) write(`${formatSession(v)}\n\n`);
  out.push(`total session: ${r.sessions.length}`);
  out.push('', '=== expectations');
  for (const x of r.expectations) out.push(formatExpectation(x));
  out.push(`total expectation: ${r.expectations.length}`);
  out.push('', '=== expectations used (expectation -> child session)');
  for (const u of r.expectation_uses) out.push(`${formatExpectation(u.expectation)} -> child=${hex8(u.child)} at=${iso(u.at)}`);
  out.push(`total used: ${r.expectation_uses.length}`);
  out.push('', '=== expectations created (and how each ended)');
  for (const c of r.expectations_created) {
    const end = c.end ? `ended=${c.end.reason}${c.end.child !== undefined ? ` child=${hex8(c.end.child)}` : ''} at=${iso(c.end.at)}` : 'open';
    out.push(`${formatExpectation(c.expectation)} created=${iso(c.expectation.created)} ${end}`);
  }
  out.push(`total created: ${r.expectations_created.length}`);
  out.push('', '=== refused expectations');
  for (const x of r.refusals) out.push(`refused: helper=${x.helper} parent=${hex8(x.parent)} reason=${x.reason} at=${iso(x.at)} ${x.detail}`);
  out.push(`total refused: ${r.refusals.length}`);
  out.push('', '=== per-service accounting (diagnose test proxyworker 4)');
  out.push(formatProxyWorker(r.accounting).trimEnd());
  out.push('', '=== verdicts');
  out.push(`accept=${r.verdicts.accept} drop=${r.verdicts.drop}`);
  for (const [k, v] of Object.entries(r.verdicts.reasons)) out.push(`  ${k}: ${v}`);
  out.push('', '=== session stat (diagnose sys session stat)');
  out.push(formatStat(r.stat).trimEnd());
  const s = r.replay;
  out.push('', '=== replay');
  for (const f of s.files) out.push(`file ${f.path}: ${f.format} ${f.link_types.join(',') || '-'} packets=${f.packets} bytes=${f.bytes}${f.truncated ? ' (truncated)' : ''}`);
  out.push(`packets=${s.packets} decided=${s.decided} non_ip=${s.non_ip} unsupported_link=${s.unsupported_link}`);
  out.push(`fragments=${s.defrag.fragments} reassembled=${s.defrag.reassembled} incomplete=${s.defrag.incomplete} overlaps=${s.defrag.overlaps}`);
  out.push(`first=${iso(s.first_ts)} last=${iso(s.last_ts)} at=${iso(s.at)} ticks=${s.ticks}`);
  out.push(`sessions created=${s.sessions_created} ended=${Object.entries(s.sessions_ended).map(([k, v]) => `${k}:${v}`).join(',') || '0'}`);
  out.push(`interfaces: ${ORG_IF}=${s.interfaces.org} (original direction) ${REPLY_IF}=${s.interfaces.reply} (replies)`);
  flush();
}

/** The report as one JSON document, written a session at a time. */
export function writeReplayJson(r: ReplayReport, write: (text: string) => void): void {
  const { sessions, ...rest } = r;
  write(`{"replay":${JSON.stringify(rest.replay)},\n"sessions":[`);
  sessions.forEach((v, i) => write(`${i ? ',' : ''}\n${JSON.stringify(v)}`));
  write('\n]');
  for (const [k, v] of Object.entries(rest)) if (k !== 'replay') write(`,\n${JSON.stringify(k)}:${JSON.stringify(v)}`);
  write('\n}\n');
}

/** A write function that batches into 64 KiB blocks on a file descriptor (flush() at the end). */
export function fdWriter(fd: number): { write: (text: string) => void; flush: () => void } {
  let buf: string[] = [];
  let n = 0;
  const flush = () => {
    if (!n) return;
    const b = Buffer.from(buf.join(''));
    let off = 0;
    while (off < b.length) {
      try {
        off += writeSync(fd, b, off, b.length - off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      }
    }
    buf = [];
    n = 0;
  };
  return { write: (t: string) => { buf.push(t); n += t.length; if (n >= 65536) flush(); }, flush };
}

export type { Session };
