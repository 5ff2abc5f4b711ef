import t, { type Test } from 'tap';
import {
  buildIcmpEcho,
  buildIcmpError,
  buildIpPacket,
  buildSctp,
  buildTcp,
  buildUdp,
  fragmentPacket,
  type Ipv6Ext,
} from '../../src/packet/build.js';
import { decode, MALFORMED_REASONS } from '../../src/packet/decode.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, type DecodedPacket, type PacketResult } from '../../src/packet/types.js';

const seen = new Set<string>();

function ok(t: Test, r: PacketResult): DecodedPacket {
  if (!r.ok) {
    t.fail(`malformed: ${r.reason}`);
    throw new Error(r.reason);
  }
  return r;
}
function reason(r: PacketResult): string {
  if (r.ok) return 'ok';
  seen.add(r.reason);
  return r.reason;
}

const A = '198.51.100.10';
const B = '203.0.113.20';
const A6 = '2001:db8::10';
const B6 = '2001:db8:2::20';

t.test('IPv4 TCP: exact result', async (t) => {
  const p = buildTcp({ src: A, dst: B, sport: 40000, dport: 80, flags: TCP_PSH | TCP_ACK, payload: Buffer.alloc(20, 0x61) });
  t.equal(p.length, 60);
  t.strictSame(decode(p), {
    ok: true,
    tuple: { family: 4, proto: 6, src: A, dst: B, sport: 40000, dport: 80 },
    length: 60, tcpFlags: 0x18, icmpType: -1, icmpCode: -1, payloadOffset: 40, payloadLength: 20, fragment: false, tcpSeq: 1000,
  });
});

t.test('IPv4 options and TCP options move the payload', async (t) => {
  const p = buildTcp({
    src: A, dst: B, sport: 1, dport: 2, flags: TCP_SYN, ipv4Options: Buffer.from([0x94, 4, 0, 0, 1, 1, 1, 1]),
    options: Buffer.from([2, 4, 5, 0xb4, 4, 2, 1, 1, 1, 3, 3, 7]), payload: 'hello',
  });
  const r = ok(t, decode(p));
  t.equal(r.payloadOffset, 28 + 32);
  t.equal(r.payloadLength, 5);
  t.equal(p.subarray(r.payloadOffset, r.payloadOffset + r.payloadLength).toString(), 'hello');
  t.equal(r.tcpFlags, TCP_SYN);
  t.equal(r.length, 65);
});

t.test('offset and length select the packet inside a larger buffer', async (t) => {
  const p = buildUdp({ src: A, dst: B, sport: 5353, dport: 53, payload: 'query' });
  const buf = Buffer.concat([Buffer.alloc(10, 0xee), p, Buffer.alloc(7, 0xee)]);
  const r = ok(t, decode(buf, 10, p.length));
  t.equal(r.payloadOffset, 10 + 28, 'offsets are relative to the start of buf');
  t.equal(r.payloadLength, 5);
  t.same(r.tuple, { family: 4, proto: 17, src: A, dst: B, sport: 5353, dport: 53 });
  t.equal(reason(decode(buf, 10, 10)), 'truncated-ipv4');
  t.equal(ok(t, decode(buf, 10)).payloadLength, 5, 'bytes after the IP total length are ignored');
});

t.test('a copy range shorter than the packet: length from the header, payload as far as present', async (t) => {
  const p = buildTcp({ src: A, dst: B, sport: 1000, dport: 21, flags: TCP_ACK, payload: Buffer.alloc(100) });
  const r = ok(t, decode(p, 0, 60));
  t.equal(r.length, 140);
  t.equal(r.payloadOffset, 40);
  t.equal(r.payloadLength, 20);
  t.equal(reason(decode(p, 0, 39)), 'truncated-tcp');
  t.equal(reason(decode(p, 0, 20)), 'truncated-tcp');
  const u = buildUdp({ src: A, dst: B, sport: 1, dport: 2, payload: Buffer.alloc(50) });
  t.equal(ok(t, decode(u, 0, 30)).payloadLength, 2);
  t.equal(reason(decode(u, 0, 27)), 'truncated-udp');
});

t.test('IPv4 header errors', async (t) => {
  const p = buildTcp({ src: A, dst: B, sport: 1, dport: 2, flags: TCP_SYN });
  const mut = (f: (b: Buffer) => void) => {
    const b = Buffer.from(p);
    f(b);
    return reason(decode(b));
  };
  t.equal(mut((b) => (b[0] = 0x44)), 'bad-ihl');
  t.equal(mut((b) => (b[0] = 0x4f)), 'truncated-ipv4', 'IHL past the buffer');
  t.equal(mut((b) => b.writeUInt16BE(19, 2)), 'bad-ipv4-length');
  t.equal(mut((b) => b.writeUInt16BE(30, 2)), 'truncated-tcp', 'total length cuts the TCP header');
  t.equal(mut((b) => (b[0] = 0x55)), 'bad-version');
  t.equal(mut((b) => (b[0] = 0x05)), 'bad-version');
  t.equal(reason(decode(p.subarray(0, 19))), 'truncated-ipv4');
  t.equal(reason(decode(Buffer.alloc(0))), 'empty');
  // GSO packets above 64 KiB arrive with tot_len 0; the buffer is the packet.
  const big = Buffer.from(p);
  big.writeUInt16BE(0, 2);
  t.equal(ok(t, decode(big)).length, 40);
});

t.test('TCP header errors', async (t) => {
  const p = buildTcp({ src: A, dst: B, sport: 1, dport: 2, flags: TCP_SYN, payload: Buffer.alloc(8) });
  const b = Buffer.from(p);
  b[32] = 0x40;
  t.equal(reason(decode(b)), 'bad-tcp-offset');
  b[32] = 0x00;
  t.equal(reason(decode(b)), 'bad-tcp-offset');
  b[32] = 0x80;
  t.equal(reason(decode(b)), 'truncated-tcp', 'options past the end of the packet');
  b[32] = 0x70;
  t.equal(ok(t, decode(b)).payloadLength, 0, 'the 8 payload bytes read as options');
});

t.test('UDP length checks', async (t) => {
  const p = buildUdp({ src: A, dst: B, sport: 1, dport: 2, payload: Buffer.alloc(10) });
  const b = Buffer.from(p);
  b.writeUInt16BE(7, 24);
  t.equal(reason(decode(b)), 'bad-udp-length');
  b.writeUInt16BE(19, 24);
  t.equal(reason(decode(b)), 'bad-udp-length', 'longer than the IP payload');
  b.writeUInt16BE(12, 24);
  t.equal(ok(t, decode(b)).payloadLength, 4, 'UDP length bounds the payload');
});

t.test('SCTP and other protocols', async (t) => {
  const s = buildSctp({ src: A, dst: B, sport: 2905, dport: 3868, chunks: Buffer.alloc(16) });
  const r = ok(t, decode(s));
  t.same(r.tuple, { family: 4, proto: 132, src: A, dst: B, sport: 2905, dport: 3868 });
  t.equal(r.payloadOffset, 32);
  t.equal(r.payloadLength, 16);
  t.equal(reason(decode(s, 0, 31)), 'truncated-sctp');
  const s6 = ok(t, decode(buildSctp({ src: A6, dst: B6, sport: 9, dport: 10 })));
  t.same([s6.tuple.proto, s6.tuple.sport, s6.tuple.dport], [132, 9, 10]);

  for (const proto of [47, 50, 51, 4, 255]) {
    const g = ok(t, decode(buildIpPacket({ src: A, dst: B, proto, payload: Buffer.alloc(3) })));
    t.same(g.tuple, { family: 4, proto, src: A, dst: B, sport: 0, dport: 0 }, `proto ${proto}`);
    t.same([g.payloadOffset, g.payloadLength, g.tcpFlags, g.icmpType], [20, 3, 0, -1]);
  }
  const esp6 = ok(t, decode(buildIpPacket({ src: A6, dst: B6, proto: 50, payload: Buffer.alloc(16) })));
  t.same([esp6.tuple.proto, esp6.tuple.sport, esp6.payloadOffset], [50, 0, 40]);
  t.equal(ok(t, decode(buildIpPacket({ src: A, dst: B, proto: 58, payload: Buffer.alloc(2) }))).icmpType, -1,
    'ICMPv6 inside IPv4 is just another protocol');
});

t.test('ICMP echo and informational messages', async (t) => {
  const q = ok(t, decode(buildIcmpEcho({ src: A, dst: B, id: 0xbeef, seq: 3, payload: 'abcd' })));
  t.same(q.tuple, { family: 4, proto: 1, src: A, dst: B, sport: 0xbeef, dport: 0 });
  t.same([q.icmpType, q.icmpCode, q.payloadOffset, q.payloadLength, q.quoted], [8, 0, 28, 4, undefined]);
  const r = ok(t, decode(buildIcmpEcho({ src: B, dst: A, id: 0xbeef, reply: true })));
  t.same([r.icmpType, r.tuple.sport, r.tuple.dport], [0, 0xbeef, 0]);
  const q6 = ok(t, decode(buildIcmpEcho({ src: A6, dst: B6, id: 77 })));
  t.same(q6.tuple, { family: 6, proto: 58, src: A6, dst: B6, sport: 77, dport: 0 });
  t.equal(q6.icmpType, 128);
  t.equal(ok(t, decode(buildIcmpEcho({ src: A6, dst: B6, id: 78, reply: true }))).tuple.sport, 78);

  const ts = ok(t, decode(buildIpPacket({ src: A, dst: B, proto: 1, payload: Buffer.from([13, 0, 0, 0, 0x12, 0x34, 0, 1, 0, 0, 0, 0]) })));
  t.same([ts.icmpType, ts.tuple.sport, ts.tuple.dport], [13, 0, 0], 'timestamp request carries no ports');
  const rs = ok(t, decode(buildIpPacket({ src: A6, dst: B6, proto: 58, payload: Buffer.from([133, 0, 0, 0, 0, 0, 0, 0]) })));
  t.same([rs.icmpType, rs.tuple.sport, rs.quoted], [133, 0, undefined]);
  t.equal(reason(decode(buildIpPacket({ src: A, dst: B, proto: 1, payload: Buffer.from([8, 0, 0, 0, 1, 2, 3]) }))), 'truncated-icmp');
  t.equal(reason(decode(buildIpPacket({ src: A6, dst: B6, proto: 58, payload: Buffer.from([128, 0]) }))), 'truncated-icmp');
});

t.test('ICMP errors carry the quoted tuple as the quoted packet travelled', async (t) => {
  const udp = buildUdp({ src: A, dst: B, sport: 33000, dport: 69, payload: Buffer.alloc(40) });
  const e = ok(t, decode(buildIcmpError(3, 3, udp)));
  t.same(e.tuple, { family: 4, proto: 1, src: B, dst: A, sport: 0, dport: 0 });
  t.same([e.icmpType, e.icmpCode], [3, 3]);
  t.same(e.quoted, { family: 4, proto: 17, src: A, dst: B, sport: 33000, dport: 69 });

  const tcp = buildTcp({ src: A, dst: B, sport: 40001, dport: 443, flags: TCP_SYN, ipv4Options: Buffer.from([1, 1, 1, 0]) });
  const te = ok(t, decode(buildIcmpError(11, 0, tcp, { src: '192.0.2.254', quoteLength: 24 + 8 })));
  t.equal(te.tuple.src, '192.0.2.254');
  t.same(te.quoted, { family: 4, proto: 6, src: A, dst: B, sport: 40001, dport: 443 }, 'IHL 6 quote with only 8 L4 bytes');
  for (const type of [4, 5, 12]) {
    t.ok(ok(t, decode(buildIcmpError(type, 0, tcp))).quoted, `type ${type} is an error`);
  }

  const ping = buildIcmpEcho({ src: A, dst: B, id: 4242 });
  t.same(ok(t, decode(buildIcmpError(3, 1, ping, { src: '192.0.2.1' }))).quoted,
    { family: 4, proto: 1, src: A, dst: B, sport: 4242, dport: 0 });
  const gre = buildIpPacket({ src: A, dst: B, proto: 47, payload: Buffer.alloc(4) });
  t.same(ok(t, decode(buildIcmpError(3, 2, gre))).quoted?.sport, 0);

  const short = ok(t, decode(buildIcmpError(3, 3, udp, { quoteLength: 22 })));
  t.equal(short.quoted, undefined, 'a quote without the ports');
  t.equal(ok(t, decode(buildIcmpError(3, 3, udp, { quoteLength: 24 }))).quoted?.dport, 69, '4 L4 bytes are enough for ports');
  t.equal(ok(t, decode(buildIcmpError(3, 3, udp, { quoteLength: 10 }))).quoted, undefined);
  t.equal(ok(t, decode(buildIcmpError(3, 1, ping, { quoteLength: 26 }))).quoted, undefined, 'ICMP quote needs 8 bytes');
  const v6inv4 = buildIcmpError(3, 3, udp);
  v6inv4[28] = 0x65;
  t.equal(ok(t, decode(v6inv4)).quoted, undefined, 'wrong version in the quote');
  const badIhl = buildIcmpError(3, 3, udp);
  badIhl[28] = 0x43;
  t.equal(ok(t, decode(badIhl)).quoted, undefined);

  const frag = fragmentPacket(buildUdp({ src: A, dst: B, sport: 1, dport: 2, payload: Buffer.alloc(100) }), 48);
  t.same(ok(t, decode(buildIcmpError(11, 1, frag[1]))).quoted, { family: 4, proto: 17, src: A, dst: B, sport: 0, dport: 0 },
    'a quoted non-first fragment has no ports');
});

t.test('ICMPv6 errors', async (t) => {
  const tcp = buildTcp({ src: A6, dst: B6, sport: 50000, dport: 22, flags: TCP_ACK, payload: Buffer.alloc(1300), ipv6Ext: [{ type: 60 }] });
  const ptb = ok(t, decode(buildIcmpError(2, 0, tcp, { src: '2001:db8:ff::1', rest: 1280 })));
  t.same(ptb.tuple, { family: 6, proto: 58, src: '2001:db8:ff::1', dst: A6, sport: 0, dport: 0 });
  t.same(ptb.quoted, { family: 6, proto: 6, src: A6, dst: B6, sport: 50000, dport: 22 }, 'through the quoted ext header');
  t.equal(ptb.length, 1280);
  for (const type of [1, 3, 4]) t.ok(ok(t, decode(buildIcmpError(type, 0, tcp))).quoted, `type ${type}`);
  t.equal(ok(t, decode(buildIcmpError(1, 4, tcp, { quoteLength: 46 }))).quoted, undefined, 'quote cut inside the ext header');
  t.equal(ok(t, decode(buildIcmpError(1, 4, tcp, { quoteLength: 52 }))).quoted?.dport, 22);
  const ping = buildIcmpEcho({ src: A6, dst: B6, id: 9 });
  t.same(ok(t, decode(buildIcmpError(3, 0, ping, { src: '2001:db8:ff::1' }))).quoted?.sport, 9);
  const v4quote = buildIcmpError(1, 0, ping);
  v4quote[48] = 0x45;
  t.equal(ok(t, decode(v4quote)).quoted, undefined);
});

function ext6(exts: Ipv6Ext[], payload = 'data') {
  return buildUdp({ src: A6, dst: B6, sport: 546, dport: 547, payload, ipv6Ext: exts });
}

t.test('IPv6 extension headers', async (t) => {
  const plain = ok(t, decode(ext6([])));
  t.strictSame(plain, {
    ok: true, tuple: { family: 6, proto: 17, src: A6, dst: B6, sport: 546, dport: 547 },
    length: 52, tcpFlags: 0, icmpType: -1, icmpCode: -1, payloadOffset: 48, payloadLength: 4, fragment: false,
  });
  const all = ext6([{ type: 0, options: Buffer.from([5, 2, 0, 0]) }, { type: 60 }, { type: 43, data: Buffer.alloc(20) }, { type: 51 }, { type: 60 }]);
  const r = ok(t, decode(all));
  // 40 + HBH 8 + dest 8 + routing 24 + AH 24 + dest 8 = 112, UDP header 8.
  t.same([r.tuple.proto, r.tuple.sport, r.payloadOffset, r.payloadLength, r.length], [17, 546, 120, 4, 124]);

  const tcp = ok(t, decode(buildTcp({ src: A6, dst: B6, sport: 1, dport: 2, flags: TCP_SYN, ipv6Ext: [{ type: 0 }] })));
  t.same([tcp.tuple.proto, tcp.tcpFlags, tcp.payloadOffset], [6, TCP_SYN, 68]);

  const none = ok(t, decode(buildIpPacket({ src: A6, dst: B6, proto: 59, ipv6Ext: [{ type: 60 }] })));
  t.same(none.tuple, { family: 6, proto: 59, src: A6, dst: B6, sport: 0, dport: 0 });
  t.same(ok(t, decode(buildIpPacket({ src: A6, dst: B6, proto: 59 }))).length, 40);

  const eight = ext6(Array.from({ length: 8 }, () => ({ type: 60 as const })));
  t.equal(ok(t, decode(eight)).payloadOffset, 40 + 64 + 8, 'eight headers are accepted');
  t.equal(reason(decode(ext6(Array.from({ length: 9 }, () => ({ type: 60 as const }))))), 'ipv6-ext-loop');
  t.equal(reason(decode(ext6([{ type: 60 }, { type: 0 }]))), 'bad-ipv6-ext', 'hop-by-hop after another header');

  const cut = ext6([{ type: 43, data: Buffer.alloc(20) }]);
  t.equal(reason(decode(cut, 0, 44)), 'truncated-ipv6-ext');
  t.equal(reason(decode(cut, 0, 60)), 'truncated-ipv6-ext', 'header length past the buffer');
  const lying = Buffer.from(cut);
  lying.writeUInt16BE(16, 4);
  t.equal(reason(decode(lying)), 'truncated-ipv6-ext', 'header length past the payload length');
  lying.writeUInt16BE(6, 4);
  t.equal(reason(decode(lying)), 'truncated-ipv6-ext', 'payload length shorter than one header');
  t.equal(reason(decode(ext6([]).subarray(0, 39))), 'truncated-ipv6');
  t.equal(reason(decode(ext6([]), 0, 45)), 'truncated-udp');

  // IPv6 BIG TCP: payload length 0 with a header following.
  const big = Buffer.from(ext6([], 'x'.repeat(10)));
  big.writeUInt16BE(0, 4);
  big.writeUInt16BE(0, 44);
  const bigR = ok(t, decode(big));
  t.same([bigR.length, bigR.payloadLength], [58, 10]);
});

t.test('IPv4 fragments', async (t) => {
  const u = buildUdp({ src: A, dst: B, sport: 4000, dport: 4001, payload: Buffer.alloc(200) });
  const frags = fragmentPacket(u, 96).map((f) => ok(t, decode(f)));
  t.equal(frags.length, 3);
  t.same(frags[0].tuple, { family: 4, proto: 17, src: A, dst: B, sport: 4000, dport: 4001 });
  t.same([frags[0].fragment, frags[0].payloadOffset, frags[0].payloadLength, frags[0].length], [true, 28, 88, 116]);
  for (const f of frags.slice(1)) {
    t.same(f.tuple, { family: 4, proto: 17, src: A, dst: B, sport: 0, dport: 0 });
    t.same([f.fragment, f.payloadOffset, f.icmpType], [true, 20, -1]);
  }
  t.equal(frags[2].payloadLength, 208 - 192);
  const df = ok(t, decode(buildUdp({ src: A, dst: B, sport: 1, dport: 2, dontFragment: true })));
  t.equal(df.fragment, false, 'DF is not a fragment');
  // A first fragment too short for the TCP header: the tiny-fragment attack.
  const tiny = buildIpPacket({ src: A, dst: B, proto: 6, payload: Buffer.alloc(8), fragment: { offset: 0, more: true } });
  t.equal(reason(decode(tiny)), 'truncated-tcp');
  const later = buildIpPacket({ src: A, dst: B, proto: 6, payload: Buffer.alloc(3), fragment: { offset: 8, more: false } });
  t.same(ok(t, decode(later)).tuple.sport, 0);
});

t.test('IPv6 fragments', async (t) => {
  const u = buildUdp({ src: A6, dst: B6, sport: 4000, dport: 4001, payload: Buffer.alloc(200), ipv6Ext: [{ type: 0 }] });
  const frags = fragmentPacket(u, 96, 1234).map((f) => ok(t, decode(f)));
  t.equal(frags.length, 3);
  t.same(frags[0].tuple, { family: 6, proto: 17, src: A6, dst: B6, sport: 4000, dport: 4001 });
  t.same([frags[0].fragment, frags[0].payloadOffset], [true, 40 + 8 + 8 + 8]);
  for (const f of frags.slice(1)) {
    t.same(f.tuple, { family: 6, proto: 17, src: A6, dst: B6, sport: 0, dport: 0 });
    t.same([f.fragment, f.payloadOffset], [true, 56]);
  }
  const atomic = ok(t, decode(ext6([{ type: 44, offset: 0, more: false }])));
  t.same([atomic.fragment, atomic.tuple.sport], [false, 546], 'an atomic fragment is a whole packet');
  // Non-first fragment data that happens to look like headers is not walked.
  const tail = ok(t, decode(buildIpPacket({ src: A6, dst: B6, proto: 60, payload: Buffer.alloc(3, 60), ipv6Ext: [{ type: 44, offset: 64 }] })));
  t.same([tail.tuple.proto, tail.fragment, tail.payloadOffset, tail.payloadLength], [60, true, 48, 3]);
});

t.test('bad arguments never throw', async (t) => {
  const p = buildTcp({ src: A, dst: B, sport: 1, dport: 2, flags: TCP_SYN });
  t.equal(reason(decode(p, 40)), 'empty');
  t.equal(reason(decode(p, 100)), 'empty');
  t.equal(reason(decode(p, 0, 0)), 'empty');
  t.equal(reason(decode(p, 0, -5)), 'empty');
  t.equal(reason(decode(p, Number.NaN, Number.NaN)), 'empty');
  t.equal(reason(decode(p, -3)), 'ok', 'a negative offset reads from the start');
  t.equal(reason(decode(p, 0, 1e9)), 'ok', 'length is clamped to the buffer');
  t.equal(reason(decode(null as unknown as Buffer)), 'empty');
  t.equal(reason(decode(new Uint8Array(p))), 'ok', 'plain Uint8Array');
});

t.test('fuzz: random, mutated and truncated packets never throw', async (t) => {
  let seed = 0x9e3779b9;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const tcp6 = buildTcp({ src: A6, dst: B6, sport: 1, dport: 2, flags: TCP_SYN, payload: 'x', ipv6Ext: [{ type: 0 }, { type: 60 }] });
  const seeds: Buffer[] = [
    buildTcp({ src: A, dst: B, sport: 1, dport: 2, flags: TCP_SYN, ipv4Options: Buffer.alloc(4, 1), options: Buffer.alloc(8, 1) }),
    buildUdp({ src: A, dst: B, sport: 1, dport: 2, payload: 'abc' }),
    buildSctp({ src: A, dst: B, sport: 1, dport: 2 }),
    tcp6,
    buildIcmpError(3, 3, buildUdp({ src: A, dst: B, sport: 1, dport: 2 })),
    buildIcmpError(1, 4, tcp6),
    buildIcmpError(3, 1, buildIcmpEcho({ src: A, dst: B, id: 1 })),
    ...fragmentPacket(buildUdp({ src: A6, dst: B6, sport: 1, dport: 2, payload: Buffer.alloc(50) }), 24),
    buildUdp({ src: A6, dst: B6, sport: 1, dport: 2, ipv6Ext: [{ type: 43 }, { type: 51 }, { type: 44 }] }),
  ];
  const reasons = new Set<string>(MALFORMED_REASONS);
  let bad = 0;
  let okCount = 0;
  let n = 0;
  const check = (buf: Buffer, off?: number, len?: number) => {
    n++;
    let r: PacketResult;
    try {
      r = decode(buf, off, len);
    } catch (e) {
      bad++;
      if (bad < 5) t.fail(`threw on ${buf.toString('hex')}: ${String(e)}`);
      return;
    }
    if (r.ok) {
      okCount++;
      const end = buf.length;
      if (r.payloadOffset < 0 || r.payloadLength < 0 || r.payloadOffset + r.payloadLength > end ||
          r.tuple.sport > 0xffff || r.tuple.dport > 0xffff || r.tuple.sport < 0 || !Number.isInteger(r.length)) {
        bad++;
        if (bad < 5) t.fail(`inconsistent result for ${buf.toString('hex')}: ${JSON.stringify(r)}`);
      }
    } else {
      seen.add(r.reason);
      if (!reasons.has(r.reason)) {
        bad++;
        t.fail(`unlisted reason ${r.reason}`);
      }
    }
  };
  const deadline = Date.now() + 5000;
  // Every truncation of every seed, at two offsets.
  for (const s of seeds) {
    for (let len = 0; len <= s.length; len++) {
      check(s.subarray(0, len));
      check(Buffer.concat([Buffer.alloc(3), s]), 3, len);
    }
  }
  // Mutations: a few random bytes changed, sometimes truncated.
  for (let i = 0; i < 30000 && Date.now() < deadline; i++) {
    const b = Buffer.from(seeds[rnd(seeds.length)]);
    const flips = 1 + rnd(4);
    for (let k = 0; k < flips; k++) b[rnd(b.length)] = rnd(256);
    check(rnd(4) === 0 ? b.subarray(0, rnd(b.length + 1)) : b);
  }
  // Pure noise with a plausible version nibble.
  for (let i = 0; i < 20000 && Date.now() < deadline; i++) {
    const b = Buffer.alloc(rnd(128));
    for (let k = 0; k < b.length; k++) b[k] = rnd(256);
    if (b.length) b[0] = (rnd(3) === 0 ? 0x40 : 0x60) | (b[0] & 0x0f);
    check(b, rnd(3), rnd(140));
  }
  t.equal(bad, 0, `${n} decodes, ${okCount} ok`);
  t.ok(n > 10000, 'ran enough iterations in the time bound');
});

t.test('every listed reason is reachable and the list has no duplicates', async (t) => {
  t.equal(new Set(MALFORMED_REASONS).size, MALFORMED_REASONS.length);
  t.same([...MALFORMED_REASONS].filter((r) => !seen.has(r)), []);
});
