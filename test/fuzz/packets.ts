// IP packets for the decoder target, built with the project's packet builder: IPv4/IPv6 with
// options and extension headers, TCP/UDP/SCTP/ICMP echo/ICMP errors/other protocols, first and
// non-first fragments, payloads from the helpers' grammars. Each unmutated packet carries what
// decode must read back from it.

import fc from 'fast-check';
import { ipv4ToString, ipv6ToString } from '../../src/packet/address.js';
import { buildIcmpEcho, buildIcmpError, buildIpPacket, buildSctp, buildTcp, buildUdp, type IpSpec, type Ipv6Ext } from '../../src/packet/build.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, type FlowTuple } from '../../src/packet/types.js';
import { ftpMessages, sipMessages, tftpMessages, type Msg } from './grammars.js';

/** What decode must report for a packet built from a spec. */
export interface Expected extends FlowTuple {
  /** -1: not checked (a non-first fragment). */
  payloadLength: number;
  fragment: boolean;
  quoted?: { sport: number; dport: number; proto: number };
}

export interface BuiltPacket { bytes: Buffer; expect: Expected }

const u16 = fc.integer({ min: 0, max: 0xffff });
const addrPair = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 4, maxLength: 4 })).map(([a, b]) => [ipv4ToString(a), ipv4ToString(b)] as const),
  fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 })).map(([a, b]) => [ipv6ToString(a), ipv6ToString(b)] as const),
);

const grammarPayload: fc.Arbitrary<Buffer> = fc.oneof(ftpMessages, sipMessages, tftpMessages)
  .map((ms: Msg[]) => Buffer.concat(ms.map((m) => m.bytes)).subarray(0, 4000));
const payload = fc.oneof(grammarPayload, fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)));

const v6ext: fc.Arbitrary<Ipv6Ext> = fc.oneof(
  fc.record({ type: fc.constantFrom(60 as const), options: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ type: fc.constant(43 as const), routingType: fc.integer({ min: 0, max: 4 }), segmentsLeft: fc.constant(0), data: fc.uint8Array({ maxLength: 12 }) }),
  fc.record({ type: fc.constant(51 as const), icv: fc.constantFrom(4, 12, 20).map((n) => new Uint8Array(n)) }),
);

interface Shape { src: string; dst: string; ip: IpSpec; nonFirst: boolean; fragment: boolean }

const shape: fc.Arbitrary<Shape> = fc.tuple(addrPair, fc.boolean(), fc.array(v6ext, { maxLength: 3 }), fc.constantFrom('none', 'none', 'none', 'first', 'later'), fc.uint8Array({ maxLength: 12 }))
  .map(([[src, dst], hop, exts, frag, v4opts]) => {
    const v6 = src.includes(':');
    const ip: IpSpec = { src, dst };
    const fragment = frag !== 'none';
    const nonFirst = frag === 'later';
    if (v6) {
      const list: Ipv6Ext[] = [...(hop ? [{ type: 0 as const }] : []), ...exts];
      if (fragment) list.push({ type: 44, offset: nonFirst ? 64 : 0, more: true, id: 7 });
      ip.ipv6Ext = list;
    } else {
      if (v4opts.length) ip.ipv4Options = v4opts.map((x) => (x < 2 ? 1 : x)); // no end-of-options in the middle
      if (fragment) ip.fragment = { offset: nonFirst ? 64 : 0, more: true };
    }
    return { src, dst, ip, nonFirst, fragment };
  });

const tcp = fc.tuple(shape, u16, u16, fc.integer({ min: 0, max: 255 }), payload, fc.constantFrom(0, 4, 12, 40))
  .map(([s, sport, dport, flags, p, optLen]): BuiltPacket => ({
    bytes: buildTcp({ ...s.ip, sport, dport, flags, payload: p, ...(optLen ? { options: new Uint8Array(optLen).fill(1) } : {}) }),
    expect: expected(s, IPPROTO_TCP, sport, dport, p.length),
  }));

const udp = fc.tuple(shape, u16, u16, payload)
  .map(([s, sport, dport, p]): BuiltPacket => ({ bytes: buildUdp({ ...s.ip, sport, dport, payload: p }), expect: expected(s, IPPROTO_UDP, sport, dport, p.length) }));

const sctp = fc.tuple(shape, u16, u16, fc.uint8Array({ maxLength: 32 }))
  .map(([s, sport, dport, c]): BuiltPacket => ({ bytes: buildSctp({ ...s.ip, sport, dport, chunks: c }), expect: expected(s, IPPROTO_SCTP, sport, dport, c.length) }));

const echo = fc.tuple(shape, u16, fc.boolean(), payload)
  .map(([s, id, reply, p]): BuiltPacket => {
    const v6 = s.src.includes(':');
    return { bytes: buildIcmpEcho({ ...s.ip, id, reply, payload: p }), expect: expected(s, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, id, 0, p.length) };
  });

/** An unreachable quoting a TCP or UDP packet; the error itself is never a fragment here. */
const icmpError = fc.tuple(addrPair, u16, u16, fc.boolean(), fc.integer({ min: 8, max: 80 }))
  .map(([[src, dst], sport, dport, isTcp, quoteLength]): BuiltPacket => {
    const inner = isTcp ? buildTcp({ src, dst, sport, dport, flags: 2 }) : buildUdp({ src, dst, sport, dport, payload: 'x' });
    const v6 = src.includes(':');
    const hdr = v6 ? 40 : 20;
    const qlen = Math.min(inner.length, hdr + quoteLength);
    const bytes = buildIcmpError(v6 ? 1 : 3, 3, inner, { quoteLength: qlen });
    const s: Shape = { src: dst, dst: src, ip: { src: dst, dst: src }, nonFirst: false, fragment: false };
    return {
      bytes,
      expect: {
        ...expected(s, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, 0, 0, qlen),
        ...(qlen >= hdr + 4 ? { quoted: { sport, dport, proto: isTcp ? IPPROTO_TCP : IPPROTO_UDP } } : {}),
      },
    };
  });

const other = fc.tuple(shape, fc.constantFrom(47, 50, 2, 89, 255), fc.uint8Array({ maxLength: 48 }))
  .map(([s, proto, p]): BuiltPacket => ({ bytes: buildIpPacket({ ...s.ip, proto, payload: p }), expect: expected(s, proto, 0, 0, p.length) }));

function expected(s: Shape, proto: number, sport: number, dport: number, payloadLength: number): Expected {
  const family = s.src.includes(':') ? 6 : 4;
  // A non-first fragment has no L4 header: no ports, its whole data is payload.
  if (s.nonFirst) return { family, proto, src: s.src, dst: s.dst, sport: 0, dport: 0, payloadLength: -1, fragment: true };
  return { family, proto, src: s.src, dst: s.dst, sport, dport, payloadLength, fragment: s.fragment };
}

export const builtPacket: fc.Arbitrary<BuiltPacket> = fc.oneof(
  { arbitrary: tcp, weight: 4 }, { arbitrary: udp, weight: 4 }, { arbitrary: echo, weight: 2 },
  { arbitrary: icmpError, weight: 2 }, { arbitrary: sctp, weight: 1 }, { arbitrary: other, weight: 1 },
);
