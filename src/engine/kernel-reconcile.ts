// The kernel's conntrack table against ours. An offloaded session's packets never reach the
// queue, so what the kernel reports (events, dumps, readings asked for when a timer runs out)
// is how its counters, state and end are learnt; after a restart the two tables are made to
// agree again.

import { IPPROTO_TCP, IPPROTO_UDP, type FlowTuple } from '../packet/types.js';
import { requestOffload } from './decide.js';
import type { EngineState } from './engine-state.js';
import type { Expectation } from './expectations.js';
import { reverseTuple, sameTuple } from './flow-key.js';
import { adopt, inheritedPolicy } from './helper-driver.js';
import { kernelStateTimeout, type KernelReading } from './kernel-cache.js';
import { end, enter, newSession } from './lifecycle.js';
import { tcpFromKernel, tcpPhase } from './tcp-state.js';
import { closed, effectiveExpiry, rate, refreshes, setTimer, setTimerFrom } from './timers.js';
import type { Effect, KernelFlowReport, PolicyMatch, Session } from './types.js';

/** How long an offloaded session whose timer ran out waits for the kernel's DESTROY before it is read. */
const DESTROY_GRACE_MS = 2000;
/** Linux enum tcp_conntrack values of a closed connection. */
const KERNEL_TCP_TIME_WAIT = 7;
const KERNEL_TCP_CLOSE = 8;
/** A kernel entry created this long before a session is an older connection's. */
const STALE_ENTRY_MS = 1000;
/** A kernel reading that did not come back is asked for again after this long. */
const READ_RETRY_MS = 5000;

type KernelCounters = NonNullable<KernelFlowReport['counters']>;

/** The kernel counted more packets than we did: its counts are the session's now. */
function takeCounters(s: Session, k: KernelCounters): void {
  if (k.origPackets > s.org.packets) { s.org.packets = k.origPackets; s.org.bytes = Math.max(s.org.bytes, k.origBytes); }
  if (k.replyPackets > s.rep.packets) { s.rep.packets = k.replyPackets; s.rep.bytes = Math.max(s.rep.bytes, k.replyBytes); }
}

/**
 * The timer of an offloaded session ran out, but its packets since the last reading were seen
 * only by the kernel. A session refreshed by both directions has kernel timeouts equal to its
 * own, so the kernel's DESTROY normally arrives on its own: wait a grace for it. Otherwise, or
 * when the grace passes, ask for a reading (kernelReading decides). A timer scaled down by
 * adaptive timeouts runs out before the kernel's, which sends no DESTROY then: read at once.
 */
export function kernelTimerOut(st: EngineState, s: Session, now: number, effects: Effect[], scaled = false): void {
  if (!scaled && !s.kernelWait && s.kernelClass !== undefined && s.refreshDir === 'both' && classMirrors(st, s)) {
    s.kernelWait = 1;
    s.expireAt = now + DESTROY_GRACE_MS;
  } else {
    s.kernelWait = scaled ? 3 : 2;
    s.expireAt = now + READ_RETRY_MS;
    effects.push({ kind: 'kernel-read', serial: s.serial, orig: s.orig, refreshSet: s.kernelClass !== undefined && s.refreshDir !== 'both' });
  }
  st.table.refile(s);
}

/** The kernel's timeout in the session's current state is exactly the session's own. */
function classMirrors(st: EngineState, s: Session): boolean {
  const cls = st.config.kernelCache?.classes.byIndex(s.kernelClass ?? 0);
  if (!cls || cls.ttl !== s.ttl) return false;
  // An unanswered UDP flow has the short idle timer here but the TTL in the kernel.
  return !(s.orig.proto === IPPROTO_UDP && s.state[1] === 0 && !s.ttlFromRule && st.config.udpIdleTimer < s.ttl);
}

/**
 * What the kernel says of an offloaded session (asked for by a kernel-read effect, or by a view
 * that needs fresh data): counters and TCP state are taken over, and the timer counts from the
 * last refresh the kernel saw: for sessions refreshed by both directions the entry's remaining
 * timeout tells it (its class mirrors the session's timers), for one direction the refresh-set
 * element's remaining time. A session whose time has run out ends and its entry is deleted.
 */
export function kernelReading(st: EngineState, serial: number, r: KernelReading, now: number): Effect[] {
  const s = st.table.get(serial);
  if (!s || !s.offloaded) return [];
  // A reading asked for because the session's timer ran out, not one a view asked for.
  const timedOut = !!s.kernelWait;
  const scaledOut = s.kernelWait === 3;
  s.kernelWait = 0;
  if (r.gone) return end(st, s, s.orig.proto === IPPROTO_TCP ? 'tcp-close' : 'kernel-gone', now, false);
  // NAT is bound when the kernel sees the first packet, after the verdict: a reading is where the table learns it.
  if (r.reply && !sameTuple(r.reply, s.reply)) learnNat(st, s, r.reply);
  if (r.orig && r.orig.src === s.orig.src && r.orig.sport === s.orig.sport && (r.orig.dst !== s.orig.dst || r.orig.dport !== s.orig.dport)) {
    s.nat = { ...s.nat, vip: { addr: r.orig.dst, port: r.orig.dport } };
  }
  const kc = st.config.kernelCache;
  const cls = kc?.classes.byIndex(s.kernelClass ?? 0);
  if (!cls) {
    // Offloaded by a conntrack update (adopted at a restart, let through by fail-open): its kernel
    // timeouts are the kernel's own, so activity is told by the counters alone.
    const before = s.expireAt;
    kernelReport(st, { event: 'dump', orig: s.orig, reply: s.reply, ...(r.mark !== undefined ? { mark: r.mark } : {}), ...(r.tcpState !== undefined ? { tcpState: r.tcpState } : {}), ...(r.counters ? { counters: r.counters } : {}) }, now);
    // Unchanged counters since the timer ran out: no activity, the session is done. A view's
    // reading with unchanged counters says nothing of the timer.
    const idle = timedOut && s.expireAt === before;
    if (idle || effectiveExpiry(st, s) <= now) {
      if ((idle && scaledOut) || (!idle && s.expireAt > now)) st.counters.adaptiveExpired++;
      return end(st, s, closed(s) ? 'tcp-close' : 'ttl', now, true);
    }
    st.table.refile(s);
    return [];
  }
  if (r.counters) {
    takeCounters(s, r.counters);
    rate(s, now);
  }
  if (s.orig.proto === IPPROTO_TCP) {
    const state = r.tcpState !== undefined ? tcpFromKernel(r.tcpState) : undefined;
    if (state) s.state = state;
  } else if (r.seenReply || s.rep.packets > 0) s.state[1] = 1;
  const known = s.timerBase ?? s.createdAt;
  // The last packet in either direction, from the entry's remaining timeout.
  const lastAny = r.timeout !== undefined ? now - (kernelStateTimeout(cls, r.tcpState) - r.timeout) * 1000 : known;
  let last = lastAny;
  if (s.refreshDir !== 'both' && (s.orig.proto !== IPPROTO_TCP || tcpPhase(s.state) === 'established')) {
    last = r.refreshLeftMs === undefined || r.refreshLeftMs === null ? known : now - (kc!.refreshHold * 1000 - r.refreshLeftMs);
  }
  setTimerFrom(st, s, Math.min(now, Math.max(known, last)));
  // The last refresh the kernel saw counts with the scale in force: an idle session's reading
  // must not give it its unscaled lifetime back.
  if (effectiveExpiry(st, s) <= now) {
    if (s.expireAt > now) st.counters.adaptiveExpired++;
    return end(st, s, closed(s) ? 'tcp-close' : 'ttl', now, true);
  }
  st.table.refile(s);
  return [];
}

/**
 * After a restart, the kernel's table against ours: a session the kernel no longer has ended
 * while we were down; an entry we never knew (a connection made while no daemon decided) is
 * adopted as a session of policy 0 and offloaded, or deleted from the kernel ('expire').
 */
export function reconcileRestart(st: EngineState, conns: KernelFlowReport[], mode: 'adopt' | 'expire', now: number): { effects: Effect[]; ended: number; adopted: number; expired: number } {
  const effects: Effect[] = [];
  const present = new Set<number>();
  let adopted = 0;
  let expired = 0;
  for (const c of conns) {
    const hit = st.table.lookup(c.orig);
    if (hit) { present.add(hit.session.serial); continue; }
    if (st.expectations.match(c.orig)) continue;
    if (mode === 'expire') {
      expired++;
      effects.push({ kind: 'ct-delete', serial: 0, orig: c.orig });
      continue;
    }
    adoptKernelEntry(st, c, { policyId: 0, action: 'accept', logTraffic: false, vd: 0 }, 0, 0, now, effects);
    adopted++;
  }
  let ended = 0;
  for (const s of [...st.table.values()]) {
    if (present.has(s.serial) || s.createdAt >= now) continue;
    ended++;
    effects.push(...end(st, s, 'kernel-gone', now, false));
  }
  return { effects, ended, adopted, expired };
}

/** A kernel entry becomes a session of `pol`, offloaded (asked for, when it is not yet). */
function adoptKernelEntry(st: EngineState, c: KernelFlowReport, pol: PolicyMatch, indev: number, outdev: number, now: number, effects: Effect[]): Session {
  const state: [number, number] = c.orig.proto === IPPROTO_TCP ? (c.tcpState !== undefined ? tcpFromKernel(c.tcpState) ?? [1, 1] : [1, 1]) : [0, (c.counters?.replyPackets ?? 0) > 0 ? 1 : 0];
  const s = newSession(st, c.orig, pol, state, indev, outdev, c.counters?.origBytes ?? 0, now);
  s.org.packets = c.counters?.origPackets ?? 0;
  // Replies route back the way the original direction came.
  if (indev || outdev) s.devReply = [outdev, indev];
  enter(st, s, now);
  effects.push({ kind: 'session-start', session: s });
  effects.push(...kernelReport(st, { ...c, event: 'dump' }, now));
  if (st.config.offload && (c.mark === undefined || (c.mark & st.config.offloadMark) === 0)) requestOffload(st, s, effects);
  else if (c.mark !== undefined && (c.mark & st.config.offloadMark) !== 0) s.offloaded = true;
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
export function reconcileUnowned(st: EngineState, conns: KernelFlowReport[], route: (addr: string) => number | undefined, now: number): { effects: Effect[]; adopted: number; cut: number } {
  const effects: Effect[] = [];
  let adopted = 0;
  let cut = 0;
  for (const c of conns) {
    if (c.mark === undefined || (c.mark & st.config.offloadMark) === 0) continue;
    if (st.table.lookup(c.orig) || st.expectations.match(c.orig)) continue;
    // A closed TCP connection (TIME_WAIT, CLOSE) carries nothing more: the kernel ends it.
    if (c.orig.proto === IPPROTO_TCP && (c.tcpState === KERNEL_TCP_TIME_WAIT || c.tcpState === KERNEL_TCP_CLOSE)) continue;
    const indev = route(c.orig.src) ?? 0;
    const outdev = route(c.orig.dst) ?? 0;
    const pol = st.config.policy(c.orig, indev, outdev, -1);
    if (pol.action === 'deny') {
      cut++;
      st.counters.policyDenied++;
      effects.push({ kind: 'ct-delete', serial: 0, orig: c.orig });
      continue;
    }
    adoptKernelEntry(st, c, pol, indev, outdev, now, effects);
    adopted++;
  }
  return { effects, adopted, cut };
}

/** The kernel confirmed (or refused) the offload the engine asked for. */
export function offloadResult(st: EngineState, serial: number, ok: boolean): void {
  const s = st.table.get(serial);
  if (!s) return;
  s.offloadPending = false;
  s.offloaded = ok;
  if (!ok) st.counters.offloadFailures++;
}

/**
 * What the kernel says about one of its conntrack entries. While a session is offloaded its
 * packets never reach us, so counters, per-direction activity (for refresh-direction) and the
 * TCP state come from here.
 */
export function kernelReport(st: EngineState, r: KernelFlowReport, now: number): Effect[] {
  let hit = st.table.lookup(r.orig);
  // A destination-translated (VIP) connection: the kernel files it under the address the client
  // sent to, the table under the mapped one it decided on; the reply tuples are the same.
  if (!hit && r.orig.proto === r.reply.proto) {
    const back = st.table.lookup(r.reply);
    if (back && back.dir === 'reply' && back.session.orig.src === r.orig.src && back.session.orig.sport === r.orig.sport) hit = { session: back.session, dir: 'org' };
  }
  if (!hit && (r.event === 'new' || r.event === 'dump') && r.mark !== undefined && (r.mark & st.config.offloadMark) !== 0) {
    const exp = st.expectations.match(r.orig);
    if (exp) return childFromKernel(st, r, exp, now);
  }
  if (!hit || hit.dir !== 'org') {
    if (!hit && r.event === 'destroy') st.admission.forgetBypass(r.orig);
    return [];
  }
  const s = hit.session;
  if (!sameTuple(r.reply, s.reply)) learnNat(st, s, r.reply);
  if (s.kernelClass !== undefined && st.config.kernelCache) {
    // An older entry of the same tuple (a connection that reused the ports) is not this session's.
    if (r.id !== undefined && s.ctId !== undefined && r.id !== s.ctId) return [];
    if (r.startMs !== undefined && r.startMs < s.createdAt - STALE_ENTRY_MS) return [];
    // The kernel mirrors this session's timers: activity is read when the timer runs out
    // (kernelReading), never guessed from counters, which count differently (ICMP errors).
    if (r.counters) takeCounters(s, r.counters);
    if (s.orig.proto === IPPROTO_TCP && r.tcpState !== undefined) s.state = tcpFromKernel(r.tcpState) ?? s.state;
    if (r.event === 'destroy') return end(st, s, s.orig.proto === IPPROTO_TCP ? 'tcp-close' : expiredByKernel(s, now) ? 'ttl' : 'kernel-destroy', now, false);
    return [];
  }
  if (r.counters) {
    const k = r.counters;
    const seen = s.kernelSeen ?? { orgPackets: 0, replyPackets: 0 };
    const orgActive = k.origPackets > seen.orgPackets && k.origPackets > s.org.packets;
    const replyActive = k.replyPackets > seen.replyPackets && k.replyPackets > s.rep.packets;
    s.kernelSeen = { orgPackets: k.origPackets, replyPackets: k.replyPackets };
    takeCounters(s, k);
    if (replyActive && s.orig.proto !== IPPROTO_TCP) s.state[1] = 1;
    if ((orgActive && refreshes(s, 'org')) || (replyActive && refreshes(s, 'reply'))) setTimer(st, s, now);
    rate(s, now);
  }
  if (r.mark !== undefined && (r.mark & st.config.offloadMark) !== 0 && !s.offloaded) {
    s.offloaded = true;
    s.offloadPending = false;
  }
  if (s.orig.proto === IPPROTO_TCP && r.tcpState !== undefined && s.offloaded) {
    const state = tcpFromKernel(r.tcpState);
    if (state && (state[0] !== s.state[0] || state[1] !== s.state[1])) {
      s.state = state;
      setTimer(st, s, now);
    }
  }
  if (r.event === 'destroy') return end(st, s, s.orig.proto === IPPROTO_TCP ? 'tcp-close' : 'kernel-destroy', now, false);
  return [];
}

/** The kernel's DESTROY of a mirrored session came when its own timer was (about to be) out. */
function expiredByKernel(s: Session, now: number): boolean {
  return s.expireAt - now <= DESTROY_GRACE_MS || s.kernelWait === 1;
}

/**
 * The kernel let a connection through one of our pinholes on its own (the nft set marked it
 * offloaded, so its packets never reach the queue): record it as the expectation's child.
 */
function childFromKernel(st: EngineState, r: KernelFlowReport, exp: Expectation, now: number): Effect[] {
  const pol = inheritedPolicy(st, exp);
  const gate = st.admission.admit(r.orig, pol, st.table.size, now);
  if (!gate.track) return [];
  const state: [number, number] = r.orig.proto === IPPROTO_TCP
    ? (r.tcpState !== undefined ? tcpFromKernel(r.tcpState) ?? [2, 0] : [2, 0])
    : [0, (r.counters?.replyPackets ?? 0) > 0 ? 1 : 0];
  const s = newSession(st, r.orig, pol, state, 0, 0, r.counters?.origBytes ?? 0, now);
  s.org.packets = r.counters?.origPackets ?? 1;
  s.offloaded = true;
  enter(st, s, now);
  const effects: Effect[] = [{ kind: 'session-start', session: s }];
  adopt(st, s, exp, now, effects);
  effects.push(...kernelReport(st, { ...r, event: 'update' }, now));
  return effects;
}

function learnNat(st: EngineState, s: Session, reply: FlowTuple): void {
  const rev = reverseTuple(s.orig);
  const nat: NonNullable<Session['nat']> = {};
  if (reply.dst !== rev.dst || reply.dport !== rev.dport) nat.snat = { addr: reply.dst, port: reply.dport };
  if (reply.src !== rev.src || reply.sport !== rev.sport) nat.dnat = { addr: reply.src, port: reply.sport };
  st.table.setReply(s, reply);
  s.nat = nat;
}

/**
 * A full dump of the kernel table: offloaded sessions whose entry is gone ended without us
 * hearing the DESTROY (an event overrun), so they end here. A dump can miss entries when the
 * table changes under it, so a session ends only when two dumps in a row lack it.
 */
export function reconcileDump(st: EngineState, conns: KernelFlowReport[], now: number): Effect[] {
  const present = new Set<number>();
  const effects: Effect[] = [];
  for (const c of conns) {
    const hit = st.table.lookup(c.orig);
    if (hit && hit.dir === 'org') present.add(hit.session.serial);
    effects.push(...kernelReport(st, { ...c, event: 'dump' }, now));
  }
  for (const s of [...st.table.values()]) {
    if (!s.offloaded) continue;
    if (present.has(s.serial)) s.kernelMisses = 0;
    else if ((s.kernelMisses = (s.kernelMisses ?? 0) + 1) >= 2) effects.push(...end(st, s, 'kernel-gone', now, false));
  }
  return effects;
}
