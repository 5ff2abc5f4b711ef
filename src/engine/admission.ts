// The admission step of a new session, after its policy accepted it: session limits (global with
// per-VDOM guarantees, per VDOM), user limits (global, per VDOM), conserve mode and fail-open.
// Pure like the engine: time comes in, effects go out.
//
// What a new session gets (seed 000):
//   memory extreme                         -> dropped, whatever the fail-open settings (the
//                                             vendor's kernel threshold; counted as memory_tension_drop)
//   a limit full, or memory red (conserve) -> av-failopen-session disable: refused (dropped)
//                                             av-failopen off:      refused; existing sessions go on
//                                             av-failopen pass:     let through uninspected; new
//                                                                   sessions are tracked again as soon
//                                                                   as there is room / memory is green
//                                             av-failopen one-shot: let through uninspected, and every
//                                                                   later one too, until the operator
//                                                                   resets it (or the config changes)
//   otherwise, one-shot latched            -> let through uninspected
//   otherwise                              -> tracked
//
// "Uninspected" here: the packet is accepted but no session enters the table (it does not count
// against any limit, it has no timers, it is not listed). The flow is remembered in a small
// bypass set so that its later packets (the SYN/ACK, the ACK: they would otherwise look like a
// TCP session without SYN) are accepted too, and each of them asks the kernel to mark the
// conntrack entry offloaded, so once the entry exists the kernel carries the flow alone and it
// stops coming to userspace. A bypass entry is forgotten when the kernel reports the entry gone or
// after bypassIdleTimeout seconds without a queued packet (it is offloaded by then), or, when a
// flood lets new flows through faster than they go idle, once the set holds as many flows as the
// table may hold sessions: the flow with the oldest activity is forgotten first. Its kernel entry
// was asked to be offloaded at its first packet, so forgetting it early costs at most a later
// packet that still came to userspace being judged as a flow of its own.

import { flowKey, reverseTuple } from './flow-key.js';
import { ttlFor, type EngineConfig } from './engine-config.js';
import { ServiceAccounting } from './accounting.js';
import { ConserveState, type ConserveChange, type FullLimit, type MemoryLevel } from './conserve.js';
import { globalRoom, SERVICES, vdomLimit, type FailopenMode, type ServiceName } from './limits.js';
import { UserTable } from './users.js';
import { ActivityList, type Linked } from './activity-list.js';
import type { Decision, Effect, FlowTuple, PolicyMatch, Session } from './types.js';

export type AdmitCause = 'table-full' | 'vdom-session-limit' | 'user-limit' | 'vdom-user-limit' | 'memory-red' | 'memory-extreme' | 'one-shot-latched';

export type AdmitResult = { track: true } | { track: false; cause: AdmitCause; decision: Decision };

interface BypassEntry extends Linked<BypassEntry> {
  orig: FlowTuple;
  keys: [string, string];
  vd: number;
  mode: FailopenMode;
  cause: AdmitCause;
  createdAt: number;
  lastSeen: number;
  packets: number;
}

export interface AdmissionCounters {
  /** New sessions refused by a full limit (any). */
  refusedLimit: number;
  /** New sessions refused because memory was red (fail-open off / disabled) or extreme. */
  refusedMemory: number;
  /** New flows let through uninspected. */
  bypassed: number;
  /** Later packets of those flows that still came to userspace. */
  bypassPackets: number;
  /** One-shot latch resets (operator or config). */
  oneShotResets: number;
  /** Bypass entries forgotten before going idle, to keep the set within its bound. */
  bypassEvicted: number;
}

export interface ConserveView {
  conserve: boolean;
  since: number;
  reasons: string[];
  memory: number;
  level: MemoryLevel;
  thresholds: { red: number; extreme: number; green: number };
  failopen_session: boolean;
  failopen: FailopenMode;
  one_shot_latched: boolean;
  enter: number;
  leave: number;
  refused_limit: number;
  refused_memory: number;
  memory_tension_drop: number;
  bypassed: number;
  bypass_packets: number;
  bypass_flows: number;
  bypass_evicted: number;
  one_shot_resets: number;
}

/** Flows the bypass set (and idle users) remembers at most without a session limit. */
export const BYPASS_FLOWS_UNLIMITED = 65536;

/** Bypass flows (and idle users without a user limit) remembered at most: as many as the table may hold sessions. */
export function bypassBound(maxSessions: number): number {
  return maxSessions > 0 ? maxSessions : BYPASS_FLOWS_UNLIMITED;
}

/** Whether any user limit (global or of a VDOM) counts users, idle ones too. */
function anyUserLimit(L: EngineConfig['limits']): boolean {
  return L.users > 0 || L.vdom.some((v) => v !== undefined && v.users > 0);
}

export class Admission {
  readonly users = new UserTable();
  readonly conserve = new ConserveState();
  readonly accounting = new ServiceAccounting();
  readonly counters: AdmissionCounters = { refusedLimit: 0, refusedMemory: 0, bypassed: 0, bypassPackets: 0, oneShotResets: 0, bypassEvicted: 0 };
  /** Tracked sessions per VDOM index. */
  private readonly perVd: number[] = [];
  /** Bypassed flows by the key of either direction. */
  private readonly bypass = new Map<string, BypassEntry>();
  /** The same entries once each, oldest activity first. */
  private readonly bypassOrder = new ActivityList<BypassEntry>();

  constructor(private readonly cfg: () => EngineConfig) {}

  sessionsIn(vd: number): number { return this.perVd[vd] ?? 0; }

  get bypassFlows(): number { return this.bypassOrder.size; }

  vdomName(vd: number): string {
    const c = this.cfg();
    return c.vdomNames?.[vd] ?? c.vdoms[vd]?.name ?? (vd === 0 ? 'root' : `vd${vd}`);
  }

  /** Decides whether a policy-accepted new session enters the table. */
  admit(t: FlowTuple, pol: PolicyMatch, tableSize: number, now: number): AdmitResult {
    const c = this.cfg();
    const L = c.limits;
    const vd = pol.vd;
    const service = this.accounting.serviceOf(t, L);
    if (this.conserve.level === 'extreme') return this.refuse('memory-extreme', service, []);

    let full: [string, FullLimit, AdmitCause] | undefined;
    const vl = vdomLimit(L, vd);
    if (!globalRoom(c.maxSessions, tableSize, vd, this.perVd, L)) full = ['session', { kind: 'session', vd }, 'table-full'];
    else if (vl.session > 0 && this.sessionsIn(vd) >= vl.session) full = [`vdom-session:${this.vdomName(vd)}`, { kind: 'vdom-session', vd }, 'vdom-session-limit'];
    else if (!this.users.get(vd, t.src)) {
      if (L.users > 0 && this.users.size >= L.users) full = ['user', { kind: 'user', vd }, 'user-limit'];
      else if (vl.users > 0 && this.users.countIn(vd) >= vl.users) full = [`vdom-user:${this.vdomName(vd)}`, { kind: 'vdom-user', vd }, 'vdom-user-limit'];
    }
    if (full) {
      const effects: Effect[] = [];
      if (!this.conserve.fullLimits.has(full[0])) {
        this.conserve.fullLimits.set(full[0], full[1]);
        this.emit(this.conserve.settle(now), now, effects);
      }
      return this.failopen(full[2], t, vd, service, now, effects);
    }
    if (this.conserve.level === 'red') return this.failopen('memory-red', t, vd, service, now, []);
    if (this.conserve.oneShotLatched && L.failopen === 'one-shot') return this.pass('one-shot', 'one-shot-latched', t, vd, service, now, []);
    return { track: true };
  }

  private failopen(cause: AdmitCause, t: FlowTuple, vd: number, service: ServiceName | undefined, now: number, effects: Effect[]): AdmitResult {
    const L = this.cfg().limits;
    if (!L.failopenSession || L.failopen === 'off') return this.refuse(cause, service, effects);
    if (L.failopen === 'one-shot' && !this.conserve.oneShotLatched) {
      this.conserve.oneShotLatched = true;
      this.emit({ event: 'one-shot-latched', reasons: this.conserve.reasons(), memory: this.conserve.memory }, now, effects);
    }
    return this.pass(L.failopen, cause, t, vd, service, now, effects);
  }

  private refuse(cause: AdmitCause, service: ServiceName | undefined, effects: Effect[]): AdmitResult {
    const memory = cause === 'memory-red' || cause === 'memory-extreme';
    if (memory) this.counters.refusedMemory++;
    else this.counters.refusedLimit++;
    if (service) this.accounting.refused(service, memory);
    return { track: false, cause, decision: { verdict: 'drop', reason: cause, effects } };
  }

  private pass(mode: FailopenMode, cause: AdmitCause, t: FlowTuple, vd: number, service: ServiceName | undefined, now: number, effects: Effect[]): AdmitResult {
    this.counters.bypassed++;
    if (service) this.accounting.bypassed(service);
    const keys: [string, string] = [flowKey(t), flowKey(reverseTuple(t))];
    const e: BypassEntry = { orig: t, keys, vd, mode, cause, createdAt: now, lastSeen: now, packets: 1 };
    this.forget(this.bypass.get(keys[0]));
    this.forget(this.bypass.get(keys[1]));
    const most = bypassBound(this.cfg().maxSessions);
    for (let old = this.bypassOrder.oldest(); old && this.bypassOrder.size >= most; old = this.bypassOrder.oldest()) {
      this.forget(old);
      this.counters.bypassEvicted++;
    }
    this.bypass.set(keys[0], e);
    this.bypass.set(keys[1], e);
    this.bypassOrder.touch(e);
    const off = this.offloadOf(e);
    if (off) effects.push(off);
    return { track: false, cause, decision: { verdict: 'accept', reason: `failopen-${mode}:${cause}`, effects } };
  }

  private offloadOf(e: BypassEntry): Effect | undefined {
    const c = this.cfg();
    if (!c.offload) return undefined;
    // serial 0: no session of the table; the kernel keeps its own timers for this flow.
    return { kind: 'offload', serial: 0, orig: e.orig, mark: c.offloadMark, kernelTimeout: ttlFor(c, e.orig, e.vd).timeout };
  }

  /** A packet of no tracked session: accepted if it belongs to a flow let through uninspected. */
  bypassPacket(t: FlowTuple, now: number): Decision | undefined {
    if (this.bypass.size === 0) return undefined;
    const e = this.bypass.get(flowKey(t));
    if (!e) return undefined;
    e.lastSeen = now;
    e.packets++;
    this.counters.bypassPackets++;
    this.bypassOrder.touch(e);
    const off = this.offloadOf(e);
    return { verdict: 'accept', reason: `failopen-flow:${e.mode}`, effects: off ? [off] : [] };
  }

  /** The kernel's conntrack entry of a flow is gone: a bypass entry for it is not needed any more. */
  forgetBypass(orig: FlowTuple): void {
    if (this.bypass.size) this.forget(this.bypass.get(flowKey(orig)));
  }

  private forget(e: BypassEntry | undefined): void {
    if (!e) return;
    for (const k of e.keys) if (this.bypass.get(k) === e) this.bypass.delete(k);
    this.bypassOrder.remove(e);
  }

  /** A session entered the table. */
  track(s: Session, now: number): void {
    const c = this.cfg();
    const service = this.accounting.serviceOf(s.orig, c.limits);
    const user = this.users.attach(s.vd, s.orig.src, s.orig.family, s.policyId, now);
    // Kept in the session's own columns, so release needs no lookup of its own; set afresh here,
    // since a session restored from a snapshot or a peer carries ids of another process.
    s.userId = user.id;
    if (service) s.serviceIndex = SERVICES.indexOf(service);
    else delete s.serviceIndex;
    this.perVd[s.vd] = this.sessionsIn(s.vd) + 1;
    if (service) this.accounting.opened(service);
  }

  /**
   * A session left the table (any reason), once: its callers release only a session the table
   * still held. Bookkeeping only: `settle` says whether room came back.
   */
  release(s: Session, now: number): void {
    if (s.userId === undefined) return;
    this.perVd[s.vd] = Math.max(0, this.sessionsIn(s.vd) - 1);
    const user = this.users.byId(s.userId);
    if (user) {
      this.users.detach(user, s.org.bytes, s.rep.bytes, now);
      // Without a user limit an idle user is only history: a flood from ever new sources would
      // otherwise keep every one of them for the whole idle timeout.
      const c = this.cfg();
      if (user.sessions === 0 && !anyUserLimit(c.limits)) this.users.trimIdle(bypassBound(c.maxSessions));
    }
    const service = s.serviceIndex === undefined ? undefined : SERVICES[s.serviceIndex];
    if (service) this.accounting.closed(service, s.org.bytes, s.rep.bytes);
  }

  /** Drops the limits that have room again; leaving conserve mode is an effect. */
  settle(now: number, tableSize: number): Effect[] {
    const full = this.conserve.fullLimits;
    if (full.size === 0) return [];
    const c = this.cfg();
    const L = c.limits;
    for (const [name, f] of full) {
      let room: boolean;
      switch (f.kind) {
        case 'session': room = c.maxSessions <= 0 || tableSize < c.maxSessions; break;
        case 'vdom-session': { const m = vdomLimit(L, f.vd).session; room = m <= 0 || this.sessionsIn(f.vd) < m; break; }
        case 'user': room = L.users <= 0 || this.users.size < L.users; break;
        case 'vdom-user': { const m = vdomLimit(L, f.vd).users; room = m <= 0 || this.users.countIn(f.vd) < m; break; }
      }
      if (room) full.delete(name);
    }
    const effects: Effect[] = [];
    this.emit(this.conserve.settle(now), now, effects);
    return effects;
  }

  /** A memory use sample (percent of RAM): moves between green, red and extreme. */
  observeMemory(percent: number, now: number): Effect[] {
    const L = this.cfg().limits;
    this.conserve.observeMemory(percent, { red: L.memoryRed, extreme: L.memoryExtreme, green: L.memoryGreen });
    const effects: Effect[] = [];
    this.emit(this.conserve.settle(now), now, effects);
    return effects;
  }

  /** Operator reset of the one-shot latch (`diagnose sys conserve reset`). */
  resetOneShot(now: number, why = 'operator'): { wasLatched: boolean; effects: Effect[] } {
    if (!this.conserve.oneShotLatched) return { wasLatched: false, effects: [] };
    this.conserve.oneShotLatched = false;
    this.counters.oneShotResets++;
    const effects: Effect[] = [];
    this.emit({ event: 'one-shot-reset', reasons: [why], memory: this.conserve.memory }, now, effects);
    return { wasLatched: true, effects };
  }

  /** Operator clear of users (all, or one name / source address). */
  clearUsers(name: string | undefined, now: number, tableSize: number): { cleared: number; effects: Effect[] } {
    const cleared = this.users.clear(name);
    return { cleared, effects: this.settle(now, tableSize) };
  }

  /** Once a second: idle users expire, idle bypass entries go, limits with room leave conserve mode. */
  tick(now: number, tableSize: number): Effect[] {
    const L = this.cfg().limits;
    this.users.expire(now, L.userIdleTimeout);
    for (let e = this.bypassOrder.oldest(); e && e.lastSeen + L.bypassIdleTimeout * 1000 <= now; e = this.bypassOrder.oldest()) this.forget(e);
    const effects: Effect[] = [];
    // "you must set av-failopen to either pass or off to restart": a config without one-shot resets.
    if (this.conserve.oneShotLatched && L.failopen !== 'one-shot') effects.push(...this.resetOneShot(now, 'config').effects);
    effects.push(...this.settle(now, tableSize));
    return effects;
  }

  private emit(ch: ConserveChange | undefined, now: number, effects: Effect[]): void {
    if (ch) effects.push({ kind: 'conserve', event: ch.event, reasons: ch.reasons, memory: ch.memory, at: now });
  }

  view(): ConserveView {
    const L = this.cfg().limits;
    const k = this.conserve;
    return {
      conserve: k.inConserve,
      since: k.since,
      reasons: k.reasons(),
      memory: k.memory,
      level: k.level,
      thresholds: { red: L.memoryRed, extreme: L.memoryExtreme, green: L.memoryGreen },
      failopen_session: L.failopenSession,
      failopen: L.failopen,
      one_shot_latched: k.oneShotLatched,
      enter: k.enterCount,
      leave: k.leaveCount,
      refused_limit: this.counters.refusedLimit,
      refused_memory: this.counters.refusedMemory,
      memory_tension_drop: this.counters.refusedMemory,
      bypassed: this.counters.bypassed,
      bypass_packets: this.counters.bypassPackets,
      bypass_flows: this.bypassOrder.size,
      bypass_evicted: this.counters.bypassEvicted,
      one_shot_resets: this.counters.oneShotResets,
    };
  }
}
