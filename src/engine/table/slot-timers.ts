// Session timers as an indexed binary heap over slots, keyed by the time each slot was filed at
// (`timerAt`), ties broken by serial so expiry order is deterministic. Most refreshes only move
// expireAt later: the slot stays where it is and is moved to its real expiry when its old time
// comes up, so the per-packet path touches the heap only when a timer moves earlier.

import type { SessionStore } from './session-store.js';

const NONE = -1;

export class SlotTimers {
  /** Filed time of each slot (ms); 0 = not filed. */
  timerAt: Float64Array;
  /** Heap position of each slot, NONE when not filed. */
  private pos: Int32Array;
  private heap: Int32Array;
  size = 0;

  constructor(private readonly store: SessionStore) {
    const n = store.capacity;
    this.timerAt = new Float64Array(n);
    this.pos = new Int32Array(n).fill(NONE);
    this.heap = new Int32Array(n);
  }

  get bytes(): number { return this.timerAt.byteLength + this.pos.byteLength + this.heap.byteLength; }

  /** Follows the store's capacity (call after it grew). */
  fit(): void {
    const n = this.store.capacity;
    if (n <= this.pos.length) return;
    const t = new Float64Array(n); t.set(this.timerAt); this.timerAt = t;
    const p = new Int32Array(n).fill(NONE); p.set(this.pos); this.pos = p;
    const h = new Int32Array(n); h.set(this.heap); this.heap = h;
  }

  /** Files the slot at its expireAt if it is not filed or its expiry moved earlier; true when it did. */
  schedule(slot: number): boolean {
    const at = this.store.expireAt[slot];
    const filed = this.timerAt[slot];
    if (filed !== 0 && filed <= at) return false;
    this.timerAt[slot] = at;
    if (this.pos[slot] === NONE) {
      const i = this.size++;
      this.heap[i] = slot;
      this.pos[slot] = i;
      this.up(i);
    } else this.up(this.pos[slot]);
    return true;
  }

  /** Files the slot again at its expireAt, earlier or later (expireAt was set from scratch). */
  refile(slot: number): void {
    if (this.pos[slot] === NONE) { this.schedule(slot); return; }
    this.timerAt[slot] = this.store.expireAt[slot];
    this.fix(this.pos[slot]);
  }

  remove(slot: number): void {
    const i = this.pos[slot];
    this.timerAt[slot] = 0;
    if (i === NONE) return;
    this.pos[slot] = NONE;
    const last = --this.size;
    if (i !== last) {
      const moved = this.heap[last];
      this.heap[i] = moved;
      this.pos[moved] = i;
      this.fix(i);
    }
  }

  /**
   * The next slot whose timer ran out by `now` (unfiled on return), or -1. A slot whose expiry
   * moved later is filed again at it on the way.
   */
  popExpired(now: number): number {
    const st = this.store;
    while (this.size > 0) {
      const top = this.heap[0];
      if (this.timerAt[top] > now) return -1;
      const exp = st.expireAt[top];
      if (exp > now) {
        this.timerAt[top] = exp;
        this.down(0);
        continue;
      }
      this.remove(top);
      return top;
    }
    return -1;
  }

  clear(): void {
    for (let i = 0; i < this.size; i++) {
      this.pos[this.heap[i]] = NONE;
      this.timerAt[this.heap[i]] = 0;
    }
    this.size = 0;
  }

  private less(a: number, b: number): boolean {
    const ta = this.timerAt[a];
    const tb = this.timerAt[b];
    return ta < tb || (ta === tb && this.store.serial[a] < this.store.serial[b]);
  }

  private fix(i: number): void {
    if (i > 0 && this.less(this.heap[i], this.heap[(i - 1) >> 1])) this.up(i);
    else this.down(i);
  }

  private up(i: number): void {
    const h = this.heap;
    const slot = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(slot, h[p])) break;
      h[i] = h[p];
      this.pos[h[i]] = i;
      i = p;
    }
    h[i] = slot;
    this.pos[slot] = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = this.size;
    const slot = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.less(h[c + 1], h[c])) c++;
      if (!this.less(h[c], slot)) break;
      h[i] = h[c];
      this.pos[h[i]] = i;
      i = c;
    }
    h[i] = slot;
    this.pos[slot] = i;
  }
}
