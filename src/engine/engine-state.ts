// The state every part of the engine works on. One object, handed to each module's functions, so
// the packet path reads fields directly instead of going through a method per part.

import type { SessionHelper } from '../helpers/types.js';
import type { StreamState } from '../helpers/stream.js';
import { Admission } from './admission.js';
import type { EngineConfig } from './engine-config.js';
import { ExpectationTable } from './expectations.js';
import { SessionTable } from './session-table.js';
import type { SessionEndReason } from './types.js';

export interface EngineCounters {
  packets: number;
  accepted: number;
  dropped: number;
  malformed: Record<string, number>;
  fragments: number;
  sessionsCreated: number;
  sessionsEnded: Record<SessionEndReason, number>;
  policyDenied: number;
  tcpWithoutSyn: number;
  icmpErrorsRelated: number;
  icmpErrorsUnrelated: number;
  tableFull: number;
  clash: number;
  offloadRequests: number;
  offloadFailures: number;
  /** Packets a helper could not parse because it threw (a bug; the packet is still decided). */
  helperErrors: number;
  /** Sessions deleted by an operator (diagnose sys session clear). */
  deleted: number;
  /** Times a filtered clear ran. */
  flushes: number;
  /** Sessions ended by an adaptive (scaled-down) timer before their own would have run out. */
  adaptiveExpired: number;
}

function newCounters(): EngineCounters {
  return {
    packets: 0, accepted: 0, dropped: 0, malformed: {}, fragments: 0, sessionsCreated: 0,
    sessionsEnded: { ttl: 0, 'tcp-close': 0, 'kernel-destroy': 0, 'kernel-gone': 0, clear: 0, replaced: 0, 'parent-closed': 0, dirty: 0 },
    policyDenied: 0, tcpWithoutSyn: 0, icmpErrorsRelated: 0, icmpErrorsUnrelated: 0, tableFull: 0,
    clash: 0, offloadRequests: 0, offloadFailures: 0, helperErrors: 0, deleted: 0, flushes: 0,
    adaptiveExpired: 0,
  };
}

/** A helper attached to a session, with its parser state and the two reassembled streams. */
export interface HelperSlot {
  helper: SessionHelper<unknown>;
  state: unknown;
  streams: [StreamState, StreamState];
}

export class EngineState {
  readonly table = new SessionTable();
  nextSerial = 1;
  readonly counters: EngineCounters = newCounters();
  /** Limits, users, conserve mode / fail-open and per-service accounting (admission.ts). */
  readonly admission = new Admission(() => this.config);
  /** Session creations per whole second, for setup_rate. */
  readonly setupWindow = { second: 0, count: 0, last: 0 };
  /** Expectation sessions opened by helpers (seed 004). */
  readonly expectations = new ExpectationTable();
  /** Helper state by session serial. */
  readonly helperSlots = new Map<number, HelperSlot>();

  constructor(public config: EngineConfig) {}
}
