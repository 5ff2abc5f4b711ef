// The session table and the decision for each queued packet. No I/O, no clock: the caller passes
// `now` (ms) and carries out the returned effects, so live mode, replay and tests drive the same code.

import { IPPROTO_TCP, IPPROTO_UDP, TCP_SYN, type FlowTuple } from '../packet/types.js';
import type { ControlView, HelperResult, SessionHelper } from '../helpers/types.js';
import { newStream, streamFeed, type StreamState } from '../helpers/stream.js';
import { ExpectationTable, type Expectation, type ExpectationEndReason } from './expectations.js';
import { ttlFor, vdomSettings, type EngineConfig } from './engine-config.js';
import { Admission } from './admission.js';
import { adaptiveFactor, scaledExpiry } from './adaptive.js';
import { vdomLimit } from './limits.js';
import { reverseTuple, sameTuple } from './flow-key.js';
import { SessionTable } from './session-table.js';
import { tcpAdvance, tcpFromKernel, tcpInitial, tcpPhase } from './tcp-state.js';
import { kernelStateTimeout, verdictMark, type KernelReading } from './kernel-cache.js';
import type {
  Decision, Direction, Effect, KernelFlowReport, Packet, PolicyMatch, Session, SessionEndReason,
} from './types.js';

/**
 * The table as plain data, written on shutdown and read on start (src/state/snapshot.ts), so a
 * restart keeps sessions with their serials, policy ids, timers and counters, the pending
 * expectations and each helper's parser state. Times are absolute (ms since the epoch).
 */
export interface EngineSnapshot {
  version: 1;
  savedAt: number;
  nextSerial: number;
  sessions: Session[];
  expectations: Expectation[];
  helpers: Array<{ serial: number; helper: string; state: unknown }>;
}

/** What restore() did, for the start-up log. */
export interface RestoreReport { sessions: number; expectations: number; expiredSessions: number; expiredExpectations: number; helpersMissing: number }

/** A helper attached to a session, with its parser state and the two reassembled streams. */
export interface HelperSlot {
  helper: SessionHelper<unknown>;
  state: unknown;
  streams: [StreamState, StreamState];
}

export interface EngineCounters {
  packets: number;
  accepted: number;
  dropped: number;
  malformed: Record<string, number>;
  fragments: number;
  sessionsCreated: number;
  sessionsEnded: Record<SessionEndReason, number>;
  policyDenied: number;
  tcpWithoutSyn: number;
  icmpErrorsRelated: number;
  icmpErrorsUnrelated: number;
  tableFull: number;
  clash: number;
  offloadRequests: number;
  offloadFailures: number;
  /** Packets a helper could not parse because it threw (a bug; the packet is still decided). */
  helperErrors: number;
  /** Sessions deleted by an operator (diagnose sys session clear). */
  deleted: number;
  /** Times a filtered clear ran. */
  flushes: number;
  /** Sessions ended by an adaptive (scaled-down) timer before their own would have run out. */
  adaptiveExpired: number;
}

/** One session limit under adaptive timeouts: the global one, or a VDOM's. */
export interface AdaptiveLimit { limit: 'global' | 'vdom'; vd?: number; sessions: number; max: number; factor: number }

function newCounters(): EngineCounters {
  return {
    packets: 0, accepted: 0, dropped: 0, malformed: {}, fragments: 0, sessionsCreated: 0,
    sessionsEnded: { ttl: 0, 'tcp-close': 0, 'kernel-destroy': 0, 'kernel-gone': 0, clear: 0, replaced: 0, 'parent-closed': 0 },
    policyDenied: 0, tcpWithoutSyn: 0, icmpErrorsRelated: 0, icmpErrorsUnrelated: 0, tableFull: 0,
    clash: 0, offloadRequests: 0, offloadFailures: 0, helperErrors: 0, deleted: 0, flushes: 0,
    adaptiveExpired: 0,
  };
}

const RATE_WINDOW_MS = 1000;
/** How long an offloaded session whose timer ran out waits for the kernel's DESTROY before it is read. */
const DESTROY_GRACE_MS = 2000;
/** A SYN queued this soon after the session's first is the same connection's, still in flight. */
const SYN_IN_FLIGHT_MS = 1000;
/** Linux enum tcp_conntrack values of a closed connection. */
const KERNEL_TCP_TIME_WAIT = 7;
const KERNEL_TCP_CLOSE = 8;
/** A kernel entry created this long before a session is an older connection's. */
const STALE_ENTRY_MS = 1000;
/** A kernel reading that did not come back is asked for again after this long. */
const READ_RETRY_MS = 5000;

export class SessionEngine {
  private readonly table = new SessionTable();
  private nextSerial = 1;
  readonly counters: EngineCounters = newCounters();
  /** Limits, users, conserve mode / fail-open and per-service accounting (admission.ts). */
  readonly admission = new Admission(() => this.config);
  /** Session creations per whole second, for setup_rate. */
  private setupWindow = { second: 0, count: 0, last: 0 };
  /** Expectation sessions opened by helpers (seed 004). */
  readonly expectations = new ExpectationTable();
  /** Helper state by session serial. */
  private readonly helperSlots = new Map<number, HelperSlot>();

  constructor(public config: EngineConfig) {}

  get size(): number { return this.table.size; }

  sessions(): IterableIterator<Session> { return this.table.values(); }

  bySerialNumber(serial: number): Session | undefined { return this.table.get(serial); }

  helperSlot(serial: number): HelperSlot | undefined { return this.helperSlots.get(serial); }

  /** Serials of the sessions that expectations of this session became. */
  children(serial: number): number[] { return this.table.children(serial); }

  lookup(t: FlowTuple): { session: Session; dir: Direction } | undefined {
    const s = this.table.lookup(t);
    return s ? { session: s.session, dir: s.dir } : undefined;
  }

  /** Sessions created during the last complete second. */
  setupRate(now: number): number {
    const sec = Math.floor(now / 1000);
    if (sec === this.setupWindow.second) return this.setupWindow.last;
    return sec === this.setupWindow.second + 1 ? this.setupWindow.count : 0;
  }

  handlePacket(p: Packet, now: number): Decision {
    this.counters.packets++;
    const d = this.decide(p, now);
    if (d.verdict === 'accept') this.counters.accepted++;
    else this.counters.dropped++;
    return d;
  }

  private decide(p: Packet, now: number): Decision {
    const pkt = p.decoded;
    if (!pkt.ok) {
      this.counters.malformed[pkt.reason] = (this.counters.malformed[pkt.reason] ?? 0) + 1;
      return { verdict: this.config.malformedVerdict, reason: `malformed:${pkt.reason}`, effects: [] };
    }
    if (pkt.quoted) return this.icmpError(pkt.quoted, pkt.length, now);

    const slot = this.table.lookup(pkt.tuple);
    if (slot) {
      const s = slot.session;
      const kernelNew = s.kernelClass !== undefined && s.offloaded && this.kernelEntryIsNew(s, p, now);
      // A new SYN on the tuple of a session that is over is a new connection reusing the ports:
      // over by its own close, or by its kernel entry's end (the kernel made a new one). Two SYNs
      // queued before the first verdict are one connection (the kernel merges their entries).
      if (pkt.tuple.proto === IPPROTO_TCP && slot.dir === 'org' && tcpInitial(pkt.tcpFlags)) {
        const finished = tcpPhase(s.state) === 'time-wait' || tcpPhase(s.state) === 'closed';
        if (finished || (kernelNew && now - s.createdAt >= SYN_IN_FLIGHT_MS)) {
          // A new kernel entry is the new connection's: only an old one is deleted.
          const effects = this.end(s, 'replaced', now, !kernelNew);
          const d = this.create(p, now);
          d.effects.unshift(...effects);
          return d;
        }
      }
      if (kernelNew) return this.kernelForgot(s, slot.dir, p, now);
      return this.update(s, slot.dir, p, now);
    }
    const bypassed = this.admission.bypassPacket(pkt.tuple, now);
    if (bypassed) return bypassed;
    if (pkt.fragment) {
      // Conntrack reassembles before the forward hook, so a lone fragment here is not part of a
      // session we can name; let the kernel's own defragmentation and policy deal with it.
      this.counters.fragments++;
      return { verdict: 'accept', reason: 'fragment', effects: [] };
    }
    return this.create(p, now);
  }

  private icmpError(quoted: FlowTuple, length: number, now: number): Decision {
    const slot = this.table.lookup(quoted);
    if (!slot) {
      this.counters.icmpErrorsUnrelated++;
      return { verdict: this.config.unrelatedIcmpErrorVerdict, reason: 'icmp-error-unrelated', effects: [] };
    }
    this.counters.icmpErrorsRelated++;
    // The error travels against the quoted packet: it belongs to the session's other direction.
    const dir: Direction = slot.dir === 'org' ? 'reply' : 'org';
    const c = dir === 'org' ? slot.session.org : slot.session.rep;
    c.bytes += length;
    c.packets++;
    c.allowErr++;
    this.rate(slot.session, now);
    return { verdict: 'accept', reason: 'icmp-error-related', session: slot.session, dir, effects: [] };
  }

  private create(p: Packet, now: number): Decision {
    const pkt = p.decoded;
    if (!pkt.ok) throw new Error('unreachable');
    const t = pkt.tuple;
    // A connection a helper expected is a pinhole: it needs no policy and inherits its parent's.
    const exp = this.expectations.match(t);
    // Otherwise the policy comes first: it names the VDOM whose settings apply to everything below.
    const pol = exp ? this.inheritedPolicy(exp) : this.config.policy(t, p.indev, p.outdev, pkt.icmpType);
    if (pol.action === 'deny') {
      this.counters.policyDenied++;
      return { verdict: 'drop', reason: `policy-deny:${pol.policyId}`, effects: [] };
    }
    let state: [number, number] = [0, 0];
    if (t.proto === IPPROTO_TCP) {
      const init = tcpInitial(pkt.tcpFlags);
      if (!init) {
        if (!vdomSettings(this.config, pol.vd).tcpSessionWithoutSyn) {
          this.counters.tcpWithoutSyn++;
          return { verdict: 'drop', reason: 'tcp-without-syn', effects: [] };
        }
        state = [1, 1];
      } else state = init;
    }
    // Limits, users and conserve mode: refused, let through uninspected (fail-open), or tracked.
    const gate = this.admission.admit(t, pol, this.table.size, now);
    if (!gate.track) {
      if (gate.cause === 'table-full') this.counters.tableFull++;
      return gate.decision;
    }
    const s = this.newSession(t, pol, state, p.indev, p.outdev, pkt.length, now);
    this.enter(s, now);
    const effects: Effect[] = [{ kind: 'session-start', session: s }];
    if (exp) this.adopt(s, exp, now, effects);
    this.attachHelper(s, exp);
    if (s.helper) this.runHelper(s, 'org', p, now, effects);
    const mark = p.watched ? undefined : this.firstPacketOffload(s);
    if (mark !== undefined && p.ctId !== undefined) s.ctId = p.ctId;
    return { verdict: 'accept', reason: exp ? `expected:${exp.helper}` : `allowed:${pol.policyId}`, session: s, dir: 'org', effects, ...(mark ? { mark } : {}) };
  }

  /**
   * A packet of a session offloaded at its first packet is queued only when the kernel entry
   * lacks the offload mark: the kernel made a new entry (the queue says so with its ctinfo where
   * the kernel delivers it), unless the packet was queued with the first one, before its verdict.
   */
  private kernelEntryIsNew(s: Session, p: Packet, now: number): boolean {
    if (p.ctId !== undefined) return p.ctNew === true && p.ctId !== s.ctId;
    return now - s.createdAt >= SYN_IN_FLIGHT_MS;
  }

  /**
   * A packet of an offloaded session, not a new connection's SYN, reached the queue in a conntrack
   * entry the kernel has just created: the entry that carried the session is gone (ended by the
   * kernel, deleted by an operator). It continues the session: the verdict offloads the new entry
   * again.
   */
  private kernelForgot(s: Session, dir: Direction, p: Packet, now: number): Decision {
    const d = this.update(s, dir, p, now);
    const kc = this.config.kernelCache;
    const cls = kc?.classes.byIndex(s.kernelClass ?? 0);
    if (kc && cls && this.config.offload) {
      d.mark = verdictMark(kc.layout, cls, s.refreshDir);
      if (p.ctId !== undefined) s.ctId = p.ctId;
    }
    return d;
  }

  /**
   * Decides the offload at the first packet: a session no helper reads goes to the kernel with
   * its verdict, which names the timer class that keeps the kernel entry alive as long as the
   * session. No class (another protocol, or every class slot taken): it stays in userspace.
   */
  private firstPacketOffload(s: Session): number | undefined {
    const kc = this.config.kernelCache;
    if (!kc || !this.config.offload || s.helper) return undefined;
    const cls = kc.classes.classFor(s.orig.proto, s.ttl);
    if (!cls) return undefined;
    s.offloaded = true;
    s.kernelClass = cls.index;
    this.counters.offloadRequests++;
    if (s.orig.proto === IPPROTO_TCP) {
      // The kernel walks the handshake and the close, with this session's own timers, and reports
      // the end; the daemon's timer is the backstop at the TTL (a view or a reading learns the state).
      s.expireAt = s.createdAt + s.ttl * 1000;
      this.table.refile(s);
    }
    return verdictMark(kc.layout, cls, s.refreshDir);
  }

  /** A new session takes its place: timer, table, limits, counters. */
  private enter(s: Session, now: number): void {
    this.setTimer(s, now);
    this.insert(s);
    this.admission.track(s, now);
    this.counters.sessionsCreated++;
    this.countSetup(now);
  }

  private inheritedPolicy(exp: Expectation): PolicyMatch {
    const parent = this.table.get(exp.parent);
    return { policyId: exp.policyId, action: 'accept', logTraffic: parent?.logTraffic ?? true, vd: exp.vd };
  }

  private newSession(t: FlowTuple, pol: PolicyMatch, state: [number, number], indev: number, outdev: number, length: number, now: number): Session {
    const ttl = pol.sessionTtl ? { ...ttlFor(this.config, t, pol.vd), timeout: pol.sessionTtl, fromRule: true } : ttlFor(this.config, t, pol.vd);
    return {
      serial: this.nextSerial++,
      orig: t,
      reply: reverseTuple(t),
      policyId: pol.policyId,
      vd: pol.vd,
      state,
      createdAt: now,
      expireAt: now,
      timerAt: 0,
      timeout: ttl.timeout,
      ttl: ttl.timeout,
      ttlFromRule: ttl.fromRule,
      refreshDir: ttl.refreshDir,
      org: { bytes: length, packets: 1, allowErr: 0 },
      rep: { bytes: 0, packets: 0, allowErr: 0 },
      devOrg: [indev, outdev],
      devReply: [0, 0],
      offloaded: false,
      offloadPending: false,
      rate: { at: now, orgBytes: length, replyBytes: 0, txBps: 0, rxBps: 0 },
      logTraffic: pol.logTraffic,
    };
  }

  /** A new session is the connection an expectation waited for: link it and use the expectation up. */
  private adopt(s: Session, exp: Expectation, now: number, effects: Effect[]): void {
    s.parent = exp.parent;
    s.inheritedSerial = exp.serial;
    s.expected = { id: exp.id, helper: exp.helper, kind: exp.kind };
    this.table.linkChild(exp.parent, s.serial);
    this.endExpectation(exp, 'used', now, effects, s.serial);
    this.expectations.recordUse(exp, s.serial, now);
    // The other direction of the same media/data stream may have been expected too (SDP offers
    // and answers both open one): the new session already carries it.
    const back = this.expectations.match(s.reply);
    if (back && back.parent === exp.parent) this.endExpectation(back, 'used', now, effects, s.serial);
  }

  private attachHelper(s: Session, exp: Expectation | undefined): void {
    const h = exp?.childHelper ? this.config.helpers.byName(exp.childHelper) : this.config.helpers.lookup(s.orig.proto, s.orig.dport);
    if (!h) return;
    s.helper = h.name;
    let state: unknown;
    try {
      state = h.init(this.controlView(s));
    } catch {
      this.counters.helperErrors++;
      s.helper = undefined;
      return;
    }
    this.helperSlots.set(s.serial, { helper: h, state, streams: [newStream(), newStream()] });
  }

  private controlView(s: Session): ControlView { return { orig: s.orig, reply: s.reply }; }

  /** Feeds a packet's payload to the session's helper and turns what it asks for into expectations. */
  private runHelper(s: Session, dir: Direction, p: Packet, now: number, effects: Effect[]): void {
    const slot = this.helperSlots.get(s.serial);
    const pkt = p.decoded;
    if (!slot || !pkt.ok || !p.data) return;
    const payload = p.data.subarray(pkt.payloadOffset, pkt.payloadOffset + pkt.payloadLength);
    let chunks: Buffer[];
    if (s.orig.proto === IPPROTO_TCP) {
      const st = slot.streams[dir === 'org' ? 0 : 1];
      chunks = streamFeed(st, pkt.tcpSeq ?? 0, (pkt.tcpFlags & TCP_SYN) !== 0, payload, this.config.expectations.streamBuffer);
    } else {
      chunks = payload.length ? [payload] : [];
    }
    for (const c of chunks) {
      let r: HelperResult | undefined;
      try {
        r = slot.helper.data(slot.state, dir, c, this.controlView(s), this.config.helperOptions);
      } catch {
        this.counters.helperErrors++;
        continue;
      }
      if (r) this.helperResult(s, slot.helper.name, r, now, effects);
    }
  }

  private helperResult(s: Session, helper: string, r: HelperResult, now: number, effects: Effect[]): void {
    const refuse = (reason: string, detail: string) => {
      const refusal = { at: now, helper, parent: s.serial, reason, detail };
      this.expectations.refuse(refusal);
      effects.push({ kind: 'expect-refused', refusal });
    };
    for (const x of r.refuse ?? []) refuse(x.reason, x.detail);
    if (r.release?.length) {
      for (const x of this.expectations.ofParent(s.serial)) {
        if (x.tag !== undefined && r.release.includes(x.tag)) this.endExpectation(x, 'released', now, effects);
      }
    }
    const cfg = this.config.expectations;
    for (const q of r.expect ?? []) {
      const family = q.dst.includes(':') ? 6 : 4;
      if (family !== s.orig.family || (q.src !== '' && q.src.includes(':') !== (family === 6))) {
        refuse('malformed', `${q.kind} ${q.src} -> ${q.dst}:${q.dport}: address family differs from the control session`);
        continue;
      }
      const same = this.expectations.findSame(q);
      if (same) this.endExpectation(same, 'replaced', now, effects);
      if (this.expectations.countOfParent(s.serial) >= cfg.maxPerSession) {
        refuse('limit-per-session', `${q.kind} ${q.src} -> ${q.dst}:${q.dport}: session already holds ${cfg.maxPerSession} expectations`);
        continue;
      }
      if (this.expectations.size >= cfg.max) {
        refuse('limit-table', `${q.kind} ${q.src} -> ${q.dst}:${q.dport}: expectation table full (${cfg.max})`);
        continue;
      }
      const tracks = q.timeout === 0;
      const lifetime = tracks || q.timeout === undefined ? cfg.timeout : q.timeout;
      const x = this.expectations.add({
        parent: s.serial,
        serial: s.inheritedSerial ?? s.serial,
        policyId: s.policyId,
        vd: s.vd,
        helper,
        kind: q.kind,
        family,
        proto: q.proto,
        src: q.src,
        sport: q.sport,
        dst: q.dst,
        dport: q.dport,
        createdAt: now,
        expireAt: now + lifetime * 1000,
        tracksParent: tracks,
        lifetime,
        sessionTimeout: s.timeout,
        ...(q.childHelper ? { childHelper: q.childHelper } : {}),
        ...(q.tag !== undefined ? { tag: q.tag } : {}),
      });
      effects.push({ kind: 'expect-add', expectation: x });
    }
  }

  private endExpectation(x: Expectation, reason: ExpectationEndReason, now: number, effects: Effect[], child?: number): void {
    if (!this.expectations.remove(x, reason)) return;
    effects.push({ kind: 'expect-end', expectation: x, reason, at: now, ...(child !== undefined ? { child } : {}) });
  }

  private update(s: Session, dir: Direction, p: Packet, now: number): Decision {
    const pkt = p.decoded;
    if (!pkt.ok) throw new Error('unreachable');
    const c = dir === 'org' ? s.org : s.rep;
    c.bytes += pkt.length;
    c.packets++;
    if (dir === 'org') s.devOrg = [p.indev, p.outdev];
    else s.devReply = [p.indev, p.outdev];
    const effects: Effect[] = [];
    if (s.orig.proto === IPPROTO_TCP) {
      tcpAdvance(s.state, dir, pkt.tcpFlags);
    } else if (dir === 'reply' && s.state[1] === 0) {
      s.state[1] = 1;
      // The first reply ends the udp-idle phase: the session's own TTL applies from here.
      if (s.orig.proto === IPPROTO_UDP && !s.ttlFromRule) this.setTimer(s, now);
    }
    if (this.refreshes(s, dir)) this.setTimer(s, now);
    else if (s.orig.proto === IPPROTO_TCP && tcpPhase(s.state) !== 'established') this.setTimer(s, now);
    this.rate(s, now);
    if (s.helper) this.runHelper(s, dir, p, now, effects);
    if (this.config.offload && !s.offloaded && !s.offloadPending && !s.helper && this.established(s)) {
      s.offloadPending = true;
      this.counters.offloadRequests++;
      effects.push({ kind: 'offload', serial: s.serial, orig: s.orig, mark: this.config.offloadMark, kernelTimeout: this.config.kernelTimeout });
    }
    return { verdict: 'accept', reason: 'existing', session: s, dir, effects };
  }

  private established(s: Session): boolean {
    if (s.orig.proto === IPPROTO_TCP) return tcpPhase(s.state) === 'established';
    return s.state[1] === 1;
  }

  private refreshes(s: Session, dir: Direction): boolean {
    return s.refreshDir === 'both' || (s.refreshDir === 'outgoing') === (dir === 'org');
  }

  /** Sets timeout and expireAt from the session's state: TCP transitions use the global timers. */
  private setTimer(s: Session, now: number): void {
    this.setTimerFrom(s, now);
    if (this.table.holds(s)) this.table.file(s);
  }

  /** Computes timeout and expireAt counting from `base` (a refresh or state change), without filing. */
  private setTimerFrom(s: Session, base: number): void {
    let timeout = s.ttl;
    if (s.orig.proto === IPPROTO_UDP && s.state[1] === 0 && !s.ttlFromRule) {
      // A UDP flow nobody has answered yet is the cheapest table filler there is: it gets the
      // short udp-idle-timer until a reply arrives, unless a session-ttl entry names its port.
      timeout = Math.min(timeout, this.config.udpIdleTimer);
    } else if (s.orig.proto === IPPROTO_TCP) {
      switch (tcpPhase(s.state)) {
        case 'opening': timeout = this.config.tcpHalfOpenTimer; break;
        case 'closing': timeout = this.config.tcpHalfCloseTimer; break;
        case 'time-wait':
        case 'closed': timeout = this.config.tcpTimeWaitTimer; break;
        default: break;
      }
    }
    s.timeout = timeout;
    s.timerBase = base;
    s.expireAt = base + timeout * 1000;
  }

  private rate(s: Session, now: number): void {
    const r = s.rate;
    const dt = now - r.at;
    if (dt < RATE_WINDOW_MS) return;
    r.txBps = Math.round(((s.org.bytes - r.orgBytes) * 1000) / dt);
    r.rxBps = Math.round(((s.rep.bytes - r.replyBytes) * 1000) / dt);
    r.at = now;
    r.orgBytes = s.org.bytes;
    r.replyBytes = s.rep.bytes;
  }

  private countSetup(now: number): void {
    const sec = Math.floor(now / 1000);
    const w = this.setupWindow;
    if (sec !== w.second) {
      w.last = sec === w.second + 1 ? w.count : 0;
      w.second = sec;
      w.count = 0;
    }
    w.count++;
  }

  /** Puts a session in the table; one already holding its tuple gives way, as the vendor's clash counter describes. */
  private insert(s: Session): void {
    const old = this.table.insert(s);
    if (old) {
      this.counters.clash++;
      this.admission.release(old, s.createdAt);
    }
  }

  private end(s: Session, reason: SessionEndReason, now: number, kernelDelete: boolean): Effect[] {
    if (!this.table.holds(s)) return [];
    this.admission.release(s, now);
    this.table.remove(s);
    this.counters.sessionsEnded[reason]++;
    const effects: Effect[] = [];
    if (kernelDelete) effects.push({ kind: 'ct-delete', serial: s.serial, orig: s.orig });
    effects.push({ kind: 'session-end', session: s, reason, at: now });
    // Its expectations close with it (seed 004); its children only if configured.
    for (const x of this.expectations.ofParent(s.serial)) this.endExpectation(x, reason === 'clear' ? 'clear' : 'parent-closed', now, effects);
    this.helperSlots.delete(s.serial);
    this.table.unlinkChild(s);
    const kids = this.table.takeChildren(s.serial);
    if (kids && this.config.expectations.clearChildren) {
      for (const k of kids) {
        const c = this.table.get(k);
        if (c) effects.push(...this.end(c, 'parent-closed', now, true));
      }
    }
    effects.push(...this.admission.settle(now, this.table.size));
    return effects;
  }

  /** A memory use sample (percent of RAM), for conserve mode; the daemon samples it on a timer. */
  observeMemory(percent: number, now: number): Effect[] {
    return this.admission.observeMemory(percent, now);
  }

  /** Ends the sessions whose timer ran out; their kernel entries are deleted too. */
  tick(now: number): Effect[] {
    const effects: Effect[] = [];
    effects.push(...this.admission.tick(now, this.table.size));
    for (const x of this.expectations.expired(now)) this.endExpectation(x, 'timeout', now, effects);
    for (const s of this.table.popExpired(now)) {
      if (s.offloaded && this.config.kernelCache) {
        this.kernelTimerOut(s, now, effects);
        continue;
      }
      effects.push(...this.end(s, this.closed(s) ? 'tcp-close' : 'ttl', now, true));
    }
    this.adaptiveTick(now, effects);
    return effects;
  }

  /**
   * The adaptive-timeout factor of a session of VDOM `vd`: of the global session limit and the
   * VDOM's own, the one under more pressure (either can refuse its next session). 1 without a
   * limit or with adaptive-timeout-start 0.
   */
  adaptiveFactor(vd: number): number {
    return this.factorWithout(vd, 0, 0);
  }

  /** The factor with `all` sessions (`inVd` of them in `vd`) counted as gone already. */
  private factorWithout(vd: number, all: number, inVd: number): number {
    const L = this.config.limits;
    if (!(L.adaptiveStart > 0)) return 1;
    const g = adaptiveFactor(L.adaptiveStart, L.adaptiveEnd, this.table.size - all, this.config.maxSessions);
    const max = vdomLimit(L, vd).session;
    return max > 0 ? Math.min(g, adaptiveFactor(L.adaptiveStart, L.adaptiveEnd, this.admission.sessionsIn(vd) - inVd, max)) : g;
  }

  /** The session limits adaptive timeouts count against, with their use and factor (none when off). */
  adaptiveLimits(): AdaptiveLimit[] {
    const L = this.config.limits;
    if (!(L.adaptiveStart > 0)) return [];
    const out: AdaptiveLimit[] = [];
    const f = (n: number, max: number) => adaptiveFactor(L.adaptiveStart, L.adaptiveEnd, n, max);
    if (this.config.maxSessions > 0) out.push({ limit: 'global', sessions: this.table.size, max: this.config.maxSessions, factor: f(this.table.size, this.config.maxSessions) });
    L.vdom.forEach((v, vd) => {
      if (v && v.session > 0) out.push({ limit: 'vdom', vd, sessions: this.admission.sessionsIn(vd), max: v.session, factor: f(this.admission.sessionsIn(vd), v.session) });
    });
    return out;
  }

  /** When the session's time runs out with adaptive timeouts as they are now. */
  effectiveExpiry(s: Session): number {
    return scaledExpiry(s, this.adaptiveFactor(s.vd));
  }

  /**
   * Ends the sessions whose scaled timer ran out, the most idle first, asking for the factor again
   * after each: every session that leaves gives the next ones more time. The idle queue exists only
   * while some factor is below 1, so the packet path pays nothing for it otherwise; it is built
   * from the table when the pressure starts.
   */
  private adaptiveTick(now: number, effects: Effect[]): void {
    const scaling = this.adaptiveLimits().some((l) => l.factor < 1);
    this.table.setScaling(scaling);
    if (!scaling) return;
    // A session sent for a kernel reading counts as gone for the rest of this tick: most readings
    // of an idle session end it, and without this one full table would read every offloaded
    // session at once. One that proves active stays, and the next tick goes on from the table.
    let reading = 0;
    const readingIn: number[] = [];
    const factor = (x: Session) => this.factorWithout(x.vd, reading, readingIn[x.vd] ?? 0);
    for (let s = this.table.nextIdle(now, factor); s; s = this.table.nextIdle(now, factor)) {
      if (s.offloaded && this.config.kernelCache) {
        // Its packets since the last reading were the kernel's alone: the reading decides.
        this.kernelTimerOut(s, now, effects, true);
        reading++;
        readingIn[s.vd] = (readingIn[s.vd] ?? 0) + 1;
        continue;
      }
      this.counters.adaptiveExpired++;
      effects.push(...this.end(s, this.closed(s) ? 'tcp-close' : 'ttl', now, true));
    }
  }

  private closed(s: Session): boolean {
    return s.orig.proto === IPPROTO_TCP && tcpPhase(s.state) !== 'established' && tcpPhase(s.state) !== 'opening';
  }

  /**
   * The timer of an offloaded session ran out, but its packets since the last reading were seen
   * only by the kernel. A session refreshed by both directions has kernel timeouts equal to its
   * own, so the kernel's DESTROY normally arrives on its own: wait a grace for it. Otherwise, or
   * when the grace passes, ask for a reading (kernelReading decides). A timer scaled down by
   * adaptive timeouts runs out before the kernel's, which sends no DESTROY then: read at once.
   */
  private kernelTimerOut(s: Session, now: number, effects: Effect[], scaled = false): void {
    if (!scaled && !s.kernelWait && s.kernelClass !== undefined && s.refreshDir === 'both' && this.classMirrors(s)) {
      s.kernelWait = 1;
      s.expireAt = now + DESTROY_GRACE_MS;
    } else {
      s.kernelWait = scaled ? 3 : 2;
      s.expireAt = now + READ_RETRY_MS;
      effects.push({ kind: 'kernel-read', serial: s.serial, orig: s.orig, refreshSet: s.kernelClass !== undefined && s.refreshDir !== 'both' });
    }
    this.table.refile(s);
  }

  /** The kernel's timeout in the session's current state is exactly the session's own. */
  private classMirrors(s: Session): boolean {
    const cls = this.config.kernelCache?.classes.byIndex(s.kernelClass ?? 0);
    if (!cls || cls.ttl !== s.ttl) return false;
    // An unanswered UDP flow has the short idle timer here but the TTL in the kernel.
    return !(s.orig.proto === IPPROTO_UDP && s.state[1] === 0 && !s.ttlFromRule && this.config.udpIdleTimer < s.ttl);
  }

  /**
   * What the kernel says of an offloaded session (asked for by a kernel-read effect, or by a view
   * that needs fresh data): counters and TCP state are taken over, and the timer counts from the
   * last refresh the kernel saw: for sessions refreshed by both directions the entry's remaining
   * timeout tells it (its class mirrors the session's timers), for one direction the refresh-set
   * element's remaining time. A session whose time has run out ends and its entry is deleted.
   */
  kernelReading(serial: number, r: KernelReading, now: number): Effect[] {
    const s = this.table.get(serial);
    if (!s || !s.offloaded) return [];
    // A reading asked for because the session's timer ran out, not one a view asked for.
    const timedOut = !!s.kernelWait;
    const scaledOut = s.kernelWait === 3;
    s.kernelWait = 0;
    if (r.gone) return this.end(s, s.orig.proto === IPPROTO_TCP ? 'tcp-close' : 'kernel-gone', now, false);
    const kc = this.config.kernelCache;
    const cls = kc?.classes.byIndex(s.kernelClass ?? 0);
    if (!cls) {
      // Offloaded by a conntrack update (adopted at a restart, let through by fail-open): its kernel
      // timeouts are the kernel's own, so activity is told by the counters alone.
      const before = s.expireAt;
      this.kernelReport({ event: 'dump', orig: s.orig, reply: s.reply, ...(r.mark !== undefined ? { mark: r.mark } : {}), ...(r.tcpState !== undefined ? { tcpState: r.tcpState } : {}), ...(r.counters ? { counters: r.counters } : {}) }, now);
      // Unchanged counters since the timer ran out: no activity, the session is done. A view's
      // reading with unchanged counters says nothing of the timer.
      const idle = timedOut && s.expireAt === before;
      if (idle || this.effectiveExpiry(s) <= now) {
        if ((idle && scaledOut) || (!idle && s.expireAt > now)) this.counters.adaptiveExpired++;
        return this.end(s, this.closed(s) ? 'tcp-close' : 'ttl', now, true);
      }
      this.table.refile(s);
      return [];
    }
    if (r.counters) {
      const k = r.counters;
      if (k.origPackets > s.org.packets) { s.org.packets = k.origPackets; s.org.bytes = Math.max(s.org.bytes, k.origBytes); }
      if (k.replyPackets > s.rep.packets) { s.rep.packets = k.replyPackets; s.rep.bytes = Math.max(s.rep.bytes, k.replyBytes); }
      this.rate(s, now);
    }
    if (s.orig.proto === IPPROTO_TCP) {
      const st = r.tcpState !== undefined ? tcpFromKernel(r.tcpState) : undefined;
      if (st) s.state = st;
    } else if (r.seenReply || s.rep.packets > 0) s.state[1] = 1;
    const known = s.timerBase ?? s.createdAt;
    // The last packet in either direction, from the entry's remaining timeout.
    const lastAny = r.timeout !== undefined ? now - (kernelStateTimeout(cls, r.tcpState) - r.timeout) * 1000 : known;
    let last = lastAny;
    if (s.refreshDir !== 'both' && (s.orig.proto !== IPPROTO_TCP || tcpPhase(s.state) === 'established')) {
      last = r.refreshLeftMs === undefined || r.refreshLeftMs === null ? known : now - (kc!.refreshHold * 1000 - r.refreshLeftMs);
    }
    this.setTimerFrom(s, Math.min(now, Math.max(known, last)));
    // The last refresh the kernel saw counts with the scale in force: an idle session's reading
    // must not give it its unscaled lifetime back.
    if (this.effectiveExpiry(s) <= now) {
      if (s.expireAt > now) this.counters.adaptiveExpired++;
      return this.end(s, this.closed(s) ? 'tcp-close' : 'ttl', now, true);
    }
    this.table.refile(s);
    return [];
  }

  snapshot(now: number): EngineSnapshot {
    const helpers: EngineSnapshot['helpers'] = [];
    for (const [serial, slot] of this.helperSlots) helpers.push({ serial, helper: slot.helper.name, state: slot.state });
    return { version: 1, savedAt: now, nextSerial: this.nextSerial, sessions: [...this.table.values()], expectations: [...this.expectations.all()], helpers };
  }

  /**
   * Loads a snapshot into an empty table. Sessions and expectations whose time ran out while the
   * daemon was down are dropped (their kernel entries deleted); pending expectations come back as
   * expect-add effects so the shell re-opens their kernel pinholes. Helper streams restart at the
   * next segment: control packets that passed during the restart were not seen.
   */
  restore(snap: EngineSnapshot, now: number): { effects: Effect[]; report: RestoreReport } {
    const effects: Effect[] = [];
    const report: RestoreReport = { sessions: 0, expectations: 0, expiredSessions: 0, expiredExpectations: 0, helpersMissing: 0 };
    this.nextSerial = Math.max(this.nextSerial, snap.nextSerial);
    for (const s of snap.sessions) {
      if (this.table.has(s.serial)) continue;
      if (s.expireAt <= now) {
        report.expiredSessions++;
        this.counters.sessionsEnded.ttl++;
        effects.push({ kind: 'ct-delete', serial: s.serial, orig: s.orig }, { kind: 'session-end', session: s, reason: 'ttl', at: now });
        continue;
      }
      s.timerAt = 0;
      s.offloadPending = false;
      s.kernelWait = 0;
      // The ruleset was removed at the stop, and with it the timeout objects the kernel entries
      // named: they run on the kernel's own timeouts now, so their activity is told by counters.
      delete s.kernelClass;
      this.insert(s);
      this.admission.track(s, now);
      report.sessions++;
    }
    for (const s of this.table.values()) {
      if (s.parent !== undefined && this.table.has(s.parent)) this.table.linkChild(s.parent, s.serial);
    }
    for (const h of snap.helpers) {
      const helper = this.config.helpers.byName(h.helper);
      if (!this.table.has(h.serial)) continue;
      if (!helper) { report.helpersMissing++; continue; }
      this.helperSlots.set(h.serial, { helper, state: h.state, streams: [newStream(), newStream()] });
    }
    for (const x of snap.expectations) {
      if (!this.table.has(x.parent) || (!x.tracksParent && x.expireAt <= now)) { report.expiredExpectations++; continue; }
      this.expectations.restore(x);
      effects.push({ kind: 'expect-add', expectation: x });
      report.expectations++;
    }
    return { effects, report };
  }

  /**
   * After a restart, the kernel's table against ours: a session the kernel no longer has ended
   * while we were down; an entry we never knew (a connection made while no daemon decided) is
   * adopted as a session of policy 0 and offloaded, or deleted from the kernel ('expire').
   */
  reconcileRestart(conns: KernelFlowReport[], mode: 'adopt' | 'expire', now: number): { effects: Effect[]; ended: number; adopted: number; expired: number } {
    const effects: Effect[] = [];
    const present = new Set<number>();
    let adopted = 0;
    let expired = 0;
    for (const c of conns) {
      const slot = this.table.lookup(c.orig);
      if (slot) { present.add(slot.session.serial); continue; }
      if (this.expectations.match(c.orig)) continue;
      if (mode === 'expire') {
        expired++;
        effects.push({ kind: 'ct-delete', serial: 0, orig: c.orig });
        continue;
      }
      this.adoptKernelEntry(c, { policyId: 0, action: 'accept', logTraffic: false, vd: 0 }, 0, 0, now, effects);
      adopted++;
    }
    let ended = 0;
    for (const s of [...this.table.values()]) {
      if (present.has(s.serial) || s.createdAt >= now) continue;
      ended++;
      effects.push(...this.end(s, 'kernel-gone', now, false));
    }
    return { effects, ended, adopted, expired };
  }

  /** A kernel entry becomes a session of `pol`, offloaded (asked for, when it is not yet). */
  private adoptKernelEntry(c: KernelFlowReport, pol: PolicyMatch, indev: number, outdev: number, now: number, effects: Effect[]): Session {
    const state: [number, number] = c.orig.proto === IPPROTO_TCP ? (c.tcpState !== undefined ? tcpFromKernel(c.tcpState) ?? [1, 1] : [1, 1]) : [0, (c.counters?.replyPackets ?? 0) > 0 ? 1 : 0];
    const s = this.newSession(c.orig, pol, state, indev, outdev, c.counters?.origBytes ?? 0, now);
    s.org.packets = c.counters?.origPackets ?? 0;
    // Replies route back the way the original direction came.
    if (indev || outdev) s.devReply = [outdev, indev];
    this.enter(s, now);
    effects.push({ kind: 'session-start', session: s });
    effects.push(...this.kernelReport({ ...c, event: 'dump' }, now));
    if (this.config.offload && (c.mark === undefined || (c.mark & this.config.offloadMark) === 0)) {
      s.offloadPending = true;
      this.counters.offloadRequests++;
      effects.push({ kind: 'offload', serial: s.serial, orig: s.orig, mark: this.config.offloadMark, kernelTimeout: this.config.kernelTimeout });
    } else if (c.mark !== undefined && (c.mark & this.config.offloadMark) !== 0) s.offloaded = true;
    return s;
  }

  /**
   * A start with no table of ours (after a crash, or with the snapshot lost): kernel entries that
   * carry our offload mark were let through by an earlier run, and their packets skip the queue.
   * Each is decided again against the running policy, with the interfaces its addresses route
   * through (`route`): a policy that accepts it adopts it as its session; a deny (a policy changed
   * while the daemon was down, or the implicit one) deletes the entry, which cuts the flow.
   * Entries without the mark are not ours to judge: their next packet comes to the queue.
   */
  reconcileUnowned(conns: KernelFlowReport[], route: (addr: string) => number | undefined, now: number): { effects: Effect[]; adopted: number; cut: number } {
    const effects: Effect[] = [];
    let adopted = 0;
    let cut = 0;
    for (const c of conns) {
      if (c.mark === undefined || (c.mark & this.config.offloadMark) === 0) continue;
      if (this.table.lookup(c.orig) || this.expectations.match(c.orig)) continue;
      // A closed TCP connection (TIME_WAIT, CLOSE) carries nothing more: the kernel ends it.
      if (c.orig.proto === IPPROTO_TCP && (c.tcpState === KERNEL_TCP_TIME_WAIT || c.tcpState === KERNEL_TCP_CLOSE)) continue;
      const indev = route(c.orig.src) ?? 0;
      const outdev = route(c.orig.dst) ?? 0;
      const pol = this.config.policy(c.orig, indev, outdev, -1);
      if (pol.action === 'deny') {
        cut++;
        this.counters.policyDenied++;
        effects.push({ kind: 'ct-delete', serial: 0, orig: c.orig });
        continue;
      }
      this.adoptKernelEntry(c, pol, indev, outdev, now, effects);
      adopted++;
    }
    return { effects, adopted, cut };
  }

  /** The kernel confirmed (or refused) the offload the engine asked for. */
  offloadResult(serial: number, ok: boolean): void {
    const s = this.table.get(serial);
    if (!s) return;
    s.offloadPending = false;
    s.offloaded = ok;
    if (!ok) this.counters.offloadFailures++;
  }

  /**
   * What the kernel says about one of its conntrack entries. While a session is offloaded its
   * packets never reach us, so counters, per-direction activity (for refresh-direction) and the
   * TCP state come from here.
   */
  kernelReport(r: KernelFlowReport, now: number): Effect[] {
    const slot = this.table.lookup(r.orig);
    if (!slot && (r.event === 'new' || r.event === 'dump') && r.mark !== undefined && (r.mark & this.config.offloadMark) !== 0) {
      const exp = this.expectations.match(r.orig);
      if (exp) return this.childFromKernel(r, exp, now);
    }
    if (!slot || slot.dir !== 'org') {
      if (!slot && r.event === 'destroy') this.admission.forgetBypass(r.orig);
      return [];
    }
    const s = slot.session;
    if (!sameTuple(r.reply, s.reply)) this.learnNat(s, r);
    if (s.kernelClass !== undefined && this.config.kernelCache) {
      // An older entry of the same tuple (a connection that reused the ports) is not this session's.
      if (r.id !== undefined && s.ctId !== undefined && r.id !== s.ctId) return [];
      if (r.startMs !== undefined && r.startMs < s.createdAt - STALE_ENTRY_MS) return [];
      // The kernel mirrors this session's timers: activity is read when the timer runs out
      // (kernelReading), never guessed from counters, which count differently (ICMP errors).
      if (r.counters) {
        const k = r.counters;
        if (k.origPackets > s.org.packets) { s.org.packets = k.origPackets; s.org.bytes = Math.max(s.org.bytes, k.origBytes); }
        if (k.replyPackets > s.rep.packets) { s.rep.packets = k.replyPackets; s.rep.bytes = Math.max(s.rep.bytes, k.replyBytes); }
      }
      if (s.orig.proto === IPPROTO_TCP && r.tcpState !== undefined) s.state = tcpFromKernel(r.tcpState) ?? s.state;
      if (r.event === 'destroy') return this.end(s, s.orig.proto === IPPROTO_TCP ? 'tcp-close' : this.expiredByKernel(s, now) ? 'ttl' : 'kernel-destroy', now, false);
      return [];
    }
    if (r.counters) {
      const k = r.counters;
      const seen = s.kernelSeen ?? { orgPackets: 0, replyPackets: 0 };
      const orgActive = k.origPackets > seen.orgPackets && k.origPackets > s.org.packets;
      const replyActive = k.replyPackets > seen.replyPackets && k.replyPackets > s.rep.packets;
      s.kernelSeen = { orgPackets: k.origPackets, replyPackets: k.replyPackets };
      if (k.origPackets > s.org.packets) { s.org.packets = k.origPackets; s.org.bytes = Math.max(s.org.bytes, k.origBytes); }
      if (k.replyPackets > s.rep.packets) { s.rep.packets = k.replyPackets; s.rep.bytes = Math.max(s.rep.bytes, k.replyBytes); }
      if (replyActive && s.orig.proto !== IPPROTO_TCP) s.state[1] = 1;
      if ((orgActive && this.refreshes(s, 'org')) || (replyActive && this.refreshes(s, 'reply'))) this.setTimer(s, now);
      this.rate(s, now);
    }
    if (r.mark !== undefined && (r.mark & this.config.offloadMark) !== 0 && !s.offloaded) {
      s.offloaded = true;
      s.offloadPending = false;
    }
    if (s.orig.proto === IPPROTO_TCP && r.tcpState !== undefined && s.offloaded) {
      const st = tcpFromKernel(r.tcpState);
      if (st && (st[0] !== s.state[0] || st[1] !== s.state[1])) {
        s.state = st;
        this.setTimer(s, now);
      }
    }
    if (r.event === 'destroy') return this.end(s, s.orig.proto === IPPROTO_TCP ? 'tcp-close' : 'kernel-destroy', now, false);
    return [];
  }

  /** The kernel's DESTROY of a mirrored session came when its own timer was (about to be) out. */
  private expiredByKernel(s: Session, now: number): boolean {
    return s.expireAt - now <= DESTROY_GRACE_MS || s.kernelWait === 1;
  }

  /**
   * The kernel let a connection through one of our pinholes on its own (the nft set marked it
   * offloaded, so its packets never reach the queue): record it as the expectation's child.
   */
  private childFromKernel(r: KernelFlowReport, exp: Expectation, now: number): Effect[] {
    const pol = this.inheritedPolicy(exp);
    const gate = this.admission.admit(r.orig, pol, this.table.size, now);
    if (!gate.track) return [];
    const state: [number, number] = r.orig.proto === IPPROTO_TCP
      ? (r.tcpState !== undefined ? tcpFromKernel(r.tcpState) ?? [2, 0] : [2, 0])
      : [0, (r.counters?.replyPackets ?? 0) > 0 ? 1 : 0];
    const s = this.newSession(r.orig, pol, state, 0, 0, r.counters?.origBytes ?? 0, now);
    s.org.packets = r.counters?.origPackets ?? 1;
    s.offloaded = true;
    this.enter(s, now);
    const effects: Effect[] = [{ kind: 'session-start', session: s }];
    this.adopt(s, exp, now, effects);
    effects.push(...this.kernelReport({ ...r, event: 'update' }, now));
    return effects;
  }

  private learnNat(s: Session, r: KernelFlowReport): void {
    const rev = reverseTuple(s.orig);
    const nat: NonNullable<Session['nat']> = {};
    if (r.reply.dst !== rev.dst || r.reply.dport !== rev.dport) nat.snat = { addr: r.reply.dst, port: r.reply.dport };
    if (r.reply.src !== rev.src || r.reply.sport !== rev.sport) nat.dnat = { addr: r.reply.src, port: r.reply.sport };
    this.table.setReply(s, r.reply);
    s.nat = nat;
  }

  /**
   * A full dump of the kernel table: offloaded sessions whose entry is gone ended without us
   * hearing the DESTROY (an event overrun), so they end here. A dump can miss entries when the
   * table changes under it, so a session ends only when two dumps in a row lack it.
   */
  reconcileDump(conns: KernelFlowReport[], now: number): Effect[] {
    const present = new Set<number>();
    const effects: Effect[] = [];
    for (const c of conns) {
      const slot = this.table.lookup(c.orig);
      if (slot && slot.dir === 'org') present.add(slot.session.serial);
      effects.push(...this.kernelReport({ ...c, event: 'dump' }, now));
    }
    for (const s of [...this.table.values()]) {
      if (!s.offloaded) continue;
      if (present.has(s.serial)) s.kernelMisses = 0;
      else if ((s.kernelMisses = (s.kernelMisses ?? 0) + 1) >= 2) effects.push(...this.end(s, 'kernel-gone', now, false));
    }
    return effects;
  }

  /** Operator clear: ends the matching sessions and deletes their kernel entries. */
  clear(match: (s: Session) => boolean, now: number): Effect[] {
    const effects: Effect[] = [];
    for (const s of [...this.table.values()]) {
      if (!match(s)) continue;
      this.counters.deleted++;
      effects.push(...this.end(s, 'clear', now, true));
    }
    this.counters.flushes++;
    return effects;
  }
}
