import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Packet, Effect } from '../../src/engine/types.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type FlowTuple } from '../../src/packet/types.js';
import { live } from '../lib/live-session.js';

const C = '198.51.100.2', S = '203.0.113.2';

function pkt(tuple: Partial<FlowTuple> & { src: string; dst: string }, opts: { flags?: number; len?: number; quoted?: FlowTuple; indev?: number; outdev?: number } = {}): Packet {
  const tu: FlowTuple = { family: 4, proto: 6, sport: 40000, dport: 80, ...tuple };
  return {
    indev: opts.indev ?? 2, outdev: opts.outdev ?? 3, mark: 0,
    decoded: {
      ok: true, tuple: tu, length: opts.len ?? 60, tcpFlags: opts.flags ?? 0, icmpType: -1, icmpCode: -1,
      quoted: opts.quoted, payloadOffset: 40, payloadLength: Math.max(0, (opts.len ?? 60) - 40), fragment: false,
    },
  };
}
const fwd = (flags: number, len = 60) => pkt({ src: C, dst: S }, { flags, len });
const rev = (flags: number, len = 60) => pkt({ src: S, dst: C, sport: 80, dport: 40000 }, { flags, len, indev: 3, outdev: 2 });
const kinds = (e: Effect[]) => e.map((x) => x.kind);

t.test('TCP handshake creates one session, walks proto_state and asks for offload once established', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const d1 = e.handlePacket(fwd(TCP_SYN), 1000);
  t.equal(d1.verdict, 'accept');
  t.same(kinds(d1.effects), ['session-start']);
  const s = live(e, d1.session!);
  t.equal(s.serial, 1);
  t.equal(s.policyId, 1);
  t.same(s.state, [2, 0]);
  t.equal(s.timeout, 10, 'half-open timer while opening');
  t.equal(s.expireAt, 11000);

  const d2 = e.handlePacket(rev(TCP_SYN | TCP_ACK), 1100);
  t.equal(d2.dir, 'reply');
  t.same(s.state, [2, 3]);
  t.same(d2.effects, []);

  const d3 = e.handlePacket(fwd(TCP_ACK, 52), 1200);
  t.same(s.state, [1, 1]);
  t.equal(s.timeout, 3600);
  t.equal(s.expireAt, 1200 + 3600_000);
  t.same(d3.effects, [{ kind: 'offload', serial: 1, orig: s.orig, mark: 0x00100000, kernelTimeout: 432000 }]);
  t.same(s.org, { bytes: 112, packets: 2, allowErr: 0 });
  t.same(s.rep, { bytes: 60, packets: 1, allowErr: 0 });
  t.same(s.devOrg, [2, 3]);
  t.same(s.devReply, [3, 2]);

  // A packet still in flight while the kernel applies the mark does not ask again.
  t.same(e.handlePacket(fwd(TCP_ACK), 1300).effects, []);
  e.offloadResult(1, true);
  t.equal(s.offloaded, true);
  t.equal(e.size, 1);
  t.end();
});

t.test('TCP close: FIN/FIN/ACK gives 47 then 48 then 56 with the global timers, then expiry', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ offload: false }));
  e.handlePacket(fwd(TCP_SYN), 0);
  e.handlePacket(rev(TCP_SYN | TCP_ACK), 10);
  const s = live(e, e.handlePacket(fwd(TCP_ACK), 20).session!);
  e.handlePacket(fwd(TCP_FIN | TCP_ACK), 30);
  t.same(s.state, [4, 7]);
  t.equal(s.timeout, 120);
  e.handlePacket(rev(TCP_FIN | TCP_ACK), 40);
  t.same(s.state, [4, 8]);
  e.handlePacket(fwd(TCP_ACK), 50);
  t.same(s.state, [5, 6]);
  t.equal(s.timeout, 1);
  t.equal(s.expireAt, 1050);
  t.same(e.tick(1049), []);
  const fx = e.tick(1050);
  t.same(kinds(fx), ['ct-delete', 'session-end']);
  t.match(fx[1], { reason: 'tcp-close' });
  t.equal(e.size, 0);
  t.equal(e.counters.sessionsEnded['tcp-close'], 1);
  t.end();
});

t.test('RST closes both sides', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const s = live(e, e.handlePacket(fwd(TCP_SYN), 0).session!);
  e.handlePacket(rev(TCP_RST | TCP_ACK), 5);
  t.same(s.state, [6, 6]);
  t.equal(s.timeout, 1);
  t.end();
});

t.test('a TCP session may only start with a SYN unless configured otherwise', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const d = e.handlePacket(fwd(TCP_ACK), 0);
  t.equal(d.verdict, 'drop');
  t.equal(d.reason, 'tcp-without-syn');
  t.equal(e.size, 0);
  const loose = new SessionEngine(defaultEngineConfig({ tcpSessionWithoutSyn: true }));
  t.same(loose.handlePacket(fwd(TCP_ACK), 0).session!.state, [1, 1]);
  t.end();
});

t.test('UDP: proto_state 00 then 01, offload once the reply is seen, default TTL 3600', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const u = (src: string, dst: string, sport: number, dport: number) => pkt({ proto: 17, src, dst, sport, dport }, { len: 29 });
  const s = live(e, e.handlePacket(u(C, S, 5000, 53), 0).session!);
  t.same(s.state, [0, 0]);
  t.equal(s.timeout, 180, 'udp-idle-timer until the first reply');
  t.equal(s.expireAt, 180_000);
  t.same(e.handlePacket(u(C, S, 5000, 53), 100).effects, [], 'no offload before a reply');
  const d = e.handlePacket(u(S, C, 53, 5000), 200);
  t.same(s.state, [0, 1]);
  t.equal(s.timeout, 3600, 'the TTL once answered');
  t.equal(s.expireAt, 200 + 3600_000);
  t.same(kinds(d.effects), ['offload']);
  t.same(s.org, { bytes: 58, packets: 2, allowErr: 0 });
  t.same(s.rep, { bytes: 29, packets: 1, allowErr: 0 });
  t.end();
});

t.test('session-ttl port entry and refresh-direction incoming (the seed UDP 5001 case)', (t) => {
  const e = new SessionEngine(defaultEngineConfig({
    offload: false,
    ttlRules: [{ proto: 17, startPort: 5001, endPort: 5001, timeout: 5001, refreshDir: 'incoming' }],
  }));
  const out = pkt({ proto: 17, src: C, dst: S, sport: 2041, dport: 5001 }, { len: 29 });
  const back = pkt({ proto: 17, src: S, dst: C, sport: 5001, dport: 2041 }, { len: 29 });
  const s = live(e, e.handlePacket(out, 0).session!);
  t.equal(s.timeout, 5001);
  t.equal(s.refreshDir, 'incoming');
  t.equal(s.expireAt, 5001_000);
  e.handlePacket(out, 77_000);
  t.equal(s.expireAt, 5001_000, 'original-direction packets do not refresh');
  e.handlePacket(back, 1_710_000);
  t.equal(s.expireAt, 1_710_000 + 5001_000, 'reply packets do');
  t.end();
});

t.test('refresh-direction outgoing ignores replies; expiry ends the session and deletes the kernel entry', (t) => {
  const e = new SessionEngine(defaultEngineConfig({
    offload: false,
    ttlRules: [{ proto: 17, startPort: 7000, endPort: 7100, timeout: 30, refreshDir: 'outgoing' }],
  }));
  const out = pkt({ proto: 17, src: C, dst: S, sport: 1, dport: 7050 });
  const back = pkt({ proto: 17, src: S, dst: C, sport: 7050, dport: 1 });
  const s = live(e, e.handlePacket(out, 0).session!);
  e.handlePacket(back, 20_000);
  t.equal(s.expireAt, 30_000);
  const fx = e.tick(30_000);
  t.same(fx, [
    { kind: 'ct-delete', serial: 1, orig: s.orig },
    { kind: 'session-end', session: { ...s, timerAt: 0 }, reason: 'ttl', at: 30_000 },
  ]);
  t.end();
});

t.test('offloaded session learns counters and per-direction activity from kernel reports', (t) => {
  const e = new SessionEngine(defaultEngineConfig({
    ttlRules: [{ proto: 17, startPort: 5001, endPort: 5001, timeout: 60, refreshDir: 'incoming' }],
  }));
  const out = pkt({ proto: 17, src: C, dst: S, sport: 2041, dport: 5001 }, { len: 29 });
  const back = pkt({ proto: 17, src: S, dst: C, sport: 5001, dport: 2041 }, { len: 29 });
  const s = live(e, e.handlePacket(out, 0).session!);
  e.handlePacket(back, 1000);
  e.offloadResult(s.serial, true);
  t.equal(s.expireAt, 61_000);
  const rep = (origPackets: number, replyPackets: number) => ({
    event: 'update' as const, orig: s.orig, reply: s.reply, mark: 0x00100000,
    counters: { origPackets, origBytes: origPackets * 29, replyPackets, replyBytes: replyPackets * 29 },
  });
  t.same(e.kernelReport(rep(10, 1), 30_000), []);
  t.equal(s.org.packets, 10);
  t.equal(s.org.bytes, 290);
  t.equal(s.expireAt, 61_000, 'only original-direction growth: no refresh');
  e.kernelReport(rep(10, 3), 50_000);
  t.equal(s.rep.packets, 3);
  t.equal(s.expireAt, 110_000, 'reply growth refreshes');
  const fx = e.kernelReport({ ...rep(10, 3), event: 'destroy' }, 60_000);
  t.same(kinds(fx), ['session-end'], 'kernel already removed it: no ct-delete');
  t.equal(e.size, 0);
  t.end();
});

t.test('two dumps in a row without an offloaded session end it (missed DESTROY)', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const s = live(e, e.handlePacket(fwd(TCP_SYN), 0).session!);
  e.handlePacket(rev(TCP_SYN | TCP_ACK), 1);
  e.handlePacket(fwd(TCP_ACK), 2);
  e.offloadResult(s.serial, true);
  const here = { event: 'dump' as const, orig: s.orig, reply: s.reply };
  t.same(e.reconcileDump([], 5), [], 'one incomplete dump is not enough');
  t.same(e.reconcileDump([here], 7), [], 'present again: the count restarts');
  t.same(e.reconcileDump([], 8), []);
  const fx = e.reconcileDump([], 10);
  t.same(kinds(fx), ['session-end']);
  t.match(fx[0], { reason: 'kernel-gone' });
  t.end();
});

t.test('kernel TCP state applies while offloaded', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const s = live(e, e.handlePacket(fwd(TCP_SYN), 0).session!);
  e.handlePacket(rev(TCP_SYN | TCP_ACK), 1);
  e.handlePacket(fwd(TCP_ACK), 2);
  e.offloadResult(s.serial, true);
  e.kernelReport({ event: 'update', orig: s.orig, reply: s.reply, tcpState: 4 }, 100);
  t.same(s.state, [4, 7]);
  t.equal(s.timeout, 120);
  t.end();
});

t.test('NAT seen in the kernel reply tuple is recorded and the translated reply finds the session', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const s = live(e, e.handlePacket(fwd(TCP_SYN), 0).session!);
  const natReply: FlowTuple = { family: 4, proto: 6, src: S, dst: '203.0.113.1', sport: 80, dport: 61000 };
  e.kernelReport({ event: 'new', orig: s.orig, reply: natReply }, 1);
  t.same(s.nat, { snat: { addr: '203.0.113.1', port: 61000 } });
  t.equal(e.lookup(natReply)?.dir, 'reply');
  t.equal(e.lookup({ family: 4, proto: 6, src: S, dst: C, sport: 80, dport: 40000 }), undefined);
  t.end();
});

t.test('a VIP connection: the kernel files it under the address the client sent to; its reports and DESTROY still find the session', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  // The daemon decided on the mapped destination S:80; the client sent to the VIP 203.0.113.200:8080.
  const s = live(e, e.handlePacket(fwd(TCP_SYN), 0).session!);
  const kernelOrig: FlowTuple = { family: 4, proto: 6, src: C, dst: '203.0.113.200', sport: 40000, dport: 8080 };
  e.handlePacket(rev(TCP_SYN | TCP_ACK), 1);
  e.handlePacket(fwd(TCP_ACK), 2);
  e.offloadResult(s.serial, true);
  e.kernelReport({ event: 'update', orig: kernelOrig, reply: s.reply, tcpState: 4 }, 100);
  t.same(s.state, [4, 7], 'the report by the VIP tuple applied');
  // Another client's report with the same reply tuple cannot be this session's.
  t.same(e.kernelReport({ event: 'destroy', orig: { ...kernelOrig, src: '198.51.100.99' }, reply: s.reply }, 150), []);
  const fx = e.kernelReport({ event: 'destroy', orig: kernelOrig, reply: s.reply }, 200);
  t.match(fx, [{ kind: 'session-end', reason: 'tcp-close' }]);
  t.equal(e.size, 0);
  t.end();
});

t.test('ICMP errors are matched to the session of the packet they quote', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const u = pkt({ proto: 17, src: C, dst: S, sport: 5000, dport: 9 }, { len: 40 });
  const s = live(e, e.handlePacket(u, 0).session!);
  const unreach = pkt({ proto: 1, src: S, dst: C, sport: 0, dport: 0 }, { len: 68, quoted: u.decoded.ok ? u.decoded.tuple : undefined });
  const d = e.handlePacket(unreach, 10);
  t.equal(d.verdict, 'accept');
  t.equal(d.session!.serial, s.serial, "the same session");
  t.equal(d.dir, 'reply');
  t.same(s.rep, { bytes: 68, packets: 1, allowErr: 1 });
  const stray = pkt({ proto: 1, src: S, dst: C, sport: 0, dport: 0 }, { quoted: { family: 4, proto: 17, src: C, dst: S, sport: 1, dport: 2 } });
  t.equal(e.handlePacket(stray, 20).verdict, 'drop');
  t.equal(e.counters.icmpErrorsUnrelated, 1);
  t.equal(e.size, 1, 'an error never creates a session');
  t.end();
});

t.test('malformed packets are counted and get the configured verdict', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ malformedVerdict: 'accept' }));
  const d = e.handlePacket({ indev: 1, outdev: 2, mark: 0, decoded: { ok: false, reason: 'truncated-tcp' } }, 0);
  t.equal(d.verdict, 'accept');
  t.same(e.counters.malformed, { 'truncated-tcp': 1 });
  t.end();
});

t.test('policy deny drops without a session; table limit drops new sessions only', (t) => {
  const deny = new SessionEngine(defaultEngineConfig({ policy: () => ({ policyId: 0, action: 'deny', logTraffic: false, vd: 0 }) }));
  t.equal(deny.handlePacket(fwd(TCP_SYN), 0).reason, 'policy-deny:0');
  t.equal(deny.size, 0);
  const full = new SessionEngine(defaultEngineConfig({ maxSessions: 1 }));
  full.handlePacket(fwd(TCP_SYN), 0);
  t.equal(full.handlePacket(pkt({ src: C, dst: S, sport: 40001 }, { flags: TCP_SYN }), 1).reason, 'table-full');
  t.equal(full.handlePacket(rev(TCP_SYN | TCP_ACK), 2).verdict, 'accept', 'existing sessions keep working');
  t.end();
});

t.test('a SYN reusing the tuple of a closed session replaces it with a new serial', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const s1 = live(e, e.handlePacket(fwd(TCP_SYN), 0).session!);
  e.handlePacket(rev(TCP_RST | TCP_ACK), 1);
  const d = e.handlePacket(fwd(TCP_SYN), 2);
  t.same(kinds(d.effects), ['ct-delete', 'session-end', 'session-start']);
  t.not(d.session, s1);
  t.equal(d.session!.serial, 2);
  t.equal(e.size, 1);
  t.end();
});

t.test('clear removes matching sessions and their kernel entries; setup rate counts per second', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  for (let i = 0; i < 3; i++) e.handlePacket(pkt({ src: C, dst: S, sport: 1000 + i }, { flags: TCP_SYN }), 1500);
  e.handlePacket(pkt({ src: C, dst: S, sport: 2000 }, { flags: TCP_SYN }), 2100);
  t.equal(e.setupRate(2500), 3);
  t.equal(e.setupRate(3500), 1);
  t.equal(e.setupRate(9000), 0);
  const fx = e.clear((s) => s.orig.sport < 1002, 3000);
  t.same(kinds(fx), ['ct-delete', 'session-end', 'ct-delete', 'session-end']);
  t.equal(e.size, 2);
  t.equal(e.counters.deleted, 2);
  t.end();
});

t.test('expiry queue handles many sessions refreshed in place', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ offload: false, defaultTtl: 10 }));
  for (let i = 0; i < 1000; i++) e.handlePacket(pkt({ proto: 17, src: C, dst: S, sport: i + 1, dport: 53 }), i);
  // Refresh the even ones later: they must outlive the odd ones.
  for (let i = 0; i < 1000; i += 2) e.handlePacket(pkt({ proto: 17, src: C, dst: S, sport: i + 1, dport: 53 }), 5000);
  t.equal(e.tick(11_000).length, 1000, '500 odd sessions end (ct-delete + session-end each)');
  t.equal(e.size, 500);
  t.equal(e.tick(15_000).length, 1000);
  t.equal(e.size, 0);
  t.end();
});

t.test('ICMP echo request and reply with the same identifier are one session', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const req = pkt({ proto: 1, src: C, dst: S, sport: 14098, dport: 0 }, { len: 84 });
  const rep = pkt({ proto: 1, src: S, dst: C, sport: 14098, dport: 0 }, { len: 84 });
  const s = live(e, e.handlePacket(req, 0).session!);
  const d = e.handlePacket(rep, 1);
  t.equal(d.session!.serial, s.serial, "the same session");
  t.equal(d.dir, 'reply');
  t.same(s.state, [0, 1]);
  t.same(kinds(d.effects), ['offload']);
  t.equal(e.size, 1);
  t.end();
});
