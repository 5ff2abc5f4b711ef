// The session table: where a session is found (by either direction's tuple, by serial), when its
// timer runs out, and which sessions its expectations became. It decides nothing: clashes,
// counters and limits are the engine's.
//
// Sessions are stored compactly (table/compact-table.ts: typed-array columns by slot, an
// open-addressing tuple index, slot timers), not as objects. The engine's code works on Session
// objects: a session it touches during one call is built from its slot once (`at`), every part of
// the call sees that same object, and commit() writes the objects back when the call ends. Views
// get fresh copies that nothing writes back (`view*`).

import type { FlowTuple } from '../packet/types.js';
import { IdleQueue } from './adaptive.js';
import { CompactTable } from './table/compact-table.js';
import { TupleKey } from './table/tuple-key.js';
import type { Direction, Session } from './types.js';

/** A session as found by one of its tuples. Shared by the table: read it, never keep it past the call. */
export interface TableHit { readonly session: Session; readonly dir: Direction }

export class SessionTable {
  private readonly t = new CompactTable();
  private readonly key = new TupleKey();
  private readonly key2 = new TupleKey();
  /** The objects handed out during the current call, by slot, and the way back. */
  private readonly work = new Map<number, Session>();
  private readonly slotOfObj = new Map<Session, number>();
  /** Sessions by scaled expiry, kept only while adaptive timeouts scale (adaptive.ts). */
  private readonly idle = new IdleQueue();
  private idleOn = false;
  /** Child sessions by parent serial. */
  private readonly childrenOf = new Map<number, Set<number>>();
  /** One resolver for the idle queue, rather than a closure per tick. */
  private readonly current = (serial: number): Session | undefined => this.get(serial);

  get size(): number { return this.t.size; }

  /** Bytes the compact storage holds (columns, indexes, timers). */
  get bytes(): number { return this.t.bytes(); }

  /** The working object of a slot: the one already handed out in this call, or built now. */
  private at(slot: number): Session {
    let s = this.work.get(slot);
    if (!s) {
      s = this.t.materialize(slot);
      this.work.set(slot, s);
      this.slotOfObj.set(s, slot);
    }
    return s;
  }

  /** Writes back what this call changed; the objects handed out are copies from here on. */
  commit(): void {
    if (!this.work.size) return;
    const st = this.t.store;
    for (const [slot, s] of this.work) {
      if (!st.inUse(slot) || st.serial[slot] !== s.serial) continue;
      this.t.write(slot, s);
      this.t.timers.schedule(slot);
    }
    this.work.clear();
    this.slotOfObj.clear();
  }

  /** Every session, as working objects (the engine's own passes over the table). */
  *values(): IterableIterator<Session> {
    for (const slot of [...this.t.slots()]) if (this.t.store.inUse(slot)) yield this.at(slot);
  }

  /** The sessions `pred` selects, judged on copies, as working objects: only those are written back. */
  *select(pred: (s: Session) => boolean): IterableIterator<Session> {
    for (const slot of [...this.t.slots()]) {
      if (!this.t.store.inUse(slot)) continue;
      if (pred(this.work.get(slot) ?? this.t.materialize(slot))) yield this.at(slot);
    }
  }

  /** Copies of every session, for views and snapshots. */
  *view(): IterableIterator<Session> {
    for (const slot of this.t.slots()) yield this.work.get(slot) ?? this.t.materialize(slot);
  }

  viewOf(serial: number): Session | undefined {
    const slot = this.t.slotOf(serial);
    return slot < 0 ? undefined : this.work.get(slot) ?? this.t.materialize(slot);
  }

  viewLookup(tuple: FlowTuple): TableHit | undefined {
    const e = this.t.findTuple(tuple);
    if (e < 0) return undefined;
    return { session: this.work.get(e >> 1) ?? this.t.materialize(e >> 1), dir: CompactTable.dir(e) };
  }

  get(serial: number): Session | undefined {
    const slot = this.t.slotOf(serial);
    return slot < 0 ? undefined : this.at(slot);
  }

  has(serial: number): boolean { return this.t.slotOf(serial) >= 0; }

  /** The session is in the table (not ended, not displaced by a clash). */
  holds(s: Session): boolean {
    const slot = this.slotOfObj.get(s);
    return slot !== undefined && this.work.get(slot) === s;
  }

  lookup(t: FlowTuple): TableHit | undefined {
    const e = this.t.findTuple(t);
    return e < 0 ? undefined : { session: this.at(e >> 1), dir: CompactTable.dir(e) };
  }

  /**
   * Enters a session under both tuples and files its timer. Two sessions cannot own one tuple:
   * the one already there is taken out (no more than that: ending it is the caller's) and returned.
   */
  insert(s: Session): Session | undefined {
    const k = this.key;
    const r = this.key2;
    if (!k.setTuple(s.orig) || !r.setTuple(s.reply)) throw new Error(`session ${s.serial}: a tuple address does not parse`);
    let e = this.t.find(k);
    if (e < 0) e = this.t.find(r);
    const old = e >= 0 ? this.at(e >> 1) : undefined;
    if (old) this.remove(old);
    const slot = this.t.addPair(k, r, s.serial);
    this.work.set(slot, s);
    this.slotOfObj.set(s, slot);
    this.t.write(slot, s);
    this.file(s);
    return old;
  }

  /** Takes the session out; its idle-queue entry is dropped when it comes up. Links stay. */
  remove(s: Session): void {
    const slot = this.slotOfObj.get(s);
    if (slot === undefined || this.work.get(slot) !== s) return;
    this.t.remove(slot);
    this.work.delete(slot);
    this.slotOfObj.delete(s);
  }

  /** The kernel's reply tuple differs from ours (NAT): replies are found by it from now on. */
  setReply(s: Session, reply: FlowTuple): void {
    const slot = this.slotOfObj.get(s);
    s.reply = reply;
    if (slot === undefined || !this.key.setTuple(reply)) return;
    this.t.setReply(slot, this.key);
  }

  /** Files a timer that is new or moved earlier; a later one is found when its old time comes up. */
  file(s: Session): void {
    const slot = this.slotOfObj.get(s);
    if (slot === undefined) return;
    this.t.store.expireAt[slot] = s.expireAt;
    if (this.t.timers.schedule(slot) && this.idleOn) this.idle.file(s);
    s.timerAt = this.t.timers.timerAt[slot];
  }

  /** Files the session's timer again after expireAt was set from scratch (it may move either way). */
  refile(s: Session): void {
    const slot = this.slotOfObj.get(s);
    if (slot === undefined) return;
    this.t.store.expireAt[slot] = s.expireAt;
    this.t.timers.refile(slot);
    s.timerAt = this.t.timers.timerAt[slot];
    if (this.idleOn) this.idle.file(s);
  }

  /** Takes out of the timers the sessions whose expireAt <= now. */
  popExpired(now: number): Session[] {
    const out: Session[] = [];
    for (let slot = this.t.timers.popExpired(now); slot >= 0; slot = this.t.timers.popExpired(now)) {
      const s = this.at(slot);
      // A working object's expiry may have moved later in this call: it is filed again.
      if (s.expireAt > now) { this.file(s); continue; }
      s.timerAt = 0;
      out.push(s);
    }
    return out;
  }

  /** Starts or stops keeping the idle queue; it starts from the whole table. */
  setScaling(on: boolean): void {
    if (on === this.idleOn) return;
    if (on) this.idle.build(this.values());
    else this.idle.clear();
    this.idleOn = on;
  }

  /** The session whose scaled expiry comes first, taken out of the idle queue if it is <= now. */
  nextIdle(now: number, factor: (s: Session) => number): Session | undefined {
    return this.idle.next(now, factor, this.current);
  }

  linkChild(parent: number, child: number): void {
    let set = this.childrenOf.get(parent);
    if (!set) this.childrenOf.set(parent, (set = new Set()));
    set.add(child);
  }

  /** The session no longer counts among its parent's children. */
  unlinkChild(s: Session): void {
    if (s.parent === undefined) return;
    const siblings = this.childrenOf.get(s.parent);
    siblings?.delete(s.serial);
    if (siblings && !siblings.size) this.childrenOf.delete(s.parent);
  }

  /** Serials of the sessions that expectations of this session became. */
  children(serial: number): number[] { return [...(this.childrenOf.get(serial) ?? [])]; }

  /** The session's children, forgotten as its children. */
  takeChildren(serial: number): Set<number> | undefined {
    const kids = this.childrenOf.get(serial);
    if (kids) this.childrenOf.delete(serial);
    return kids;
  }
}
