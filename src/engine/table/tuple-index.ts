// Tuple → session, both directions. A value is slot * 2 + direction (0 original, 1 reply); the tuple
// is read back from the store, so deciding a packet of a known flow allocates nothing.

import { EMPTY, OpenIndex } from './open-index.js';
import { SessionFlag, type SessionStore } from './session-store.js';
import { hashWords, type TupleKey } from './tuple-key.js';

export class TupleIndex extends OpenIndex {
  // Where the tuple of the entry being resolved lives (set by resolve(), read right after).
  private rFamily = 4;
  private rProto = 0;
  private rSport = 0;
  private rDport = 0;
  private rSrc: Int32Array = new Int32Array(0);
  private rSrcOff = 0;
  private rDst: Int32Array = new Int32Array(0);
  private rDstOff = 0;

  constructor(
    private readonly store: SessionStore,
    /** Reply tuples that are not the reverse of the original (NAT), by slot. */
    private readonly replies: Map<number, TupleKey>,
    entries: number,
    /** Varies the hash per table, so nobody outside can choose tuples that all collide. */
    private readonly seed: number,
  ) { super(entries); }

  /** The entry (slot * 2 + direction) whose tuple is `k`, or -1. */
  find(k: TupleKey): number {
    const cells = this.cells;
    const mask = this.mask;
    let i = hashWords(k.family, k.proto, k.sport, k.dport, k.src, 0, k.dst, 0, this.seed) & mask;
    for (;;) {
      const e = cells[i];
      if (e === EMPTY) return -1;
      if (this.matches(e, k)) return e;
      i = (i + 1) & mask;
    }
  }

  protected hashOf(e: number): number {
    this.resolve(e);
    return hashWords(this.rFamily, this.rProto, this.rSport, this.rDport, this.rSrc, this.rSrcOff, this.rDst, this.rDstOff, this.seed);
  }

  private matches(e: number, k: TupleKey): boolean {
    this.resolve(e);
    if (this.rProto !== k.proto || this.rFamily !== k.family || this.rSport !== k.sport || this.rDport !== k.dport) return false;
    const n = k.family === 4 ? 1 : 4;
    for (let i = 0; i < n; i++) {
      if (this.rSrc[this.rSrcOff + i] !== k.src[i] || this.rDst[this.rDstOff + i] !== k.dst[i]) return false;
    }
    return true;
  }

  /** Points the r* fields at the tuple entry `e` names: the original, its reverse, or a NAT reply. */
  private resolve(e: number): void {
    const st = this.store;
    const slot = e >> 1;
    const flags = st.flags[slot];
    if ((e & 1) === 1 && (flags & SessionFlag.HAS_REPLY) !== 0) {
      const r = this.replies.get(slot)!;
      this.rFamily = r.family; this.rProto = r.proto; this.rSport = r.sport; this.rDport = r.dport;
      this.rSrc = r.src; this.rSrcOff = 0; this.rDst = r.dst; this.rDstOff = 0;
      return;
    }
    const proto = st.proto[slot];
    let src: Int32Array, srcOff: number, dst: Int32Array, dstOff: number;
    if (flags & SessionFlag.V6) {
      const p = 8 * st.addr[2 * slot];
      src = st.v6; srcOff = p; dst = st.v6; dstOff = p + 4;
      this.rFamily = 6;
    } else {
      src = st.addr; srcOff = 2 * slot; dst = st.addr; dstOff = 2 * slot + 1;
      this.rFamily = 4;
    }
    this.rProto = proto;
    const sport = st.ports[2 * slot];
    const dport = st.ports[2 * slot + 1];
    if ((e & 1) === 0) {
      this.rSport = sport; this.rDport = dport;
      this.rSrc = src; this.rSrcOff = srcOff; this.rDst = dst; this.rDstOff = dstOff;
    } else {
      // ICMP echo keeps its identifier in sport both ways; everything else swaps ports.
      const echo = proto === 1 || proto === 58;
      this.rSport = echo ? sport : dport; this.rDport = echo ? dport : sport;
      this.rSrc = dst; this.rSrcOff = dstOff; this.rDst = src; this.rDstOff = srcOff;
    }
  }
}
