import t from 'tap';
import {
  buildIcmpEcho,
  buildIcmpError,
  buildIpPacket,
  buildSctp,
  buildTcp,
  buildUdp,
  fragmentPacket,
} from '../../src/packet/build.js';
import { crc32c, internetChecksum } from '../../src/packet/checksum.js';
import { TCP_ACK, TCP_SYN } from '../../src/packet/types.js';

// Verifiers written independently of checksum.ts: plain word sums with readUInt16BE.
function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}
function wordSum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += i + 1 < b.length ? b.readUInt16BE(i) : b[i] * 256;
  return s;
}
/** A correct checksum makes the sum over the covered bytes (checksum included) 0xffff. */
function ipHeaderOk(p: Buffer): boolean {
  return fold(wordSum(p.subarray(0, (p[0] & 15) * 4))) === 0xffff;
}
function l4Ok(p: Buffer, l4Off: number, proto: number, pseudo: boolean): boolean {
  const l4 = p.subarray(l4Off);
  let s = wordSum(l4);
  if (pseudo) {
    const v6 = p[0] >> 4 === 6;
    s += wordSum(v6 ? p.subarray(8, 40) : p.subarray(12, 20)) + proto + l4.length;
  }
  return fold(s) === 0xffff;
}

t.test('IPv4 header checksum against a hand-computed value', async (t) => {
  const p = buildUdp({
    src: '192.0.2.1', dst: '198.51.100.2', id: 0x1c46, dontFragment: true, ttl: 64,
    sport: 40000, dport: 53, payload: 'nfsessiond test data',
  });
  t.same(
    [...p.subarray(0, 20)],
    [0x45, 0, 0, 48, 0x1c, 0x46, 0x40, 0, 64, 17, 0x32, 0x40, 192, 0, 2, 1, 198, 51, 100, 2],
  );
  // 4500+0030+1c46+4000+4011+c000+0201+c633+6402 = 0x3cdbd; fold: cdbd+3 = cdc0; ~cdc0 = 3240.
  t.equal(p.readUInt16BE(10), 0x3240);
  t.equal(internetChecksum(Buffer.from([0x45, 0, 0, 48, 0x1c, 0x46, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2])), 0x3240);
  // UDP checksum over pseudo-header + header + payload, computed by hand (Python) to 0x772b.
  t.equal(p.readUInt16BE(26), 0x772b);
  t.equal(p.readUInt16BE(24), 28, 'UDP length');
});

t.test('TCP over IPv4 and IPv6, with options', async (t) => {
  const p4 = buildTcp({
    src: '198.51.100.10', dst: '203.0.113.20', sport: 51000, dport: 21, flags: TCP_SYN,
    seq: 0xdeadbeef, options: Buffer.from([2, 4, 0x05, 0xb4, 1, 3, 3]), ipv4Options: Buffer.from([0x94, 4, 0, 0]),
  });
  t.equal(p4.length, 24 + 28, 'options padded to 8 bytes');
  t.equal(p4[0], 0x46);
  t.equal(p4[24 + 12] >> 4, 7);
  t.equal(p4.readUInt32BE(24 + 4), 0xdeadbeef);
  t.same([...p4.subarray(24 + 20, 24 + 28)], [2, 4, 0x05, 0xb4, 1, 3, 3, 0], 'end-of-options padding');
  t.ok(ipHeaderOk(p4));
  t.ok(l4Ok(p4, 24, 6, true));

  const p6 = buildTcp({
    src: '2001:db8::10', dst: '2001:db8:2::20', sport: 51000, dport: 80, flags: TCP_SYN | TCP_ACK,
    ack: 7, payload: 'GET / HTTP/1.0\r\n\r\n', flowLabel: 0x12345, tos: 0xb8, ttl: 3,
  });
  t.equal(p6.readUInt32BE(0), (6 << 28 | 0xb8 << 20 | 0x12345) >>> 0);
  t.equal(p6.readUInt16BE(4), 20 + 18);
  t.equal(p6[6], 6);
  t.equal(p6[7], 3);
  t.ok(l4Ok(p6, 40, 6, true));
});

t.test('UDP, ICMP and ICMPv6 checksums verify', async (t) => {
  const odd = buildUdp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 5060, dport: 5060, payload: 'abc' });
  t.ok(l4Ok(odd, 40, 17, true), 'odd length IPv6 UDP');
  const e4 = buildIcmpEcho({ src: '192.0.2.1', dst: '203.0.113.1', id: 0x1234, seq: 9, payload: 'ping' });
  t.equal(e4[20], 8);
  t.ok(l4Ok(e4, 20, 1, false), 'ICMP has no pseudo-header');
  t.equal(buildIcmpEcho({ src: '192.0.2.1', dst: '203.0.113.1', id: 1, reply: true })[20], 0);
  const e6 = buildIcmpEcho({ src: '2001:db8::1', dst: '2001:db8::2', id: 0x4321, reply: true });
  t.equal(e6[6], 58);
  t.equal(e6[40], 129);
  t.ok(l4Ok(e6, 40, 58, true), 'ICMPv6 includes the pseudo-header');
});

t.test('ICMP errors quote the offending packet', async (t) => {
  const udp = buildUdp({ src: '198.51.100.7', dst: '203.0.113.9', sport: 33000, dport: 69, payload: Buffer.alloc(600) });
  const e = buildIcmpError(3, 3, udp);
  t.equal(e.length, 576, 'quote limited to what fits in 576 bytes');
  t.same([...e.subarray(12, 20)], [203, 0, 113, 9, 198, 51, 100, 7], 'from the destination back to the source');
  t.same(e.subarray(28), udp.subarray(0, 548));
  t.ok(l4Ok(e, 20, 1, false));
  const r = buildIcmpError(11, 0, udp, { src: '192.0.2.254', quoteLength: 28 });
  t.equal(r.length, 20 + 8 + 28);
  t.same([...r.subarray(12, 20)], [192, 0, 2, 254, 198, 51, 100, 7]);
  const ptb = buildIcmpError(2, 0, buildUdp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2, payload: Buffer.alloc(1400) }), { rest: 1280 });
  t.equal(ptb.length, 1280);
  t.equal(ptb.readUInt32BE(44), 1280);
  t.ok(l4Ok(ptb, 40, 58, true));
  t.throws(() => buildIcmpError(3, 1, Buffer.from([0x50, 1, 2])));
});

t.test('SCTP uses CRC32c', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283, 'the standard check value');
  const s = buildSctp({ src: '192.0.2.1', dst: '198.51.100.1', sport: 2905, dport: 2905, vtag: 0x01020304, chunks: Buffer.alloc(20, 1) });
  t.equal(s[9], 132);
  const l4 = Buffer.from(s.subarray(20));
  const stored = l4.readUInt32LE(8);
  l4.writeUInt32LE(0, 8);
  t.equal(stored, crc32c(l4));
  t.equal(l4.readUInt32BE(4), 0x01020304);
});

t.test('IPv6 extension headers', async (t) => {
  const p = buildUdp({
    src: '2001:db8::1', dst: '2001:db8::2', sport: 1000, dport: 2000, payload: 'x',
    ipv6Ext: [{ type: 0 }, { type: 60, options: Buffer.from([0x1e, 1, 0]) }, { type: 43, segmentsLeft: 0 }, { type: 51, spi: 7 }, { type: 44, id: 99 }],
  });
  t.equal(p[6], 0);
  t.same([...p.subarray(40, 48)], [60, 0, 1, 4, 0, 0, 0, 0], 'empty hop-by-hop is one PadN');
  t.same([...p.subarray(48, 56)], [43, 0, 0x1e, 1, 0, 1, 1, 0], 'dest options: option then PadN(1)');
  t.same([...p.subarray(56, 64)], [51, 0, 0, 0, 0, 0, 0, 0], 'routing header');
  t.equal(p[64], 44);
  t.equal(p[65], 4, 'AH length in 4-byte units minus 2');
  t.equal(p.readUInt32BE(68), 7);
  t.same([...p.subarray(88, 96)], [17, 0, 0, 0, 0, 0, 0, 99], 'fragment header');
  t.equal(p.readUInt16BE(4), p.length - 40);
  t.ok(l4Ok(p, 96, 17, true));
  t.same([...buildIpPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 59, ipv6Ext: [{ type: 60, options: Buffer.alloc(5, 0) }] }).subarray(40)],
    [59, 0, 0, 0, 0, 0, 0, 0], 'a single pad byte is Pad1');
});

t.test('fragmentation', async (t) => {
  const payload = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
  const u4 = buildUdp({ src: '198.51.100.1', dst: '203.0.113.1', sport: 7, dport: 9, payload, id: 777,
    ipv4Options: Buffer.from([0x07, 3, 4, 0x83, 3, 4, 1]) }); // record route (not copied), LSRR-shaped copied option, NOP
  const frags = fragmentPacket(u4, 100);
  t.equal(frags.length, 3);
  t.same(frags.map((f) => f.readUInt16BE(6)), [0x2000, 0x2000 | 12, 24]);
  t.same(frags.map((f) => f[0] & 15), [7, 6, 6], 'non-first fragments keep only copied options');
  t.same(frags.map((f) => f.readUInt16BE(4)), [777, 777, 777]);
  t.ok(frags.every(ipHeaderOk));
  const data = Buffer.concat(frags.map((f) => f.subarray((f[0] & 15) * 4)));
  t.same(data, u4.subarray(28), 'data reassembles');

  const u6 = buildUdp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 7, dport: 9, payload, ipv6Ext: [{ type: 0 }, { type: 60 }] });
  const f6 = fragmentPacket(u6, 100, 5);
  t.equal(f6.length, 3);
  t.same(f6.map((f) => f[40]), [44, 44, 44], 'fragment header after the hop-by-hop header');
  t.same(f6.map((f) => f.readUInt16BE(50)), [1, 96 | 1, 192]);
  t.same(f6.map((f) => f[48]), [60, 60, 60]);
  t.same(Buffer.concat(f6.map((f) => f.subarray(56))), u6.subarray(48));
  t.ok(f6.every((f) => f.readUInt16BE(4) === f.length - 40));
  t.throws(() => fragmentPacket(u4, 7));
});

t.test('impossible specifications throw', async (t) => {
  t.throws(() => buildUdp({ src: '192.0.2.1', dst: '2001:db8::1', sport: 1, dport: 2 }), /one family/);
  t.throws(() => buildTcp({ src: '192.0.2.1', dst: '192.0.2.2', sport: 70000, dport: 2, flags: 0 }));
  t.throws(() => buildTcp({ src: '192.0.2.1', dst: '192.0.2.2', sport: 1, dport: 2, flags: 0, options: Buffer.alloc(41) }));
  t.throws(() => buildUdp({ src: '192.0.2.1', dst: '192.0.2.2', sport: 1, dport: 2, ipv6Ext: [{ type: 0 }] }));
  t.throws(() => buildUdp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2, fragment: { offset: 8, more: false } }));
  t.throws(() => buildUdp({ src: '192.0.2.1', dst: '192.0.2.2', sport: 1, dport: 2, payload: Buffer.alloc(65535) }));
});
