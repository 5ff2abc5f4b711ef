// Runs session helpers (ALGs) on their sessions and turns what they ask for into expectations:
// attaching a helper to a new session, feeding it the reassembled payload, and opening, using
// and ending the expectations it asked for. Helpers are found through the config only, so the
// engine knows no helper by name.

import { IPPROTO_TCP, TCP_SYN } from '../packet/types.js';
import type { ControlView, HelperResult } from '../helpers/types.js';
import { newStream, streamFeed } from '../helpers/stream.js';
import type { EngineState, HelperSlot } from './engine-state.js';
import type { Expectation, ExpectationEndReason } from './expectations.js';
import type { Direction, Effect, Packet, PolicyMatch, Session } from './types.js';

function controlView(s: Session): ControlView { return { orig: s.orig, reply: s.reply }; }

/** A new session gets the helper its expectation names, or the one bound to its port. */
export function attachHelper(st: EngineState, s: Session, exp: Expectation | undefined): void {
  const h = exp?.childHelper ? st.config.helpers.byName(exp.childHelper) : st.config.helpers.lookup(s.orig.proto, s.orig.dport);
  if (!h) return;
  s.helper = h.name;
  let state: unknown;
  try {
    state = h.init(controlView(s));
  } catch {
    st.counters.helperErrors++;
    s.helper = undefined;
    return;
  }
  st.helperSlots.set(s.serial, { helper: h, state, streams: [newStream(), newStream()] });
}

/**
 * A helper's parser state from a snapshot, with fresh streams: the control packets that passed
 * while no daemon ran were not seen. False when the config has no such helper any more.
 */
export function restoreHelper(st: EngineState, serial: number, name: string, state: unknown): boolean {
  const helper = st.config.helpers.byName(name);
  if (!helper) return false;
  st.helperSlots.set(serial, { helper, state, streams: [newStream(), newStream()] });
  return true;
}

export function helperSlot(st: EngineState, serial: number): HelperSlot | undefined { return st.helperSlots.get(serial); }

/** A helper's parser state as plain data, for a snapshot. */
export interface SavedHelper { serial: number; helper: string; state: unknown }

export function helperStates(st: EngineState): SavedHelper[] {
  const out: SavedHelper[] = [];
  for (const [serial, slot] of st.helperSlots) out.push({ serial, helper: slot.helper.name, state: slot.state });
  return out;
}

export function detachHelper(st: EngineState, serial: number): void { st.helperSlots.delete(serial); }

/** Feeds a packet's payload to the session's helper and turns what it asks for into expectations. */
export function runHelper(st: EngineState, s: Session, dir: Direction, p: Packet, now: number, effects: Effect[]): void {
  const slot = st.helperSlots.get(s.serial);
  const pkt = p.decoded;
  if (!slot || !pkt.ok || !p.data) return;
  const payload = p.data.subarray(pkt.payloadOffset, pkt.payloadOffset + pkt.payloadLength);
  let chunks: Buffer[];
  if (s.orig.proto === IPPROTO_TCP) {
    const stream = slot.streams[dir === 'org' ? 0 : 1];
    chunks = streamFeed(stream, pkt.tcpSeq ?? 0, (pkt.tcpFlags & TCP_SYN) !== 0, payload, st.config.expectations.streamBuffer);
  } else {
    chunks = payload.length ? [payload] : [];
  }
  for (const c of chunks) {
    let r: HelperResult | undefined;
    try {
      r = slot.helper.data(slot.state, dir, c, controlView(s), st.config.helperOptions);
    } catch {
      st.counters.helperErrors++;
      continue;
    }
    if (r) helperResult(st, s, slot.helper.name, r, now, effects);
  }
}

function refuse(st: EngineState, s: Session, helper: string, reason: string, detail: string, now: number, effects: Effect[]): void {
  const refusal = { at: now, helper, parent: s.serial, reason, detail };
  st.expectations.refuse(refusal);
  effects.push({ kind: 'expect-refused', refusal });
}

function helperResult(st: EngineState, s: Session, helper: string, r: HelperResult, now: number, effects: Effect[]): void {
  for (const x of r.refuse ?? []) refuse(st, s, helper, x.reason, x.detail, now, effects);
  if (r.release?.length) {
    for (const x of st.expectations.ofParent(s.serial)) {
      if (x.tag !== undefined && r.release.includes(x.tag)) endExpectation(st, x, 'released', now, effects);
    }
  }
  const cfg = st.config.expectations;
  for (const q of r.expect ?? []) {
    const family = q.dst.includes(':') ? 6 : 4;
    if (family !== s.orig.family || (q.src !== '' && q.src.includes(':') !== (family === 6))) {
      refuse(st, s, helper, 'malformed', `${q.kind} ${q.src} -> ${q.dst}:${q.dport}: address family differs from the control session`, now, effects);
      continue;
    }
    const same = st.expectations.findSame(q);
    if (same) endExpectation(st, same, 'replaced', now, effects);
    if (st.expectations.countOfParent(s.serial) >= cfg.maxPerSession) {
      refuse(st, s, helper, 'limit-per-session', `${q.kind} ${q.src} -> ${q.dst}:${q.dport}: session already holds ${cfg.maxPerSession} expectations`, now, effects);
      continue;
    }
    if (st.expectations.size >= cfg.max) {
      refuse(st, s, helper, 'limit-table', `${q.kind} ${q.src} -> ${q.dst}:${q.dport}: expectation table full (${cfg.max})`, now, effects);
      continue;
    }
    const tracks = q.timeout === 0;
    const lifetime = tracks || q.timeout === undefined ? cfg.timeout : q.timeout;
    const x = st.expectations.add({
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

export function endExpectation(st: EngineState, x: Expectation, reason: ExpectationEndReason, now: number, effects: Effect[], child?: number): void {
  if (!st.expectations.remove(x, reason)) return;
  effects.push({ kind: 'expect-end', expectation: x, reason, at: now, ...(child !== undefined ? { child } : {}) });
}

/** A connection through a pinhole needs no policy of its own: it inherits its parent's. */
export function inheritedPolicy(st: EngineState, exp: Expectation): PolicyMatch {
  const parent = st.table.get(exp.parent);
  return { policyId: exp.policyId, action: 'accept', logTraffic: parent?.logTraffic ?? true, vd: exp.vd };
}

/** A new session is the connection an expectation waited for: link it and use the expectation up. */
export function adopt(st: EngineState, s: Session, exp: Expectation, now: number, effects: Effect[]): void {
  s.parent = exp.parent;
  s.inheritedSerial = exp.serial;
  s.expected = { id: exp.id, helper: exp.helper, kind: exp.kind };
  st.table.linkChild(exp.parent, s.serial);
  endExpectation(st, exp, 'used', now, effects, s.serial);
  st.expectations.recordUse(exp, s.serial, now);
  // The other direction of the same media/data stream may have been expected too (SDP offers
  // and answers both open one): the new session already carries it.
  const back = st.expectations.match(s.reply);
  if (back && back.parent === exp.parent) endExpectation(st, back, 'used', now, effects, s.serial);
}
