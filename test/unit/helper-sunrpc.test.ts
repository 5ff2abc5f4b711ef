import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Effect, PolicyMatch } from '../../src/engine/types.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable } from '../../src/helpers/registry.js';
import { sunrpcHelper, parseUniversalAddress } from '../../src/helpers/sunrpc.js';
import { newRecordState, parseRpcMessage, recordFeed } from '../../src/helpers/onc-rpc.js';
import { TcpConversation, tcpSyn, udp } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2';
const C6 = '2001:db8:100::2', S6 = '2001:db8:113::2';

/** Only the portmapper (tcp+udp/111) is allowed (policy 11). */
const controlOnly = (t: { proto: number; dport: number }): PolicyMatch =>
  (t.proto === 6 || t.proto === 17) && t.dport === 111 ? { policyId: 11, action: 'accept', logTraffic: true, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };

const engine = (over: Parameters<typeof defaultEngineConfig>[0] = {}) => new SessionEngine(defaultEngineConfig({ policy: controlOnly, ...over }));
const ofKind = (fx: Effect[], k: Effect['kind']) => fx.filter((x) => x.kind === k);

// XDR encoding for the test messages.
const u32 = (...v: number[]) => { const b = Buffer.alloc(4 * v.length); v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i)); return b; };
const str = (s: string) => { const d = Buffer.from(s, 'latin1'); return Buffer.concat([u32(d.length), d, Buffer.alloc((4 - (d.length % 4)) % 4)]); };
const AUTH_NONE = u32(0, 0);
/** AUTH_SYS credentials, as rpcinfo and libtirpc clients send them. */
const AUTH_SYS = Buffer.concat([u32(1), (() => { const body = Buffer.concat([u32(0x1234), str('client'), u32(0, 0, 1, 0)]); return Buffer.concat([u32(body.length), body]); })()]);
const call = (xid: number, vers: number, proc: number, args: Buffer, cred = AUTH_NONE) =>
  Buffer.concat([u32(xid, 0, 2, 100000, vers, proc), cred, AUTH_NONE, args]);
const reply = (xid: number, results: Buffer, acceptStat = 0) => Buffer.concat([u32(xid, 1, 0), AUTH_NONE, u32(acceptStat), results]);
const denied = (xid: number) => u32(xid, 1, 1, 0, 2, 2);
const getport = (xid: number, prog: number, vers: number, prot: number) => call(xid, 2, 3, u32(prog, vers, prot, 0));
const getaddr = (xid: number, vers: number, prog: number, pv: number, netid: string, proc = 3) => call(xid, vers, proc, Buffer.concat([u32(prog, pv), str(netid), str(''), str('')]), AUTH_SYS);
/** One record in one last fragment. */
const rm = (b: Buffer) => Buffer.concat([u32(0x80000000 | b.length), b]);

t.test('UDP portmap v2 GETPORT: the reply port opens client -> server:port over the asked protocol', (t) => {
  const e = engine();
  const c = { addr: C, port: 700 }, s = { addr: S, port: 111 };
  const d0 = udp(e, c, s, getport(0x11, 100024, 1, 6), 1000);
  t.equal(d0.session!.helper, 'pmap');
  t.equal(e.expectations.size, 0, 'the call alone opens nothing');
  const d = udp(e, s, c, reply(0x11, u32(41235)), 1100, false);
  t.equal(ofKind(d.effects, 'expect-add').length, 1);
  t.same([...e.expectations.all()].map(({ id: _i, createdAt: _c, sessionTimeout: _s, ...x }) => x), [{
    parent: 1, serial: 1, policyId: 11, vd: 0, helper: 'pmap', kind: 'rpc', family: 4, proto: 6,
    src: C, sport: 0, dst: S, dport: 41235, expireAt: 31100, tracksParent: false, lifetime: 30,
  }]);
  const svc = tcpSyn(e, { addr: C, port: 801 }, { addr: S, port: 41235 }, 1200);
  t.equal(svc.verdict, 'accept');
  t.equal(svc.reason, 'expected:pmap');
  t.match(svc.session, { policyId: 11, parent: 1, inheritedSerial: 1, expected: { helper: 'pmap', kind: 'rpc' } });
  t.equal(tcpSyn(e, { addr: C, port: 802 }, { addr: S, port: 41236 }, 1300).verdict, 'drop', 'other ports stay closed');

  // A UDP service: prot 17.
  udp(e, c, s, getport(0x12, 100003, 3, 17), 1400);
  udp(e, s, c, reply(0x12, u32(2049)), 1500, false);
  t.match([...e.expectations.all()], [{ proto: 17, src: C, dst: S, dport: 2049 }]);
  t.end();
});

t.test('TCP rpcbind v4 GETADDR and v3: the universal address names the server and port', (t) => {
  const e = engine();
  const ctl = new TcpConversation(e, { addr: C, port: 900 }, { addr: S, port: 111 });
  ctl.open(1000);
  ctl.send('client', rm(getaddr(7, 4, 100024, 1, 'tcp')), 1100);
  const d = ctl.send('server', rm(reply(7, str('203.0.113.2.161.21'))), 1200);
  t.equal(ofKind(d.effects, 'expect-add').length, 1);
  t.match([...e.expectations.all()], [{ helper: 'pmap', kind: 'rpc', proto: 6, src: C, sport: 0, dst: S, dport: 161 * 256 + 21, policyId: 11 }]);
  // v3, UDP netid, the record split into two fragments and sent byte by byte.
  const body = getaddr(8, 3, 100021, 4, 'udp');
  const frag = Buffer.concat([u32(20), body.subarray(0, 20), u32(0x80000000 | (body.length - 20)), body.subarray(20)]);
  for (const b of frag) ctl.send('client', Buffer.from([b]), 1300);
  ctl.send('server', rm(reply(8, str('0.0.0.0.3.1'))), 1400);
  t.match([...e.expectations.all()].map((x) => [x.proto, x.dst, x.dport]), [[6, S, 41237], [17, S, 769]], '0.0.0.0 is the server');
  // GETVERSADDR (v4 proc 9).
  ctl.send('client', rm(getaddr(9, 4, 100005, 3, 'tcp', 9)), 1500);
  ctl.send('server', rm(reply(9, str('203.0.113.2.78.32'))), 1600);
  t.equal(e.expectations.size, 3);
  t.end();
});

t.test('IPv6: tcp6 netid and an IPv6 universal address', (t) => {
  const e = engine();
  const c = { addr: C6, port: 700 }, s = { addr: S6, port: 111 };
  udp(e, c, s, getaddr(1, 4, 100024, 1, 'tcp6'), 1000);
  udp(e, s, c, reply(1, str('2001:db8:113::2.200.10')), 1100, false);
  t.match([...e.expectations.all()], [{ family: 6, proto: 6, src: C6, dst: S6, dport: 200 * 256 + 10 }]);
  udp(e, c, s, getport(2, 100024, 1, 6), 1200);
  udp(e, s, c, reply(2, u32(1000)), 1300, false);
  t.equal(e.expectations.size, 2, 'GETPORT works on IPv6 too (the server is the peer)');
  t.end();
});

t.test('third-party and unregistered answers, denied replies, unmatched xids', (t) => {
  const e = engine();
  const c = { addr: C, port: 700 }, s = { addr: S, port: 111 };
  udp(e, c, s, getaddr(1, 4, 100024, 1, 'tcp'), 1000);
  let d = udp(e, s, c, reply(1, str('192.0.2.9.4.1')), 1100, false);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { helper: 'pmap', reason: 'rpc-third-party', detail: /192\.0\.2\.9:1025, not the server 203\.0\.113\.2/ } }]);
  udp(e, c, s, getaddr(2, 4, 100024, 1, 'tcp'), 1200);
  udp(e, s, c, reply(2, str('')), 1300, false); // not registered
  udp(e, c, s, getport(3, 100024, 1, 6), 1400);
  udp(e, s, c, reply(3, u32(0)), 1500, false); // not registered
  udp(e, c, s, getport(4, 100024, 1, 6), 1600);
  udp(e, s, c, denied(4), 1700, false);
  udp(e, c, s, getport(5, 100024, 1, 6), 1800);
  udp(e, s, c, reply(5, u32(1234), 1), 1900, false); // PROG_UNAVAIL
  udp(e, s, c, reply(99, u32(1234)), 2000, false); // no such call
  udp(e, c, s, getport(6, 100024, 1, 6), 2100);
  udp(e, c, s, reply(6, u32(1234)), 2200); // a "reply" from the client is not the portmapper's
  udp(e, c, s, getport(7, 100024, 1, 1), 2300); // prot ICMP: not a port lookup
  udp(e, s, c, reply(7, u32(1234)), 2400, false);
  d = udp(e, c, s, call(8, 2, 3, u32(1, 2)), 2500);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { reason: 'malformed' } }]);
  udp(e, c, s, getaddr(9, 4, 100024, 1, 'tcp'), 2600);
  d = udp(e, s, c, reply(9, str('203.0.113.2.300.1')), 2700, false);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { reason: 'malformed' } }]);
  t.equal(e.expectations.size, 0);
  // A reply is used once.
  udp(e, c, s, getport(10, 100024, 1, 6), 2800);
  udp(e, s, c, reply(10, u32(5000)), 2900, false);
  udp(e, s, c, reply(10, u32(5001)), 3000, false);
  t.same([...e.expectations.all()].map((x) => x.dport), [5000]);
  t.end();
});

t.test('with the pmap helper deleted, the service port needs a policy', (t) => {
  const e = engine({ helpers: new HelperTable(DEFAULT_HELPER_BINDINGS.filter((b) => b.name !== 'pmap')) });
  const c = { addr: C, port: 700 }, s = { addr: S, port: 111 };
  udp(e, c, s, getport(1, 100024, 1, 6), 1000);
  udp(e, s, c, reply(1, u32(41235)), 1100, false);
  t.equal(e.expectations.size, 0);
  t.equal(tcpSyn(e, { addr: C, port: 801 }, { addr: S, port: 41235 }, 1200).verdict, 'drop');
  t.end();
});

t.test('decoders: universal addresses, messages, record marking bounds', (t) => {
  t.same(parseUniversalAddress('203.0.113.2.4.1'), { addr: S, port: 1025 });
  t.same(parseUniversalAddress('::.0.111'), { addr: '::', port: 111 });
  t.equal(parseUniversalAddress('203.0.113.2.4'), undefined);
  t.equal(parseUniversalAddress('foo.4.1'), undefined);
  t.match(parseRpcMessage(getport(5, 1, 2, 6)), { type: 'call', xid: 5, prog: 100000, vers: 2, proc: 3 });
  t.equal(parseRpcMessage(u32(1, 0, 2, 100000, 2, 3, 0, 500)), undefined, 'credentials longer than 400 bytes');
  const st = newRecordState();
  // A 1 MB record is skipped without being buffered; the next one is read.
  const big = Buffer.concat([u32(0x80000000 | 1_000_000), Buffer.alloc(1000)]);
  t.same(recordFeed(st, big, 8192), []);
  t.ok(st.pending.length === 0 && st.record.length === 0);
  for (let i = 0; i < 999; i++) recordFeed(st, Buffer.alloc(1000), 8192);
  const out = recordFeed(st, Buffer.concat([rm(Buffer.from('abcd')), rm(Buffer.from('efgh'))]), 8192);
  t.same(out.map((b) => b.toString()), ['abcd', 'efgh']);
  t.equal(st.oversized, 1);
  // A record over the bound in several fragments is dropped whole.
  const st2 = newRecordState();
  const frags = Buffer.concat([u32(6000), Buffer.alloc(6000), u32(6000), Buffer.alloc(6000), u32(0x80000000 | 4), Buffer.from('tail'), rm(Buffer.from('next'))]);
  t.same(recordFeed(st2, frags, 8192).map((b) => b.toString()), ['next']);
  t.end();
});

t.test('the parser never throws, stays bounded and opens nothing on random input', (t) => {
  let seed = 5;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (const proto of [6, 17]) {
    const ctl = { orig: { family: 4 as const, proto, src: C, dst: S, sport: 700, dport: 111 }, reply: { family: 4 as const, proto, src: S, dst: C, sport: 111, dport: 700 } };
    const st = sunrpcHelper.init(ctl);
    const opts = { ftpThirdParty: false, sipMediaAnyPeer: false };
    let opened = 0;
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.alloc(rnd() % 400);
      for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff;
      // Plausible prefixes now and then: a call to the portmapper, a reply.
      if (i % 3 === 0 && b.length >= 40) u32(rnd(), 0, 2, 100000, 2 + (i % 3), 3).copy(b, proto === 6 ? 4 : 0);
      if (i % 3 === 1 && b.length >= 16) u32(rnd(), 1, 0, 0).copy(b, proto === 6 ? 4 : 0);
      if (proto === 6 && b.length >= 4 && i % 2) b.writeUInt32BE((0x80000000 | (b.length - 4)) >>> 0, 0);
      const r = sunrpcHelper.data(st, i % 2 ? 'org' : 'reply', b, ctl, opts);
      opened += r?.expect?.length ?? 0;
    }
    t.equal(opened, 0, `proto ${proto}`);
    t.ok(st.pending.length <= 32);
    t.ok(st.records.every((r) => r.pending.length <= 8192 + 4 && r.record.length <= 8192));
  }
  t.end();
});
