// Netlink and nfnetlink framing shared by the NFQUEUE, ctnetlink and nf_tables codecs.
// Layouts follow include/uapi/linux/netlink.h and nfnetlink.h: a 16-byte nlmsghdr in host
// order (little-endian on every machine we target), then a 4-byte nfgenmsg, then attributes
// whose payload integers are big-endian (network order), each aligned to 4 bytes.

export const NETLINK_NETFILTER = 12;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLA_F_NESTED = 0x8000;
export const NLA_TYPE_MASK = 0x3fff;

export const NFNL_SUBSYS_CTNETLINK = 1;
export const NFNL_SUBSYS_CTNETLINK_EXP = 2;
export const NFNL_SUBSYS_QUEUE = 3;
export const NFNL_SUBSYS_NFTABLES = 10;

export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;

export const NFPROTO_UNSPEC = 0;
export const NFPROTO_INET = 1;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

const NLMSG_HDRLEN = 16;
const NFGEN_HDRLEN = 4;

export const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute to encode: a raw payload or nested children. */
export type Attr =
  | { type: number; data: Buffer }
  | { type: number; nested: Attr[] };

export const attrU8 = (type: number, v: number): Attr => ({ type, data: Buffer.from([v & 0xff]) });
export function attrU16(type: number, v: number): Attr {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return { type, data: b };
}
export function attrU32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return { type, data: b };
}
export function attrU64(type: number, v: bigint): Attr {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return { type, data: b };
}
export function attrStr(type: number, s: string): Attr {
  return { type, data: Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]) };
}
export const attrNest = (type: number, nested: Attr[]): Attr => ({ type, nested });

function attrLength(a: Attr): number {
  if ('data' in a) return 4 + a.data.length;
  let n = 4;
  for (const c of a.nested) n += align4(attrLength(c));
  return n;
}

function writeAttr(buf: Buffer, off: number, a: Attr): number {
  const len = attrLength(a);
  buf.writeUInt16LE(len, off);
  if ('data' in a) {
    buf.writeUInt16LE(a.type, off + 2);
    a.data.copy(buf, off + 4);
  } else {
    buf.writeUInt16LE(a.type | NLA_F_NESTED, off + 2);
    let p = off + 4;
    for (const c of a.nested) p = writeAttr(buf, p, c);
  }
  return off + align4(len);
}

export interface NfMessage {
  subsys: number;
  msg: number;
  flags: number;
  seq: number;
  family: number;
  resId: number;
  attrs: Attr[];
}

/** Encodes one nfnetlink message (nlmsghdr + nfgenmsg + attributes), padded to 4 bytes. */
export function encodeNfMessage(m: NfMessage, portId = 0): Buffer {
  let len = NLMSG_HDRLEN + NFGEN_HDRLEN;
  for (const a of m.attrs) len += align4(attrLength(a));
  const buf = Buffer.alloc(len);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE((m.subsys << 8) | m.msg, 4);
  buf.writeUInt16LE(m.flags, 6);
  buf.writeUInt32LE(m.seq >>> 0, 8);
  buf.writeUInt32LE(portId >>> 0, 12);
  buf.writeUInt8(m.family, 16);
  buf.writeUInt8(0, 17); // NFNETLINK_V0
  buf.writeUInt16BE(m.resId, 18);
  let p = NLMSG_HDRLEN + NFGEN_HDRLEN;
  for (const a of m.attrs) p = writeAttr(buf, p, a);
  return buf;
}

/** A received netlink message, viewed in place (no copies). */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Bytes after the 16-byte nlmsghdr. */
  body: Buffer;
}

/**
 * Splits a datagram into its netlink messages. Truncated or nonsensical lengths end the walk
 * instead of throwing: the kernel never sends them, and a bad one must not take the daemon down.
 */
export function splitMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      body: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes of one level, indexed by type (the last one wins, as in the kernel's nla_parse). */
export type AttrTable = Map<number, Buffer>;

export function parseAttrs(buf: Buffer, start = 0): AttrTable {
  const t: AttrTable = new Map();
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    t.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return t;
}

/** Every attribute of one level in order, for lists where a type repeats (set elements). */
export function parseAttrList(buf: Buffer, start = 0): Array<{ type: number; data: Buffer }> {
  const out: Array<{ type: number; data: Buffer }> = [];
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, data: buf.subarray(off + 4, off + len) });
    off += align4(len);
  }
  return out;
}

/** nfnetlink view of a message body: nfgenmsg fields plus the attribute table. */
export interface NfBody {
  subsys: number;
  msg: number;
  family: number;
  resId: number;
  attrs: AttrTable;
}

export function parseNfBody(m: NlMessage): NfBody | undefined {
  if (m.body.length < NFGEN_HDRLEN) return undefined;
  return {
    subsys: m.type >> 8,
    msg: m.type & 0xff,
    family: m.body.readUInt8(0),
    resId: m.body.readUInt16BE(2),
    attrs: parseAttrs(m.body, NFGEN_HDRLEN),
  };
}

/** errno carried by an NLMSG_ERROR (0 is an ACK), or undefined for any other message. */
export function errorOf(m: NlMessage): number | undefined {
  if (m.type !== NLMSG_ERROR || m.body.length < 4) return undefined;
  return -m.body.readInt32LE(0);
}

export const u8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined);
export const u16 = (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined);
export const u32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);
export const u64 = (b: Buffer | undefined): bigint | undefined => (b && b.length >= 8 ? b.readBigUInt64BE(0) : undefined);
