// Per-direction TCP stream reassembly for helpers: segments in, in-order bytes out. Duplicates
// and retransmitted overlaps are cut off, out-of-order segments wait in a bounded buffer (beyond
// it they are dropped here: the sender retransmits them and they are read then).

/** Plain data so a session's helper state can be snapshotted. */
export interface StreamState {
  /** Sequence number of the next byte to deliver; -1 until the first segment or SYN. */
  next: number;
  pending: Array<{ seq: number; data: Buffer }>;
  pendingBytes: number;
  /** Segments dropped because the out-of-order buffer was full. */
  overflow: number;
}

export const newStream = (): StreamState => ({ next: -1, pending: [], pendingBytes: 0, overflow: 0 });

/** Signed distance a - b in 32-bit sequence space. */
const seqDiff = (a: number, b: number): number => (a - b) | 0;

/**
 * Feeds one segment. `syn` segments set the initial sequence (their payload, if any, follows the
 * SYN's own sequence number). Returns the bytes that became deliverable, in order.
 */
export function streamFeed(st: StreamState, seq: number, syn: boolean, payload: Buffer, limit: number): Buffer[] {
  if (syn) {
    st.next = (seq + 1) >>> 0;
    seq = st.next;
  } else if (st.next < 0) {
    // Joined mid-stream (a session adopted without its handshake): start where we are.
    st.next = seq;
  }
  if (payload.length === 0) return [];
  const out: Buffer[] = [];
  const off = seqDiff(seq, st.next);
  if (off + payload.length <= 0) return out;
  if (off > 0) {
    if (st.pendingBytes + payload.length > limit) { st.overflow++; return out; }
    if (!st.pending.some((p) => p.seq === seq && p.data.length >= payload.length)) {
      st.pending.push({ seq, data: Buffer.from(payload) });
      st.pendingBytes += payload.length;
    }
    return out;
  }
  const fresh = off < 0 ? payload.subarray(-off) : payload;
  out.push(fresh);
  st.next = (st.next + fresh.length) >>> 0;
  drain(st, out);
  return out;
}

function drain(st: StreamState, out: Buffer[]): void {
  for (;;) {
    let progressed = false;
    for (let i = 0; i < st.pending.length; i++) {
      const p = st.pending[i];
      const off = seqDiff(p.seq, st.next);
      if (off > 0) continue;
      st.pending.splice(i, 1);
      st.pendingBytes -= p.data.length;
      i--;
      if (off + p.data.length <= 0) continue;
      const fresh = p.data.subarray(-off);
      out.push(fresh);
      st.next = (st.next + fresh.length) >>> 0;
      progressed = true;
    }
    if (!progressed) return;
  }
}
