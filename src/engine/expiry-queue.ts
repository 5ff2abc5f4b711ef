// Sessions ordered by expiry. Most refreshes only move expireAt forward, so instead of re-filing
// on every packet (the hot path), an entry popped early is pushed back at its real expiry. Only a
// timer that moves earlier (a TCP close) files a new entry; `timerAt` names the live one so the
// older entry is recognised as stale and dropped.

interface Entry<T> { at: number; item: T }

export interface Timed { expireAt: number; timerAt: number }

export class ExpiryQueue<T extends Timed> {
  private heap: Entry<T>[] = [];

  get size(): number { return this.heap.length; }

  /** Files the item if it has no entry yet or its expiry moved earlier than its entry; true when it did. */
  schedule(item: T): boolean {
    if (item.timerAt !== 0 && item.timerAt <= item.expireAt) return false;
    this.push(item);
    return true;
  }

  private push(item: T): void {
    item.timerAt = item.expireAt;
    this.heap.push({ at: item.expireAt, item });
    this.up(this.heap.length - 1);
  }

  /**
   * Removes and returns the items whose expireAt <= now. `alive` says whether an item still
   * belongs to the table (removed ones are dropped silently).
   */
  popExpired(now: number, alive: (item: T) => boolean): T[] {
    const out: T[] = [];
    while (this.heap.length > 0 && this.heap[0].at <= now) {
      const top = this.pop()!;
      if (top.at !== top.item.timerAt || !alive(top.item)) continue;
      if (top.item.expireAt > now) this.push(top.item);
      else {
        // Unfiled: a second entry at the same time (re-filed without moving) is stale now.
        top.item.timerAt = 0;
        out.push(top.item);
      }
    }
    return out;
  }

  clear(): void { this.heap = []; }

  private pop(): Entry<T> | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) { h[0] = last; this.down(0); }
    return top;
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= h[i].at) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && h[l].at < h[m].at) m = l;
      if (r < h.length && h[r].at < h[m].at) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
  }
}
