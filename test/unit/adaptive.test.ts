// Adaptive timeouts (src/engine/adaptive.ts): the factor along the table's use of its limit, the
// most idle sessions ending first with the factor asked again after each, offloaded sessions ended
// through their kernel reading with a ct-delete, per-VDOM limits, and no effect when disabled; the
// config keys and their errors; the stat, list and metrics views.

import t from 'tap';
import { adaptiveFactor } from '../../src/engine/adaptive.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig, type EngineConfig } from '../../src/engine/engine-config.js';
import { defaultLimits, type LimitsConfig } from '../../src/engine/limits.js';
import { markLayout, sessionTtls, TimerClasses, type KernelCacheConfig } from '../../src/engine/kernel-cache.js';
import type { Effect, Packet, Session } from '../../src/engine/types.js';
import type { FlowTuple } from '../../src/packet/types.js';
import { parseConfig, engineConfigFor } from '../../src/config/load.js';
import { viewOf } from '../../src/control/session-view.js';
import { statOf, fullStatOf } from '../../src/control/stat.js';
import { formatSession, formatStat } from '../../src/control/format.js';
import { DaemonMetrics } from '../../src/metrics/metrics.js';
import { configErrors } from '../lib/config-errors.js';
import { live } from '../lib/live-session.js';

const S = '203.0.113.2';
const client = (i: number) => `198.51.100.${10 + i}`;

function pkt(src: string, opts: { reply?: boolean; sport?: number; dport?: number } = {}): Packet {
  const base: FlowTuple = { family: 4, proto: 17, src, dst: S, sport: opts.sport ?? 40000, dport: opts.dport ?? 5001 };
  const tu = opts.reply ? { ...base, src: base.dst, dst: base.src, sport: base.dport, dport: base.sport } : base;
  return {
    indev: 2, outdev: 3, mark: 0,
    decoded: { ok: true, tuple: tu, length: 60, tcpFlags: 0, icmpType: -1, icmpCode: -1, payloadOffset: 28, payloadLength: 0, fragment: false },
  };
}

function engine(limits: Partial<LimitsConfig>, over: Partial<EngineConfig> = {}): SessionEngine {
  return new SessionEngine(defaultEngineConfig({ offload: false, defaultTtl: 100, maxSessions: 20, limits: defaultLimits({ adaptiveStart: 70, adaptiveEnd: 100, ...limits }), ...over }));
}

/** Sessions 1..n from clients 1..n, the k-th opened at (k-1) s. */
function fill(e: SessionEngine, n: number, first = 1): Session[] {
  const out: Session[] = [];
  for (let k = first; k < first + n; k++) out.push(live(e, e.handlePacket(pkt(client(k)), (k - 1) * 1000).session!));
  return out;
}

const ended = (fx: Effect[]) => fx.flatMap((x) => (x.kind === 'session-end' ? [x.session.serial] : []));
const deleted = (fx: Effect[]) => fx.flatMap((x) => (x.kind === 'ct-delete' ? [x.serial] : []));

t.test('the factor: 1 up to start, (end - n) / (end - start) between, 0 from end', (t) => {
  t.equal(adaptiveFactor(70, 100, 12, 20), 1, '60 %');
  t.equal(adaptiveFactor(70, 100, 14, 20), 1, '70 %: not yet');
  t.equal(adaptiveFactor(70, 100, 17, 20), 0.5, '85 %');
  t.equal(adaptiveFactor(70, 100, 20, 20), 0, '100 %');
  t.equal(adaptiveFactor(70, 150, 20, 20), 0.625, 'end beyond the limit: never 0 below it');
  t.equal(adaptiveFactor(0, 100, 20, 20), 1, 'start 0 disables');
  t.equal(adaptiveFactor(70, 100, 20, 0), 1, 'no limit: no effect');
  t.end();
});

t.test('the most idle sessions end first, and each one that leaves gives the rest more time', (t) => {
  const e = engine({});
  const s = fill(e, 17);
  // The oldest nine talk again at 20 s: the idle ones are the later 10..17 (last packet 9..16 s).
  for (let k = 1; k <= 9; k++) e.handlePacket(pkt(client(k), { reply: true }), 20_000);
  t.equal(e.adaptiveFactor(0), 0.5, '17 of 20: 85 %');
  t.same(ended(e.tick(20_000)), []);
  t.same(ended(e.tick(58_999)), [], 'session 10 has 50 s of its 100 s from its last packet at 9 s');
  const fx = e.tick(59_000);
  t.same(ended(fx), [s[9].serial], 'the oldest idle one, not the oldest one');
  t.same(deleted(fx), [s[9].serial], 'its kernel entry deleted');
  t.match(fx.find((x) => x.kind === 'session-end'), { reason: 'ttl' });
  // 16 of 20: 80 %, factor 2/3: session 11 (last packet at 10 s) is due at 10 + 66.7 s.
  t.equal(e.adaptiveFactor(0), 2 / 3);
  t.same(ended(e.tick(76_000)), []);
  t.same(ended(e.tick(100_000)), [s[10].serial, s[11].serial], 'two more, then 14 of 20 is 70 %: no scaling');
  t.equal(e.adaptiveFactor(0), 1);
  t.equal(e.counters.adaptiveExpired, 3);
  t.same(ended(e.tick(111_999)), []);
  t.same(ended(e.tick(112_000)), [s[12].serial], 'the rest run their own 100 s again');
  t.equal(e.counters.adaptiveExpired, 3, 'an unscaled timer is not counted');
  t.end();
});

t.test('a full table at end: factor 0 ends the most idle at once, and new sessions are admitted again', (t) => {
  const e = engine({});
  const s = fill(e, 20);
  const refused = e.handlePacket(pkt(client(30)), 19_000);
  t.equal(refused.verdict, 'drop', 'the table is full');
  t.equal(e.adaptiveFactor(0), 0);
  const fx = e.tick(19_000);
  // 19 left: 95 %, factor 1/6 (16.7 s): session 2 (17.7 s) too; then 90 %, 1/3 (33.3 s): stop.
  t.same(ended(fx), [s[0].serial, s[1].serial]);
  t.equal(e.size, 18);
  t.equal(e.handlePacket(pkt(client(30)), 19_000).verdict, 'accept', 'room for a new flow');
  t.end();
});

t.test('a session refreshed after it was filed is checked against its new last packet', (t) => {
  const e = engine({});
  const s = fill(e, 17);
  e.tick(17_000);
  t.equal(e.adaptiveFactor(0), 0.5);
  // Session 1 was filed with its first packet at 0 s; a packet at 40 s moves it to 40 + 50 s.
  e.handlePacket(pkt(client(1)), 40_000);
  t.same(ended(e.tick(50_000)), [], 'session 1 is not due at the time it was filed with');
  t.same(ended(e.tick(51_000)), [s[1].serial], 'session 2 (1 s + 50 s) is');
  t.ok(e.bySerialNumber(s[0].serial), 'session 1 stays');
  t.end();
});

t.test('a session that enters while timers are scaled is filed at once, with its own (TCP half-open) timer', (t) => {
  const e = engine({});
  fill(e, 16);
  e.tick(15_000);
  t.equal(e.adaptiveFactor(0), 2 / 3, 'scaling already');
  const p = pkt(client(20), { sport: 41000, dport: 80 });
  if (p.decoded.ok) p.decoded = { ...p.decoded, tuple: { ...p.decoded.tuple, proto: 6 }, tcpFlags: 0x02 };
  const syn = live(e, e.handlePacket(p, 16_000).session!);
  t.equal(syn.timeout, 10);
  t.equal(e.adaptiveFactor(0), 0.5);
  // The half-open timer (10 s) scaled by 0.5: 5 s after the SYN.
  t.same(ended(e.tick(20_999)), []);
  t.same(ended(e.tick(21_000)), [syn.serial]);
  t.end();
});

t.test('disabled (start 0), or no session limit: nothing is scaled and the views keep their layout', (t) => {
  for (const [name, e] of [['start 0', engine({ adaptiveStart: 0 })], ['no limit', engine({}, { maxSessions: 0 })]] as const) {
    const s = fill(e, 17);
    t.equal(e.adaptiveFactor(0), 1, name);
    t.same(ended(e.tick(99_999)), [], `${name}: nothing before the TTL`);
    t.same(ended(e.tick(100_000)), [s[0].serial], `${name}: the TTL`);
    const v = viewOf(s[1], 100_000, false, e.adaptiveFactor(0));
    t.equal(v.adaptive, undefined);
    t.equal(v.expire, 1);
    t.notMatch(formatSession(v), /adaptive/);
  }
  const off = engine({ adaptiveStart: 0 });
  t.equal(statOf(off, 0).adaptive, undefined, 'start 0: no adaptive line');
  t.notMatch(formatStat(statOf(off, 0)), /adaptive/);
  const nolimit = engine({}, { maxSessions: 0 });
  t.match(formatStat(statOf(nolimit, 0)), /^adaptive timeout: start=70% end=100% factor=1\.00 expired=0 \(no session limit configured: no effect\)$/m);
  t.end();
});

t.test('a VDOM\'s own limit scales only its sessions; the global limit and the VDOM\'s, the lower factor', (t) => {
  const policy: EngineConfig['policy'] = (tu) => ({ policyId: 1, action: 'accept', logTraffic: false, vd: tu.src.startsWith('192.0.2.') ? 1 : 0 });
  const e = engine({ vdom: [{ session: 10, sessionGuaranteed: 0, users: 0 }] }, { maxSessions: 0, policy, vdomNames: ['root', 'vd1'] });
  // Five sessions of vd1 (no limit of its own) first, then nine of root (90 % of its 10: factor 1/3).
  const other: Session[] = [];
  for (let k = 1; k <= 5; k++) other.push(e.handlePacket(pkt(`192.0.2.${k}`), 0).session!);
  const root = fill(e, 9, 2);
  t.same([other[0].vd, root[0].vd], [1, 0]);
  t.equal(e.adaptiveFactor(0), (100 - 90) / 30);
  t.equal(e.adaptiveFactor(1), 1);
  // Root's first session (opened at 1 s) has 33.3 s; the vd1 ones, older, keep their 100 s.
  const fx = e.tick(34_334);
  t.same(ended(fx), [root[0].serial]);
  t.equal(e.adaptiveFactor(0), 2 / 3, '8 of 10: 80 %');
  t.same(e.adaptiveLimits(), [{ limit: 'vdom', vd: 0, sessions: 8, max: 10, factor: 2 / 3 }], 'no global limit: only the VDOM\'s');
  t.same(ended(e.tick(99_999)).filter((x) => other.some((o) => o.serial === x)), [], 'vd1 untouched by root\'s pressure');

  // With a global limit too, a session gets the lower of the two factors.
  const g = engine({ vdom: [{ session: 10, sessionGuaranteed: 0, users: 0 }] }, { maxSessions: 16, policy, vdomNames: ['root', 'vd1'] });
  for (let k = 1; k <= 5; k++) g.handlePacket(pkt(`192.0.2.${k}`), 0);
  fill(g, 8, 2);
  // 13 of 16 (81.25 %) globally: 0.625; root 8 of 10 (80 %): 2/3.
  t.equal(g.adaptiveFactor(1), (100 - 81.25) / 30);
  t.equal(g.adaptiveFactor(0), (100 - 81.25) / 30, 'the global one is lower');
  t.end();
});

function cache(): KernelCacheConfig {
  const classes = new TimerClasses({ halfOpen: 10, halfClose: 120, timeWait: 1 });
  for (const c of classes.ensure(sessionTtls({ defaultTtl: 3600, ttlRules: [], vdoms: [] }, []))) c.installed = true;
  return { layout: markLayout(0x00100000), classes, refreshHold: 604800 };
}

t.test('offloaded sessions: a scaled timer asks the kernel at once; an idle reading ends it with a ct-delete, an active one keeps its scaled time', (t) => {
  const e = engine({}, { offload: true, defaultTtl: 3600, udpIdleTimer: 3600, kernelCache: cache() });
  const s = fill(e, 17);
  t.ok(s.every((x) => x.offloaded && x.kernelClass !== undefined), 'offloaded at their first packet');
  t.same(e.tick(1_799_999), []);
  const fx = e.tick(1_800_000);
  t.same(fx, [{ kind: 'kernel-read', serial: s[0].serial, orig: s[0].orig, refreshSet: false }], 'no grace for a DESTROY: the kernel\'s own timer is not scaled');
  t.same(e.tick(1_800_500), [], 'one read at a time');
  // The kernel saw nothing since the first packet: 1800 s left of its 3600.
  const end = e.kernelReading(s[0].serial, { timeout: 1800, seenReply: false, counters: { origPackets: 1, origBytes: 60, replyPackets: 0, replyBytes: 0 } }, 1_800_000);
  t.same(deleted(end), [s[0].serial], 'its kernel entry is deleted');
  t.match(end.find((x) => x.kind === 'session-end'), { reason: 'ttl', session: { serial: s[0].serial } });
  t.equal(e.counters.adaptiveExpired, 1);

  // 16 of 20: factor 2/3; session 2 (opened at 1 s) is due at 1 + 2400 s.
  t.same(e.tick(2_400_999), []);
  t.same(e.tick(2_401_000).map((x) => x.kind), ['kernel-read']);
  // It was active 100 s ago in the kernel: it counts 2400 s (not 3600) from there.
  t.same(e.kernelReading(s[1].serial, { timeout: 3500, seenReply: true, counters: { origPackets: 9, origBytes: 540, replyPackets: 8, replyBytes: 480 } }, 2_401_000), []);
  const v = viewOf(s[1], 2_401_000, true, e.adaptiveFactor(0));
  t.equal(v.expire, 2300, 'scaled: 2400 s from the last packet');
  t.equal(v.adaptive, 0.67);
  t.equal(s[1].expireAt, 2_301_000 + 3_600_000, 'the unscaled expiry is kept');
  t.match(formatSession(v), /^session info: proto=17 proto_state=01 duration=2400 expire=2300 adaptive=0\.67 timeout=3600 refresh_dir=both /);
  t.same(e.tick(4_700_999).filter((x) => x.kind === 'kernel-read' && x.serial === s[1].serial), []);
  t.same(e.tick(4_701_000).filter((x) => x.kind === 'kernel-read').map((x) => (x as { serial: number }).serial).includes(s[1].serial), true, 'read again at its scaled time');
  t.end();
});

t.test('a full table of offloaded sessions: one reading for each session the factor needs gone, not one for each session', (t) => {
  const e = engine({}, { offload: true, defaultTtl: 3600, udpIdleTimer: 3600, kernelCache: cache() });
  const s = fill(e, 20);
  t.equal(e.adaptiveFactor(0), 0);
  // The first read counts as gone: 19 of 20 is 95 %, 600 s for the next, which has had 18 s.
  const fx = e.tick(19_000);
  t.same(fx.filter((x) => x.kind === 'kernel-read').map((x) => (x as { serial: number }).serial), [s[0].serial]);
  t.same(deleted(e.kernelReading(s[0].serial, { timeout: 3581, seenReply: false }, 19_000)), [s[0].serial], 'idle since its first packet: gone');
  t.same(e.tick(20_000).filter((x) => x.kind === 'kernel-read'), [], 'the rest have time');
  t.end();
});

t.test('a view\'s reading of an offloaded session past its scaled time ends it too', (t) => {
  const e = engine({}, { offload: true, defaultTtl: 3600, udpIdleTimer: 3600, kernelCache: cache() });
  const s = fill(e, 17);
  const fx = e.kernelReading(s[0].serial, { timeout: 1700, seenReply: false }, 1_900_000);
  t.same(deleted(fx), [s[0].serial]);
  t.equal(e.counters.adaptiveExpired, 1);
  t.end();
});

t.test('config: adaptive-timeout-start / -end read into the limits; bad values with line and column', (t) => {
  const c = parseConfig(`
config system global
    set adaptive-timeout-start 70
    set adaptive-timeout-end 120
end
config system resource-limits
    set session 20
end
`, 'a.conf');
  t.match(c.engine.limits, { adaptiveStart: 70, adaptiveEnd: 120 });
  t.same([parseConfig('', 'e.conf').engine.limits.adaptiveStart, parseConfig('', 'e.conf').engine.limits.adaptiveEnd], [0, 100], 'off by default');
  t.same(configErrors('config system global\n    set adaptive-timeout-start 80\n    set adaptive-timeout-end 80\nend\n', 'b.conf'),
    ['b.conf:3:30: adaptive-timeout-end 80 must be above adaptive-timeout-start 80']);
  t.same(configErrors('config system global\n    set adaptive-timeout-start 90\nend\n', 'c.conf'), [], 'start 90 under the default end 100');
  t.same(configErrors('config system global\n    set adaptive-timeout-end 60\n    set adaptive-timeout-start 70\nend\n', 'i.conf'),
    ['i.conf:2:30: adaptive-timeout-end 60 must be above adaptive-timeout-start 70'], 'pointed at the end value, in whatever order');
  t.match(configErrors('config system global\n    set adaptive-timeout-start 100\nend\n', 'd.conf'), [/^d\.conf:2:32: .*0-99/]);
  t.match(configErrors('config system global\n    set adaptive-timeout-end 0\nend\n', 'f.conf'), [/^f\.conf:2:30: .*1-1000/]);
  t.match(configErrors('config system global\n    set adaptive-timeout-start -5\nend\n', 'g.conf'), [/^g\.conf:2:32: /]);
  t.same(configErrors('config system global\n    set adaptive-timeout-start 0\n    set adaptive-timeout-end 50\nend\n', 'h.conf'), [], 'disabled: end is not checked against it');
  t.end();
});

t.test('stat and full-stat: the factor and each limit; metrics: the gauge and the counter', async (t) => {
  const cfg = parseConfig(`
config vdom
    edit root
    next
    edit vd1
    next
end
config global
    config system global
        set adaptive-timeout-start 70
        set adaptive-timeout-end 100
    end
    config system resource-limits
        set session 20
    end
    config system vdom-property
        edit "root"
            set session 10
        next
    end
end
`, 's.conf');
  const e = new SessionEngine({ ...engineConfigFor(cfg, (i) => `if${i}`), offload: false, policy: () => ({ policyId: 1, action: 'accept', logTraffic: false, vd: 0 }) });
  fill(e, 9);
  const st = statOf(e, 9_000);
  t.same(st.adaptive, {
    start: 70, end: 100, factor: 1 / 3, expired: 0,
    limits: [{ limit: 'global', sessions: 9, max: 20, factor: 1 }, { limit: 'vdom', vdom: 'root', sessions: 9, max: 10, factor: 1 / 3 }],
  });
  const text = formatStat(st);
  t.match(text, 'global: ses_limit=20 ses6_limit=20 rt_limit=0 rt6_limit=0\nadaptive timeout: start=70% end=100% factor=0.33 expired=0\n\tglobal: sessions=9/20 (45%) factor=1.00\n\tvdom root: sessions=9/10 (90%) factor=0.33\n');
  t.match(formatStat(fullStatOf(e, 9_000)), /^adaptive timeout: start=70% end=100% factor=0\.33 expired=0$/m, 'full-stat too');

  const m = new DaemonMetrics({ engine: () => e, vdName: (vd) => ['root', 'vd1'][vd] ?? String(vd), queues: () => [] }, { processMetrics: false });
  const lines = (await m.text()).split('\n');
  t.ok(lines.includes('nfsessiond_adaptive_timeout_factor{limit="global"} 1'));
  t.ok(lines.includes('nfsessiond_adaptive_timeout_factor{limit="vdom",vdom="root"} 0.3333333333333333'));
  t.ok(lines.includes('nfsessiond_adaptive_expired_total 0'));
  // Unanswered UDP: the 180 s idle timer, a third of it at 90 %.
  t.same(ended(e.tick(60_000)).length, 1);
  t.ok((await m.text()).split('\n').includes('nfsessiond_adaptive_expired_total 1'));

  const off = new SessionEngine(defaultEngineConfig());
  const mo = new DaemonMetrics({ engine: () => off, vdName: () => 'root', queues: () => [] }, { processMetrics: false });
  const offText = (await mo.text()).split('\n');
  t.ok(offText.includes('nfsessiond_adaptive_timeout_factor{limit="global"} 1'), 'disabled: 1');
  t.notOk(offText.some((l) => l.startsWith('nfsessiond_adaptive_timeout_factor{limit="vdom"')));
  t.end();
});
