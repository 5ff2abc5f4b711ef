// ONC RPC (RFC 5531) messages in XDR (RFC 4506), and the record marking that frames them on TCP
// (RFC 5531 section 11). Decoding only, bounded everywhere, never throws: hostile bytes give
// `undefined`.

/** Sequential XDR reader over a buffer; every read checks the bound and yields undefined past it. */
export class XdrReader {
  constructor(readonly b: Buffer, public off = 0) {}
  get left(): number { return this.b.length - this.off; }
  u32(): number | undefined {
    if (this.off + 4 > this.b.length) return undefined;
    const v = this.b.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  /** Variable-length opaque (length, bytes, padding to 4); refused when longer than `max`. */
  opaque(max: number): Buffer | undefined {
    const n = this.u32();
    if (n === undefined || n > max) return undefined;
    const padded = (n + 3) & ~3;
    if (this.off + padded > this.b.length) return undefined;
    const v = this.b.subarray(this.off, this.off + n);
    this.off += padded;
    return v;
  }
  /** XDR string (ASCII expected); undefined when longer than `max` or truncated. */
  string(max: number): string | undefined {
    const v = this.opaque(max);
    return v === undefined ? undefined : v.toString('latin1');
  }
}

export const RPC_CALL = 0;
export const RPC_REPLY = 1;
export const MSG_ACCEPTED = 0;
export const ACCEPT_SUCCESS = 0;
/** RFC 5531: opaque_auth bodies are at most 400 bytes. */
const MAX_AUTH = 400;

export interface RpcCall {
  type: 'call';
  xid: number;
  rpcvers: number;
  prog: number;
  vers: number;
  proc: number;
  /** The procedure's arguments (after credentials and verifier). */
  args: Buffer;
}

export interface RpcReply {
  type: 'reply';
  xid: number;
  /** MSG_ACCEPTED with accept_stat SUCCESS: `results` holds the procedure's results. */
  success: boolean;
  /** reply_stat (0 accepted, 1 denied) and, when accepted, accept_stat. */
  replyStat: number;
  acceptStat?: number;
  results: Buffer;
}

export type RpcMessage = RpcCall | RpcReply;

function skipAuth(r: XdrReader): boolean {
  if (r.u32() === undefined) return false; // flavor
  return r.opaque(MAX_AUTH) !== undefined;
}

/** One RPC message (a UDP datagram, or a whole TCP record). */
export function parseRpcMessage(b: Buffer): RpcMessage | undefined {
  const r = new XdrReader(b);
  const xid = r.u32();
  const type = r.u32();
  if (xid === undefined || type === undefined) return undefined;
  if (type === RPC_CALL) {
    const rpcvers = r.u32(), prog = r.u32(), vers = r.u32(), proc = r.u32();
    if (rpcvers === undefined || prog === undefined || vers === undefined || proc === undefined) return undefined;
    if (rpcvers !== 2) return undefined;
    if (!skipAuth(r) || !skipAuth(r)) return undefined;
    return { type: 'call', xid, rpcvers, prog, vers, proc, args: b.subarray(r.off) };
  }
  if (type === RPC_REPLY) {
    const replyStat = r.u32();
    if (replyStat === undefined) return undefined;
    if (replyStat !== MSG_ACCEPTED) return { type: 'reply', xid, success: false, replyStat, results: Buffer.alloc(0) };
    if (!skipAuth(r)) return undefined;
    const acceptStat = r.u32();
    if (acceptStat === undefined) return undefined;
    return { type: 'reply', xid, success: acceptStat === ACCEPT_SUCCESS, replyStat, acceptStat, results: b.subarray(r.off) };
  }
  return undefined;
}

/**
 * Record marking on a stream: each fragment is a 4-byte header (bit 31: last fragment, bits 0-30:
 * length) and that many bytes; a record is its fragments up to the last one. Plain data state.
 */
export interface RecordState {
  /** Stream bytes not yet consumed: a partial header, or a fragment still arriving (bounded by maxFragment). */
  pending: Buffer;
  /** Bytes still to skip of a fragment that was too long to keep. */
  skip: number;
  /** The fragment being skipped is the record's last. */
  skipLast: boolean;
  /** Fragments of the current record so far. */
  record: Buffer;
  /** The current record went over the bound: its remaining fragments are skipped, and it is not delivered. */
  dropped: boolean;
  /** Records dropped because they were too long. */
  oversized: number;
}

export const newRecordState = (): RecordState => ({ pending: Buffer.alloc(0), skip: 0, skipLast: false, record: Buffer.alloc(0), dropped: false, oversized: 0 });

/** Feeds stream bytes; returns the records completed by them (each at most maxRecord bytes). */
export function recordFeed(st: RecordState, chunk: Buffer, maxRecord: number): Buffer[] {
  const out: Buffer[] = [];
  let data = chunk;
  for (;;) {
    if (st.skip > 0) {
      const n = Math.min(st.skip, data.length);
      st.skip -= n;
      data = data.subarray(n);
      if (st.skip > 0) return out;
      if (st.skipLast) { st.record = Buffer.alloc(0); st.dropped = false; }
      continue;
    }
    if (data.length === 0 && st.pending.length < 4) return out;
    let buf = st.pending.length ? Buffer.concat([st.pending, data]) : data;
    data = Buffer.alloc(0);
    if (buf.length < 4) { st.pending = Buffer.from(buf); return out; }
    const hdr = buf.readUInt32BE(0);
    const last = (hdr & 0x80000000) !== 0;
    const len = hdr & 0x7fffffff;
    if (st.dropped || st.record.length + len > maxRecord) {
      // Too long to keep: skip this fragment (and the rest of the record).
      if (!st.dropped) st.oversized++;
      st.dropped = true;
      st.record = Buffer.alloc(0);
      st.skip = len;
      st.skipLast = last;
      st.pending = Buffer.alloc(0);
      data = buf.subarray(4);
      if (st.skip === 0 && last) st.dropped = false;
      continue;
    }
    if (buf.length < 4 + len) { st.pending = Buffer.from(buf); return out; }
    const frag = buf.subarray(4, 4 + len);
    st.record = st.record.length ? Buffer.concat([st.record, frag]) : Buffer.from(frag);
    buf = buf.subarray(4 + len);
    st.pending = Buffer.alloc(0);
    data = buf;
    if (last) {
      out.push(st.record);
      st.record = Buffer.alloc(0);
    }
  }
}
