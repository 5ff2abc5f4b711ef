// ctnetlink codec: conntrack entries from events and dumps into a domain type, and the few
// requests the daemon makes (dump, delete by tuple, update mark/timeout, dump-and-zero counters).
// Pure: no sockets here, so everything is unit-testable without root.
//
// Layouts follow include/uapi/linux/netfilter/nfnetlink_conntrack.h and the kernel's
// net/netfilter/nf_conntrack_netlink.c. How the kernel labels messages:
//   event NEW      IPCTNL_MSG_CT_NEW    with NLM_F_CREATE|NLM_F_EXCL   (group 1)
//   event UPDATE   IPCTNL_MSG_CT_NEW    without those flags            (group 2)
//   event DESTROY  IPCTNL_MSG_CT_DELETE                                (group 3)
//   dump entry     IPCTNL_MSG_CT_NEW    with NLM_F_MULTI
// so the event kind can be read from the message alone.

import {
  type Attr, type NfMessage, type NlMessage,
  attrNest, attrU8, attrU16, attrU32,
  splitMessages,
  NFNL_SUBSYS_CTNETLINK, NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_UNSPEC,
  NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST,
} from './nfnetlink.js';
import type { FlowTuple } from '../packet/types.js';
import { formatAddress, parseAddress } from '../packet/address.js';

export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;
export const IPCTNL_MSG_CT_GET_CTRZERO = 3;

export const NFNLGRP_CONNTRACK_NEW = 1;
export const NFNLGRP_CONNTRACK_UPDATE = 2;
export const NFNLGRP_CONNTRACK_DESTROY = 3;

export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_PROTOINFO = 4;
export const CTA_TIMEOUT = 7;
export const CTA_MARK = 8;
export const CTA_COUNTERS_ORIG = 9;
export const CTA_COUNTERS_REPLY = 10;
export const CTA_USE = 11;
export const CTA_ID = 12;
export const CTA_ZONE = 18;
export const CTA_TIMESTAMP = 20;
export const CTA_TIMESTAMP_START = 1;
export const CTA_MARK_MASK = 21;

export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
export const CTA_TUPLE_ZONE = 3;

export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;

export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;
export const CTA_PROTO_ICMP_ID = 4;
export const CTA_PROTO_ICMP_TYPE = 5;
export const CTA_PROTO_ICMP_CODE = 6;
export const CTA_PROTO_ICMPV6_ID = 7;
export const CTA_PROTO_ICMPV6_TYPE = 8;
export const CTA_PROTO_ICMPV6_CODE = 9;

export const CTA_PROTOINFO_TCP = 1;
export const CTA_PROTOINFO_TCP_STATE = 1;

export const CTA_COUNTERS_PACKETS = 1;
export const CTA_COUNTERS_BYTES = 2;
export const CTA_COUNTERS32_PACKETS = 3;
export const CTA_COUNTERS32_BYTES = 4;

/** enum ip_conntrack_status bits the daemon looks at. */
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_DYING = 1 << 9;
export const IPS_OFFLOAD = 1 << 14;

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_DCCP = 33;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_SCTP = 132;
const IPPROTO_UDPLITE = 136;
const PORT_PROTOS = new Set([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE]);

/** enum tcp_conntrack (nf_conntrack_tcp.h); the index is the kernel's number. */
export const TCP_CONNTRACK_NAMES = [
  'NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK',
  'TIME_WAIT', 'CLOSE', 'SYN_SENT2', 'MAX', 'IGNORE', 'RETRANS', 'UNACK',
] as const;

export interface IcmpKey {
  type: number;
  code: number;
}

export interface ConnCounters {
  origPackets: number;
  origBytes: number;
  replyPackets: number;
  replyBytes: number;
}

/**
 * One kernel conntrack entry. Shaped so that it is assignable to the engine's KernelFlowReport
 * (tcpState is the kernel number; the name is separate).
 */
export interface KernelConn {
  event: 'new' | 'update' | 'destroy' | 'dump';
  id?: number;
  family: 4 | 6;
  proto: number;
  orig: FlowTuple;
  reply: FlowTuple;
  /**
   * ICMP type/code of the original direction. The tuple keeps only the echo id, but the kernel
   * needs type and code to find the entry again (delete/update), so they are carried here.
   */
  origIcmp?: IcmpKey;
  status?: number;
  mark?: number;
  /** Seconds left before the kernel expires the entry. */
  timeout?: number;
  tcpState?: number;
  tcpStateName?: string;
  counters?: ConnCounters;
  zone?: number;
  use?: number;
  /** When the kernel created the entry (ms since the epoch; with nf_conntrack_timestamp=1). */
  startMs?: number;
}

/** What the kernel needs to find an entry: a tuple, plus type/code when it is ICMP. */
export interface TupleKey {
  tuple: FlowTuple;
  /** Defaults to echo request (8/0 for ICMP, 128/0 for ICMPv6): the only ICMP the daemon tracks. */
  icmp?: IcmpKey;
  zone?: number;
  /** `tuple` is the entry's reply tuple (a destination-translated entry's original one is not known to us). */
  byReply?: boolean;
}

// ---------------------------------------------------------------- decoding
//
// Events arrive several times per connection (NEW, each TCP state change, the offload mark,
// DESTROY), so decoding is on the daemon's per-connection path. It walks the attributes in place
// with offsets: no attribute Maps, no Buffer views, one object per tuple and per entry. The
// semantics are those of nla_parse: the last attribute of a type wins, a bad length ends the
// level, a missing or short mandatory attribute makes the entry undefined.

const NLA_HDRLEN = 4;
const NFGEN_HDRLEN = 4;
const TYPE_MASK = 0x3fff;

/** Little-endian u16 at `o` (netlink attribute headers are host order). */
const le16 = (b: Buffer, o: number): number => b[o] | (b[o + 1] << 8);
const be16 = (b: Buffer, o: number): number => (b[o] << 8) | b[o + 1];
const be32 = (b: Buffer, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/**
 * Scratch table of one attribute level: for each type up to `size`, the payload offset and
 * length of the last attribute of that type (-1 when absent). Reused across calls; a level is
 * fully consumed before the next one is parsed into the same table.
 */
class Level {
  readonly off: Int32Array;
  readonly len: Int32Array;
  constructor(readonly size: number) {
    this.off = new Int32Array(size);
    this.len = new Int32Array(size);
  }

  parse(b: Buffer, start: number, end: number): void {
    // A plain loop: TypedArray.prototype.fill is a runtime call, slower for a few dozen slots.
    const off = this.off;
    for (let i = 0; i < off.length; i++) off[i] = -1;
    let o = start;
    while (o + NLA_HDRLEN <= end) {
      const alen = le16(b, o);
      if (alen < NLA_HDRLEN || o + alen > end) break;
      const type = le16(b, o + 2) & TYPE_MASK;
      if (type < this.size) {
        this.off[type] = o + NLA_HDRLEN;
        this.len[type] = alen - NLA_HDRLEN;
      }
      o += (alen + 3) & ~3;
    }
  }

  has(type: number): boolean {
    return this.off[type] >= 0;
  }

  /** u8 of the attribute, or -1 when absent or empty. */
  u8(b: Buffer, type: number): number {
    return this.off[type] >= 0 && this.len[type] >= 1 ? b[this.off[type]] : -1;
  }

  /** Big-endian u16, or -1 when absent or short. */
  u16(b: Buffer, type: number): number {
    return this.off[type] >= 0 && this.len[type] >= 2 ? be16(b, this.off[type]) : -1;
  }

  /** Big-endian u32, or -1 when absent or short. */
  u32(b: Buffer, type: number): number {
    return this.off[type] >= 0 && this.len[type] >= 4 ? be32(b, this.off[type]) : -1;
  }

  /** Big-endian u64 as a Number (exact to 2^53), or -1 when absent or short. */
  u64(b: Buffer, type: number): number {
    if (this.off[type] < 0 || this.len[type] < 8) return -1;
    const o = this.off[type];
    return be32(b, o) * 4294967296 + be32(b, o + 4);
  }
}

const TOP = new Level(CTA_MARK_MASK + 16);
const TUPLE = new Level(CTA_TUPLE_ZONE + 1);
const TUPLE_IP = new Level(CTA_IP_V6_DST + 1);
const TUPLE_PROTO = new Level(CTA_PROTO_ICMPV6_CODE + 1);
const INNER = new Level(8);

/** Small direct-mapped cache of IPv4 address text: the same few addresses recur in every event. */
const V4_SLOTS = 1024;
const v4Keys = new Int32Array(V4_SLOTS);
const v4Text: string[] = new Array<string>(V4_SLOTS).fill('');

function ipv4At(b: Buffer, o: number): string {
  const key = (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
  const slot = (b[o + 3] ^ (b[o + 2] << 2) ^ (b[o + 1] << 5)) & (V4_SLOTS - 1);
  const hit = v4Text[slot];
  if (hit !== '' && v4Keys[slot] === key) return hit;
  const text = formatAddress(b.subarray(o, o + 4));
  v4Keys[slot] = key;
  v4Text[slot] = text;
  return text;
}

type DecodedTuple = FlowTuple & { icmp?: IcmpKey };

/** The tuple nested in buf[start, end), or undefined when incomplete. */
function decodeTuple(b: Buffer, start: number, end: number, fallbackFamily: number): DecodedTuple | undefined {
  TUPLE.parse(b, start, end);
  if (!TUPLE.has(CTA_TUPLE_IP) || !TUPLE.has(CTA_TUPLE_PROTO)) return undefined;
  const ipOff = TUPLE.off[CTA_TUPLE_IP];
  const ipEnd = ipOff + TUPLE.len[CTA_TUPLE_IP];
  const protoOff = TUPLE.off[CTA_TUPLE_PROTO];
  const protoEnd = protoOff + TUPLE.len[CTA_TUPLE_PROTO];

  TUPLE_IP.parse(b, ipOff, ipEnd);
  let family: 4 | 6;
  let srcType: number;
  let dstType: number;
  if (TUPLE_IP.has(CTA_IP_V4_SRC) || (!TUPLE_IP.has(CTA_IP_V6_SRC) && fallbackFamily === NFPROTO_IPV4)) {
    family = 4;
    srcType = CTA_IP_V4_SRC;
    dstType = CTA_IP_V4_DST;
  } else {
    family = 6;
    srcType = CTA_IP_V6_SRC;
    dstType = CTA_IP_V6_DST;
  }
  const alen = family === 4 ? 4 : 16;
  if (!TUPLE_IP.has(srcType) || !TUPLE_IP.has(dstType) || TUPLE_IP.len[srcType] !== alen || TUPLE_IP.len[dstType] !== alen) return undefined;
  const so = TUPLE_IP.off[srcType];
  const dso = TUPLE_IP.off[dstType];
  const src = family === 4 ? ipv4At(b, so) : formatAddress(b.subarray(so, so + 16));
  const dst = family === 4 ? ipv4At(b, dso) : formatAddress(b.subarray(dso, dso + 16));

  TUPLE_PROTO.parse(b, protoOff, protoEnd);
  const proto = TUPLE_PROTO.u8(b, CTA_PROTO_NUM);
  if (proto < 0) return undefined;
  let sport = 0;
  let dport = 0;
  let icmp: IcmpKey | undefined;
  if (PORT_PROTOS.has(proto)) {
    sport = Math.max(0, TUPLE_PROTO.u16(b, CTA_PROTO_SRC_PORT));
    dport = Math.max(0, TUPLE_PROTO.u16(b, CTA_PROTO_DST_PORT));
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const v6 = proto === IPPROTO_ICMPV6;
    sport = Math.max(0, TUPLE_PROTO.u16(b, v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID));
    const type = TUPLE_PROTO.u8(b, v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE);
    const code = TUPLE_PROTO.u8(b, v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE);
    if (type >= 0 && code >= 0) icmp = { type, code };
  }
  const out: DecodedTuple = { family, proto, src, dst, sport, dport };
  if (icmp) out.icmp = icmp;
  return out;
}

/** Packets and bytes of a CTA_COUNTERS_* nest at buf[start, end), or false when incomplete. */
function decodeCounters(b: Buffer, start: number, end: number, out: number[], at: number): boolean {
  INNER.parse(b, start, end);
  let packets = INNER.u64(b, CTA_COUNTERS_PACKETS);
  if (packets < 0) packets = INNER.has(CTA_COUNTERS32_PACKETS) ? Math.max(0, INNER.u32(b, CTA_COUNTERS32_PACKETS)) : -1;
  let bytes = INNER.u64(b, CTA_COUNTERS_BYTES);
  if (bytes < 0) bytes = INNER.has(CTA_COUNTERS32_BYTES) ? Math.max(0, INNER.u32(b, CTA_COUNTERS32_BYTES)) : -1;
  if (packets < 0 || bytes < 0) return false;
  out[at] = packets;
  out[at + 1] = bytes;
  return true;
}

function eventKind(msg: number, flags: number): KernelConn['event'] | undefined {
  if (msg === IPCTNL_MSG_CT_DELETE) return 'destroy';
  if (msg !== IPCTNL_MSG_CT_NEW) return undefined;
  if (flags & NLM_F_MULTI) return 'dump';
  if (flags & NLM_F_CREATE) return 'new';
  return 'update';
}

const counterScratch = [0, 0, 0, 0];

/**
 * Decodes one ctnetlink message. Anything that is not a conntrack entry, or is malformed,
 * gives undefined: a bad message is counted by the caller, never a crash.
 * `asDump` forces the event to 'dump' (replies to a single GET carry no NLM_F_MULTI).
 */
export function decodeConntrack(m: NlMessage, asDump = false): KernelConn | undefined {
  try {
    const b = m.body;
    if (b.length < NFGEN_HDRLEN) return undefined;
    if (m.type >> 8 !== NFNL_SUBSYS_CTNETLINK) return undefined;
    let event = eventKind(m.type & 0xff, m.flags);
    if (!event) return undefined;
    if (asDump && event !== 'destroy') event = 'dump';
    const family = b[0];
    const end = b.length;
    TOP.parse(b, NFGEN_HDRLEN, end);
    if (!TOP.has(CTA_TUPLE_ORIG) || !TOP.has(CTA_TUPLE_REPLY)) return undefined;
    // Copy what is needed from the top level before the nested parses reuse the tables.
    const oOff = TOP.off[CTA_TUPLE_ORIG];
    const oEnd = oOff + TOP.len[CTA_TUPLE_ORIG];
    const rOff = TOP.off[CTA_TUPLE_REPLY];
    const rEnd = rOff + TOP.len[CTA_TUPLE_REPLY];
    const id = TOP.u32(b, CTA_ID);
    const status = TOP.u32(b, CTA_STATUS);
    const mark = TOP.u32(b, CTA_MARK);
    const timeout = TOP.u32(b, CTA_TIMEOUT);
    const zone = TOP.u16(b, CTA_ZONE);
    const use = TOP.u32(b, CTA_USE);
    const piOff = TOP.off[CTA_PROTOINFO];
    const piEnd = piOff + TOP.len[CTA_PROTOINFO];
    const coOff = TOP.off[CTA_COUNTERS_ORIG];
    const coEnd = coOff + TOP.len[CTA_COUNTERS_ORIG];
    const crOff = TOP.off[CTA_COUNTERS_REPLY];
    const crEnd = crOff + TOP.len[CTA_COUNTERS_REPLY];
    const tsOff = TOP.off[CTA_TIMESTAMP];
    const tsEnd = tsOff + TOP.len[CTA_TIMESTAMP];

    const o = decodeTuple(b, oOff, oEnd, family);
    if (!o) return undefined;
    const r = decodeTuple(b, rOff, rEnd, family);
    if (!r || o.family !== r.family) return undefined;
    const origIcmp = o.icmp;
    const orig: FlowTuple = { family: o.family, proto: o.proto, src: o.src, dst: o.dst, sport: o.sport, dport: o.dport };
    const reply: FlowTuple = r.icmp ? { family: r.family, proto: r.proto, src: r.src, dst: r.dst, sport: r.sport, dport: r.dport } : r;
    const c: KernelConn = { event, family: orig.family, proto: orig.proto, orig, reply };
    if (origIcmp) c.origIcmp = origIcmp;
    if (id >= 0) c.id = id;
    if (status >= 0) c.status = status;
    if (mark >= 0) c.mark = mark;
    if (timeout >= 0) c.timeout = timeout;
    if (zone >= 0) c.zone = zone;
    if (use >= 0) c.use = use;
    if (piOff >= 0) {
      INNER.parse(b, piOff, piEnd);
      if (INNER.has(CTA_PROTOINFO_TCP)) {
        const tOff = INNER.off[CTA_PROTOINFO_TCP];
        INNER.parse(b, tOff, tOff + INNER.len[CTA_PROTOINFO_TCP]);
        const st = INNER.u8(b, CTA_PROTOINFO_TCP_STATE);
        if (st >= 0) {
          c.tcpState = st;
          c.tcpStateName = TCP_CONNTRACK_NAMES[st] ?? `STATE_${st}`;
        }
      }
    }
    if (tsOff >= 0) {
      INNER.parse(b, tsOff, tsEnd);
      const ns = INNER.u64(b, CTA_TIMESTAMP_START);
      if (ns > 0) c.startMs = Math.floor(ns / 1e6);
    }
    if (coOff >= 0 && crOff >= 0 && decodeCounters(b, coOff, coEnd, counterScratch, 0) && decodeCounters(b, crOff, crEnd, counterScratch, 2)) {
      c.counters = { origPackets: counterScratch[0], origBytes: counterScratch[1], replyPackets: counterScratch[2], replyBytes: counterScratch[3] };
    }
    return c;
  } catch {
    return undefined;
  }
}

/** Decodes every conntrack entry in a datagram (events come several per datagram under load). */
export function decodeConntrackDatagram(buf: Buffer, asDump = false): KernelConn[] {
  const out: KernelConn[] = [];
  for (const m of splitMessages(buf)) {
    const c = decodeConntrack(m, asDump);
    if (c) out.push(c);
  }
  return out;
}

// ---------------------------------------------------------------- encoding

const nfFamily = (f: 4 | 6): number => (f === 4 ? NFPROTO_IPV4 : NFPROTO_IPV6);

/** Tuple attributes for requests; throws on an unparsable address (a caller bug, not kernel input). */
export function tupleAttrs(k: TupleKey): Attr[] {
  const t = k.tuple;
  const src = parseAddress(t.src);
  const dst = parseAddress(t.dst);
  if (!src || !dst || src.family !== t.family || dst.family !== t.family) {
    throw new Error(`bad IPv${t.family} tuple address: ${t.src} -> ${t.dst}`);
  }
  const ip = t.family === 4
    ? [{ type: CTA_IP_V4_SRC, data: Buffer.from(src.bytes) }, { type: CTA_IP_V4_DST, data: Buffer.from(dst.bytes) }]
    : [{ type: CTA_IP_V6_SRC, data: Buffer.from(src.bytes) }, { type: CTA_IP_V6_DST, data: Buffer.from(dst.bytes) }];
  const proto: Attr[] = [attrU8(CTA_PROTO_NUM, t.proto)];
  if (PORT_PROTOS.has(t.proto)) {
    proto.push(attrU16(CTA_PROTO_SRC_PORT, t.sport), attrU16(CTA_PROTO_DST_PORT, t.dport));
  } else if (t.proto === IPPROTO_ICMP) {
    const icmp = k.icmp ?? { type: 8, code: 0 };
    proto.push(attrU16(CTA_PROTO_ICMP_ID, t.sport), attrU8(CTA_PROTO_ICMP_TYPE, icmp.type), attrU8(CTA_PROTO_ICMP_CODE, icmp.code));
  } else if (t.proto === IPPROTO_ICMPV6) {
    const icmp = k.icmp ?? { type: 128, code: 0 };
    proto.push(attrU16(CTA_PROTO_ICMPV6_ID, t.sport), attrU8(CTA_PROTO_ICMPV6_TYPE, icmp.type), attrU8(CTA_PROTO_ICMPV6_CODE, icmp.code));
  }
  return [attrNest(CTA_TUPLE_IP, ip), attrNest(CTA_TUPLE_PROTO, proto)];
}

/** Dump of the whole table, or of one family. */
export function ctDumpRequest(opts: { family?: 4 | 6; seq?: number } = {}): NfMessage {
  return {
    subsys: NFNL_SUBSYS_CTNETLINK, msg: IPCTNL_MSG_CT_GET, flags: NLM_F_REQUEST | NLM_F_DUMP,
    seq: opts.seq ?? 0, family: opts.family ? nfFamily(opts.family) : NFPROTO_UNSPEC, resId: 0, attrs: [],
  };
}

/**
 * Dump that also zeroes the counters atomically per entry, so periodic polls read deltas without
 * a race between read and reset.
 */
export function ctDumpZeroRequest(opts: { family?: 4 | 6; seq?: number } = {}): NfMessage {
  return { ...ctDumpRequest(opts), msg: IPCTNL_MSG_CT_GET_CTRZERO };
}

function zoneAttrs(zone: number | undefined): Attr[] {
  return zone ? [attrU16(CTA_ZONE, zone)] : [];
}

/** Deletes one entry by its original tuple. A missing entry is answered with ENOENT. */
export function ctDeleteRequest(k: TupleKey, seq = 0): NfMessage {
  return {
    subsys: NFNL_SUBSYS_CTNETLINK, msg: IPCTNL_MSG_CT_DELETE, flags: NLM_F_REQUEST | NLM_F_ACK,
    seq, family: nfFamily(k.tuple.family), resId: 0,
    attrs: [attrNest(k.byReply ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG, tupleAttrs(k)), ...zoneAttrs(k.zone)],
  };
}

/** Reads one entry by its original tuple (or its reply tuple, byReply). A missing entry is answered with ENOENT. */
export function ctGetRequest(k: TupleKey, seq = 0): NfMessage {
  return {
    subsys: NFNL_SUBSYS_CTNETLINK, msg: IPCTNL_MSG_CT_GET, flags: NLM_F_REQUEST | NLM_F_ACK,
    seq, family: nfFamily(k.tuple.family), resId: 0,
    attrs: [attrNest(k.byReply ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG, tupleAttrs(k)), ...zoneAttrs(k.zone)],
  };
}

export interface CtUpdate {
  /** Bits to set within markMask (the kernel computes (old & ~mask) ^ mark; mark is pre-masked). */
  mark?: number;
  /** Which mark bits to change; defaults to all 32. */
  markMask?: number;
  /** New timeout in seconds. */
  timeout?: number;
}

/**
 * Changes an existing entry. No NLM_F_CREATE: if the entry has gone, the kernel answers ENOENT
 * instead of creating a half-specified one.
 */
export function ctUpdateRequest(k: TupleKey, u: CtUpdate, seq = 0): NfMessage {
  const attrs: Attr[] = [attrNest(k.byReply ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG, tupleAttrs(k)), ...zoneAttrs(k.zone)];
  if (u.mark !== undefined) {
    const mask = (u.markMask ?? 0xffffffff) >>> 0;
    attrs.push(attrU32(CTA_MARK, (u.mark & mask) >>> 0), attrU32(CTA_MARK_MASK, mask));
  }
  if (u.timeout !== undefined) attrs.push(attrU32(CTA_TIMEOUT, u.timeout));
  return {
    subsys: NFNL_SUBSYS_CTNETLINK, msg: IPCTNL_MSG_CT_NEW, flags: NLM_F_REQUEST | NLM_F_ACK,
    seq, family: nfFamily(k.tuple.family), resId: 0, attrs,
  };
}

// ---------------------------------------------------------------- direct encoding
//
// The daemon sends one update per offloaded session and one delete per ended session, so these
// two requests are written straight into one buffer instead of through Attr trees (which cost a
// Buffer per attribute). The bytes are exactly those of encodeNfMessage(ctUpdateRequest(...))
// and encodeNfMessage(ctDeleteRequest(...)); the unit tests compare them.

const NLA_F_NESTED_BIT = 0x8000;

/** Bytes of the CTA_TUPLE_ORIG nest (header included) for a tuple of this family and protocol. */
function tupleNestLength(family: 4 | 6, proto: number): number {
  const ip = 4 + 2 * (4 + (family === 4 ? 4 : 16));
  let pr = 4 + 8;
  if (PORT_PROTOS.has(proto)) pr += 16;
  else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) pr += 24;
  return 4 + ip + pr;
}

function putHdr(b: Buffer, o: number, len: number, type: number): number {
  b.writeUInt16LE(len, o);
  b.writeUInt16LE(type, o + 2);
  return o + 4;
}

function putU8(b: Buffer, o: number, type: number, v: number): number {
  putHdr(b, o, 5, type);
  b[o + 4] = v & 0xff;
  b[o + 5] = 0;
  b[o + 6] = 0;
  b[o + 7] = 0;
  return o + 8;
}

function putU16(b: Buffer, o: number, type: number, v: number): number {
  putHdr(b, o, 6, type);
  b.writeUInt16BE(v, o + 4);
  b[o + 6] = 0;
  b[o + 7] = 0;
  return o + 8;
}

function putU32(b: Buffer, o: number, type: number, v: number): number {
  putHdr(b, o, 8, type);
  b.writeUInt32BE(v >>> 0, o + 4);
  return o + 8;
}

function encodeTupleRequest(msg: number, k: TupleKey, u: CtUpdate | undefined, seq: number): Buffer {
  const t = k.tuple;
  const src = parseAddress(t.src);
  const dst = parseAddress(t.dst);
  if (!src || !dst || src.family !== t.family || dst.family !== t.family) {
    throw new Error(`bad IPv${t.family} tuple address: ${t.src} -> ${t.dst}`);
  }
  const nest = tupleNestLength(t.family, t.proto);
  let len = 20 + nest;
  if (k.zone) len += 8;
  if (u?.mark !== undefined) len += 16;
  if (u?.timeout !== undefined) len += 8;
  const b = Buffer.allocUnsafe(len);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE((NFNL_SUBSYS_CTNETLINK << 8) | msg, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(0, 12);
  b[16] = nfFamily(t.family);
  b[17] = 0;
  b.writeUInt16BE(0, 18);
  let o = putHdr(b, 20, nest, (k.byReply ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG) | NLA_F_NESTED_BIT);
  const alen = t.family === 4 ? 4 : 16;
  o = putHdr(b, o, 4 + 2 * (4 + alen), CTA_TUPLE_IP | NLA_F_NESTED_BIT);
  o = putHdr(b, o, 4 + alen, t.family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  b.set(src.bytes, o);
  o += alen;
  o = putHdr(b, o, 4 + alen, t.family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  b.set(dst.bytes, o);
  o += alen;
  const protoStart = o;
  o += 4;
  o = putU8(b, o, CTA_PROTO_NUM, t.proto);
  if (PORT_PROTOS.has(t.proto)) {
    o = putU16(b, o, CTA_PROTO_SRC_PORT, t.sport);
    o = putU16(b, o, CTA_PROTO_DST_PORT, t.dport);
  } else if (t.proto === IPPROTO_ICMP) {
    const icmp = k.icmp ?? { type: 8, code: 0 };
    o = putU16(b, o, CTA_PROTO_ICMP_ID, t.sport);
    o = putU8(b, o, CTA_PROTO_ICMP_TYPE, icmp.type);
    o = putU8(b, o, CTA_PROTO_ICMP_CODE, icmp.code);
  } else if (t.proto === IPPROTO_ICMPV6) {
    const icmp = k.icmp ?? { type: 128, code: 0 };
    o = putU16(b, o, CTA_PROTO_ICMPV6_ID, t.sport);
    o = putU8(b, o, CTA_PROTO_ICMPV6_TYPE, icmp.type);
    o = putU8(b, o, CTA_PROTO_ICMPV6_CODE, icmp.code);
  }
  putHdr(b, protoStart, o - protoStart, CTA_TUPLE_PROTO | NLA_F_NESTED_BIT);
  if (k.zone) o = putU16(b, o, CTA_ZONE, k.zone);
  if (u?.mark !== undefined) {
    const mask = (u.markMask ?? 0xffffffff) >>> 0;
    o = putU32(b, o, CTA_MARK, (u.mark & mask) >>> 0);
    o = putU32(b, o, CTA_MARK_MASK, mask);
  }
  if (u?.timeout !== undefined) o = putU32(b, o, CTA_TIMEOUT, u.timeout);
  if (o !== len) throw new Error(`conntrack request: wrote ${o} of ${len} bytes`);
  return b;
}

/** encodeNfMessage(ctDeleteRequest(k, seq)), written directly. */
export function encodeCtDelete(k: TupleKey, seq = 0): Buffer {
  return encodeTupleRequest(IPCTNL_MSG_CT_DELETE, k, undefined, seq);
}

/** encodeNfMessage(ctUpdateRequest(k, u, seq)), written directly. */
export function encodeCtUpdate(k: TupleKey, u: CtUpdate, seq = 0): Buffer {
  return encodeTupleRequest(IPCTNL_MSG_CT_NEW, k, u, seq);
}
