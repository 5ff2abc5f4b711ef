import t from 'tap';
import {
  encodeNfMessage, splitMessages, attrNest, attrU8, attrU16, attrU32, attrU64,
  NFNL_SUBSYS_CTNETLINK, NFPROTO_IPV4, NFPROTO_IPV6, NLM_F_CREATE, NLM_F_EXCL, NLM_F_MULTI, NLM_F_REQUEST,
  type Attr, type NlMessage,
} from '../../src/kernel/nfnetlink.js';
import {
  decodeConntrack, decodeConntrackDatagram, ctDumpRequest, ctDumpZeroRequest, ctDeleteRequest, ctUpdateRequest,
  IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET,
} from '../../src/kernel/conntrack-codec.js';

const ip4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function tuple4(src: string, dst: string, proto: number, sport: number, dport: number): Attr[] {
  return [
    attrNest(1, [{ type: 1, data: ip4(src) }, { type: 2, data: ip4(dst) }]),
    attrNest(2, [attrU8(1, proto), attrU16(2, sport), attrU16(3, dport)]),
  ];
}

function counters(p: bigint, b: bigint): Attr[] {
  return [attrU64(1, p), attrU64(2, b)];
}

function one(buf: Buffer): NlMessage {
  const [m] = splitMessages(buf);
  return m!;
}

t.test('TCP NEW event: tuples, status, mark, timeout, state, counters, id, use, zone', (t) => {
  const buf = encodeNfMessage({
    subsys: NFNL_SUBSYS_CTNETLINK, msg: IPCTNL_MSG_CT_NEW, flags: NLM_F_CREATE | NLM_F_EXCL, seq: 0,
    family: NFPROTO_IPV4, resId: 0,
    attrs: [
      attrNest(1, tuple4('198.51.100.1', '203.0.113.2', 6, 40000, 80)),
      attrNest(2, tuple4('203.0.113.2', '198.51.100.1', 6, 80, 40000)),
      attrU32(3, 0x8),
      attrU32(7, 120),
      attrU32(8, 0x00100001),
      attrNest(4, [attrNest(1, [attrU8(1, 3), attrU8(2, 7), attrU8(3, 7)])]),
      attrNest(9, counters(3n, 180n)),
      attrNest(10, counters(2n, 120n)),
      attrU32(11, 1),
      attrU32(12, 0xdeadbeef),
      attrU16(18, 5),
    ],
  });
  const c = decodeConntrack(one(buf));
  t.same(c, {
    event: 'new', family: 4, proto: 6,
    orig: { family: 4, proto: 6, src: '198.51.100.1', dst: '203.0.113.2', sport: 40000, dport: 80 },
    reply: { family: 4, proto: 6, src: '203.0.113.2', dst: '198.51.100.1', sport: 80, dport: 40000 },
    id: 0xdeadbeef, status: 8, mark: 0x00100001, timeout: 120, zone: 5, use: 1,
    tcpState: 3, tcpStateName: 'ESTABLISHED',
    counters: { origPackets: 3, origBytes: 180, replyPackets: 2, replyBytes: 120 },
  });
  t.end();
});

t.test('event kind comes from message type and flags', (t) => {
  const attrs = [attrNest(1, tuple4('198.51.100.1', '203.0.113.2', 17, 5000, 53)), attrNest(2, tuple4('203.0.113.2', '198.51.100.1', 17, 53, 5000))];
  const mk = (msg: number, flags: number): Buffer => encodeNfMessage({ subsys: 1, msg, flags, seq: 0, family: 2, resId: 0, attrs });
  t.equal(decodeConntrack(one(mk(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL)))?.event, 'new');
  t.equal(decodeConntrack(one(mk(IPCTNL_MSG_CT_NEW, 0)))?.event, 'update');
  t.equal(decodeConntrack(one(mk(IPCTNL_MSG_CT_DELETE, 0)))?.event, 'destroy');
  t.equal(decodeConntrack(one(mk(IPCTNL_MSG_CT_NEW, NLM_F_MULTI)))?.event, 'dump');
  t.equal(decodeConntrack(one(mk(IPCTNL_MSG_CT_NEW, 0)), true)?.event, 'dump');
  t.equal(decodeConntrack(one(mk(IPCTNL_MSG_CT_GET, 0))), undefined);
  const two = decodeConntrackDatagram(Buffer.concat([mk(0, NLM_F_CREATE), mk(2, 0)]));
  t.same(two.map((c) => [c.event, c.orig.dport]), [['new', 53], ['destroy', 53]]);
  t.end();
});

t.test('IPv6 ICMPv6 echo: id as sport, type/code kept for requests', (t) => {
  const a = Buffer.alloc(16); a.writeUInt16BE(0x2001, 0); a.writeUInt16BE(0xdb8, 2); a[15] = 1;
  const b = Buffer.alloc(16); b.writeUInt16BE(0x2001, 0); b.writeUInt16BE(0xdb8, 2); b.writeUInt16BE(1, 4); b[15] = 2;
  const tup = (s: Buffer, d: Buffer, type: number): Attr[] => [
    attrNest(1, [{ type: 3, data: s }, { type: 4, data: d }]),
    attrNest(2, [attrU8(1, 58), attrU16(7, 0x1234), attrU8(8, type), attrU8(9, 0)]),
  ];
  const buf = encodeNfMessage({
    subsys: 1, msg: 0, flags: NLM_F_MULTI, seq: 9, family: NFPROTO_IPV6, resId: 0,
    attrs: [attrNest(1, tup(a, b, 128)), attrNest(2, tup(b, a, 129))],
  });
  const c = decodeConntrack(one(buf))!;
  t.same(c.orig, { family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8:1::2', sport: 0x1234, dport: 0 });
  t.same(c.reply.src, '2001:db8:1::2');
  t.same(c.origIcmp, { type: 128, code: 0 });
  t.equal(c.family, 6);
  t.equal(c.counters, undefined);
  t.end();
});

t.test('IPv4 ICMP echo', (t) => {
  const tup = (s: string, d: string, type: number): Attr[] => [
    attrNest(1, [{ type: 1, data: ip4(s) }, { type: 2, data: ip4(d) }]),
    attrNest(2, [attrU8(1, 1), attrU16(4, 77), attrU8(5, type), attrU8(6, 0)]),
  ];
  const buf = encodeNfMessage({ subsys: 1, msg: 0, flags: NLM_F_CREATE, seq: 0, family: 2, resId: 0,
    attrs: [attrNest(1, tup('198.51.100.1', '198.51.100.2', 8)), attrNest(2, tup('198.51.100.2', '198.51.100.1', 0))] });
  const c = decodeConntrack(one(buf))!;
  t.same(c.orig, { family: 4, proto: 1, src: '198.51.100.1', dst: '198.51.100.2', sport: 77, dport: 0 });
  t.same(c.origIcmp, { type: 8, code: 0 });
  t.end();
});

t.test('malformed messages give undefined, never throw', (t) => {
  const good = encodeNfMessage({ subsys: 1, msg: 0, flags: 0, seq: 0, family: 2, resId: 0,
    attrs: [attrNest(1, tuple4('198.51.100.1', '203.0.113.2', 17, 1, 2)), attrNest(2, tuple4('203.0.113.2', '198.51.100.1', 17, 2, 1))] });
  t.ok(decodeConntrack(one(good)));
  // Missing reply tuple.
  t.equal(decodeConntrack(one(encodeNfMessage({ subsys: 1, msg: 0, flags: 0, seq: 0, family: 2, resId: 0,
    attrs: [attrNest(1, tuple4('198.51.100.1', '203.0.113.2', 17, 1, 2))] }))), undefined);
  // Wrong subsystem.
  t.equal(decodeConntrack(one(encodeNfMessage({ subsys: 3, msg: 0, flags: 0, seq: 0, family: 2, resId: 0, attrs: [] }))), undefined);
  // Short address.
  t.equal(decodeConntrack(one(encodeNfMessage({ subsys: 1, msg: 0, flags: 0, seq: 0, family: 2, resId: 0,
    attrs: [attrNest(1, [attrNest(1, [{ type: 1, data: Buffer.from([1, 2]) }, { type: 2, data: ip4('1.2.3.4') }]), attrNest(2, [attrU8(1, 17)])]),
      attrNest(2, tuple4('203.0.113.2', '198.51.100.1', 17, 2, 1))] }))), undefined);
  // Body shorter than nfgenmsg.
  t.equal(decodeConntrack({ type: 0x100, flags: 0, seq: 0, pid: 0, body: Buffer.alloc(2) }), undefined);
  // Every truncation and random corruption of a real message: no throw.
  for (let n = 0; n < good.length; n++) {
    const cut = Buffer.from(good.subarray(0, n));
    if (n >= 16) cut.writeUInt32LE(n, 0);
    t.doesNotThrow(() => decodeConntrackDatagram(cut));
  }
  let seed = 1;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  for (let i = 0; i < 500; i++) {
    const x = Buffer.from(good);
    x[20 + (rnd() % (x.length - 20))] = rnd() & 0xff;
    t.doesNotThrow(() => decodeConntrackDatagram(x));
  }
  t.end();
});

t.test('dump request bytes', (t) => {
  t.same(encodeNfMessage(ctDumpRequest({ seq: 1 })), hex('14000000 0101 0103 01000000 00000000 00 00 0000'));
  t.same(encodeNfMessage(ctDumpRequest({ family: 6, seq: 2 })), hex('14000000 0101 0103 02000000 00000000 0a 00 0000'));
  t.same(encodeNfMessage(ctDumpZeroRequest({ family: 4, seq: 3 })), hex('14000000 0301 0103 03000000 00000000 02 00 0000'));
  t.end();
});

t.test('delete request bytes (IPv4 UDP, zone)', (t) => {
  const m = ctDeleteRequest({ tuple: { family: 4, proto: 17, src: '198.51.100.1', dst: '203.0.113.2', sport: 5000, dport: 53 }, zone: 7 }, 4);
  t.same(encodeNfMessage(m), hex(
    '50000000 0201 0500 04000000 00000000 02 00 0000' + // nlmsghdr: len 80, CT_DELETE, REQUEST|ACK
    '3400 0180' + // CTA_TUPLE_ORIG nested, 52
    '1400 0180' + '0800 0100 c6336401' + '0800 0200 cb007102' + // CTA_TUPLE_IP
    '1c00 0280' + '0500 0100 11000000' + '0600 0200 1388 0000' + '0600 0300 0035 0000' + // CTA_TUPLE_PROTO
    '0600 1200 0007 0000', // CTA_ZONE
  ));
  // Zone 0 is the default zone: no attribute.
  const z0 = encodeNfMessage(ctDeleteRequest({ tuple: { family: 4, proto: 17, src: '198.51.100.1', dst: '203.0.113.2', sport: 1, dport: 2 } }));
  t.equal(z0.length, 0x48);
  t.end();
});

t.test('delete request for IPv6 ICMPv6 carries 16-byte addresses and id/type/code', (t) => {
  const m = ctDeleteRequest({ tuple: { family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8::2', sport: 0x1234, dport: 0 } });
  const b = encodeNfMessage(m);
  t.same(b.subarray(16, 20), hex('0a000000'));
  t.same(b.subarray(20), hex(
    '5400 0180' +
    '2c00 0180' + '1400 0300 20010db8000000000000000000000001' + '1400 0400 20010db8000000000000000000000002' +
    '2400 0280' + '0500 0100 3a000000' + '0600 0700 1234 0000' + '0500 0800 80000000' + '0500 0900 00000000',
  ));
  t.throws(() => ctDeleteRequest({ tuple: { family: 6, proto: 17, src: '198.51.100.1', dst: '2001:db8::1', sport: 1, dport: 2 } }));
  t.end();
});

t.test('update request: no NLM_F_CREATE, mark pre-masked, mask, timeout', (t) => {
  const m = ctUpdateRequest({ tuple: { family: 4, proto: 6, src: '198.51.100.1', dst: '203.0.113.2', sport: 40000, dport: 80 } },
    { mark: 0xffffffff, markMask: 0x00100000, timeout: 3600 }, 5);
  t.equal(m.flags, NLM_F_REQUEST | 0x4);
  t.same(encodeNfMessage(m).subarray(0, 20), hex('60000000 0001 0500 05000000 00000000 02 00 0000'));
  t.same(encodeNfMessage(m).subarray(20 + 0x34), hex(
    '0800 0800 00100000' + '0800 1500 00100000' + '0800 0700 00000e10',
  ));
  const onlyTimeout = encodeNfMessage(ctUpdateRequest({ tuple: { family: 4, proto: 6, src: '198.51.100.1', dst: '203.0.113.2', sport: 1, dport: 2 } }, { timeout: 10 }));
  t.equal(onlyTimeout.length, 20 + 0x34 + 8);
  t.end();
});

t.test('round trip: a request tuple decodes back to the same FlowTuple', (t) => {
  const tuples = [
    { family: 4 as const, proto: 6, src: '198.51.100.10', dst: '203.0.113.20', sport: 1, dport: 65535 },
    { family: 6 as const, proto: 17, src: '2001:db8::', dst: '2001:db8:0:1:0:0:0:1', sport: 53, dport: 5353 },
    { family: 6 as const, proto: 17, src: '2001:db8:1:2:3:4:5:6', dst: '2001:0DB8::0:0:1', sport: 9, dport: 9 },
  ];
  for (const tu of tuples) {
    const req = ctDeleteRequest({ tuple: tu });
    // Reuse the orig tuple as both directions of a synthetic event.
    const orig = req.attrs[0]!;
    const ev = encodeNfMessage({ ...req, msg: 0, flags: NLM_F_CREATE, attrs: [orig, { ...orig, type: 2 }] });
    const c = decodeConntrack(one(ev))!;
    const want = { ...tu };
    if (tu.dst === '2001:db8:0:1:0:0:0:1') want.dst = '2001:db8:0:1::1';
    if (tu.dst === '2001:0DB8::0:0:1') want.dst = '2001:db8::1';
    t.same(c.orig, want);
  }
  t.end();
});
