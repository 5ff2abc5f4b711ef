// The session table and the decision for each queued packet. No I/O, no clock: the caller passes
// `now` (ms) and carries out the returned effects, so live mode, replay and tests drive the same code.

import { IPPROTO_TCP, IPPROTO_UDP, type FlowTuple } from '../packet/types.js';
import { ttlFor, vdomSettings, type EngineConfig } from './engine-config.js';
import { Admission } from './admission.js';
import { ExpiryQueue } from './expiry-queue.js';
import { flowKey, reverseTuple, sameTuple } from './flow-key.js';
import { tcpAdvance, tcpFromKernel, tcpInitial, tcpPhase } from './tcp-state.js';
import type {
  Decision, Direction, Effect, KernelFlowReport, Packet, Session, SessionEndReason,
} from './types.js';

interface Slot { session: Session; dir: Direction }

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
  /** Sessions deleted by an operator (diagnose sys session clear). */
  deleted: number;
  /** Times a filtered clear ran. */
  flushes: number;
}

function newCounters(): EngineCounters {
  return {
    packets: 0, accepted: 0, dropped: 0, malformed: {}, fragments: 0, sessionsCreated: 0,
    sessionsEnded: { ttl: 0, 'tcp-close': 0, 'kernel-destroy': 0, 'kernel-gone': 0, clear: 0, replaced: 0 },
    policyDenied: 0, tcpWithoutSyn: 0, icmpErrorsRelated: 0, icmpErrorsUnrelated: 0, tableFull: 0,
    clash: 0, offloadRequests: 0, offloadFailures: 0, deleted: 0, flushes: 0,
  };
}

const RATE_WINDOW_MS = 1000;

export class SessionEngine {
  private readonly table = new Map<string, Slot>();
  private readonly bySerial = new Map<number, Session>();
  private readonly expiry = new ExpiryQueue<Session>();
  private nextSerial = 1;
  readonly counters: EngineCounters = newCounters();
  /** Limits, users, conserve mode / fail-open and per-service accounting (admission.ts). */
  readonly admission = new Admission(() => this.config);
  /** Session creations per whole second, for setup_rate. */
  private setupWindow = { second: 0, count: 0, last: 0 };

  constructor(public config: EngineConfig) {}

  get size(): number { return this.bySerial.size; }

  sessions(): IterableIterator<Session> { return this.bySerial.values(); }

  bySerialNumber(serial: number): Session | undefined { return this.bySerial.get(serial); }

  lookup(t: FlowTuple): { session: Session; dir: Direction } | undefined {
    const s = this.table.get(flowKey(t));
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

    const slot = this.table.get(flowKey(pkt.tuple));
    if (slot) {
      const s = slot.session;
      // A new SYN on the tuple of a finished TCP session is a new connection reusing the ports.
      if (pkt.tuple.proto === IPPROTO_TCP && slot.dir === 'org' && tcpInitial(pkt.tcpFlags) &&
          (tcpPhase(s.state) === 'time-wait' || tcpPhase(s.state) === 'closed')) {
        const effects = this.end(s, 'replaced', now, true);
        const d = this.create(p, now);
        d.effects.unshift(...effects);
        return d;
      }
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
    const slot = this.table.get(flowKey(quoted));
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
    // The policy comes first: it names the VDOM whose settings apply to everything below.
    const pol = this.config.policy(t, p.indev, p.outdev, pkt.icmpType);
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
    const gate = this.admission.admit(t, pol, this.bySerial.size, now);
    if (!gate.track) {
      if (gate.cause === 'table-full') this.counters.tableFull++;
      return gate.decision;
    }
    const ttl = pol.sessionTtl ? { ...ttlFor(this.config, t, pol.vd), timeout: pol.sessionTtl, fromRule: true } : ttlFor(this.config, t, pol.vd);
    const s: Session = {
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
      org: { bytes: pkt.length, packets: 1, allowErr: 0 },
      rep: { bytes: 0, packets: 0, allowErr: 0 },
      devOrg: [p.indev, p.outdev],
      devReply: [0, 0],
      offloaded: false,
      offloadPending: false,
      rate: { at: now, orgBytes: pkt.length, replyBytes: 0, txBps: 0, rxBps: 0 },
      logTraffic: pol.logTraffic,
    };
    this.setTimer(s, now);
    this.insert(s);
    this.admission.track(s, now);
    this.counters.sessionsCreated++;
    this.countSetup(now);
    return { verdict: 'accept', reason: `allowed:${pol.policyId}`, session: s, dir: 'org', effects: [{ kind: 'session-start', session: s }] };
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
    s.expireAt = now + timeout * 1000;
    if (this.bySerial.get(s.serial) === s) this.expiry.schedule(s);
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

  private insert(s: Session): void {
    const ko = flowKey(s.orig);
    const kr = flowKey(s.reply);
    const old = this.table.get(ko) ?? this.table.get(kr);
    if (old) {
      // Two sessions cannot own one tuple: the newer one wins, as the vendor's clash counter describes.
      this.counters.clash++;
      this.remove(old.session, s.createdAt);
    }
    this.table.set(ko, { session: s, dir: 'org' });
    this.table.set(kr, { session: s, dir: 'reply' });
    this.bySerial.set(s.serial, s);
    this.expiry.schedule(s);
  }

  private remove(s: Session, now: number): void {
    this.admission.release(s, now);
    for (const t of [s.orig, s.reply]) {
      const k = flowKey(t);
      if (this.table.get(k)?.session === s) this.table.delete(k);
    }
    this.bySerial.delete(s.serial);
  }

  private end(s: Session, reason: SessionEndReason, now: number, kernelDelete: boolean): Effect[] {
    this.remove(s, now);
    this.counters.sessionsEnded[reason]++;
    const effects: Effect[] = [];
    if (kernelDelete) effects.push({ kind: 'ct-delete', serial: s.serial, orig: s.orig });
    effects.push({ kind: 'session-end', session: s, reason, at: now });
    effects.push(...this.admission.settle(now, this.bySerial.size));
    return effects;
  }

  /** A memory use sample (percent of RAM), for conserve mode; the daemon samples it on a timer. */
  observeMemory(percent: number, now: number): Effect[] {
    return this.admission.observeMemory(percent, now);
  }

  /** Ends the sessions whose timer ran out; their kernel entries are deleted too. */
  tick(now: number): Effect[] {
    const effects: Effect[] = [];
    effects.push(...this.admission.tick(now, this.bySerial.size));
    for (const s of this.expiry.popExpired(now, (x) => this.bySerial.get(x.serial) === x)) {
      const closed = s.orig.proto === IPPROTO_TCP && tcpPhase(s.state) !== 'established' && tcpPhase(s.state) !== 'opening';
      effects.push(...this.end(s, closed ? 'tcp-close' : 'ttl', now, true));
    }
    return effects;
  }

  /** The kernel confirmed (or refused) the offload the engine asked for. */
  offloadResult(serial: number, ok: boolean): void {
    const s = this.bySerial.get(serial);
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
    const slot = this.table.get(flowKey(r.orig));
    if (!slot || slot.dir !== 'org') {
      if (!slot && r.event === 'destroy') this.admission.forgetBypass(r.orig);
      return [];
    }
    const s = slot.session;
    if (!sameTuple(r.reply, s.reply)) this.learnNat(s, r);
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

  private learnNat(s: Session, r: KernelFlowReport): void {
    const rev = reverseTuple(s.orig);
    const nat: NonNullable<Session['nat']> = {};
    if (r.reply.dst !== rev.dst || r.reply.dport !== rev.dport) nat.snat = { addr: r.reply.dst, port: r.reply.dport };
    if (r.reply.src !== rev.src || r.reply.sport !== rev.sport) nat.dnat = { addr: r.reply.src, port: r.reply.sport };
    const oldKey = flowKey(s.reply);
    if (this.table.get(oldKey)?.session === s) this.table.delete(oldKey);
    s.reply = r.reply;
    s.nat = nat;
    this.table.set(flowKey(s.reply), { session: s, dir: 'reply' });
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
      const slot = this.table.get(flowKey(c.orig));
      if (slot && slot.dir === 'org') present.add(slot.session.serial);
      effects.push(...this.kernelReport({ ...c, event: 'dump' }, now));
    }
    for (const s of [...this.bySerial.values()]) {
      if (!s.offloaded) continue;
      if (present.has(s.serial)) s.kernelMisses = 0;
      else if ((s.kernelMisses = (s.kernelMisses ?? 0) + 1) >= 2) effects.push(...this.end(s, 'kernel-gone', now, false));
    }
    return effects;
  }

  /** Operator clear: ends the matching sessions and deletes their kernel entries. */
  clear(match: (s: Session) => boolean, now: number): Effect[] {
    const effects: Effect[] = [];
    for (const s of [...this.bySerial.values()]) {
      if (!match(s)) continue;
      this.counters.deleted++;
      effects.push(...this.end(s, 'clear', now, true));
    }
    this.counters.flushes++;
    return effects;
  }
}
