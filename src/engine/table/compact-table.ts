// The session table in compact form: columns (session-store.ts), the tuple index for both
// directions, the serial index and the timers, kept consistent by one owner. The engine works on
// slots; `Session` objects are built from a slot only at the edges (views, logs, snapshots).

import type { FlowTuple } from '../../packet/types.js';
import type { Direction, NatView, RefreshDirection, Session } from '../types.js';
import { SerialIndex } from './serial-index.js';
import { ORG_BYTES, ORG_PACKETS, REP_BYTES, REP_PACKETS, SessionFlag, SessionStore } from './session-store.js';
import { SlotTimers } from './slot-timers.js';
import { TupleIndex } from './tuple-index.js';
import { TupleKey } from './tuple-key.js';

/** What only some sessions have: helper links, NAT, ICMP errors counted. */
export interface SessionExtras {
  helper?: string;
  parent?: number;
  inheritedSerial?: number;
  expected?: { id: number; helper: string; kind: string };
  nat?: NatView;
  allowErr?: [number, number];
}

const REFRESH: readonly RefreshDirection[] = ['both', 'outgoing', 'incoming'];

export interface CompactTableOptions {
  /** Sessions to make room for up front (the configured limit), so the table never grows under load. */
  expected?: number;
  /** Hash seed; random unless a test pins it. */
  seed?: number;
}

export class CompactTable {
  readonly store: SessionStore;
  readonly index: TupleIndex;
  readonly serials: SerialIndex;
  readonly timers: SlotTimers;
  private readonly replies = new Map<number, TupleKey>();
  readonly extras = new Map<number, SessionExtras>();
  private readonly scratch = new TupleKey();

  constructor(opts: CompactTableOptions = {}) {
    const n = opts.expected ?? 1024;
    this.store = new SessionStore(n);
    const seed = opts.seed ?? ((Math.random() * 0x100000000) | 0);
    this.index = new TupleIndex(this.store, this.replies, 2 * n, seed);
    this.serials = new SerialIndex(() => this.store.serial, n);
    this.timers = new SlotTimers(this.store);
  }

  get size(): number { return this.store.live; }

  /** Bytes held by the arrays (columns, indexes, timers); objects of the side maps are not counted. */
  bytes(): number { return this.store.bytes() + this.index.bytes + this.serials.bytes + this.timers.bytes; }

  /** The entry (slot * 2 + direction) of a tuple, or -1. */
  find(k: TupleKey): number { return this.index.find(k); }

  findTuple(t: FlowTuple): number {
    return this.scratch.setTuple(t) ? this.index.find(this.scratch) : -1;
  }

  slotOf(serial: number): number { return this.serials.find(serial); }

  /**
   * A new session for `k` (its original direction) under `serial`, indexed both ways. The caller
   * has made sure neither direction is taken (find) and fills the other columns.
   */
  add(k: TupleKey, serial: number): number {
    const st = this.store;
    const cap = st.capacity;
    const slot = st.alloc();
    if (st.capacity !== cap) this.timers.fit();
    st.serial[slot] = serial;
    st.proto[slot] = k.proto;
    st.ports[2 * slot] = k.sport;
    st.ports[2 * slot + 1] = k.dport;
    if (k.family === 6) {
      const p = st.allocV6();
      st.flags[slot] |= SessionFlag.V6;
      st.addr[2 * slot] = p;
      st.v6.set(k.src, 8 * p);
      st.v6.set(k.dst, 8 * p + 4);
    } else {
      st.addr[2 * slot] = k.src[0];
      st.addr[2 * slot + 1] = k.dst[0];
    }
    this.index.add(2 * slot);
    this.index.add(2 * slot + 1);
    this.serials.add(slot);
    return slot;
  }

  /** A new session with its original and reply tuples; the reply is kept only when NAT made it differ. */
  addPair(k: TupleKey, r: TupleKey, serial: number): number {
    const slot = this.add(k, serial);
    this.scratch.reverseOf(k);
    if (!this.scratch.equals(r)) this.setReply(slot, r);
    return slot;
  }

  /** The kernel's reply tuple differs from the reverse (NAT): index the session under it instead. */
  setReply(slot: number, k: TupleKey): void {
    this.index.delete(2 * slot + 1);
    const r = new TupleKey();
    r.family = k.family; r.proto = k.proto; r.sport = k.sport; r.dport = k.dport;
    r.src.set(k.src); r.dst.set(k.dst);
    this.replies.set(slot, r);
    this.store.flags[slot] |= SessionFlag.HAS_REPLY;
    this.index.add(2 * slot + 1);
  }

  remove(slot: number): void {
    // The indexes read the tuple back from the store: unhook before the slot is cleared.
    this.index.delete(2 * slot);
    this.index.delete(2 * slot + 1);
    this.serials.delete(slot);
    this.timers.remove(slot);
    this.replies.delete(slot);
    this.extras.delete(slot);
    this.store.free(slot);
  }

  clear(): void {
    for (let slot = 0; slot < this.store.used; slot++) if (this.store.inUse(slot)) this.store.free(slot);
    this.index.clear();
    this.serials.clear();
    this.timers.clear();
    this.replies.clear();
    this.extras.clear();
  }

  /** Live slots, in slot order. */
  *slots(): IterableIterator<number> {
    for (let slot = 0; slot < this.store.used; slot++) if (this.store.inUse(slot)) yield slot;
  }

  origKey(slot: number, out: TupleKey): TupleKey {
    const st = this.store;
    out.proto = st.proto[slot];
    out.sport = st.ports[2 * slot];
    out.dport = st.ports[2 * slot + 1];
    if (st.flags[slot] & SessionFlag.V6) {
      const p = 8 * st.addr[2 * slot];
      out.family = 6;
      out.src.set(st.v6.subarray(p, p + 4));
      out.dst.set(st.v6.subarray(p + 4, p + 8));
    } else {
      out.family = 4;
      out.src[0] = st.addr[2 * slot];
      out.dst[0] = st.addr[2 * slot + 1];
    }
    return out;
  }

  replyKey(slot: number, out: TupleKey): TupleKey {
    const r = this.replies.get(slot);
    if (r) {
      out.family = r.family; out.proto = r.proto; out.sport = r.sport; out.dport = r.dport;
      out.src.set(r.src); out.dst.set(r.dst);
      return out;
    }
    this.origKey(slot, this.scratch);
    out.reverseOf(this.scratch);
    return out;
  }

  extrasOf(slot: number): SessionExtras {
    let x = this.extras.get(slot);
    if (!x) this.extras.set(slot, (x = {}));
    return x;
  }

  /** The session at a slot as an object, for views, logs and snapshots. */
  materialize(slot: number): Session {
    const st = this.store;
    const f = st.flags[slot];
    const x = this.extras.get(slot);
    const c = 4 * slot;
    const s: Session = {
      serial: st.serial[slot],
      orig: this.origKey(slot, new TupleKey()).toTuple(),
      reply: this.replyKey(slot, new TupleKey()).toTuple(),
      policyId: st.policyId[slot],
      vd: st.vd[slot],
      state: [st.state[2 * slot], st.state[2 * slot + 1]],
      createdAt: st.createdAt[slot],
      expireAt: st.expireAt[slot],
      timerAt: this.timers.timerAt[slot],
      timeout: st.timeout[slot],
      ttl: st.ttl[slot],
      ttlFromRule: (f & SessionFlag.TTL_FROM_RULE) !== 0,
      refreshDir: REFRESH[(f & SessionFlag.REFRESH_MASK) >> SessionFlag.REFRESH_SHIFT],
      org: { bytes: st.counters[c + ORG_BYTES], packets: st.counters[c + ORG_PACKETS], allowErr: x?.allowErr?.[0] ?? 0 },
      rep: { bytes: st.counters[c + REP_BYTES], packets: st.counters[c + REP_PACKETS], allowErr: x?.allowErr?.[1] ?? 0 },
      devOrg: [st.dev(slot, 0), st.dev(slot, 1)],
      devReply: [st.dev(slot, 2), st.dev(slot, 3)],
      offloaded: (f & SessionFlag.OFFLOADED) !== 0,
      offloadPending: (f & SessionFlag.OFFLOAD_PENDING) !== 0,
      rate: {
        at: st.createdAt[slot] + st.rateAt[slot],
        orgBytes: unwrap(st.counters[c + ORG_BYTES], st.rateBytes[2 * slot]),
        replyBytes: unwrap(st.counters[c + REP_BYTES], st.rateBytes[2 * slot + 1]),
        txBps: st.rateBps[2 * slot], rxBps: st.rateBps[2 * slot + 1],
      },
      logTraffic: (f & SessionFlag.LOG_TRAFFIC) !== 0,
    };
    if (x?.helper !== undefined) s.helper = x.helper;
    if (x?.parent !== undefined) s.parent = x.parent;
    if (x?.inheritedSerial !== undefined) s.inheritedSerial = x.inheritedSerial;
    if (x?.expected) s.expected = { ...x.expected };
    if (x?.nat) s.nat = { ...x.nat };
    if (st.user[slot]) s.userId = st.user[slot] - 1;
    if (st.service[slot]) s.serviceIndex = st.service[slot] - 1;
    if (f & SessionFlag.HAS_KERNEL_CLASS) s.kernelClass = st.kernelClass[slot];
    if (f & SessionFlag.HAS_CTID) s.ctId = st.ctId[slot];
    if (f & SessionFlag.HAS_TIMER_BASE) s.timerBase = st.timerBase[slot];
    const kw = (f & SessionFlag.KWAIT_MASK) >> SessionFlag.KWAIT_SHIFT;
    if (kw) s.kernelWait = kw as 1 | 2 | 3;
    if (st.kernelMisses[slot]) s.kernelMisses = st.kernelMisses[slot];
    if (f & SessionFlag.HAS_KERNEL_SEEN) s.kernelSeen = { orgPackets: st.kernelSeen[2 * slot], replyPackets: st.kernelSeen[2 * slot + 1] };
    return s;
  }

  /**
   * A session object (a snapshot's, a peer's) into the table; -1 when a tuple does not parse or
   * either direction is taken.
   */
  insertSession(s: Session): number {
    const k = new TupleKey();
    const r = new TupleKey();
    if (!k.setTuple(s.orig) || !r.setTuple(s.reply)) return -1;
    if (this.index.find(k) >= 0 || this.index.find(r) >= 0) return -1;
    const slot = this.addPair(k, r, s.serial);
    this.write(slot, s);
    this.timers.schedule(slot);
    return slot;
  }

  /** Writes a session object's fields (everything but the tuples and the serial) into its slot. */
  write(slot: number, s: Session): void {
    const st = this.store;
    let f = st.flags[slot] & (SessionFlag.IN_USE | SessionFlag.V6 | SessionFlag.HAS_REPLY);
    f |= REFRESH.indexOf(s.refreshDir) << SessionFlag.REFRESH_SHIFT;
    if (s.ttlFromRule) f |= SessionFlag.TTL_FROM_RULE;
    if (s.offloaded) f |= SessionFlag.OFFLOADED;
    if (s.offloadPending) f |= SessionFlag.OFFLOAD_PENDING;
    if (s.logTraffic) f |= SessionFlag.LOG_TRAFFIC;
    if (s.kernelWait) f |= s.kernelWait << SessionFlag.KWAIT_SHIFT;
    if (s.ctId !== undefined) { f |= SessionFlag.HAS_CTID; st.ctId[slot] = s.ctId; }
    if (s.timerBase !== undefined) { f |= SessionFlag.HAS_TIMER_BASE; st.timerBase[slot] = s.timerBase; }
    if (s.kernelClass !== undefined) { f |= SessionFlag.HAS_KERNEL_CLASS; st.kernelClass[slot] = s.kernelClass; }
    if (s.kernelSeen) {
      f |= SessionFlag.HAS_KERNEL_SEEN;
      st.kernelSeen[2 * slot] = s.kernelSeen.orgPackets;
      st.kernelSeen[2 * slot + 1] = s.kernelSeen.replyPackets;
    }
    st.flags[slot] = f;
    st.kernelMisses[slot] = s.kernelMisses ?? 0;
    st.policyId[slot] = s.policyId;
    st.vd[slot] = s.vd;
    st.user[slot] = s.userId === undefined ? 0 : s.userId + 1;
    st.service[slot] = s.serviceIndex === undefined ? 0 : s.serviceIndex + 1;
    st.state[2 * slot] = s.state[0];
    st.state[2 * slot + 1] = s.state[1];
    st.createdAt[slot] = s.createdAt;
    st.expireAt[slot] = s.expireAt;
    st.timeout[slot] = s.timeout;
    st.ttl[slot] = s.ttl;
    const c = 4 * slot;
    st.counters[c + ORG_BYTES] = s.org.bytes;
    st.counters[c + ORG_PACKETS] = s.org.packets;
    st.counters[c + REP_BYTES] = s.rep.bytes;
    st.counters[c + REP_PACKETS] = s.rep.packets;
    st.setDev(slot, 0, s.devOrg[0]);
    st.setDev(slot, 1, s.devOrg[1]);
    st.setDev(slot, 2, s.devReply[0]);
    st.setDev(slot, 3, s.devReply[1]);
    st.rateAt[slot] = s.rate.at - s.createdAt;
    st.rateBytes[2 * slot] = s.rate.orgBytes;
    st.rateBytes[2 * slot + 1] = s.rate.replyBytes;
    st.rateBps[2 * slot] = s.rate.txBps;
    st.rateBps[2 * slot + 1] = s.rate.rxBps;
    const x: SessionExtras = {};
    if (s.helper !== undefined) x.helper = s.helper;
    if (s.parent !== undefined) x.parent = s.parent;
    if (s.inheritedSerial !== undefined) x.inheritedSerial = s.inheritedSerial;
    if (s.expected) x.expected = { ...s.expected };
    if (s.nat) x.nat = { ...s.nat };
    if (s.org.allowErr || s.rep.allowErr) x.allowErr = [s.org.allowErr, s.rep.allowErr];
    if (Object.keys(x).length) this.extras.set(slot, x);
    else this.extras.delete(slot);
  }

  /** The direction an entry names. */
  static dir(entry: number): Direction { return (entry & 1) === 0 ? 'org' : 'reply'; }
}

/** The full counter value a sample taken modulo 2^32 stood for, given today's counter (less than 4 GiB ago). */
function unwrap(now: number, sampled: number): number {
  const back = ((now % 4294967296) - sampled + 4294967296) % 4294967296;
  return now - back;
}
