// The session engine: one facade over the table and the decision for each queued packet. No I/O,
// no clock: the caller passes `now` (ms) and carries out the returned effects, so live mode,
// replay and tests drive the same code. The work lives in modules split by job, whose functions
// share one EngineState, so each can change on its own; this class holds that state and is the
// only way in from outside.

import type { FlowTuple } from '../packet/types.js';
import type { EngineConfig } from './engine-config.js';
import { EngineState, type EngineCounters, type HelperSlot } from './engine-state.js';
import { decide } from './decide.js';
import { adoptPeer, type AdoptReport, type PeerTable } from './engine-adopt.js';
import { restore, snapshot, type EngineSnapshot, type RestoreReport } from './engine-snapshot.js';
import { tick } from './expire.js';
import { helperSlot } from './helper-driver.js';
import type { KernelReading } from './kernel-cache.js';
import { kernelReading, kernelReport, offloadResult, reconcileDump, reconcileRestart, reconcileUnowned } from './kernel-reconcile.js';
import { clear, setupRate } from './lifecycle.js';
import { recheckPolicies, type RecheckReport } from './policy-recheck.js';
import { adaptiveLimits, effectiveExpiry, factorWithout, type AdaptiveLimit } from './timers.js';
import type { Decision, Direction, Effect, KernelFlowReport, Packet, Session } from './types.js';

export type { AdaptiveLimit, AdoptReport, EngineCounters, EngineSnapshot, HelperSlot, PeerTable, RecheckReport, RestoreReport };

export class SessionEngine {
  private readonly st: EngineState;
  readonly counters: EngineCounters;
  /** Limits, users, conserve mode / fail-open and per-service accounting (admission.ts). */
  readonly admission: EngineState['admission'];
  /** Expectation sessions opened by helpers (seed 004). */
  readonly expectations: EngineState['expectations'];

  constructor(config: EngineConfig) {
    this.st = new EngineState(config);
    this.counters = this.st.counters;
    this.admission = this.st.admission;
    this.expectations = this.st.expectations;
  }

  /** The settings in force; a reload replaces them between packets. */
  get config(): EngineConfig { return this.st.config; }
  set config(c: EngineConfig) { this.st.config = c; }

  get size(): number { return this.st.table.size; }

  /** Copies of the sessions as they are now (the table does not keep Session objects). */
  sessions(): IterableIterator<Session> { return this.st.table.view(); }

  bySerialNumber(serial: number): Session | undefined { return this.st.table.viewOf(serial); }

  helperSlot(serial: number): HelperSlot | undefined { return helperSlot(this.st, serial); }

  /** Serials of the sessions that expectations of this session became. */
  children(serial: number): number[] { return this.st.table.children(serial); }

  lookup(t: FlowTuple): { session: Session; dir: Direction } | undefined {
    const hit = this.st.table.viewLookup(t);
    return hit ? { session: hit.session, dir: hit.dir } : undefined;
  }

  /** Sessions created during the last complete second. */
  setupRate(now: number): number { return setupRate(this.st, now); }

  handlePacket(p: Packet, now: number): Decision {
    this.counters.packets++;
    const d = decide(this.st, p, now);
    this.st.table.commit();
    if (d.verdict === 'accept') this.counters.accepted++;
    else this.counters.dropped++;
    return d;
  }

  /** A memory use sample (percent of RAM), for conserve mode; the daemon samples it on a timer. */
  observeMemory(percent: number, now: number): Effect[] {
    return this.done(this.admission.observeMemory(percent, now));
  }

  /** Ends the sessions whose timer ran out; their kernel entries are deleted too. */
  tick(now: number): Effect[] { return this.done(tick(this.st, now)); }

  /**
   * The adaptive-timeout factor of a session of VDOM `vd`: of the global session limit and the
   * VDOM's own, the one under more pressure (either can refuse its next session). 1 without a
   * limit or with adaptive-timeout-start 0.
   */
  adaptiveFactor(vd: number): number { return factorWithout(this.st, vd, 0, 0); }

  /** The session limits adaptive timeouts count against, with their use and factor (none when off). */
  adaptiveLimits(): AdaptiveLimit[] { return adaptiveLimits(this.st); }

  /** When the session's time runs out with adaptive timeouts as they are now. */
  effectiveExpiry(s: Session): number { return effectiveExpiry(this.st, s); }

  /** What the kernel says of an offloaded session, asked for by a kernel-read effect or a view. */
  kernelReading(serial: number, r: KernelReading, now: number): Effect[] { return this.done(kernelReading(this.st, serial, r, now)); }

  snapshot(now: number): EngineSnapshot { return snapshot(this.st, now); }

  /** Loads a snapshot into an empty table (engine-snapshot.ts). */
  restore(snap: EngineSnapshot, now: number): { effects: Effect[]; report: RestoreReport } { return this.done(restore(this.st, snap, now)); }

  /** A takeover: the peer's synced sessions and expectations become ours (engine-adopt.ts). */
  adoptPeer(peer: PeerTable, now: number): { effects: Effect[]; report: AdoptReport } { return this.done(adoptPeer(this.st, peer, now)); }

  /** After a restart, the kernel's table against ours: adopt ('adopt') or delete ('expire') entries we never knew. */
  reconcileRestart(conns: KernelFlowReport[], mode: 'adopt' | 'expire', now: number): { effects: Effect[]; ended: number; adopted: number; expired: number } {
    return this.done(reconcileRestart(this.st, conns, mode, now));
  }

  /** A start with no table of ours: kernel entries with our offload mark are judged again by the policy. */
  reconcileUnowned(conns: KernelFlowReport[], route: (addr: string) => number | undefined, now: number): { effects: Effect[]; adopted: number; cut: number } {
    return this.done(reconcileUnowned(this.st, conns, route, now));
  }

  /**
   * The policies changed (a reload, a restored table): sessions no policy admits now end, those
   * another policy admits move to it (policy-recheck.ts).
   */
  recheckPolicies(now: number): { effects: Effect[]; report: RecheckReport } { return this.done(recheckPolicies(this.st, now)); }

  /** The kernel confirmed (or refused) the offload the engine asked for. */
  offloadResult(serial: number, ok: boolean): void { this.done(offloadResult(this.st, serial, ok)); }

  /** What the kernel says about one of its conntrack entries (an event or a dump line). */
  kernelReport(r: KernelFlowReport, now: number): Effect[] { return this.done(kernelReport(this.st, r, now)); }

  /** A full dump of the kernel table: offloaded sessions missing from two dumps in a row end. */
  reconcileDump(conns: KernelFlowReport[], now: number): Effect[] { return this.done(reconcileDump(this.st, conns, now)); }

  /** Operator clear: ends the matching sessions and deletes their kernel entries. */
  clear(match: (s: Session) => boolean, now: number): Effect[] { return this.done(clear(this.st, match, now)); }

  /** Bytes the session table's compact storage holds. */
  get tableBytes(): number { return this.st.table.bytes; }

  /** Every call that changes the table ends here: what it changed is written back. */
  private done<T>(r: T): T {
    this.st.table.commit();
    return r;
  }
}
