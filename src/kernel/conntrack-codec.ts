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
  parseAttrs, parseNfBody, splitMessages, u8, u16, u32, u64,
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
}

/** What the kernel needs to find an entry: a tuple, plus type/code when it is ICMP. */
export interface TupleKey {
  tuple: FlowTuple;
  /** Defaults to echo request (8/0 for ICMP, 128/0 for ICMPv6): the only ICMP the daemon tracks. */
  icmp?: IcmpKey;
  zone?: number;
}

// ---------------------------------------------------------------- decoding

function decodeTuple(buf: Buffer, fallbackFamily: number): (FlowTuple & { icmp?: IcmpKey }) | undefined {
  const t = parseAttrs(buf);
  const ipb = t.get(CTA_TUPLE_IP);
  const protob = t.get(CTA_TUPLE_PROTO);
  if (!ipb || !protob) return undefined;
  const ip = parseAttrs(ipb);
  let family: 4 | 6;
  let src: Buffer | undefined;
  let dst: Buffer | undefined;
  if (ip.has(CTA_IP_V4_SRC) || (!ip.has(CTA_IP_V6_SRC) && fallbackFamily === NFPROTO_IPV4)) {
    family = 4;
    src = ip.get(CTA_IP_V4_SRC);
    dst = ip.get(CTA_IP_V4_DST);
  } else {
    family = 6;
    src = ip.get(CTA_IP_V6_SRC);
    dst = ip.get(CTA_IP_V6_DST);
  }
  const alen = family === 4 ? 4 : 16;
  if (!src || !dst || src.length !== alen || dst.length !== alen) return undefined;
  const p = parseAttrs(protob);
  const proto = u8(p.get(CTA_PROTO_NUM));
  if (proto === undefined) return undefined;
  let sport = 0;
  let dport = 0;
  let icmp: IcmpKey | undefined;
  if (PORT_PROTOS.has(proto)) {
    sport = u16(p.get(CTA_PROTO_SRC_PORT)) ?? 0;
    dport = u16(p.get(CTA_PROTO_DST_PORT)) ?? 0;
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    const v6 = proto === IPPROTO_ICMPV6;
    sport = u16(p.get(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID)) ?? 0;
    const type = u8(p.get(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE));
    const code = u8(p.get(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE));
    if (type !== undefined && code !== undefined) icmp = { type, code };
  }
  const out: FlowTuple & { icmp?: IcmpKey } = {
    family, proto, src: formatAddress(src), dst: formatAddress(dst), sport, dport,
  };
  if (icmp) out.icmp = icmp;
  return out;
}

function decodeCounters(buf: Buffer | undefined): { packets: number; bytes: number } | undefined {
  if (!buf) return undefined;
  const c = parseAttrs(buf);
  const packets = u64(c.get(CTA_COUNTERS_PACKETS)) ?? (c.has(CTA_COUNTERS32_PACKETS) ? BigInt(u32(c.get(CTA_COUNTERS32_PACKETS)) ?? 0) : undefined);
  const bytes = u64(c.get(CTA_COUNTERS_BYTES)) ?? (c.has(CTA_COUNTERS32_BYTES) ? BigInt(u32(c.get(CTA_COUNTERS32_BYTES)) ?? 0) : undefined);
  if (packets === undefined || bytes === undefined) return undefined;
  // Number is exact up to 2^53 bytes (8 PiB) per direction: more than any single flow carries.
  return { packets: Number(packets), bytes: Number(bytes) };
}

function eventKind(msg: number, flags: number): KernelConn['event'] | undefined {
  if (msg === IPCTNL_MSG_CT_DELETE) return 'destroy';
  if (msg !== IPCTNL_MSG_CT_NEW) return undefined;
  if (flags & NLM_F_MULTI) return 'dump';
  if (flags & NLM_F_CREATE) return 'new';
  return 'update';
}

/**
 * Decodes one ctnetlink message. Anything that is not a conntrack entry, or is malformed,
 * gives undefined: a bad message is counted by the caller, never a crash.
 * `asDump` forces the event to 'dump' (replies to a single GET carry no NLM_F_MULTI).
 */
export function decodeConntrack(m: NlMessage, asDump = false): KernelConn | undefined {
  try {
    const body = parseNfBody(m);
    if (!body || body.subsys !== NFNL_SUBSYS_CTNETLINK) return undefined;
    let event = eventKind(body.msg, m.flags);
    if (!event) return undefined;
    if (asDump && event !== 'destroy') event = 'dump';
    const a = body.attrs;
    const ob = a.get(CTA_TUPLE_ORIG);
    const rb = a.get(CTA_TUPLE_REPLY);
    if (!ob || !rb) return undefined;
    const o = decodeTuple(ob, body.family);
    const r = decodeTuple(rb, body.family);
    if (!o || !r || o.family !== r.family) return undefined;
    const { icmp: origIcmp, ...orig } = o;
    const { icmp: _replyIcmp, ...reply } = r;
    const c: KernelConn = { event, family: orig.family, proto: orig.proto, orig, reply };
    if (origIcmp) c.origIcmp = origIcmp;
    const id = u32(a.get(CTA_ID));
    if (id !== undefined) c.id = id;
    const status = u32(a.get(CTA_STATUS));
    if (status !== undefined) c.status = status;
    const mark = u32(a.get(CTA_MARK));
    if (mark !== undefined) c.mark = mark;
    const timeout = u32(a.get(CTA_TIMEOUT));
    if (timeout !== undefined) c.timeout = timeout;
    const zone = u16(a.get(CTA_ZONE));
    if (zone !== undefined) c.zone = zone;
    const use = u32(a.get(CTA_USE));
    if (use !== undefined) c.use = use;
    const pi = a.get(CTA_PROTOINFO);
    if (pi) {
      const tcp = parseAttrs(pi).get(CTA_PROTOINFO_TCP);
      const st = tcp ? u8(parseAttrs(tcp).get(CTA_PROTOINFO_TCP_STATE)) : undefined;
      if (st !== undefined) {
        c.tcpState = st;
        c.tcpStateName = TCP_CONNTRACK_NAMES[st] ?? `STATE_${st}`;
      }
    }
    const co = decodeCounters(a.get(CTA_COUNTERS_ORIG));
    const cr = decodeCounters(a.get(CTA_COUNTERS_REPLY));
    if (co && cr) c.counters = { origPackets: co.packets, origBytes: co.bytes, replyPackets: cr.packets, replyBytes: cr.bytes };
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
    attrs: [attrNest(CTA_TUPLE_ORIG, tupleAttrs(k)), ...zoneAttrs(k.zone)],
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
  const attrs: Attr[] = [attrNest(CTA_TUPLE_ORIG, tupleAttrs(k)), ...zoneAttrs(k.zone)];
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
