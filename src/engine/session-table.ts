// The session table: where a session is found (by either direction's tuple, by serial), when its
// timer runs out, and which sessions its expectations became. It decides nothing: clashes,
// counters and limits are the engine's. Everything goes through these methods so the storage can
// change shape (to arrays indexed by slot) without the engine noticing.

import type { FlowTuple } from '../packet/types.js';
import { IdleQueue } from './adaptive.js';
import { ExpiryQueue } from './expiry-queue.js';
import { flowKey } from './flow-key.js';
import type { Direction, Session } from './types.js';

/** A session as found by one of its tuples. Shared by the table: read it, never change or keep it. */
export interface TableHit { readonly session: Session; readonly dir: Direction }

export class SessionTable {
  private readonly byTuple = new Map<string, TableHit>();
  private readonly bySerial = new Map<number, Session>();
  private readonly expiry = new ExpiryQueue<Session>();
  /** Sessions by scaled expiry, kept only while adaptive timeouts scale (adaptive.ts). */
  private readonly idle = new IdleQueue();
  private idleOn = false;
  /** Child sessions by parent serial. */
  private readonly childrenOf = new Map<number, Set<number>>();
  /** One predicate for the queues, rather than a closure per tick. */
  private readonly alive = (s: Session): boolean => this.bySerial.get(s.serial) === s;

  get size(): number { return this.bySerial.size; }

  values(): IterableIterator<Session> { return this.bySerial.values(); }

  get(serial: number): Session | undefined { return this.bySerial.get(serial); }

  has(serial: number): boolean { return this.bySerial.has(serial); }

  /** The session is in the table (not ended, not displaced by a clash). */
  holds(s: Session): boolean { return this.bySerial.get(s.serial) === s; }

  lookup(t: FlowTuple): TableHit | undefined { return this.byTuple.get(flowKey(t)); }

  /**
   * Enters a session under both tuples and files its timer. Two sessions cannot own one tuple:
   * the one already there is taken out (no more than that: ending it is the caller's) and returned.
   */
  insert(s: Session): Session | undefined {
    const ko = flowKey(s.orig);
    const kr = flowKey(s.reply);
    const old = this.byTuple.get(ko) ?? this.byTuple.get(kr);
    if (old) this.remove(old.session);
    this.byTuple.set(ko, { session: s, dir: 'org' });
    this.byTuple.set(kr, { session: s, dir: 'reply' });
    this.bySerial.set(s.serial, s);
    this.file(s);
    return old?.session;
  }

  /** Takes the session out; its queue entries are dropped when they come up. Links stay. */
  remove(s: Session): void {
    this.unindex(s.orig, s);
    this.unindex(s.reply, s);
    this.bySerial.delete(s.serial);
  }

  /** The kernel's reply tuple differs from ours (NAT): replies are found by it from now on. */
  setReply(s: Session, reply: FlowTuple): void {
    this.unindex(s.reply, s);
    s.reply = reply;
    this.byTuple.set(flowKey(reply), { session: s, dir: 'reply' });
  }

  private unindex(t: FlowTuple, s: Session): void {
    const k = flowKey(t);
    if (this.byTuple.get(k)?.session === s) this.byTuple.delete(k);
  }

  /** Files a timer that is new or moved earlier; a later one is found by the queues when they pop it. */
  file(s: Session): void {
    if (this.expiry.schedule(s) && this.idleOn) this.idle.file(s);
  }

  /** Files the session's timer again after expireAt was set from scratch (it may move either way). */
  refile(s: Session): void {
    s.timerAt = 0;
    this.file(s);
  }

  /** Takes out of the expiry queue the sessions of the table whose expireAt <= now. */
  popExpired(now: number): Session[] {
    return this.expiry.popExpired(now, this.alive);
  }

  /** Starts or stops keeping the idle queue; it starts from the whole table. */
  setScaling(on: boolean): void {
    if (on === this.idleOn) return;
    if (on) this.idle.build(this.bySerial.values());
    else this.idle.clear();
    this.idleOn = on;
  }

  /** The session whose scaled expiry comes first, taken out of the idle queue if it is <= now. */
  nextIdle(now: number, factor: (s: Session) => number): Session | undefined {
    return this.idle.next(now, factor, this.alive);
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
