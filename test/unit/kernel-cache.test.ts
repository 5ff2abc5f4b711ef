// The first-packet offload and the kernel as an exact cache of the table (src/engine/kernel-cache.ts):
// verdict marks, timer classes, the renewal of timers from kernel readings, DESTROY-driven ends,
// and the rules that carry it out.
import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig, type TtlRule } from '../../src/engine/engine-config.js';
import { markLayout, sessionTtls, TimerClasses, verdictMark, kernelStateTimeout, type KernelCacheConfig } from '../../src/engine/kernel-cache.js';
import type { Effect, Packet } from '../../src/engine/types.js';
import { TCP_ACK, TCP_SYN, type FlowTuple } from '../../src/packet/types.js';
import { renderClassAdd, renderTable, resolveRulesetOptions } from '../../src/kernel/ruleset.js';
import { decodeRefreshExpiration, encodeRefreshGet } from '../../src/kernel/refresh-set.js';
import { splitMessages } from '../../src/kernel/nfnetlink.js';
import { live } from '../lib/live-session.js';

const C = '198.51.100.2', S = '203.0.113.2';
const OFF = 0x00100000;

function pkt(tuple: Partial<FlowTuple>, opts: { flags?: number; len?: number; reply?: boolean } = {}): Packet {
  const base: FlowTuple = { family: 4, proto: 17, src: C, dst: S, sport: 40000, dport: 5001, ...tuple };
  const tu = opts.reply ? { ...base, src: base.dst, dst: base.src, sport: base.dport, dport: base.sport } : base;
  return {
    indev: 2, outdev: 3, mark: 0,
    decoded: {
      ok: true, tuple: tu, length: opts.len ?? 60, tcpFlags: opts.flags ?? 0, icmpType: -1, icmpCode: -1,
      payloadOffset: 28, payloadLength: 0, fragment: false,
    },
  };
}

function cache(ttls: Array<{ proto: number; ttl: number }>): KernelCacheConfig {
  const classes = new TimerClasses({ halfOpen: 10, halfClose: 120, timeWait: 1 });
  for (const c of classes.ensure(ttls)) c.installed = true;
  return { layout: markLayout(OFF), classes, refreshHold: 604800 };
}

const rules: TtlRule[] = [
  { proto: 17, startPort: 5001, endPort: 5001, timeout: 40, refreshDir: 'incoming' },
  { proto: 17, startPort: 5002, endPort: 5002, timeout: 20, refreshDir: 'both' },
];

function engine(kc = cache(sessionTtls({ defaultTtl: 3600, ttlRules: rules, vdoms: [] }, []))): SessionEngine {
  return new SessionEngine(defaultEngineConfig({ ttlRules: rules, kernelCache: kc }));
}

const reads = (fx: Effect[]) => fx.filter((e) => e.kind === 'kernel-read');

t.test('mark layout above the offload bit; bad offload marks are refused', (t) => {
  const l = markLayout(OFF);
  t.same([l.offload, l.refreshOrg, l.refreshReply, l.ctBits, l.classShift, l.classMask], [0x00100000, 0x00200000, 0x00400000, 0x00700000, 23, 0x1f800000]);
  t.equal(l.all, 0x1ff00000);
  t.throws(() => markLayout(0x00300000), /single bit/);
  t.throws(() => markLayout(0x01000000), /no room/);
  t.end();
});

t.test('timer classes: one per protocol and TTL, indexes never renumbered, the next longer one when none is exact', (t) => {
  const tc = new TimerClasses({ halfOpen: 10, halfClose: 120, timeWait: 1 });
  const a = tc.ensure(sessionTtls({ defaultTtl: 3600, ttlRules: rules, vdoms: [] }, [300]));
  t.same(a.map((c) => [c.index, c.name]), [[1, 'tcp_3600_10_120_1'], [2, 'udp_3600'], [3, 'udp_40'], [4, 'udp_20'], [5, 'tcp_300_10_120_1'], [6, 'udp_300']]);
  t.same(a[1].policy, { unreplied: 3600, replied: 3600 });
  t.match(a[0].policy, { syn_sent: 10, established: 3600, fin_wait: 120, time_wait: 1, retrans: 3600, unack: 3600 });
  t.equal(tc.classFor(17, 40), undefined, 'nothing is used before the kernel has it');
  for (const c of a) c.installed = true;
  t.equal(tc.classFor(17, 40)?.name, 'udp_40');
  t.equal(tc.classFor(17, 100)?.name, 'udp_300', 'never shorter: the daemon timer ends it');
  t.equal(tc.classFor(17, 7200), undefined);
  t.equal(tc.classFor(1, 60), undefined, 'ICMP has no class: it stays in userspace');
  const b = tc.ensure([{ proto: 17, ttl: 40 }, { proto: 17, ttl: 90 }]);
  t.same(b.map((c) => [c.index, c.name]), [[7, 'udp_90']], 'a reload adds, never renumbers');
  t.equal(kernelStateTimeout(a[0], 7), 1, 'TCP TIME_WAIT uses the time-wait timer');
  t.equal(kernelStateTimeout(a[0], 3), 3600);
  t.end();
});

t.test('a UDP session is offloaded by its first verdict: the mark names the class and the refresh direction', (t) => {
  const e = engine();
  const d = e.handlePacket(pkt({}), 1000);
  const cls = e.config.kernelCache!.classes.classFor(17, 40)!;
  t.equal(d.verdict, 'accept');
  t.equal(d.mark, (OFF | 0x00400000 | (cls.index << 23)) >>> 0, 'offload | refresh incoming | class udp_40');
  t.equal(d.mark, verdictMark(e.config.kernelCache!.layout, cls, 'incoming'));
  t.same(d.effects.map((x) => x.kind), ['session-start'], 'no conntrack write');
  t.match(d.session, { offloaded: true, kernelClass: cls.index, expireAt: 41000 });
  const tcp = e.handlePacket(pkt({ proto: 6, dport: 80 }, { flags: TCP_SYN }), 1000);
  t.equal(tcp.mark, (OFF | (1 << 23)) >>> 0, 'TCP default TTL class 1, refresh both');
  const icmp = e.handlePacket(pkt({ proto: 1, sport: 7, dport: 0 }), 1000);
  t.equal(icmp.mark, undefined, 'ICMP stays queued');
  t.equal(icmp.session!.offloaded, false);
  t.end();
});

t.test('helper sessions and a disabled offload keep every packet', (t) => {
  const e = engine();
  const ftp = e.handlePacket(pkt({ proto: 6, dport: 21 }, { flags: TCP_SYN }), 0);
  t.equal(ftp.session!.helper, 'ftp');
  t.equal(ftp.mark, undefined);
  const off = new SessionEngine(defaultEngineConfig({ offload: false, kernelCache: cache([{ proto: 17, ttl: 3600 }]) }));
  t.equal(off.handlePacket(pkt({ dport: 9999 }), 0).mark, undefined);
  t.end();
});

t.test('refresh both: the timer waits a grace for the DESTROY, then reads; the reading renews from the kernel timeout', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({ dport: 5002 }), 0).session!);
  t.equal(s.expireAt, 20_000);
  t.same(e.tick(20_000), [], 'grace for the kernel DESTROY: no work yet');
  const fx = e.tick(22_000);
  t.same(reads(fx), [{ kind: 'kernel-read', serial: s.serial, orig: s.orig, refreshSet: false }]);
  t.same(e.tick(22_500), [], 'one read at a time');
  // The kernel saw a packet 5 s ago: 15 s left of its 20 s.
  t.same(e.kernelReading(s.serial, { timeout: 15, seenReply: true, counters: { origPackets: 4, origBytes: 240, replyPackets: 3, replyBytes: 180 } }, 22_500), []);
  t.equal(s.expireAt, 37_500);
  t.same([s.org.packets, s.rep.packets, s.state[1]], [4, 3, 1]);
  // The kernel's own timer ends it: DESTROY at the same moment as ours, reason ttl.
  const end = e.kernelReport({ event: 'destroy', orig: s.orig, reply: s.reply, counters: { origPackets: 5, origBytes: 300, replyPackets: 3, replyBytes: 180 } }, 37_600);
  t.match(end.find((x) => x.kind === 'session-end'), { reason: 'ttl' });
  t.notOk(end.some((x) => x.kind === 'ct-delete'), 'the kernel already ended it');
  t.equal(e.size, 0);
  t.end();
});

t.test('refresh incoming: the refresh-set element dates the last reply; outgoing packets cannot extend it', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({}), 0).session!);
  const fx = e.tick(40_000);
  t.same(reads(fx), [{ kind: 'kernel-read', serial: s.serial, orig: s.orig, refreshSet: true }], 'directional: read at once');
  // Packets both ways kept the kernel entry fresh (38 s left), but the last reply was 30 s ago.
  const hold = 604800_000;
  e.kernelReading(s.serial, { timeout: 38, seenReply: true, refreshLeftMs: hold - 30_000 }, 40_000);
  t.equal(s.expireAt, 50_000, 'last reply at 10 s + 40 s');
  // No reply since: the element is unchanged (it only counts down), so the session ends.
  const end = e.tick(50_000);
  t.equal(reads(end).length, 1);
  const fin = e.kernelReading(s.serial, { timeout: 38, seenReply: true, refreshLeftMs: hold - 40_000 }, 50_100);
  t.match(fin, [{ kind: 'ct-delete', serial: s.serial }, { kind: 'session-end', reason: 'ttl' }]);
  t.end();
});

t.test('refresh incoming with no element at all: no reply ever refreshed it', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({}), 0).session!);
  e.tick(40_000);
  const fin = e.kernelReading(s.serial, { timeout: 39, refreshLeftMs: null }, 40_000);
  t.match(fin.map((x) => x.kind), ['ct-delete', 'session-end']);
  t.end();
});

t.test('an unanswered UDP flow gets the idle timer, and the kernel reading tells whether a reply came', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({ dport: 7000 }), 0).session!);
  t.equal(s.timeout, 180, 'udp-idle-timer until a reply');
  const fx = e.tick(180_000);
  t.equal(reads(fx).length, 1, 'read at once: the kernel keeps it for the TTL, not the idle timer');
  // A reply came 100 s ago, the last packet 60 s ago (3540 s left of the kernel's 3600).
  e.kernelReading(s.serial, { timeout: 3540, seenReply: true }, 180_000);
  t.same([s.state[1], s.timeout, s.expireAt], [1, 3600, 120_000 + 3600_000]);
  const s2 = live(e, e.handlePacket(pkt({ dport: 7001 }), 0).session!);
  e.tick(180_000);
  t.match(e.kernelReading(s2.serial, { timeout: 3420, seenReply: false }, 180_001).map((x) => x.kind), ['ct-delete', 'session-end']);
  t.end();
});

t.test('a TCP session takes its state from the kernel reading; a gone entry ends it without a delete', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({ proto: 6, dport: 80 }, { flags: TCP_SYN }), 0).session!);
  t.equal(s.timeout, 10, 'half-open timer from the SYN');
  e.tick(10_000);
  e.tick(12_000);
  e.kernelReading(s.serial, { timeout: 3599, tcpState: 3, counters: { origPackets: 3, origBytes: 180, replyPackets: 2, replyBytes: 120 } }, 12_000);
  t.same(s.state, [1, 1]);
  t.same([s.timeout, s.expireAt], [3600, 11_000 + 3600_000]);
  const s2 = live(e, e.handlePacket(pkt({ proto: 6, dport: 81 }, { flags: TCP_SYN }), 0).session!);
  t.match(e.kernelReading(s2.serial, { gone: true }, 1000), [{ kind: 'session-end', reason: 'tcp-close' }]);
  t.end();
});

t.test('a TCP DESTROY before the timer is a close; counters and state come with it', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({ proto: 6, dport: 80 }, { flags: TCP_SYN }), 0).session!);
  t.same(e.handlePacket(pkt({ proto: 6, dport: 80 }, { flags: TCP_SYN | TCP_ACK, reply: true }), 10).effects, [], 'a packet still in flight changes nothing');
  const fx = e.kernelReport({ event: 'destroy', orig: s.orig, reply: s.reply, tcpState: 7, counters: { origPackets: 5, origBytes: 300, replyPackets: 4, replyBytes: 260 } }, 500);
  t.match(fx, [{ kind: 'session-end', reason: 'tcp-close' }]);
  const gone = fx[0].kind === 'session-end' ? fx[0].session : s;
  t.same([gone.org.packets, gone.rep.packets], [5, 4]);
  t.same(gone.state, [5, 6]);
  t.end();
});

t.test('a restored snapshot drops the timer class (the kernel objects were recreated) and reads by counters', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({ dport: 5002 }), 0).session!);
  const snap = e.snapshot(100);
  const e2 = engine();
  e2.restore(JSON.parse(JSON.stringify(snap)), 200);
  const r = live(e2, e2.bySerialNumber(s.serial)!);
  t.equal(r.kernelClass, undefined);
  t.equal(r.offloaded, true);
  const fx = e2.tick(20_000);
  t.same(reads(fx).length, 1, 'no grace: the kernel timeouts are its own now');
  e2.kernelReading(r.serial, { timeout: 100, counters: { origPackets: 5, origBytes: 300, replyPackets: 0, replyBytes: 0 } }, 20_000);
  t.equal(r.expireAt, 40_000, 'counters moved: refreshed at the reading');
  e2.tick(40_000);
  t.match(e2.kernelReading(r.serial, { timeout: 80, counters: { origPackets: 5, origBytes: 300, replyPackets: 0, replyBytes: 0 } }, 40_000).map((x) => x.kind), ['ct-delete', 'session-end']);
  t.end();
});

t.test('a view reading an idle restored session with unchanged counters keeps it: only a timer that ran out ends it', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket(pkt({ dport: 5002, sport: 40001 }), 0).session!);
  const e2 = engine();
  e2.restore(JSON.parse(JSON.stringify(e.snapshot(100))), 200);
  const r = e2.bySerialNumber(s.serial)!;
  const idle = { timeout: 100, counters: { origPackets: r.org.packets, origBytes: r.org.bytes, replyPackets: 0, replyBytes: 0 } };
  t.same(e2.kernelReading(r.serial, idle, 5_000), [], 'a view read before the timer ran out');
  t.equal(e2.bySerialNumber(s.serial)?.serial, r.serial, 'still in the table');
  t.equal(r.expireAt, 20_000, 'its timer untouched');
  t.same(reads(e2.tick(20_000)).length, 1, 'the timer runs out: a reading is asked for');
  t.match(e2.kernelReading(r.serial, idle, 20_000).map((x) => x.kind), ['ct-delete', 'session-end'], 'still unchanged: ended');
  t.end();
});

t.test('a watched flow (trace or capture running) is not offloaded at its first packet but once established', (t) => {
  const e = engine();
  const first = { ...pkt({ dport: 5002, sport: 40002 }), watched: true };
  const d = e.handlePacket(first, 0);
  t.equal(d.mark, undefined, 'no offload mark on the verdict');
  t.match(d.session, { offloaded: false, kernelClass: undefined });
  const r = e.handlePacket({ ...pkt({ dport: 5002, sport: 40002 }, { reply: true }), watched: true }, 10);
  t.match(r.effects.filter((x) => x.kind === 'offload'), [{ kind: 'offload', serial: d.session!.serial }], 'offloaded by a conntrack update once the reply is seen');
  t.end();
});

t.test('a kernel entry made again mid-session is translated again: the verdict names the policy\'s NAT', (t) => {
  const NAT = 0x2000;
  const e = new SessionEngine(defaultEngineConfig({ ttlRules: rules, kernelCache: cache(sessionTtls({ defaultTtl: 3600, ttlRules: rules, vdoms: [] }, [])), policy: () => ({ policyId: 5, action: 'accept', logTraffic: false, vd: 0, natMark: NAT }) }));
  const tcp = (flags: number, ct: { ctId: number; ctNew?: boolean }, reply = false) => ({ ...pkt({ proto: 6, dport: 80, sport: 41000 }, { flags, reply }), ...ct });
  const first = e.handlePacket(tcp(TCP_SYN, { ctId: 7, ctNew: true }), 0);
  t.equal(first.mark! & NAT, NAT, 'the first packet selects the source NAT');
  const seg = e.handlePacket(tcp(TCP_ACK, { ctId: 9, ctNew: true }), 5_000);
  t.equal(seg.mark, first.mark, 'offloaded and translated again');
  const back = e.handlePacket(tcp(TCP_ACK, { ctId: 11, ctNew: true }, true), 9_000);
  t.equal(back.mark! & NAT, 0, 'a reply packet that made the entry starts no NAT');
  t.end();
});

t.test('an offloaded TCP session whose kernel entry is gone: a segment continues it, a later SYN replaces it', (t) => {
  const e = engine();
  const tcp = (flags: number, ct: { ctId: number; ctNew?: boolean }, reply = false) => ({ ...pkt({ proto: 6, dport: 80, sport: 41000 }, { flags, reply }), ...ct });
  const first = e.handlePacket(tcp(TCP_SYN, { ctId: 7, ctNew: true }), 0);
  const s = live(e, first.session!);
  t.match(s, { offloaded: true, ctId: 7 });
  t.ok(first.mark);

  // A second SYN queued before the first verdict (another entry the kernel merges): the same connection.
  const early = e.handlePacket(tcp(TCP_SYN, { ctId: 8, ctNew: true }), 200);
  t.equal(early.session?.serial, s.serial, "the same session");
  t.equal(early.mark, first.mark, 'offloaded again');

  // An operator deleted the entry; the next segment makes a new one: the session goes on, offloaded again.
  const seg = e.handlePacket(tcp(TCP_ACK, { ctId: 9, ctNew: true }), 5_000);
  t.equal(seg.session?.serial, s.serial, "the same session");
  t.equal(seg.mark, first.mark);
  t.equal(s.ctId, 9, 'the new entry is the session\'s');
  t.equal(e.handlePacket(tcp(TCP_ACK, { ctId: 9, ctNew: false }), 5_100).mark, undefined, 'a packet of its own entry is no news');

  // The kernel ended it (DESTROY missed) and the client reuses the ports.
  const syn = e.handlePacket(tcp(TCP_SYN, { ctId: 10, ctNew: true }), 9_000);
  t.not(syn.session, s, 'a new session');
  t.match(syn.effects.map((x) => x.kind), ['session-end', 'session-start']);
  t.match(syn.effects[0], { kind: 'session-end', reason: 'replaced' });
  t.notOk(syn.effects.some((x) => x.kind === 'ct-delete'), 'the new kernel entry is the new connection\'s: nothing deleted');
  t.equal(syn.session!.ctId, 10);
  t.end();
});

t.test('a DESTROY of an older kernel entry of the same tuple does not end the session', (t) => {
  const e = engine();
  const s = live(e, e.handlePacket({ ...pkt({ dport: 5002, sport: 40010 }), ctId: 21, ctNew: true }, 10_000).session!);
  const ev = { event: 'destroy' as const, orig: s.orig, reply: s.reply };
  t.same(e.kernelReport({ ...ev, id: 20 }, 10_100), [], 'another id');
  t.same(e.kernelReport({ ...ev, startMs: 10_000 - 5_000 }, 10_100), [], 'started well before the session');
  t.equal(e.bySerialNumber(s.serial)?.serial, s.serial, 'still in the table');
  t.match(e.kernelReport({ ...ev, id: 21, startMs: 10_000 }, 10_200), [{ kind: 'session-end', reason: 'kernel-destroy' }], 'its own entry ends it');
  t.end();
});

t.test('rules: the verdict chain copies the mark, names the timeout object and limits events', (t) => {
  const kc = cache([{ proto: 6, ttl: 3600 }, { proto: 17, ttl: 40 }]);
  const o = resolveRulesetOptions({ firstPacket: { classes: [...kc.classes.all], refreshHold: 604800, refreshSetSize: 65536 } });
  const text = renderTable(o, 'xt-nfqueue');
  const has = (s: string) => t.ok(text.includes(s), s);
  has('\tset refresh {\n\t\ttypeof ct id\n\t\tsize 65536\n\t\tflags dynamic,timeout\n\t}');
  has('\tct timeout udp_40 {\n\t\tprotocol udp; l3proto ip;\n\t\tpolicy = { unreplied: 40, replied: 40 }\n\t}');
  has('ct state new ip saddr . ip daddr . meta l4proto . th dport @pinholes4 counter ct event set new,destroy ct mark set ct mark | 0x00100000');
  has('ct mark & 0x00300000 == 0x00300000 ct direction original update @refresh { ct id timeout 604800s }');
  has('ct mark & 0x00500000 == 0x00500000 ct direction reply update @refresh { ct id timeout 604800s }');
  has('\tchain forward_verdict {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n\t\tct state new meta mark & 0x00100000 == 0x00100000 jump first_packet\n\t\tct state new ct mark & 0x00100000 == 0x00000000 ct event set destroy\n\t}');
  has('\t\tmeta mark & 0x00700000 == 0x00500000 ct mark set ct mark | 0x00500000');
  has('\t\tmeta mark & 0x1f800000 == 0x01000000 ct timeout set "udp_40"\n\t\tct event set destroy\n\t\tmeta mark set meta mark & 0xe00fffff\n\t}');
  const add = renderClassAdd(o, [kc.classes.all[1]]);
  t.equal(add, 'add ct timeout inet nfsessiond udp_40 {\n\tprotocol udp; l3proto ip;\n\tpolicy = { unreplied: 40, replied: 40 }\n}\ninsert rule inet nfsessiond first_packet meta mark & 0x1f800000 == 0x01000000 ct timeout set "udp_40"\n');
  t.throws(() => resolveRulesetOptions({ offloadMark: 0x10000000, firstPacket: { classes: [], refreshHold: 1, refreshSetSize: 1 } }), /no room/);
  t.end();
});

t.test('refresh set codec: the element GET carries the ct id big-endian; the answer gives the ms left', (t) => {
  const req = encodeRefreshGet('nfsessiond', 0x6b13a2d2, 7);
  const [m] = splitMessages(req);
  t.equal(m.type, (10 << 8) | 13, 'nf_tables GETSETELEM');
  t.ok(req.includes(Buffer.from([0x6b, 0x13, 0xa2, 0xd2])), 'key bytes as CTA_ID carries them');
  t.ok(req.includes(Buffer.from('refresh\0')));
  // An answer: nfgenmsg + LIST_ELEMENTS { LIST_ELEM { EXPIRATION u64 = 86399468 } }.
  const exp = Buffer.alloc(12);
  exp.writeUInt16LE(12, 0); exp.writeUInt16LE(5, 2); exp.writeBigUInt64BE(86399468n, 4);
  const elem = Buffer.concat([Buffer.from([16, 0, 1 | 0x80, 0x80]), exp]);
  elem.writeUInt16LE(16, 0); elem.writeUInt16LE(1 | 0x8000, 2);
  const list = Buffer.concat([Buffer.alloc(4), elem]);
  list.writeUInt16LE(20, 0); list.writeUInt16LE(3 | 0x8000, 2);
  const body = Buffer.concat([Buffer.from([1, 0, 0, 0]), list]);
  t.equal(decodeRefreshExpiration({ type: (10 << 8) | 12, flags: 0, seq: 7, pid: 0, body }), 86399468);
  t.equal(decodeRefreshExpiration({ type: (10 << 8) | 12, flags: 0, seq: 7, pid: 0, body: Buffer.from([1, 0, 0, 0]) }), undefined);
  t.end();
});
