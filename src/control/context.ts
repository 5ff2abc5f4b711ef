// What control-socket handlers may use of the running daemon. Handlers live one file per
// concern under handlers/ and get this context, so the daemon does not grow a case per command.

import type { Logger } from 'pino';
import type { SessionEngine } from '../engine/engine.js';
import type { Effect, Session } from '../engine/types.js';
import type { NextHopCache } from './next-hops.js';
import type { HaStatus, PeerTableView } from '../ha/ha-service.js';

export interface DaemonContext {
  readonly engine: SessionEngine;
  readonly log: Logger;
  now(): number;
  /** Carries out engine effects (kernel deletes, logs) as the packet path does. */
  apply(effects: Effect[], now: number): void;
  /** The queue's counters, with the kernel's (reading the rule counters takes a command). */
  queueStats(): Promise<Record<string, number> | undefined> | Record<string, number> | undefined;
  /** The table journal's counters (state/table-store.ts); undefined while snapshots are off. */
  journalStats?(): Record<string, number> | undefined;
  mechanism(): string | undefined;
  /** HA status; undefined in standalone mode. */
  haStatus?(): HaStatus | undefined;
  /** The peer's table held here (diagnose sys ha status). */
  haPeerTable?(): PeerTableView | undefined;
  ifname(index: number): string;
  /**
   * Brings offloaded sessions up to date from the kernel (counters, TCP state, expiry) before a
   * view shows them: their packets never reach the daemon, and the kernel reports only their end.
   */
  readKernel?(sessions: Session[]): Promise<void>;
  /** The router's next hops for the list's `gwy=`; without it the list prints the placeholder. */
  readonly gateways?: NextHopCache;
}
