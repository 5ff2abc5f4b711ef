// Which table changes go to the peer, by the session-pickup settings:
//   session-pickup                  TCP sessions
//   + session-pickup-connectionless UDP, ICMP and every other protocol
//   + session-pickup-expectation    expectations, and the sessions made from them (children)
//   + session-pickup-delay          a session only once it is 30 s old: its start is sent then,
//                                   with its state at that moment; one that ends sooner never
//                                   crosses the link
// It remembers what the peer holds, so the end of a session (or expectation) the peer never got
// is not sent, and an expectation goes only once its parent session is on the peer.
// Pure: the table is read through TableView, time is an argument.

import type { Effect, Session } from '../engine/types.js';
import type { Expectation } from '../engine/expectations.js';
import type { PickupConfig } from '../config/ha.js';
import type { SyncRecord } from './peer.js';
import { IPPROTO_TCP } from '../packet/types.js';

/** session-pickup-delay: the age (ms) from which a session is synced. */
export const PICKUP_DELAY_MS = 30_000;

/** What the filter reads of the live table. */
export interface TableView {
  session(serial: number): Session | undefined;
  sessions(): Iterable<Session>;
  expectations(): Iterable<Expectation>;
  expectationsOf(serial: number): Iterable<Expectation>;
}

export interface PickupStats {
  /** Sessions / expectations the peer holds from us. */
  sessions: number;
  expectations: number;
  /** Sessions waiting to reach the pickup delay. */
  delayed: number;
  /** Session starts not synced by the protocol or child rules. */
  filtered: number;
}

export class PickupFilter {
  private readonly synced = new Set<number>();
  /** Expectation id → its parent's serial, and the ids by parent (the engine may have dropped them by the time the parent's end is seen). */
  private readonly syncedExpectations = new Map<number, number>();
  private readonly byParent = new Map<number, Set<number>>();
  /** Serial → when it is due (delay), in start order. */
  private readonly pending = new Map<number, number>();
  private filtered = 0;

  constructor(private readonly cfg: PickupConfig, private readonly table: TableView) {}

  /** The protocol and child rules (not the delay). */
  wants(s: Session): boolean {
    if (!this.cfg.sessions) return false;
    if ((s.parent !== undefined || s.expected) && !this.cfg.expectation) return false;
    return s.orig.proto === IPPROTO_TCP || this.cfg.connectionless;
  }

  /** The records one effect of the engine makes for the peer (none for most). */
  effect(e: Effect, now: number): SyncRecord[] {
    switch (e.kind) {
      case 'session-start': {
        const s = e.session;
        if (!this.wants(s)) { if (this.cfg.sessions) this.filtered++; return []; }
        if (this.cfg.delay && now - s.createdAt < PICKUP_DELAY_MS) {
          this.pending.set(s.serial, s.createdAt + PICKUP_DELAY_MS);
          return [];
        }
        return this.start(s);
      }
      case 'session-end': {
        const serial = e.session.serial;
        this.pending.delete(serial);
        if (!this.synced.delete(serial)) return [];
        // Its expectations end with it on the peer too (the peer's table drops them with the parent).
        for (const id of this.byParent.get(serial) ?? []) this.syncedExpectations.delete(id);
        this.byParent.delete(serial);
        return [{ t: 'end', serial }];
      }
      case 'expect-add': {
        const x = e.expectation;
        if (!this.cfg.expectation || !this.synced.has(x.parent)) return [];
        this.holds(x);
        return [{ t: 'expect', expectation: x }];
      }
      case 'expect-end': {
        const id = e.expectation.id;
        const parent = this.syncedExpectations.get(id);
        if (parent === undefined) return [];
        this.syncedExpectations.delete(id);
        this.byParent.get(parent)?.delete(id);
        return [{ t: 'expect-end', id }];
      }
      default:
        return [];
    }
  }

  /** session-pickup-delay: the sessions that reached 30 s since the last call, as they are now. */
  due(now: number): SyncRecord[] {
    const out: SyncRecord[] = [];
    for (const [serial, at] of this.pending) {
      // Started in order, so due in order: the first one not due ends the scan.
      if (at > now) break;
      this.pending.delete(serial);
      const s = this.table.session(serial);
      if (s) out.push(...this.start(s));
    }
    return out;
  }

  /**
   * The whole table for a bulk transfer: what the peer will hold after it. The sessions younger
   * than the delay wait, as for a change.
   */
  bulk(now: number): SyncRecord[] {
    this.synced.clear();
    this.syncedExpectations.clear();
    this.byParent.clear();
    this.pending.clear();
    const young: Session[] = [];
    const out: SyncRecord[] = [];
    for (const s of this.table.sessions()) {
      if (!this.wants(s)) continue;
      if (this.cfg.delay && now - s.createdAt < PICKUP_DELAY_MS) young.push(s);
      else {
        this.synced.add(s.serial);
        out.push({ t: 'session', session: s });
      }
    }
    for (const s of young.sort((a, b) => a.createdAt - b.createdAt)) this.pending.set(s.serial, s.createdAt + PICKUP_DELAY_MS);
    if (this.cfg.expectation) {
      for (const x of this.table.expectations()) {
        if (!this.synced.has(x.parent)) continue;
        this.holds(x);
        out.push({ t: 'expect', expectation: x });
      }
    }
    return out;
  }

  stats(): PickupStats {
    return { sessions: this.synced.size, expectations: this.syncedExpectations.size, delayed: this.pending.size, filtered: this.filtered };
  }

  private holds(x: Expectation): void {
    this.syncedExpectations.set(x.id, x.parent);
    let ids = this.byParent.get(x.parent);
    if (!ids) this.byParent.set(x.parent, (ids = new Set()));
    ids.add(x.id);
  }

  /** A session goes to the peer, with the expectations it already has (delayed: made while it waited). */
  private start(s: Session): SyncRecord[] {
    this.synced.add(s.serial);
    const out: SyncRecord[] = [{ t: 'session', session: s }];
    if (this.cfg.expectation) {
      for (const x of this.table.expectationsOf(s.serial)) {
        if (this.syncedExpectations.has(x.id)) continue;
        this.holds(x);
        out.push({ t: 'expect', expectation: x });
      }
    }
    return out;
  }
}
