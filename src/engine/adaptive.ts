// Adaptive timeouts: once the table passes `start` percent of the session limit that applies to a
// session (the global one, or its VDOM's, whichever is under more pressure), every session's
// lifetime counted from its last refresh is scaled by (end - n) / (end - start), n being that
// table use in percent; at `end` it is zero. Idle sessions are the ones whose scaled lifetime
// runs out first, so they leave before active ones and room comes back without conserve mode.
//
// A session keeps its unscaled expiry (expireAt) and the scaled one is computed when needed:
//   scaled = base + (expireAt - base) * factor,   base = the last refresh (timerBase)
// rather than rescaling every remaining lifetime when the factor moves. The factor changes with
// every session that enters or leaves, so rescaling would touch the whole table each time, and it
// would lose the unscaled lifetime a session returns to when the pressure drops; refreshes on the
// packet path stay exactly what they are without pressure.
//
// The expiry heap (expiry-queue.ts) is ordered by unscaled expiry, which is the wrong order once
// the factor is below 1. While it is, an IdleQueue holds the sessions grouped by VDOM (the factor
// depends on it) and unscaled lifetime (expireAt - base): inside one group the scaled expiry grows
// with the base whatever the factor, so each group is a heap by last refresh (the most idle on
// top), and the session due first is the earliest of the few group tops. Refreshes are not filed there (that would cost on
// the packet path): a refresh moves base and expireAt later, and then no factor can make the
// scaled expiry earlier than the one filed, so an entry found stale at the top is filed again
// with the session's current values. A timer that moves earlier (a TCP close, a new session) is
// filed when it happens, as in the expiry heap.

import type { Session } from './types.js';

/** The scale of every session's lifetime at `sessions` out of `limit` (1: none; 0: gone now). */
export function adaptiveFactor(start: number, end: number, sessions: number, limit: number): number {
  if (start <= 0 || limit <= 0 || end <= start) return 1;
  const n = (sessions * 100) / limit;
  if (n <= start) return 1;
  if (n >= end) return 0;
  return (end - n) / (end - start);
}

/** When the session's time runs out at `factor`. A session waiting for the kernel keeps its wait. */
export function scaledExpiry(s: Session, factor: number): number {
  if (factor >= 1 || s.kernelWait) return s.expireAt;
  const base = s.timerBase ?? s.createdAt;
  if (base >= s.expireAt) return s.expireAt;
  return base + (s.expireAt - base) * factor;
}

interface Entry { base: number; life: number; vd: number; serial: number }

/** A min-heap of entries by base. */
class BaseHeap {
  readonly h: Entry[] = [];

  push(e: Entry): void {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].base <= h[i].base) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  pop(): Entry | undefined {
    const h = this.h;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length === 0) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && h[l].base < h[m].base) m = l;
      if (r < h.length && h[r].base < h[m].base) m = r;
      if (m === i) return top;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
  }
}

/** Sessions by scaled expiry while the factor is below 1 (see the top of this file). */
export class IdleQueue {
  /** By `${vd}/${lifetime}`. */
  private readonly groups = new Map<string, BaseHeap>();
  /** Each session's live entry, by serial; any other entry of it is stale. */
  private readonly live = new Map<number, Entry>();

  get size(): number { return this.live.size; }

  file(s: Session): void {
    // A session waiting for a kernel reading has a wait, not a lifetime: the reading files it again.
    if (s.kernelWait) { this.live.delete(s.serial); return; }
    const base = s.timerBase ?? s.createdAt;
    const life = s.expireAt - base;
    const e: Entry = { base, life, vd: s.vd, serial: s.serial };
    this.live.set(s.serial, e);
    const key = `${s.vd}/${life}`;
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = new BaseHeap()));
    g.push(e);
  }

  build(sessions: Iterable<Session>): void {
    this.clear();
    for (const s of sessions) this.file(s);
  }

  clear(): void {
    this.groups.clear();
    this.live.clear();
  }

  /**
   * Removes and returns the session whose scaled expiry comes first, if it is <= now. `factor` is
   * asked again on every call: each session that leaves lowers the pressure on the next one.
   * `current` gives a serial's session as the table holds it now (undefined once it is gone).
   */
  next(now: number, factor: (s: Session) => number, current: (serial: number) => Session | undefined): Session | undefined {
    let best: BaseHeap | undefined;
    let bestAt = Infinity;
    let bestSession: Session | undefined;
    for (const [key, g] of this.groups) {
      const top = this.top(g, current);
      if (!top) { this.groups.delete(key); continue; }
      const at = top[0].base + top[0].life * factor(top[1]);
      if (at < bestAt) { bestAt = at; best = g; bestSession = top[1]; }
    }
    if (!best || bestAt > now) return undefined;
    const e = best.pop()!;
    this.live.delete(e.serial);
    return bestSession;
  }

  /** The group's first entry that is live and current; stale ones go, moved ones are filed again. */
  private top(g: BaseHeap, current: (serial: number) => Session | undefined): [Entry, Session] | undefined {
    for (;;) {
      const e = g.h[0];
      if (!e) return undefined;
      if (this.live.get(e.serial) !== e) { g.pop(); continue; }
      const s = current(e.serial);
      if (!s || s.kernelWait) { g.pop(); this.live.delete(e.serial); continue; }
      const base = s.timerBase ?? s.createdAt;
      if (base === e.base && s.expireAt - base === e.life && s.vd === e.vd) return [e, s];
      g.pop();
      this.file(s);
    }
  }
}
