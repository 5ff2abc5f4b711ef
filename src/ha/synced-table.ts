// The peer's table as it reaches us over the sync link (conntrackd calls it the external cache):
// sessions by serial, expectations by id. A bulk transfer replaces it whole: the records between
// bulk-begin and bulk-end build a new table, which takes the old one's place at bulk-end, so an
// interrupted transfer never leaves a half table in view. It stays here, apart from our own
// table, until a failover commits it.

import type { Session } from '../engine/types.js';
import type { Expectation } from '../engine/expectations.js';
import type { SyncRecord } from './peer.js';

export type BulkState = 'none' | 'requested' | 'in-progress' | 'complete';

export interface SyncedTableStats {
  sessions: number;
  expectations: number;
  bulk: BulkState;
  /** Bulk transfers received whole. */
  bulksComplete: number;
  /** Records of the last complete bulk transfer, and of the one in progress so far. */
  lastBulkRecords: number;
  bulkRecordsSoFar: number;
  lastBulkAt: number;
  /** Changes applied outside bulk transfers. */
  changes: number;
  /** The highest serial the peer has used: serials after a takeover must start above it. */
  highestSerial: number;
}

interface Tables { sessions: Map<number, Session>; expectations: Map<number, Expectation> }

const empty = (): Tables => ({ sessions: new Map(), expectations: new Map() });

export class SyncedTable {
  private live = empty();
  private staging?: Tables;
  private requested = false;
  private complete = 0;
  private lastRecords = 0;
  private soFar = 0;
  private lastBulkAt = 0;
  private changes = 0;
  private highestSerial = 0;

  get sessions(): ReadonlyMap<number, Session> { return this.live.sessions; }
  get expectations(): ReadonlyMap<number, Expectation> { return this.live.expectations; }

  /** We asked the peer for its table (shown until the transfer begins). */
  bulkRequested(): void { this.requested = true; }

  get bulkState(): BulkState {
    return this.staging ? 'in-progress' : this.complete ? 'complete' : this.requested ? 'requested' : 'none';
  }

  apply(records: SyncRecord[], now: number): void {
    for (const r of records) {
      if (r.t === 'bulk-begin') {
        this.staging = empty();
        this.soFar = 0;
        continue;
      }
      if (r.t === 'bulk-end') {
        if (!this.staging) continue;
        this.live = this.staging;
        this.staging = undefined;
        this.complete++;
        this.requested = false;
        this.lastRecords = this.soFar;
        this.lastBulkAt = now;
        continue;
      }
      const t = this.staging ?? this.live;
      if (this.staging) this.soFar++;
      else this.changes++;
      switch (r.t) {
        case 'session':
          t.sessions.set(r.session.serial, r.session);
          this.highestSerial = Math.max(this.highestSerial, r.session.serial);
          break;
        case 'end':
          t.sessions.delete(r.serial);
          // The peer's engine ends a control session's expectations with it.
          for (const [id, x] of t.expectations) if (x.parent === r.serial) t.expectations.delete(id);
          break;
        case 'expect':
          t.expectations.set(r.expectation.id, r.expectation);
          break;
        case 'expect-end':
          t.expectations.delete(r.id);
          break;
        case 'serial':
          this.highestSerial = Math.max(this.highestSerial, r.next - 1);
          break;
      }
    }
  }

  stats(): SyncedTableStats {
    return {
      sessions: this.live.sessions.size,
      expectations: this.live.expectations.size,
      bulk: this.bulkState,
      bulksComplete: this.complete,
      lastBulkRecords: this.lastRecords,
      bulkRecordsSoFar: this.staging ? this.soFar : 0,
      lastBulkAt: this.lastBulkAt,
      changes: this.changes,
      highestSerial: this.highestSerial,
    };
  }
}
