// Limits, users, conserve mode / fail-open and per-service accounting in the pure engine: every
// rule with exact expected values (seeds 000 and 001).

import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { ACCEPT_ALL, defaultEngineConfig, type EngineConfig } from '../../src/engine/engine-config.js';
import { defaultLimits, type LimitsConfig } from '../../src/engine/limits.js';
import type { Effect, Packet } from '../../src/engine/types.js';
import { markLayout, sessionTtls, TimerClasses, verdictMark } from '../../src/engine/kernel-cache.js';
import { TCP_ACK, TCP_RST, TCP_SYN, type FlowTuple } from '../../src/packet/types.js';

const S = '203.0.113.2';
const DMZ = '192.0.2.10';

function pkt(tu: Partial<FlowTuple> & { src: string; dst: string }, flags = TCP_SYN, len = 60): Packet {
  const tuple: FlowTuple = { family: 4, proto: 6, sport: 40000, dport: 80, ...tu };
  return {
    indev: 2, outdev: 3, mark: 0,
    decoded: { ok: true, tuple, length: len, tcpFlags: flags, icmpType: -1, icmpCode: -1, payloadOffset: 40, payloadLength: Math.max(0, len - 40), fragment: false },
  };
}
/** A SYN from `src`:`sport` to the server's `dport`. */
const syn = (src: string, sport: number, dport = 80) => pkt({ src, dst: S, sport, dport });
/** The server's SYN/ACK back. */
const synack = (src: string, sport: number, dport = 80) => pkt({ src: S, dst: src, sport: dport, dport: sport }, TCP_SYN | TCP_ACK);
const rst = (src: string, sport: number, dport = 80) => pkt({ src, dst: S, sport, dport }, TCP_RST | TCP_ACK);
const conserve = (fx: Effect[]) => fx.filter((e) => e.kind === 'conserve').map((e) => (e.kind === 'conserve' ? { event: e.event, reasons: e.reasons, at: e.at } : undefined));

/** Sources in 192.0.2.0/24 belong to VDOM 1 (dmz); the rest to root. */
function engine(limits: Partial<LimitsConfig>, over: Partial<EngineConfig> = {}): SessionEngine {
  return new SessionEngine(defaultEngineConfig({
    offload: false,
    vdomNames: ['root', 'dmz'],
    policy: (tu) => ({ ...ACCEPT_ALL, vd: tu.src.startsWith('192.0.2.') ? 1 : 0 }),
    limits: defaultLimits(limits),
    ...over,
  }));
}

t.test('global session limit: refuse at the limit, conserve mode until a session ends', (t) => {
  const e = engine({}, { maxSessions: 2 });
  t.equal(e.handlePacket(syn('198.51.100.2', 1001), 1000).verdict, 'accept');
  t.equal(e.handlePacket(syn('198.51.100.2', 1002), 1000).verdict, 'accept');
  const d = e.handlePacket(syn('198.51.100.2', 1003), 2000);
  t.same([d.verdict, d.reason, d.session], ['drop', 'table-full', undefined]);
  t.same(conserve(d.effects), [{ event: 'enter', reasons: ['session'], at: 2000 }]);
  t.equal(e.counters.tableFull, 1);
  t.equal(e.size, 2);
  // Existing sessions keep working while the table is full.
  t.equal(e.handlePacket(synack('198.51.100.2', 1001), 2100).reason, 'existing');
  // A second refusal does not log conserve mode again.
  t.same(e.handlePacket(syn('198.51.100.2', 1004), 2200).effects, []);
  t.equal(e.admission.view().refused_limit, 2);
  // The end of a session makes room: conserve mode is left and the next session is tracked.
  const fx = e.clear((s) => s.orig.sport === 1001, 3000);
  t.same(conserve(fx), [{ event: 'leave', reasons: [], at: 3000 }]);
  const d2 = e.handlePacket(syn('198.51.100.2', 1005), 3100);
  t.same([d2.verdict, d2.session?.serial], ['accept', 3]);
  const v = e.admission.view();
  t.same([v.conserve, v.enter, v.leave, v.reasons], [false, 1, 1, []]);
  t.end();
});

t.test('per-VDOM session limit counts only its own VDOM', (t) => {
  const e = engine({ vdom: [{ session: 0, sessionGuaranteed: 0, users: 0 }, { session: 1, sessionGuaranteed: 0, users: 0 }] });
  t.equal(e.handlePacket(syn(DMZ, 1), 0).verdict, 'accept');
  const d = e.handlePacket(syn(DMZ, 2), 10);
  t.same([d.verdict, d.reason], ['drop', 'vdom-session-limit']);
  t.same(conserve(d.effects), [{ event: 'enter', reasons: ['vdom-session:dmz'], at: 10 }]);
  for (let i = 0; i < 5; i++) t.equal(e.handlePacket(syn('198.51.100.2', 100 + i), 20).verdict, 'accept', 'root is not limited');
  t.same([e.admission.sessionsIn(0), e.admission.sessionsIn(1), e.size], [5, 1, 6]);
  t.equal(e.counters.tableFull, 0);
  t.end();
});

t.test('guaranteed sessions of a VDOM are kept free of the others within the global limit', (t) => {
  const e = engine({ vdom: [undefined as never, { session: 0, sessionGuaranteed: 2, users: 0 }] }, { maxSessions: 4 });
  t.equal(e.handlePacket(syn('198.51.100.2', 1), 0).verdict, 'accept');
  t.equal(e.handlePacket(syn('198.51.100.2', 2), 0).verdict, 'accept');
  const d = e.handlePacket(syn('198.51.100.2', 3), 0);
  t.same([d.verdict, d.reason], ['drop', 'table-full'], 'root cannot take the 2 sessions dmz is guaranteed');
  t.equal(e.handlePacket(syn(DMZ, 1), 0).verdict, 'accept');
  t.equal(e.handlePacket(syn(DMZ, 2), 0).verdict, 'accept');
  t.equal(e.handlePacket(syn(DMZ, 3), 0).reason, 'table-full', 'the global limit still holds');
  t.equal(e.size, 4);
  t.end();
});

t.test('users: one per source address, limited globally and per VDOM, never per session', (t) => {
  const e = engine({ users: 2, vdom: [undefined as never, { session: 0, sessionGuaranteed: 0, users: 1 }] });
  t.equal(e.handlePacket(syn('198.51.100.2', 1), 0).verdict, 'accept');
  t.equal(e.handlePacket(syn('198.51.100.2', 2), 0).verdict, 'accept', 'the same user again');
  t.equal(e.handlePacket(syn(DMZ, 1), 0).verdict, 'accept');
  const d = e.handlePacket(syn('198.51.100.3', 1), 5);
  t.same([d.verdict, d.reason], ['drop', 'user-limit']);
  t.same(conserve(d.effects), [{ event: 'enter', reasons: ['user'], at: 5 }]);
  for (let i = 10; i < 20; i++) t.equal(e.handlePacket(syn('198.51.100.2', i), 6).verdict, 'accept', 'existing users open any number of sessions');
  const users = e.admission.users.list().map((u) => [u.id, u.vd, u.ip, u.sessions, u.totalSessions]);
  t.same(users, [[1, 0, '198.51.100.2', 12, 12], [2, 1, DMZ, 1, 1]]);

  const v = engine({ vdom: [undefined as never, { session: 0, sessionGuaranteed: 0, users: 1 }] });
  v.handlePacket(syn(DMZ, 1), 0);
  t.equal(v.handlePacket(syn('192.0.2.11', 1), 0).reason, 'vdom-user-limit');
  t.equal(v.handlePacket(syn('198.51.100.9', 1), 0).verdict, 'accept');
  t.end();
});

t.test('users idle for the idle timeout (3600 s) expire; clear by name or all', (t) => {
  const e = engine({ users: 1 });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  e.clear(() => true, 10_000);
  const u = e.admission.users.get(0, '198.51.100.2')!;
  t.same([u.sessions, u.idleSince, u.bytesFromClient], [0, 10_000, 60]);
  t.equal(e.handlePacket(syn('198.51.100.3', 1), 20_000).reason, 'user-limit', 'an idle user still counts');
  e.tick(10_000 + 3_599_999);
  t.equal(e.admission.users.size, 1);
  const fx = e.tick(10_000 + 3_600_000);
  t.equal(e.admission.users.size, 0, 'gone exactly 3600 s after its last session ended');
  t.equal(e.admission.users.expired, 1);
  t.same(conserve(fx), [{ event: 'leave', reasons: [], at: 3_610_000 }]);
  t.equal(e.handlePacket(syn('198.51.100.3', 1), 3_620_000).verdict, 'accept');

  // Activity resets idleness; clear takes a name (the source address) or everything.
  const f = engine({ userIdleTimeout: 60 }, { tcpHalfOpenTimer: 3600 });
  f.handlePacket(syn('198.51.100.2', 1), 0);
  f.handlePacket(syn('198.51.100.4', 1), 0);
  f.clear((s) => s.orig.src === '198.51.100.2', 1000);
  f.handlePacket(syn('198.51.100.2', 2), 30_000);
  f.tick(61_000);
  t.equal(f.admission.users.size, 2, 'a user with a live session never expires');
  t.same(f.admission.clearUsers('198.51.100.4', 62_000, f.size).cleared, 1);
  t.same(f.admission.users.list().map((x) => x.ip), ['198.51.100.2']);
  // The cleared user's session ends later without disturbing anything; a new session makes it a new user.
  f.clear((s) => s.orig.src === '198.51.100.4', 63_000);
  f.handlePacket(syn('198.51.100.4', 9), 64_000);
  t.same(f.admission.users.list().map((x) => [x.id, x.ip, x.sessions]), [[1, '198.51.100.2', 1], [3, '198.51.100.4', 1]]);
  t.equal(f.admission.clearUsers(undefined, 65_000, f.size).cleared, 2);
  t.end();
});

t.test('av-failopen-session disable: a full table refuses whatever av-failopen says', (t) => {
  for (const mode of ['pass', 'one-shot', 'off'] as const) {
    const e = engine({ failopenSession: false, failopen: mode }, { maxSessions: 1 });
    e.handlePacket(syn('198.51.100.2', 1), 0);
    t.same(e.handlePacket(syn('198.51.100.2', 2), 0).reason, 'table-full', mode);
    t.equal(e.admission.conserve.oneShotLatched, false);
  }
  t.end();
});

t.test('av-failopen off: refuses new sessions, existing ones go on', (t) => {
  const e = engine({ failopenSession: true, failopen: 'off' }, { maxSessions: 1 });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  t.equal(e.handlePacket(syn('198.51.100.2', 2), 1).reason, 'table-full');
  t.equal(e.handlePacket(synack('198.51.100.2', 1), 2).verdict, 'accept');
  t.equal(e.handlePacket(synack('198.51.100.2', 2), 3).verdict, 'drop', 'the refused flow has no session');
  t.equal(e.admission.view().bypassed, 0);
  t.end();
});

t.test('av-failopen pass: uninspected while full, offloaded to the kernel, tracked again when room frees', (t) => {
  const e = engine({ failopenSession: true, failopen: 'pass' }, { maxSessions: 1, offload: true });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  const d = e.handlePacket(syn('198.51.100.2', 2), 100);
  t.same([d.verdict, d.reason, d.session], ['accept', 'failopen-pass:table-full', undefined]);
  t.same(d.effects.map((x) => x.kind), ['conserve', 'offload']);
  t.match(d.effects[1], { kind: 'offload', serial: 0, mark: 0x00100000, kernelTimeout: 3600, orig: { src: '198.51.100.2', sport: 2, dport: 80 } });
  t.equal(e.size, 1, 'not in the table');
  // Its later packets (both directions) are accepted, not taken for sessions without SYN.
  const r = e.handlePacket(synack('198.51.100.2', 2), 110);
  t.same([r.verdict, r.reason, r.effects.map((x) => x.kind)], ['accept', 'failopen-flow:pass', ['offload']]);
  t.equal(e.handlePacket(pkt({ src: '198.51.100.2', dst: S, sport: 2, dport: 80 }, TCP_ACK), 120).verdict, 'accept');
  t.same([e.admission.view().bypassed, e.admission.view().bypass_packets, e.admission.bypassFlows], [1, 2, 1]);
  // Room frees: conserve is left and the next new session is tracked again.
  const fx = e.clear((s) => s.orig.sport === 1, 200);
  t.same(conserve(fx), [{ event: 'leave', reasons: [], at: 200 }]);
  const n = e.handlePacket(syn('198.51.100.2', 3), 300);
  t.same([n.reason, n.session?.serial, e.size], ['allowed:1', 2, 1]);
  // The bypassed flow still passes (the kernel would carry it once offloaded) until forgotten.
  t.equal(e.handlePacket(synack('198.51.100.2', 2), 400).reason, 'failopen-flow:pass');
  e.kernelReport({ event: 'destroy', orig: { family: 4, proto: 6, src: '198.51.100.2', dst: S, sport: 2, dport: 80 }, reply: { family: 4, proto: 6, src: S, dst: '198.51.100.2', sport: 80, dport: 2 } }, 500);
  t.equal(e.admission.bypassFlows, 0, 'the kernel entry is gone: so is the bypass entry');
  t.end();
});

t.test('av-failopen pass with the first-packet datapath: the verdict marks the flow offloaded, with the policy\'s NAT', (t) => {
  const classes = new TimerClasses({ halfOpen: 10, halfClose: 120, timeWait: 1 });
  for (const c of classes.ensure(sessionTtls({ defaultTtl: 3600, ttlRules: [], vdoms: [] }, []))) c.installed = true;
  const kernelCache = { layout: markLayout(0x00100000), classes, refreshHold: 604800 };
  const cls = classes.classFor(6, 3600)!;
  const natMark = 0x00000200;
  const e = engine({ failopenSession: true, failopen: 'pass' }, {
    maxSessions: 1, offload: true, kernelCache, defaultTtl: 3600,
    policy: () => ({ ...ACCEPT_ALL, natMark }),
  });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  const d = e.handlePacket(syn('198.51.100.2', 2), 100);
  t.same([d.verdict, d.reason, d.session], ['accept', 'failopen-pass:table-full', undefined]);
  t.equal(d.mark, (verdictMark(kernelCache.layout, cls, 'both') | natMark) >>> 0, 'offload bit, timer class and NAT selector in the verdict');
  t.ok((d.mark! & 0x00100000) !== 0);
  t.same(d.effects.map((x) => x.kind), ['conserve'], 'no conntrack update: the entry does not exist yet, the mark does it');
  // Without the first-packet datapath the flow still gets the NAT selector and the later update.
  const plain = engine({ failopenSession: true, failopen: 'pass' }, { maxSessions: 1, offload: true, policy: () => ({ ...ACCEPT_ALL, natMark }) });
  plain.handlePacket(syn('198.51.100.2', 1), 0);
  const p = plain.handlePacket(syn('198.51.100.2', 2), 100);
  t.same([p.mark, p.effects.map((x) => x.kind)], [natMark, ['conserve', 'offload']]);
  // A refused flow gets no mark at all.
  const refuse = engine({ failopenSession: false }, { maxSessions: 1, offload: true, kernelCache });
  refuse.handlePacket(syn('198.51.100.2', 1), 0);
  const r = refuse.handlePacket(syn('198.51.100.2', 2), 100);
  t.same([r.verdict, r.mark], ['drop', undefined]);
  t.end();
});

t.test('bypass entries are forgotten after bypassIdleTimeout without a queued packet', (t) => {
  const e = engine({ failopenSession: true, failopen: 'pass', bypassIdleTimeout: 120 }, { maxSessions: 1 });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  e.handlePacket(syn('198.51.100.2', 2), 1000);
  e.handlePacket(synack('198.51.100.2', 2), 5000);
  e.tick(124_999);
  t.equal(e.admission.bypassFlows, 1);
  e.tick(125_000);
  t.equal(e.admission.bypassFlows, 0);
  t.end();
});

t.test('av-failopen one-shot: uninspected until the operator resets, even with room again', (t) => {
  const e = engine({ failopenSession: true, failopen: 'one-shot' }, { maxSessions: 1 });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  const d = e.handlePacket(syn('198.51.100.2', 2), 10);
  t.same([d.verdict, d.reason], ['accept', 'failopen-one-shot:table-full']);
  t.same(conserve(d.effects), [{ event: 'enter', reasons: ['session'], at: 10 }, { event: 'one-shot-latched', reasons: ['session'], at: 10 }]);
  const fx = e.clear(() => true, 20);
  t.same(conserve(fx), [{ event: 'leave', reasons: [], at: 20 }]);
  t.equal(e.size, 0);
  const a = e.handlePacket(syn('198.51.100.2', 3), 30);
  t.same([a.verdict, a.reason, e.size], ['accept', 'failopen-one-shot:one-shot-latched', 0], 'room, but still bypassed');
  const r = e.admission.resetOneShot(40);
  t.equal(r.wasLatched, true);
  t.same(conserve(r.effects), [{ event: 'one-shot-reset', reasons: ['operator'], at: 40 }]);
  const b = e.handlePacket(syn('198.51.100.2', 4), 50);
  t.same([b.reason, e.size], ['allowed:1', 1]);
  t.same(e.admission.resetOneShot(60), { wasLatched: false, effects: [] });

  // Setting av-failopen to pass (or off) resets the latch too, at the next tick.
  e.handlePacket(syn('198.51.100.2', 5), 70);
  t.equal(e.admission.conserve.oneShotLatched, true);
  e.config = { ...e.config, limits: { ...e.config.limits, failopen: 'pass' } };
  t.same(conserve(e.tick(80)), [{ event: 'one-shot-reset', reasons: ['config'], at: 80 }]);
  t.equal(e.admission.view().one_shot_resets, 2);
  t.end();
});

t.test('memory thresholds: red enters, green leaves (hysteresis), extreme drops whatever fail-open says', (t) => {
  const e = engine({ failopenSession: true, failopen: 'pass' });
  t.same(e.observeMemory(87.9, 0), []);
  t.same(conserve(e.observeMemory(88, 1000)), [{ event: 'enter', reasons: ['memory-red'], at: 1000 }]);
  t.equal(e.handlePacket(syn('198.51.100.2', 1), 1100).reason, 'failopen-pass:memory-red');
  t.same(e.observeMemory(85, 2000), [], 'between green and red: still conserve');
  t.equal(e.admission.conserve.level, 'red');
  t.same(e.observeMemory(96, 3000), [], 'extreme is still conserve mode: no new event');
  const x = e.handlePacket(syn('198.51.100.2', 2), 3100);
  t.same([x.verdict, x.reason], ['drop', 'memory-extreme']);
  t.same(e.observeMemory(90, 4000), []);
  t.equal(e.admission.conserve.level, 'red', 'below extreme: back to red');
  t.same(e.observeMemory(82, 5000), [], 'green is left only below the threshold');
  t.same(conserve(e.observeMemory(81, 6000)), [{ event: 'leave', reasons: [], at: 6000 }]);
  t.equal(e.handlePacket(syn('198.51.100.2', 3), 6100).reason, 'allowed:1');
  const v = e.admission.view();
  t.same([v.enter, v.leave, v.memory_tension_drop, v.bypassed, v.memory], [1, 1, 1, 1, 81]);

  // Fail-open off (or disabled) refuses in red; existing sessions go on.
  const off = engine({ failopenSession: true, failopen: 'off', memoryRed: 70, memoryGreen: 70, memoryExtreme: 97 });
  off.handlePacket(syn('198.51.100.2', 1), 0);
  off.observeMemory(75, 10);
  t.equal(off.handlePacket(syn('198.51.100.2', 2), 20).reason, 'memory-red');
  t.equal(off.handlePacket(synack('198.51.100.2', 1), 30).reason, 'existing');
  t.equal(off.admission.view().refused_memory, 1);
  t.end();
});

t.test('per-service accounting by destination port: current, peak, setup_ok, setup_fail, bypassed, bytes', (t) => {
  const e = engine({ failopenSession: true, failopen: 'off', servicePorts: { ...defaultLimits().servicePorts, HTTP: [80, 8080] } }, { maxSessions: 8 });
  const ports = [80, 8080, 25, 110, 143, 21, 119, 443];
  ports.forEach((p, i) => e.handlePacket(syn('198.51.100.2', 100 + i, p), 0));
  t.equal(e.handlePacket(syn('198.51.100.2', 200, 25), 0).reason, 'table-full');
  t.equal(e.handlePacket(syn('198.51.100.2', 201, 25), 0).reason, 'table-full');
  e.clear((s) => s.orig.dport === 8080, 10);
  e.handlePacket(syn('198.51.100.2', 300, 80), 20);
  const c = e.admission.accounting.counters;
  t.same(c.HTTP, { current: 2, peak: 2, setupOk: 3, setupFail: 0, failMemory: 0, failLimit: 0, bypassed: 0, bytesOrg: 60, bytesReply: 0 });
  t.same(c.SMTP, { current: 1, peak: 1, setupOk: 1, setupFail: 2, failMemory: 0, failLimit: 2, bypassed: 0, bytesOrg: 0, bytesReply: 0 });
  for (const s of ['POP3', 'IMAP', 'FTP', 'NNTP'] as const) t.same([c[s].current, c[s].setupOk, c[s].setupFail], [1, 1, 0], s);
  // UDP to port 80 is no HTTP session.
  e.clear((s) => s.orig.dport === 443, 30);
  e.handlePacket(pkt({ proto: 17, src: '198.51.100.2', dst: S, sport: 5, dport: 80 }, 0, 30), 40);
  t.equal(c.HTTP.setupOk, 3);
  t.end();
});

t.test('admission bookkeeping lives in the session: released once, ids of another process replaced on restore', (t) => {
  const e = engine({});
  e.handlePacket(syn('198.51.100.2', 100, 80), 0);
  e.handlePacket(syn('198.51.100.3', 101, 25), 0);
  e.handlePacket(syn('192.0.2.7', 102, 80), 0);
  const u2 = e.admission.users.get(0, '198.51.100.2')!;
  const u3 = e.admission.users.get(0, '198.51.100.3')!;
  t.same([u2.sessions, u3.sessions, e.admission.sessionsIn(0), e.admission.sessionsIn(1)], [1, 1, 2, 1]);
  const http = [...e.sessions()].find((s) => s.orig.dport === 80 && s.vd === 0)!;
  t.same([http.userId, http.serviceIndex], [u2.id, 0], 'the user id and service index are read back from the columns');
  // A snapshot written by another process carries its ids: swapped here, they must not be trusted.
  const snap = e.snapshot(10);
  const [a, b] = snap.sessions;
  [a.userId, b.userId] = [b.userId, a.userId];
  for (const s of snap.sessions) s.serviceIndex = 5;
  const f = engine({});
  f.restore(snap, 10);
  const g2 = f.admission.users.get(0, '198.51.100.2')!;
  t.same([g2.sessions, f.admission.users.get(0, '198.51.100.3')!.sessions, f.admission.sessionsIn(0), f.admission.sessionsIn(1)], [1, 1, 2, 1]);
  const c = f.admission.accounting.counters;
  t.same([c.HTTP.current, c.SMTP.current, c.NNTP.current], [2, 1, 0], 'services recomputed, not taken from the snapshot');
  f.clear((s) => s.orig.src === '198.51.100.2', 20);
  t.same([g2.sessions, f.admission.users.get(0, '198.51.100.3')!.sessions, f.admission.sessionsIn(0)], [0, 1, 1], 'the right user lost its session');
  t.same([c.HTTP.current, c.SMTP.current], [1, 1]);
  f.clear(() => true, 30);
  f.clear(() => true, 31);
  t.same([f.admission.sessionsIn(0), f.admission.sessionsIn(1), c.HTTP.current, c.SMTP.current], [0, 0, 0, 0], 'each session released once');
  t.end();
});
