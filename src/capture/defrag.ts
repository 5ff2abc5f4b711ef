// IP fragment reassembly for replays. On the router conntrack reassembles before the forward
// hook, so the daemon only ever decides whole datagrams; a replay does the same: fragments are
// held until the datagram is complete and then handed on as one packet (length = the whole
// datagram, as conntrack counts it). Fragments that never complete within the timeout are
// counted and dropped, as the kernel drops them.

export interface DefragCounters {
  /** Fragments seen. */
  fragments: number;
  /** Datagrams put back together. */
  reassembled: number;
  /** Fragments dropped because their datagram did not complete in time (or at the end). */
  incomplete: number;
  /** Fragments that overlapped data already held (kept: first copy wins). */
  overlaps: number;
}

interface Pending {
  family: 4 | 6;
  firstAt: number;
  /** Header bytes to put in front of the data (IPv4 header / IPv6 unfragmentable part), from the first fragment. */
  header?: Buffer;
  /** IPv6: offset of the next-header byte to patch inside header. */
  nhAt: number;
  /** IPv6: the next header carried by the fragment header. */
  nextHeader: number;
  pieces: Array<{ start: number; data: Buffer }>;
  /** Total data length, known once the last fragment arrived. */
  total: number;
  count: number;
}

const IPV6_EXT = new Set([0, 43, 60, 51]);

export class Defragmenter {
  readonly counters: DefragCounters = { fragments: 0, reassembled: 0, incomplete: 0, overlaps: 0 };
  private readonly pending = new Map<string, Pending>();
  private lastSweep = 0;

  constructor(private readonly timeoutMs = 30_000, private readonly maxPending = 10_000) {}

  get held(): number { return this.pending.size; }

  /** Fragments waiting for the rest of their datagram. */
  heldFragments(): number {
    let n = 0;
    for (const e of this.pending.values()) n += e.count;
    return n;
  }

  /**
   * Looks at an IP packet. Returns undefined when it is not a fragment (use it as is), null when
   * it is a fragment that was held, or the reassembled datagram.
   */
  offer(b: Uint8Array, off: number, len: number, family: 4 | 6, tsMs: number): Buffer | null | undefined {
    if (family === 4) {
      if (len < 20) return undefined;
      const fo = ((b[off + 6] << 8) | b[off + 7]) & 0x3fff;
      if (fo === 0) return undefined;
      const ihl = (b[off] & 0x0f) << 2;
      const total = (b[off + 2] << 8) | b[off + 3];
      if (ihl < 20 || total < ihl || total > len) return undefined; // let the decoder call it malformed
      const key = `4|${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}|${b[off + 16]}.${b[off + 17]}.${b[off + 18]}.${b[off + 19]}|${(b[off + 4] << 8) | b[off + 5]}|${b[off + 9]}`;
      const start = (fo & 0x1fff) * 8;
      const more = (fo & 0x2000) !== 0;
      return this.add(key, 4, tsMs, start, more, Buffer.from(b.subarray(off + ihl, off + total)),
        start === 0 ? Buffer.from(b.subarray(off, off + ihl)) : undefined, 0, 0);
    }
    if (len < 40) return undefined;
    let nh = b[off + 6];
    let p = off + 40;
    let nhAt = 6;
    const plen = (b[off + 4] << 8) | b[off + 5];
    const end = Math.min(off + len, off + 40 + plen);
    while (IPV6_EXT.has(nh) && p + 8 <= end) {
      nhAt = p - off;
      const hlen = nh === 51 ? (b[p + 1] + 2) << 2 : (b[p + 1] + 1) << 3;
      nh = b[p];
      p += hlen;
    }
    if (nh !== 44 || p + 8 > end) return undefined;
    const fo = (b[p + 2] << 8) | b[p + 3];
    // An atomic fragment (offset 0, no more) is a whole packet (RFC 6946).
    if ((fo & 0xfff9) === 0) return undefined;
    const id = ((b[p + 4] << 24) | (b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]) >>> 0;
    const key = `6|${Buffer.from(b.subarray(off + 8, off + 40)).toString('hex')}|${id}`;
    const start = fo & 0xfff8;
    const more = (fo & 1) !== 0;
    return this.add(key, 6, tsMs, start, more, Buffer.from(b.subarray(p + 8, end)),
      start === 0 ? Buffer.from(b.subarray(off, p)) : undefined, nhAt, b[p]);
  }

  private add(key: string, family: 4 | 6, tsMs: number, start: number, more: boolean, data: Buffer,
    header: Buffer | undefined, nhAt: number, nextHeader: number): Buffer | null {
    this.counters.fragments++;
    let e = this.pending.get(key);
    if (!e) {
      if (this.pending.size >= this.maxPending) this.expire(Infinity, 1);
      e = { family, firstAt: tsMs, nhAt: 0, nextHeader: 0, pieces: [], total: -1, count: 0 };
      this.pending.set(key, e);
    }
    e.count++;
    if (header) {
      e.header = header;
      e.nhAt = nhAt;
      e.nextHeader = nextHeader;
    }
    if (!more) e.total = start + data.length;
    for (const x of e.pieces) if (start < x.start + x.data.length && x.start < start + data.length) { this.counters.overlaps++; break; }
    e.pieces.push({ start, data });
    if (e.total < 0 || !e.header) return null;
    e.pieces.sort((a, c) => a.start - c.start);
    let covered = 0;
    for (const x of e.pieces) {
      if (x.start > covered) return null;
      covered = Math.max(covered, x.start + x.data.length);
    }
    if (covered < e.total) return null;
    this.pending.delete(key);
    this.counters.reassembled++;
    const h = e.header;
    const out = Buffer.alloc(h.length + e.total);
    h.copy(out, 0);
    // Later pieces first so the first copy of overlapping data wins.
    for (let i = e.pieces.length - 1; i >= 0; i--) {
      const x = e.pieces[i];
      x.data.copy(out, h.length + x.start, 0, Math.min(x.data.length, e.total - x.start));
    }
    if (e.family === 4) {
      out.writeUInt16BE(out.length, 2);
      out.writeUInt16BE(out.readUInt16BE(6) & 0x4000, 6); // keep DF, clear MF and the offset
      // Header checksum over the rewritten header.
      out.writeUInt16BE(0, 10);
      let sum = 0;
      for (let i = 0; i < h.length; i += 2) sum += out.readUInt16BE(i);
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      out.writeUInt16BE(~sum & 0xffff, 10);
    } else {
      out[e.nhAt] = e.nextHeader;
      out.writeUInt16BE(out.length - 40, 4);
    }
    return out;
  }

  /** Drops datagrams older than the timeout at `nowMs` (all with Infinity). Returns fragments dropped. */
  expire(nowMs: number, atMost = Number.MAX_SAFE_INTEGER): number {
    let dropped = 0;
    let n = 0;
    for (const [k, e] of this.pending) {
      if (n >= atMost) break;
      if (nowMs !== Infinity && e.firstAt + this.timeoutMs > nowMs) continue;
      this.pending.delete(k);
      dropped += e.count;
      n++;
    }
    this.counters.incomplete += dropped;
    return dropped;
  }

  /** Cheap periodic sweep: at most once per second of capture time. */
  tick(nowMs: number): void {
    if (this.pending.size === 0 || nowMs - this.lastSweep < 1000) return;
    this.lastSweep = nowMs;
    this.expire(nowMs);
  }
}
