// The decision for one queued packet: the session it belongs to (a new one, if policy and limits
// let it in), its TCP/UDP state and timer, its helper, and the offload that takes the rest of
// the flow into the kernel. Runs once per packet, so nothing here allocates beyond the decision.

import { IPPROTO_TCP, IPPROTO_UDP, type FlowTuple } from '../packet/types.js';
import { ttlFor, vdomSettings } from './engine-config.js';
import type { EngineState } from './engine-state.js';
import { adopt, attachHelper, inheritedPolicy, runHelper } from './helper-driver.js';
import { verdictMark } from './kernel-cache.js';
import { end, enter, newSession } from './lifecycle.js';
import { tcpAdvance, tcpInitial, tcpPhase } from './tcp-state.js';
import { established, rate, refreshes, setTimer } from './timers.js';
import type { Decision, Direction, Effect, Packet, PolicyMatch, Session } from './types.js';

/** A SYN queued this soon after the session's first is the same connection's, still in flight. */
const SYN_IN_FLIGHT_MS = 1000;

export function decide(st: EngineState, p: Packet, now: number): Decision {
  const pkt = p.decoded;
  if (!pkt.ok) {
    st.counters.malformed[pkt.reason] = (st.counters.malformed[pkt.reason] ?? 0) + 1;
    return { verdict: st.config.malformedVerdict, reason: `malformed:${pkt.reason}`, effects: [] };
  }
  if (pkt.quoted) return icmpError(st, pkt.quoted, pkt.length, now);

  const hit = st.table.lookup(pkt.tuple);
  if (hit) {
    const s = hit.session;
    const kernelNew = s.kernelClass !== undefined && s.offloaded && kernelEntryIsNew(s, p, now);
    // A new SYN on the tuple of a session that is over is a new connection reusing the ports:
    // over by its own close, or by its kernel entry's end (the kernel made a new one). Two SYNs
    // queued before the first verdict are one connection (the kernel merges their entries).
    if (pkt.tuple.proto === IPPROTO_TCP && hit.dir === 'org' && tcpInitial(pkt.tcpFlags)) {
      const finished = tcpPhase(s.state) === 'time-wait' || tcpPhase(s.state) === 'closed';
      if (finished || (kernelNew && now - s.createdAt >= SYN_IN_FLIGHT_MS)) {
        // A new kernel entry is the new connection's: only an old one is deleted.
        const effects = end(st, s, 'replaced', now, !kernelNew);
        const d = create(st, p, now);
        d.effects.unshift(...effects);
        return d;
      }
    }
    if (kernelNew) return kernelForgot(st, s, hit.dir, p, now);
    return update(st, s, hit.dir, p, now);
  }
  const bypassed = st.admission.bypassPacket(pkt.tuple, now);
  if (bypassed) return bypassed;
  if (pkt.fragment) {
    // Conntrack reassembles before the forward hook, so a lone fragment here is not part of a
    // session we can name; let the kernel's own defragmentation and policy deal with it.
    st.counters.fragments++;
    return { verdict: 'accept', reason: 'fragment', effects: [] };
  }
  return create(st, p, now);
}

function icmpError(st: EngineState, quoted: FlowTuple, length: number, now: number): Decision {
  const hit = st.table.lookup(quoted);
  if (!hit) {
    st.counters.icmpErrorsUnrelated++;
    return { verdict: st.config.unrelatedIcmpErrorVerdict, reason: 'icmp-error-unrelated', effects: [] };
  }
  st.counters.icmpErrorsRelated++;
  // The error travels against the quoted packet: it belongs to the session's other direction.
  const dir: Direction = hit.dir === 'org' ? 'reply' : 'org';
  const c = dir === 'org' ? hit.session.org : hit.session.rep;
  c.bytes += length;
  c.packets++;
  c.allowErr++;
  rate(hit.session, now);
  return { verdict: 'accept', reason: 'icmp-error-related', session: hit.session, dir, effects: [] };
}

function create(st: EngineState, p: Packet, now: number): Decision {
  const pkt = p.decoded;
  if (!pkt.ok) throw new Error('unreachable');
  const t = pkt.tuple;
  // A connection a helper expected is a pinhole: it needs no policy and inherits its parent's.
  const exp = st.expectations.match(t);
  // Otherwise the policy comes first: it names the VDOM whose settings apply to everything below.
  const pol = exp ? inheritedPolicy(st, exp) : st.config.policy(t, p.indev, p.outdev, pkt.icmpType);
  if (pol.action === 'deny') {
    st.counters.policyDenied++;
    return { verdict: 'drop', reason: `policy-deny:${pol.policyId}`, effects: [] };
  }
  let state: [number, number] = [0, 0];
  if (t.proto === IPPROTO_TCP) {
    const init = tcpInitial(pkt.tcpFlags);
    if (!init) {
      if (!vdomSettings(st.config, pol.vd).tcpSessionWithoutSyn) {
        st.counters.tcpWithoutSyn++;
        return { verdict: 'drop', reason: 'tcp-without-syn', effects: [] };
      }
      state = [1, 1];
    } else state = init;
  }
  // Limits, users and conserve mode: refused, let through uninspected (fail-open), or tracked.
  const gate = st.admission.admit(t, pol, st.table.size, now);
  if (!gate.track) {
    if (gate.cause === 'table-full') st.counters.tableFull++;
    return gate.decision.verdict === 'accept' && !p.watched ? bypassOffload(st, t, pol, gate.decision) : gate.decision;
  }
  const s = newSession(st, t, pol, state, p.indev, p.outdev, pkt.length, now);
  enter(st, s, now);
  const effects: Effect[] = [{ kind: 'session-start', session: s }];
  if (exp) adopt(st, s, exp, now, effects);
  attachHelper(st, s, exp);
  if (s.helper) runHelper(st, s, 'org', p, now, effects);
  const offload = p.watched ? undefined : firstPacketOffload(st, s);
  if (offload !== undefined && p.ctId !== undefined) s.ctId = p.ctId;
  // The kernel's source NAT reads its selection from this same packet in postrouting (nat.ts).
  const mark = ((offload ?? 0) | (pol.natMark ?? 0)) >>> 0;
  return { verdict: 'accept', reason: exp ? `expected:${exp.helper}` : `allowed:${pol.policyId}`, session: s, dir: 'org', effects, ...(mark ? { mark } : {}) };
}

/**
 * A packet of a session offloaded at its first packet is queued only when the kernel entry
 * lacks the offload mark: the kernel made a new entry (the queue says so with its ctinfo where
 * the kernel delivers it), unless the packet was queued with the first one, before its verdict.
 */
function kernelEntryIsNew(s: Session, p: Packet, now: number): boolean {
  if (p.ctId !== undefined) return p.ctNew === true && p.ctId !== s.ctId;
  return now - s.createdAt >= SYN_IN_FLIGHT_MS;
}

/**
 * A packet of an offloaded session, not a new connection's SYN, reached the queue in a conntrack
 * entry the kernel has just created: the entry that carried the session is gone (ended by the
 * kernel, deleted by an operator). It continues the session: the verdict offloads the new entry
 * again.
 */
function kernelForgot(st: EngineState, s: Session, dir: Direction, p: Packet, now: number): Decision {
  const d = update(st, s, dir, p, now);
  const kc = st.config.kernelCache;
  const cls = kc?.classes.byIndex(s.kernelClass ?? 0);
  if (kc && cls && st.config.offload) {
    d.mark = verdictMark(kc.layout, cls, s.refreshDir);
    if (p.ctId !== undefined) s.ctId = p.ctId;
  }
  // The new entry is translated afresh only if this packet names the NAT again (the kernel's
  // nat chains see a connection's first packet only); masquerade keeps the source port when it
  // is free, as it is once the old entry is gone. A reply direction packet starts no NAT.
  if (dir === 'org') {
    const pol = st.config.policy(s.orig, s.devOrg[0], s.devOrg[1], -1);
    if (pol.action === 'accept' && pol.policyId === s.policyId && pol.natMark) d.mark = ((d.mark ?? 0) | pol.natMark) >>> 0;
  }
  return d;
}

/**
 * Decides the offload at the first packet: a session no helper reads goes to the kernel with
 * its verdict, which names the timer class that keeps the kernel entry alive as long as the
 * session. No class (another protocol, or every class slot taken): it stays in userspace.
 */
function firstPacketOffload(st: EngineState, s: Session): number | undefined {
  const kc = st.config.kernelCache;
  if (!kc || !st.config.offload || s.helper) return undefined;
  const cls = kc.classes.classFor(s.orig.proto, s.ttl);
  if (!cls) return undefined;
  s.offloaded = true;
  s.kernelClass = cls.index;
  st.counters.offloadRequests++;
  if (s.orig.proto === IPPROTO_TCP) {
    // The kernel walks the handshake and the close, with this session's own timers, and reports
    // the end; the daemon's timer is the backstop at the TTL (a view or a reading learns the state).
    s.expireAt = s.createdAt + s.ttl * 1000;
    st.table.refile(s);
  }
  return verdictMark(kc.layout, cls, s.refreshDir);
}

/**
 * A flow let through uninspected leaves the queue at its first packet, as a tracked one does:
 * the verdict marks its kernel entry offloaded, under the kernel's timer class for its TTL. Were
 * it left to the later conntrack update, the SYN/ACK would reach the queue first, and in a flood
 * that lets flows through faster than the bypass set remembers them, it would be judged a TCP
 * segment without SYN and dropped.
 */
function bypassOffload(st: EngineState, t: FlowTuple, pol: PolicyMatch, d: Decision): Decision {
  // Uninspected is not untranslated: the policy's NAT applies all the same.
  const nat = pol.natMark ?? 0;
  const kc = st.config.kernelCache;
  const cls = kc && st.config.offload ? kc.classes.classFor(t.proto, ttlFor(st.config, t, pol.vd).timeout) : undefined;
  if (!kc || !cls) return nat ? { ...d, mark: nat } : d;
  // The mark does what the conntrack update would, and the entry is not there yet to update.
  const effects = d.effects.filter((e) => !(e.kind === 'offload' && e.serial === 0));
  return { ...d, effects, mark: (verdictMark(kc.layout, cls, 'both') | nat) >>> 0 };
}

function update(st: EngineState, s: Session, dir: Direction, p: Packet, now: number): Decision {
  const pkt = p.decoded;
  if (!pkt.ok) throw new Error('unreachable');
  const c = dir === 'org' ? s.org : s.rep;
  c.bytes += pkt.length;
  c.packets++;
  if (dir === 'org') s.devOrg = [p.indev, p.outdev];
  else s.devReply = p.mirrorReplyDevs ? [p.outdev, p.indev] : [p.indev, p.outdev];
  const effects: Effect[] = [];
  if (s.orig.proto === IPPROTO_TCP) {
    tcpAdvance(s.state, dir, pkt.tcpFlags);
  } else if (dir === 'reply' && s.state[1] === 0) {
    s.state[1] = 1;
    // The first reply ends the udp-idle phase: the session's own TTL applies from here.
    if (s.orig.proto === IPPROTO_UDP && !s.ttlFromRule) setTimer(st, s, now);
  }
  if (refreshes(s, dir)) setTimer(st, s, now);
  else if (s.orig.proto === IPPROTO_TCP && tcpPhase(s.state) !== 'established') setTimer(st, s, now);
  rate(s, now);
  if (s.helper) runHelper(st, s, dir, p, now, effects);
  if (st.config.offload && !s.offloaded && !s.offloadPending && !s.helper && established(s)) requestOffload(st, s, effects);
  return { verdict: 'accept', reason: 'existing', session: s, dir, effects };
}

/** Asks the shell to offload the session by a conntrack update (mark and kernel timeout). */
export function requestOffload(st: EngineState, s: Session, effects: Effect[]): void {
  s.offloadPending = true;
  st.counters.offloadRequests++;
  effects.push({ kind: 'offload', serial: s.serial, orig: s.orig, mark: st.config.offloadMark, kernelTimeout: st.config.kernelTimeout });
}
