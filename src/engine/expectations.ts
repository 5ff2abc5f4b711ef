// Expectation sessions: connections a session helper read from a control channel, waiting for
// their first packet (seed 004). An expectation is a pinhole: the matching connection needs no
// policy of its own and becomes a child session that inherits the parent's policy id and serial.
// It ends when used, when its timeout passes (unless it tracks its parent), or with its parent.

import type { FlowTuple } from '../packet/types.js';

export interface Expectation {
  /** Unique id (table key, kernel element bookkeeping). */
  id: number;
  /** Serial of the parent session (the engine's key). */
  parent: number;
  /** Serial shown and inherited by the child: the parent's own, or what the parent inherited. */
  serial: number;
  policyId: number;
  vd: number;
  helper: string;
  kind: string;
  family: 4 | 6;
  proto: number;
  src: string;
  /** 0 = any source port. */
  sport: number;
  dst: string;
  dport: number;
  createdAt: number;
  /** Nominal end (ms). Enforced unless the expectation tracks its parent. */
  expireAt: number;
  /** No strict timeout: lives as long as the parent (expire shows negative once past expireAt). */
  tracksParent: boolean;
  /** Timeout (s) the expectation was given, or the nominal one when tracking the parent. */
  lifetime: number;
  /** The session TTL of the parent, shown as `timeout=` as the vendor does. */
  sessionTimeout: number;
  childHelper?: string;
  tag?: string;
}

export type ExpectationEndReason = 'used' | 'timeout' | 'parent-closed' | 'released' | 'replaced' | 'clear';

/** A used expectation and the session it became (kept for replay reports and views). */
export interface ExpectationUse { expectation: Expectation; child: number; at: number }

/** A request a helper or the limits refused. */
export interface ExpectationRefusal {
  at: number;
  helper: string;
  /** Serial of the control session. */
  parent: number;
  reason: string;
  detail: string;
}

const matchKey = (proto: number, src: string, dst: string, dport: number) => `${proto}|${src}|${dst}|${dport}`;

const HISTORY = 1000;

export class ExpectationTable {
  private readonly byKey = new Map<string, Expectation[]>();
  private readonly byId = new Map<number, Expectation>();
  private readonly byParentSerial = new Map<number, Set<Expectation>>();
  private nextId = 1;
  /** The last uses and refusals (bounded), newest last. */
  readonly uses: ExpectationUse[] = [];
  readonly refusals: ExpectationRefusal[] = [];
  readonly counters = {
    created: 0,
    ended: { used: 0, timeout: 0, 'parent-closed': 0, released: 0, replaced: 0, clear: 0 } as Record<ExpectationEndReason, number>,
    refused: {} as Record<string, number>,
  };

  get size(): number { return this.byId.size; }
  all(): IterableIterator<Expectation> { return this.byId.values(); }
  get(id: number): Expectation | undefined { return this.byId.get(id); }

  ofParent(serial: number): Expectation[] {
    return [...(this.byParentSerial.get(serial) ?? [])];
  }

  countOfParent(serial: number): number { return this.byParentSerial.get(serial)?.size ?? 0; }

  /** The same pinhole already asked for (same tuple, any parent). */
  findSame(e: Pick<Expectation, 'proto' | 'src' | 'sport' | 'dst' | 'dport'>): Expectation | undefined {
    return this.byKey.get(matchKey(e.proto, e.src, e.dst, e.dport))?.find((x) => x.sport === e.sport);
  }

  add(e: Omit<Expectation, 'id'>): Expectation {
    const x: Expectation = { ...e, id: this.nextId++ };
    const k = matchKey(x.proto, x.src, x.dst, x.dport);
    const list = this.byKey.get(k);
    if (list) list.push(x);
    else this.byKey.set(k, [x]);
    this.byId.set(x.id, x);
    let set = this.byParentSerial.get(x.parent);
    if (!set) this.byParentSerial.set(x.parent, (set = new Set()));
    set.add(x);
    this.counters.created++;
    return x;
  }

  /** Restores one with its id (snapshots); ids stay unique. */
  restore(e: Expectation): void {
    this.nextId = Math.max(this.nextId, e.id + 1);
    const { id: _id, ...rest } = e;
    const x = this.add(rest);
    this.byId.delete(x.id);
    x.id = e.id;
    this.byId.set(x.id, x);
    this.counters.created--;
  }

  remove(x: Expectation, reason: ExpectationEndReason): boolean {
    if (this.byId.get(x.id) !== x) return false;
    this.byId.delete(x.id);
    const k = matchKey(x.proto, x.src, x.dst, x.dport);
    const list = this.byKey.get(k);
    if (list) {
      const i = list.indexOf(x);
      if (i >= 0) list.splice(i, 1);
      if (!list.length) this.byKey.delete(k);
    }
    const set = this.byParentSerial.get(x.parent);
    if (set) {
      set.delete(x);
      if (!set.size) this.byParentSerial.delete(x.parent);
    }
    this.counters.ended[reason]++;
    return true;
  }

  /** The expectation a new flow's first packet satisfies, if any (newest first). */
  match(t: FlowTuple): Expectation | undefined {
    const list = this.byKey.get(matchKey(t.proto, t.src, t.dst, t.dport));
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const x = list[i];
      if (x.sport === 0 || x.sport === t.sport) return x;
    }
    return undefined;
  }

  /** Expectations whose strict timeout has passed. */
  expired(now: number): Expectation[] {
    const out: Expectation[] = [];
    for (const x of this.byId.values()) if (!x.tracksParent && x.expireAt <= now) out.push(x);
    return out;
  }

  recordUse(expectation: Expectation, child: number, at: number): void {
    this.uses.push({ expectation, child, at });
    if (this.uses.length > HISTORY) this.uses.splice(0, this.uses.length - HISTORY);
  }

  refuse(r: ExpectationRefusal): void {
    this.counters.refused[r.reason] = (this.counters.refused[r.reason] ?? 0) + 1;
    this.refusals.push(r);
    if (this.refusals.length > HISTORY) this.refusals.splice(0, this.refusals.length - HISTORY);
  }

  /** Counts by helper, for `diagnose sys session stat` and metrics. */
  byHelper(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const x of this.byId.values()) out[x.helper] = (out[x.helper] ?? 0) + 1;
    return out;
  }
}
