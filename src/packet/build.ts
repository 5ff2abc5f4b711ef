// Packet encoder for tests, benchmarks and replay fixtures: builds raw L3 packets (what NFQUEUE
// delivers) with correct IPv4 header and L4 checksums. Unlike decode it is not on a hot path,
// and it throws on impossible specifications so a broken fixture fails loudly.

import { ipv4ToString, ipv6ToString, parseIPv4, parseIPv6 } from './address.js';
import { crc32c, finishChecksum, internetChecksum, onesSum, pseudoHeaderSum } from './checksum.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from './types.js';

/** IPv6 extension headers in the order they appear after the fixed header. */
export type Ipv6Ext =
  /** Hop-by-hop (0) or destination options (60); options are padded with Pad1/PadN. */
  | { type: 0 | 60; options?: Uint8Array }
  /** Routing header; `data` is what follows the 4 fixed bytes, zero-padded to 8n. */
  | { type: 43; routingType?: number; segmentsLeft?: number; data?: Uint8Array }
  /** Fragment header; offset in bytes (a multiple of 8). */
  | { type: 44; offset?: number; more?: boolean; id?: number }
  /** Authentication header; the ICV defaults to 12 bytes (HMAC-SHA1-96). */
  | { type: 51; spi?: number; seq?: number; icv?: Uint8Array };

export interface IpSpec {
  /** Address text; its family decides IPv4 or IPv6 and dst must match it. */
  src: string;
  dst: string;
  /** TTL, or hop limit for IPv6 (default 64). */
  ttl?: number;
  /** TOS byte, or traffic class for IPv6. */
  tos?: number;
  /** IPv4 identification (default 1). */
  id?: number;
  dontFragment?: boolean;
  /** IPv4 fragment fields; offset in bytes (a multiple of 8). For IPv6 use an ipv6Ext of type 44. */
  fragment?: { offset: number; more: boolean };
  /** Raw IPv4 options, padded with end-of-options to a multiple of 4 (at most 40 bytes). */
  ipv4Options?: Uint8Array;
  ipv6Ext?: Ipv6Ext[];
  flowLabel?: number;
}

export type Payload = Uint8Array | string;

export interface TcpSpec extends IpSpec {
  sport: number;
  dport: number;
  /** TCP flag byte, e.g. TCP_SYN | TCP_ACK. */
  flags: number;
  seq?: number;
  ack?: number;
  window?: number;
  urgent?: number;
  /** Raw TCP options, padded with end-of-options to a multiple of 4 (at most 40 bytes). */
  options?: Uint8Array;
  payload?: Payload;
}

export interface UdpSpec extends IpSpec {
  sport: number;
  dport: number;
  payload?: Payload;
}

export interface IcmpEchoSpec extends IpSpec {
  id: number;
  seq?: number;
  /** Echo reply instead of echo request. */
  reply?: boolean;
  payload?: Payload;
}

export interface SctpSpec extends IpSpec {
  sport: number;
  dport: number;
  vtag?: number;
  /** Raw chunks after the 12-byte common header. */
  chunks?: Uint8Array;
}

export interface IcmpErrorSpec extends Partial<IpSpec> {
  /** The 4 bytes after the checksum: next-hop MTU, parameter-problem pointer, ... */
  rest?: number;
  /** Bytes of the offending packet to quote; defaults to what fits in 576 (IPv4) or 1280 (IPv6). */
  quoteLength?: number;
}

export interface RawIpSpec extends IpSpec {
  proto: number;
  /** Everything after the IP header(s), sent as is (no checksum is computed). */
  payload?: Payload;
}

interface Addresses {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
}

function addresses(spec: IpSpec): Addresses {
  const s4 = parseIPv4(spec.src);
  const d4 = parseIPv4(spec.dst);
  if (s4 && d4) return { family: 4, src: s4, dst: d4 };
  const s6 = parseIPv6(spec.src);
  const d6 = parseIPv6(spec.dst);
  if (s6 && d6) return { family: 6, src: s6, dst: d6 };
  throw new Error(`build: src ${spec.src} and dst ${spec.dst} are not addresses of one family`);
}

function bytes(p: Payload | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p);
}

function padTo4(raw: Uint8Array | undefined, what: string): Buffer {
  const len = raw ? (raw.length + 3) & ~3 : 0;
  if (len > 40) throw new Error(`build: ${what} longer than 40 bytes`);
  const out = Buffer.alloc(len);
  if (raw) out.set(raw);
  return out;
}

function check16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new Error(`build: ${what} ${v} is not 0..65535`);
  return v;
}

function extBytes(ext: Ipv6Ext, next: number): Buffer {
  switch (ext.type) {
    case 0:
    case 60: {
      const opts = ext.options ?? new Uint8Array(0);
      const len = (2 + opts.length + 7) & ~7;
      const h = Buffer.alloc(len);
      h[0] = next;
      h[1] = len / 8 - 1;
      h.set(opts, 2);
      const pad = len - 2 - opts.length;
      // PadN for two or more bytes of padding; a single byte is Pad1 (0), already zero.
      if (pad >= 2) {
        h[2 + opts.length] = 1;
        h[3 + opts.length] = pad - 2;
      }
      return h;
    }
    case 43: {
      const data = ext.data ?? new Uint8Array(4);
      const len = (4 + data.length + 7) & ~7;
      const h = Buffer.alloc(len);
      h[0] = next;
      h[1] = len / 8 - 1;
      h[2] = ext.routingType ?? 0;
      h[3] = ext.segmentsLeft ?? 0;
      h.set(data, 4);
      return h;
    }
    case 44: {
      const offset = ext.offset ?? 0;
      if (offset % 8 !== 0 || offset > 0xfff8) throw new Error(`build: fragment offset ${offset}`);
      const h = Buffer.alloc(8);
      h[0] = next;
      h.writeUInt16BE(offset | (ext.more ? 1 : 0), 2);
      h.writeUInt32BE((ext.id ?? 1) >>> 0, 4);
      return h;
    }
    case 51: {
      const icv = ext.icv ?? new Uint8Array(12);
      if ((12 + icv.length) % 8 !== 0) throw new Error('build: AH length must be a multiple of 8 in IPv6');
      const h = Buffer.alloc(12 + icv.length);
      h[0] = next;
      h[1] = h.length / 4 - 2;
      h.writeUInt32BE((ext.spi ?? 0x100) >>> 0, 4);
      h.writeUInt32BE((ext.seq ?? 1) >>> 0, 8);
      h.set(icv, 12);
      return h;
    }
  }
}

/**
 * Prepends the IP header(s) to a finished L4 segment. `csumAt` is the offset of a checksum field
 * inside l4 to fill with the internet checksum (pseudo-header included when `pseudo`), or -1.
 */
function assemble(spec: IpSpec, proto: number, l4: Buffer, csumAt: number, pseudo: boolean): Buffer {
  const a = addresses(spec);
  if (csumAt >= 0) {
    l4.writeUInt16BE(0, csumAt);
    let sum = onesSum(l4, 0, l4.length);
    if (pseudo) sum += pseudoHeaderSum(a.src, a.dst, proto, l4.length);
    let c = finishChecksum(sum);
    // UDP sends a computed 0 as 0xffff: 0 means "no checksum" (RFC 768).
    if (c === 0 && proto === IPPROTO_UDP) c = 0xffff;
    l4.writeUInt16BE(c, csumAt);
  }
  return a.family === 4 ? assemble4(spec, a, proto, l4) : assemble6(spec, a, proto, l4);
}

function assemble4(spec: IpSpec, a: Addresses, proto: number, l4: Buffer): Buffer {
  if (spec.ipv6Ext?.length) throw new Error('build: ipv6Ext on an IPv4 packet');
  const opts = padTo4(spec.ipv4Options, 'IPv4 options');
  const hlen = 20 + opts.length;
  const total = check16(hlen + l4.length, 'IPv4 total length');
  const p = Buffer.alloc(total);
  p[0] = 0x40 | (hlen >> 2);
  p[1] = spec.tos ?? 0;
  p.writeUInt16BE(total, 2);
  p.writeUInt16BE(check16(spec.id ?? 1, 'IPv4 id'), 4);
  const fo = spec.fragment?.offset ?? 0;
  if (fo % 8 !== 0 || fo > 0xfff8) throw new Error(`build: fragment offset ${fo}`);
  p.writeUInt16BE((spec.dontFragment ? 0x4000 : 0) | (spec.fragment?.more ? 0x2000 : 0) | (fo >> 3), 6);
  p[8] = spec.ttl ?? 64;
  p[9] = proto;
  p.set(a.src, 12);
  p.set(a.dst, 16);
  p.set(opts, 20);
  p.writeUInt16BE(internetChecksum(p, 0, hlen), 10);
  p.set(l4, hlen);
  return p;
}

function assemble6(spec: IpSpec, a: Addresses, proto: number, l4: Buffer): Buffer {
  if (spec.ipv4Options?.length || spec.fragment) {
    throw new Error('build: ipv4Options/fragment on an IPv6 packet (use ipv6Ext)');
  }
  const exts = spec.ipv6Ext ?? [];
  const parts: Buffer[] = exts.map((e, i) => extBytes(e, i + 1 < exts.length ? exts[i + 1].type : proto));
  parts.push(l4);
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(40);
  const tc = spec.tos ?? 0;
  h.writeUInt32BE(((6 << 28) | (tc << 20) | ((spec.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(check16(body.length, 'IPv6 payload length'), 4);
  h[6] = exts.length ? exts[0].type : proto;
  h[7] = spec.ttl ?? 64;
  h.set(a.src, 8);
  h.set(a.dst, 24);
  return Buffer.concat([h, body]);
}

export function buildTcp(spec: TcpSpec): Buffer {
  const opts = padTo4(spec.options, 'TCP options');
  const payload = bytes(spec.payload);
  const hlen = 20 + opts.length;
  const t = Buffer.alloc(hlen + payload.length);
  t.writeUInt16BE(check16(spec.sport, 'sport'), 0);
  t.writeUInt16BE(check16(spec.dport, 'dport'), 2);
  t.writeUInt32BE((spec.seq ?? 1000) >>> 0, 4);
  t.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  t[12] = (hlen >> 2) << 4;
  t[13] = spec.flags & 0xff;
  t.writeUInt16BE(check16(spec.window ?? 65535, 'window'), 14);
  t.writeUInt16BE(check16(spec.urgent ?? 0, 'urgent pointer'), 18);
  t.set(opts, 20);
  t.set(payload, hlen);
  return assemble(spec, IPPROTO_TCP, t, 16, true);
}

export function buildUdp(spec: UdpSpec): Buffer {
  const payload = bytes(spec.payload);
  const u = Buffer.alloc(8 + payload.length);
  u.writeUInt16BE(check16(spec.sport, 'sport'), 0);
  u.writeUInt16BE(check16(spec.dport, 'dport'), 2);
  u.writeUInt16BE(check16(u.length, 'UDP length'), 4);
  u.set(payload, 8);
  return assemble(spec, IPPROTO_UDP, u, 6, true);
}

/** Echo request (or reply) as ICMP or ICMPv6 depending on the address family. */
export function buildIcmpEcho(spec: IcmpEchoSpec): Buffer {
  const v6 = addresses(spec).family === 6;
  const payload = bytes(spec.payload);
  const m = Buffer.alloc(8 + payload.length);
  m[0] = v6 ? (spec.reply ? 129 : 128) : spec.reply ? 0 : 8;
  m.writeUInt16BE(check16(spec.id, 'echo id'), 4);
  m.writeUInt16BE(check16(spec.seq ?? 1, 'echo seq'), 6);
  m.set(payload, 8);
  return assemble(spec, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, m, 2, v6);
}

/**
 * An ICMP/ICMPv6 error quoting `quoted` (a packet built here, as it travelled). Without src/dst
 * the error comes from the quoted packet's destination back to its source, as a host's port
 * unreachable does; give `src` for an error from a router on the path.
 */
export function buildIcmpError(type: number, code: number, quoted: Uint8Array, spec: IcmpErrorSpec = {}): Buffer {
  const qv = quoted[0] >> 4;
  let qsrc: string;
  let qdst: string;
  if (qv === 4 && quoted.length >= 20) {
    qsrc = ipv4ToString(quoted, 12);
    qdst = ipv4ToString(quoted, 16);
  } else if (qv === 6 && quoted.length >= 40) {
    qsrc = ipv6ToString(quoted, 8);
    qdst = ipv6ToString(quoted, 24);
  } else {
    throw new Error('build: the quoted packet is neither IPv4 nor IPv6');
  }
  const ip: IpSpec = { ...spec, src: spec.src ?? qdst, dst: spec.dst ?? qsrc };
  const v6 = addresses(ip).family === 6;
  const room = v6 ? 1280 - 40 - 8 : 576 - 20 - 8;
  const qlen = Math.min(quoted.length, spec.quoteLength ?? room);
  const m = Buffer.alloc(8 + qlen);
  m[0] = type;
  m[1] = code;
  m.writeUInt32BE((spec.rest ?? 0) >>> 0, 4);
  m.set(quoted.subarray(0, qlen), 8);
  return assemble(ip, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, m, 2, v6);
}

export function buildSctp(spec: SctpSpec): Buffer {
  const chunks = spec.chunks ?? new Uint8Array(0);
  const s = Buffer.alloc(12 + chunks.length);
  s.writeUInt16BE(check16(spec.sport, 'sport'), 0);
  s.writeUInt16BE(check16(spec.dport, 'dport'), 2);
  s.writeUInt32BE((spec.vtag ?? 0) >>> 0, 4);
  s.set(chunks, 12);
  // RFC 9260 appendix A: CRC32c over the packet with a zero checksum field, stored as Linux
  // does (little-endian of the CRC value).
  s.writeUInt32LE(crc32c(s), 8);
  return assemble(spec, IPPROTO_SCTP, s, -1, false);
}

/** Any protocol (GRE, ESP, a non-first fragment's data, ...): the payload goes out untouched. */
export function buildIpPacket(spec: RawIpSpec): Buffer {
  return assemble(spec, spec.proto, bytes(spec.payload), -1, false);
}

// ---- fragmentation ----------------------------------------------------------------------

/** IPv4 options whose copied flag is set: the only ones repeated in non-first fragments. */
function copiedOptions(opts: Uint8Array): Buffer {
  const out: number[] = [];
  for (let i = 0; i < opts.length; ) {
    const type = opts[i];
    if (type === 0) break;
    if (type === 1) {
      i++;
      continue;
    }
    const len = opts[i + 1];
    if (len < 2 || i + len > opts.length) break;
    if (type & 0x80) for (let k = 0; k < len; k++) out.push(opts[i + k]);
    i += len;
  }
  return padTo4(Uint8Array.from(out), 'IPv4 options');
}

function fragment4(packet: Buffer, size: number): Buffer[] {
  const hlen = (packet[0] & 0x0f) << 2;
  const total = packet.readUInt16BE(2);
  const data = packet.subarray(hlen, total);
  const copied = copiedOptions(packet.subarray(20, hlen));
  const frags: Buffer[] = [];
  for (let off = 0; off < data.length; off += size) {
    const first = off === 0;
    const h = Buffer.from(packet.subarray(0, first ? hlen : 20));
    const opts = first ? Buffer.alloc(0) : copied;
    const chunk = data.subarray(off, off + size);
    const fh = h.length + opts.length;
    const f = Buffer.concat([h, opts, chunk]);
    f[0] = 0x40 | (fh >> 2);
    f.writeUInt16BE(f.length, 2);
    const more = off + size < data.length;
    f.writeUInt16BE((packet.readUInt16BE(6) & 0x4000) | (more ? 0x2000 : 0) | (off >> 3), 6);
    f.writeUInt16BE(0, 10);
    f.writeUInt16BE(internetChecksum(f, 0, fh), 10);
    frags.push(f);
  }
  return frags;
}

function fragment6(packet: Buffer, size: number, id: number): Buffer[] {
  // The unfragmentable part is the fixed header plus hop-by-hop and routing headers (RFC 8200 4.5).
  let nhAt = 6;
  let off = 40;
  while (packet[nhAt] === 0 || packet[nhAt] === 43) {
    nhAt = off;
    off += (packet[off + 1] + 1) * 8;
  }
  const proto = packet[nhAt];
  const unfrag = packet.subarray(0, off);
  const data = packet.subarray(off, 40 + packet.readUInt16BE(4));
  const frags: Buffer[] = [];
  for (let o = 0; o < data.length; o += size) {
    const fh = Buffer.alloc(8);
    fh[0] = proto;
    fh.writeUInt16BE(o | (o + size < data.length ? 1 : 0), 2);
    fh.writeUInt32BE(id >>> 0, 4);
    const f = Buffer.concat([unfrag, fh, data.subarray(o, o + size)]);
    f[nhAt] = 44;
    f.writeUInt16BE(f.length - 40, 4);
    frags.push(f);
  }
  return frags;
}

/**
 * Splits a packet built here into fragments carrying at most `size` bytes of fragmentable data
 * each (rounded down to a multiple of 8), as a router or the sending host would.
 */
export function fragmentPacket(packet: Uint8Array, size: number, id = 1): Buffer[] {
  const fsize = size & ~7;
  if (fsize < 8) throw new Error(`build: fragment size ${size} is below 8`);
  const p = Buffer.from(packet);
  if (p[0] >> 4 === 4) return fragment4(p, fsize);
  if (p[0] >> 4 === 6) return fragment6(p, fsize, id);
  throw new Error('build: not an IP packet');
}
