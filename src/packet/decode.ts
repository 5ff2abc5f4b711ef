// Per-packet decoder for what NFQUEUE hands us: a raw IPv4 or IPv6 packet, no link header.
// It runs for every queued packet, so it reads bytes directly, allocates only the result (and
// its address strings), and never throws: hostile bytes end as a MalformedPacket whose reason is
// a counter label.
//
// Two lengths are in play. The IP header says how long the packet is (DecodedPacket.length,
// what conntrack counts); the buffer may hold less when the queue's copy range truncates it.
// L4 headers must be present in the buffer, while the payload is reported as far as the buffer
// holds it (payloadOffset + payloadLength never exceeds the buffer).

import { ipv4ToString, ipv6ToString } from './address.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type DecodedPacket,
  type FlowTuple,
  type MalformedPacket,
  type PacketResult,
} from './types.js';

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_GRE = 47;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

/** Every reason a MalformedPacket can carry; stable, since they are metric labels. */
export const MALFORMED_REASONS = [
  'empty',
  'bad-version',
  'truncated-ipv4',
  'bad-ihl',
  'bad-ipv4-length',
  'truncated-ipv6',
  'truncated-ipv6-ext',
  'ipv6-ext-loop',
  'bad-ipv6-ext',
  'truncated-tcp',
  'bad-tcp-offset',
  'truncated-udp',
  'bad-udp-length',
  'truncated-icmp',
  'truncated-sctp',
] as const;

export type MalformedReason = (typeof MALFORMED_REASONS)[number];

// Shared frozen results: a flood of garbage must not also be a flood of allocations.
const MALFORMED = Object.fromEntries(
  MALFORMED_REASONS.map((reason) => [reason, Object.freeze({ ok: false, reason })]),
) as Record<MalformedReason, MalformedPacket>;

const EMPTY = MALFORMED['empty'];
const BAD_VERSION = MALFORMED['bad-version'];
const TRUNC_V4 = MALFORMED['truncated-ipv4'];
const BAD_IHL = MALFORMED['bad-ihl'];
const BAD_V4_LEN = MALFORMED['bad-ipv4-length'];
const TRUNC_V6 = MALFORMED['truncated-ipv6'];
const TRUNC_TCP = MALFORMED['truncated-tcp'];
const BAD_TCP_OFF = MALFORMED['bad-tcp-offset'];
const TRUNC_UDP = MALFORMED['truncated-udp'];
const BAD_UDP_LEN = MALFORMED['bad-udp-length'];
const TRUNC_ICMP = MALFORMED['truncated-icmp'];
const TRUNC_SCTP = MALFORMED['truncated-sctp'];

/** Linux conntrack's bound is similar; a legitimate packet has a handful of headers. */
const MAX_EXT_HEADERS = 8;

/**
 * Decodes the IP packet in buf[offset, offset+length); length defaults to the rest of the buffer
 * and is clamped to it. Never throws.
 */
export function decode(buf: Uint8Array, offset = 0, length?: number): PacketResult {
  if (!(buf instanceof Uint8Array)) return EMPTY;
  const start = offset > 0 ? Math.floor(offset) : 0;
  const len = length === undefined ? buf.length : length;
  let end = len > 0 ? start + Math.floor(len) : start;
  if (end > buf.length) end = buf.length;
  if (!(start < end)) return EMPTY;
  const version = buf[start] >> 4;
  if (version === 4) return decode4(buf, start, end);
  if (version === 6) return decode6(buf, start, end);
  return BAD_VERSION;
}

function decode4(b: Uint8Array, s: number, end: number): PacketResult {
  if (end - s < 20) return TRUNC_V4;
  const ihl = (b[s] & 0x0f) << 2;
  if (ihl < 20) return BAD_IHL;
  if (s + ihl > end) return TRUNC_V4;
  let total = (b[s + 2] << 8) | b[s + 3];
  // GSO packets above 64 KiB (IPv4 BIG TCP) are queued with tot_len 0: the buffer is the packet.
  if (total === 0) total = end - s;
  else if (total < ihl) return BAD_V4_LEN;
  const frag = ((b[s + 6] << 8) | b[s + 7]) & 0x3fff;
  const nonFirst = (frag & 0x1fff) !== 0;
  const dataEnd = s + total < end ? s + total : end;
  return decodeL4(
    b, 4, b[s + 9], ipv4ToString(b, s + 12), ipv4ToString(b, s + 16),
    s + ihl, dataEnd, total - ihl, total, nonFirst, frag !== 0,
  );
}

// Result of walkExt, reused so the walk allocates nothing (decode is not re-entrant).
const walk = { proto: 0, off: 0, fragment: false, nonFirst: false };

/**
 * Walks the IPv6 extension headers from `off` (first next-header value `nh`) up to the upper
 * layer, bounded by `end`. Fills `walk`; returns a malformed result or null.
 */
function walkExt(b: Uint8Array, nh: number, off: number, end: number): MalformedPacket | null {
  const first = off;
  walk.fragment = false;
  walk.nonFirst = false;
  for (let count = 0; ; count++) {
    if (
      nh !== IPPROTO_HOPOPTS && nh !== IPPROTO_ROUTING && nh !== IPPROTO_FRAGMENT &&
      nh !== IPPROTO_DSTOPTS && nh !== IPPROTO_AH
    ) break;
    if (count === MAX_EXT_HEADERS) return MALFORMED['ipv6-ext-loop'];
    // RFC 8200 4.1: hop-by-hop options may only follow the IPv6 header itself.
    if (nh === IPPROTO_HOPOPTS && off !== first) return MALFORMED['bad-ipv6-ext'];
    if (off + 8 > end) return MALFORMED['truncated-ipv6-ext'];
    let hlen: number;
    if (nh === IPPROTO_FRAGMENT) {
      const fo = (b[off + 2] << 8) | b[off + 3];
      // An atomic fragment (offset 0, no more fragments) is a whole packet (RFC 6946).
      if ((fo & 0xfff9) !== 0) walk.fragment = true;
      if ((fo & 0xfff8) !== 0) walk.nonFirst = true;
      hlen = 8;
    } else if (nh === IPPROTO_AH) {
      hlen = (b[off + 1] + 2) << 2;
    } else {
      hlen = (b[off + 1] + 1) << 3;
    }
    nh = b[off];
    off += hlen;
    if (off > end) return MALFORMED['truncated-ipv6-ext'];
    // Past a non-first fragment header come fragment data, not headers.
    if (walk.nonFirst) break;
  }
  walk.proto = nh;
  walk.off = off;
  return null;
}

function decode6(b: Uint8Array, s: number, end: number): PacketResult {
  if (end - s < 40) return TRUNC_V6;
  const plen = (b[s + 4] << 8) | b[s + 5];
  const nh = b[s + 6];
  // Payload length 0 with something after the header is a jumbogram or IPv6 BIG TCP.
  const total = plen === 0 && nh !== IPPROTO_NONE ? end - s : 40 + plen;
  const dataEnd = s + total < end ? s + total : end;
  const bad = walkExt(b, nh, s + 40, dataEnd);
  if (bad) return bad;
  const l4 = walk.off;
  return decodeL4(
    b, 6, walk.proto, ipv6ToString(b, s + 8), ipv6ToString(b, s + 24),
    l4, dataEnd, s + total - l4, total, walk.nonFirst, walk.fragment,
  );
}

function result(
  family: 4 | 6, proto: number, src: string, dst: string, sport: number, dport: number,
  length: number, tcpFlags: number, icmpType: number, icmpCode: number,
  payloadOffset: number, payloadLength: number, fragment: boolean,
): DecodedPacket {
  return {
    ok: true,
    tuple: { family, proto, src, dst, sport, dport },
    length, tcpFlags, icmpType, icmpCode, payloadOffset, payloadLength, fragment,
  };
}

/**
 * @param l4 start of the L4 header in the buffer
 * @param l4End end of the L4 data present in the buffer (never past what the IP header declares)
 * @param l4Declared L4 length according to the IP header
 */
function decodeL4(
  b: Uint8Array, family: 4 | 6, proto: number, src: string, dst: string,
  l4: number, l4End: number, l4Declared: number, length: number, nonFirst: boolean, fragment: boolean,
): PacketResult {
  const avail = l4End - l4;
  if (nonFirst) return result(family, proto, src, dst, 0, 0, length, 0, -1, -1, l4, avail, true);
  switch (proto) {
    case IPPROTO_TCP: {
      if (avail < 20) return TRUNC_TCP;
      const doff = (b[l4 + 12] >> 4) << 2;
      if (doff < 20) return BAD_TCP_OFF;
      if (doff > avail) return TRUNC_TCP;
      const r = result(
        family, proto, src, dst, (b[l4] << 8) | b[l4 + 1], (b[l4 + 2] << 8) | b[l4 + 3],
        length, b[l4 + 13], -1, -1, l4 + doff, avail - doff, fragment,
      );
      r.tcpSeq = ((b[l4 + 4] << 24) | (b[l4 + 5] << 16) | (b[l4 + 6] << 8) | b[l4 + 7]) >>> 0;
      return r;
    }
    case IPPROTO_UDP: {
      if (avail < 8) return TRUNC_UDP;
      let ulen = (b[l4 + 4] << 8) | b[l4 + 5];
      // 0 is legal only in jumbograms (RFC 2675), where the IP layer carries the length. In a
      // first fragment the UDP length covers the whole datagram, not this fragment.
      if (ulen === 0) ulen = l4Declared;
      else if (ulen < 8 || (ulen > l4Declared && !fragment)) return BAD_UDP_LEN;
      const plen = ulen - 8 < avail - 8 ? ulen - 8 : avail - 8;
      return result(
        family, proto, src, dst, (b[l4] << 8) | b[l4 + 1], (b[l4 + 2] << 8) | b[l4 + 3],
        length, 0, -1, -1, l4 + 8, plen, fragment,
      );
    }
    case IPPROTO_SCTP:
      if (avail < 12) return TRUNC_SCTP;
      return result(
        family, proto, src, dst, (b[l4] << 8) | b[l4 + 1], (b[l4 + 2] << 8) | b[l4 + 3],
        length, 0, -1, -1, l4 + 12, avail - 12, fragment,
      );
    case IPPROTO_ICMP:
      if (family === 4) return decodeIcmp(b, family, proto, src, dst, l4, l4End, length, fragment);
      break;
    case IPPROTO_ICMPV6:
      if (family === 6) return decodeIcmp(b, family, proto, src, dst, l4, l4End, length, fragment);
      break;
  }
  return result(family, proto, src, dst, 0, 0, length, 0, -1, -1, l4, avail, fragment);
}

function isIcmpError(family: 4 | 6, type: number): boolean {
  if (family === 4) return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
  return type >= 1 && type <= 4;
}

function isEcho(family: 4 | 6, type: number): boolean {
  return family === 4 ? type === 8 || type === 0 : type === 128 || type === 129;
}

function decodeIcmp(
  b: Uint8Array, family: 4 | 6, proto: number, src: string, dst: string,
  l4: number, l4End: number, length: number, fragment: boolean,
): PacketResult {
  // Every ICMP/ICMPv6 message has at least type, code, checksum and a 4-byte rest-of-header.
  if (l4End - l4 < 8) return TRUNC_ICMP;
  const type = b[l4];
  const code = b[l4 + 1];
  const sport = isEcho(family, type) ? (b[l4 + 4] << 8) | b[l4 + 5] : 0;
  const r = result(family, proto, src, dst, sport, 0, length, 0, type, code, l4 + 8, l4End - l4 - 8, fragment);
  if (isIcmpError(family, type)) {
    const q = family === 4 ? quote4(b, l4 + 8, l4End) : quote6(b, l4 + 8, l4End);
    if (q) r.quoted = q;
  }
  return r;
}

/**
 * Ports of a quoted packet's L4 header as sport * 65536 + dport, or -1 if the quote is too
 * short for them. Only the first 8 L4 bytes are guaranteed in a quote (RFC 792).
 */
function quotedPorts(b: Uint8Array, family: 4 | 6, proto: number, l4: number, avail: number): number {
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP) {
    if (avail < 4) return -1;
    return ((b[l4] << 8) | b[l4 + 1]) * 65536 + ((b[l4 + 2] << 8) | b[l4 + 3]);
  }
  if ((family === 4 && proto === IPPROTO_ICMP) || (family === 6 && proto === IPPROTO_ICMPV6)) {
    if (avail < 8) return -1;
    return isEcho(family, b[l4]) ? ((b[l4 + 4] << 8) | b[l4 + 5]) * 65536 : 0;
  }
  return 0;
}

function quotedTuple(
  b: Uint8Array, family: 4 | 6, proto: number, srcOff: number, dstOff: number,
  l4: number, avail: number, nonFirst: boolean,
): FlowTuple | undefined {
  const ports = nonFirst ? 0 : quotedPorts(b, family, proto, l4, avail);
  if (ports < 0) return undefined;
  const toString = family === 4 ? ipv4ToString : ipv6ToString;
  return {
    family, proto, src: toString(b, srcOff), dst: toString(b, dstOff),
    sport: Math.floor(ports / 65536), dport: ports & 0xffff,
  };
}

// The quoted packet's own length fields describe the original, not the quote: bound by `end`.
function quote4(b: Uint8Array, q: number, end: number): FlowTuple | undefined {
  if (end - q < 20 || b[q] >> 4 !== 4) return undefined;
  const ihl = (b[q] & 0x0f) << 2;
  if (ihl < 20 || q + ihl > end) return undefined;
  const nonFirst = (((b[q + 6] << 8) | b[q + 7]) & 0x1fff) !== 0;
  return quotedTuple(b, 4, b[q + 9], q + 12, q + 16, q + ihl, end - q - ihl, nonFirst);
}

function quote6(b: Uint8Array, q: number, end: number): FlowTuple | undefined {
  if (end - q < 40 || b[q] >> 4 !== 6) return undefined;
  if (walkExt(b, b[q + 6], q + 40, end)) return undefined;
  return quotedTuple(b, 6, walk.proto, q + 8, q + 24, walk.off, end - walk.off, walk.nonFirst);
}
