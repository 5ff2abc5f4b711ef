// HA in the daemon: the sync channel, the role keepalived gives us, and the hold-back value we
// give keepalived. One object for the daemon to start, feed with effects, ask for the status and
// stop; nothing here runs in standalone mode.

import type { Logger } from 'pino';
import type { Effect } from '../engine/types.js';
import type { HaConfig } from '../config/ha.js';
import { NotifyFifo, TrackFile } from './keepalived-io.js';
import type { TableView } from './pickup.js';
import { RoleTracker, type RoleView } from './roles.js';
import { selectSyncLink, systemAddresses, type InterfaceAddress } from './sync-link.js';
import { SyncService, type SyncServiceOptions, type SyncStatus } from './sync-service.js';

/** How often the hold-back value is recomputed (ms). */
const HOLD_CHECK_MS = 250;

export interface HaStatus {
  mode: HaConfig['mode'];
  group: string;
  priority: number;
  override: boolean;
  pickup: HaConfig['pickup'];
  hbdev: HaConfig['hbdev'];
  role: RoleView;
  /** The sync channel, when its link was found. */
  sync?: SyncStatus;
  /** Why there is no sync channel. */
  syncError?: string;
  keepalived: { notifyFifo: string; trackFile: string; trackValue?: number; fifoError?: string };
}

/** The peer's table held here, one line per entry (diagnose sys ha status --json). */
export interface PeerTableView {
  sessions: Array<{ serial: number; policy_id: number; proto: number; src: string; sport: number; dst: string; dport: number; helper?: string; parent?: number; expire: number }>;
  expectations: Array<{ id: number; parent: number; serial: number; policy_id: number; helper: string; proto: number; dst: string; dport: number }>;
}

export interface HaServiceOptions extends SyncServiceOptions {
  addresses?: Record<string, InterfaceAddress[]>;
  /** Tests run without keepalived's files. */
  keepalivedFiles?: boolean;
}

export class HaService {
  sync?: SyncService;
  private readonly roles: RoleTracker;
  private readonly fifo: NotifyFifo;
  private readonly track: TrackFile;
  private trackValue?: number;
  private syncError?: string;
  private fifoError?: string;
  private timer?: NodeJS.Timeout;
  /** Called when keepalived moves us to another role. */
  onRole?: (role: RoleView['role']) => void;

  constructor(private readonly ha: HaConfig, private readonly table: TableView, private readonly log: Logger, private readonly opts: HaServiceOptions = {}, now = Date.now()) {
    this.roles = new RoleTracker(ha.groupName, now);
    this.fifo = new NotifyFifo(ha.notifyFifo);
    this.track = new TrackFile(ha.trackFile);
  }

  async start(now: number): Promise<void> {
    const files = this.opts.keepalivedFiles !== false;
    // Held back before anything else, so a keepalived already running cannot elect us meanwhile.
    if (files) this.writeTrack(1);
    if (files) {
      try {
        this.fifo.open((line) => this.fifoLine(line));
      } catch (e) {
        this.fifoError = (e as Error).message;
        this.log.error({ err: this.fifoError, fifo: this.ha.notifyFifo }, 'HA: cannot open the keepalived notify FIFO: the role stays unknown');
      }
    }
    const link = selectSyncLink(this.ha, this.opts.addresses ?? systemAddresses());
    if ('error' in link) {
      this.syncError = link.error;
      this.log.error({ err: link.error }, 'HA: no sync link: nothing is synced and the node stays held back');
    } else {
      this.sync = new SyncService(this.ha, link, this.table, this.log, this.opts);
      try {
        await this.sync.start(now);
      } catch (e) {
        this.syncError = `cannot bind ${link.local}:${link.port}: ${(e as Error).message}`;
        this.log.error({ err: this.syncError }, 'HA: sync socket not bound: nothing is synced');
        this.sync.stop();
        this.sync = undefined;
      }
    }
    if (files) {
      this.timer = setInterval(() => this.checkHold(Date.now()), HOLD_CHECK_MS);
      this.timer.unref();
    }
  }

  record(e: Effect, now: number): void {
    this.sync?.record(e, now);
  }

  fifoLine(line: string, now = Date.now()): void {
    const c = this.roles.line(line, now);
    if (!c) return;
    this.log.info({ from: c.from, to: c.to, priority: c.priority }, `HA role: ${c.to} (keepalived)`);
    this.onRole?.(c.to);
  }

  private syncProgress(now: number) {
    const st = this.sync?.status(now);
    return { firstBulkComplete: (st?.bulk.received.bulksComplete ?? 0) > 0, peerHeard: st?.lastHeardAgoMs !== undefined };
  }

  checkHold(now: number): void {
    const h = this.roles.hold(now, this.syncProgress(now));
    this.writeTrack(h.held ? 1 : 0, h.reason);
  }

  private writeTrack(v: number, reason?: string): void {
    try {
      if (this.track.write(v)) {
        this.trackValue = v;
        if (reason) this.log.info({ trackFile: this.ha.trackFile, value: v, reason }, v ? 'HA: held back from the primary role' : 'HA: may take the primary role');
      }
    } catch (e) {
      this.log.error({ err: (e as Error).message, trackFile: this.ha.trackFile }, 'HA: cannot write the keepalived track file');
    }
  }

  status(now: number): HaStatus {
    return {
      mode: this.ha.mode,
      group: this.ha.groupName,
      priority: this.ha.priority,
      override: this.ha.override,
      pickup: this.ha.pickup,
      hbdev: this.ha.hbdev,
      role: this.roles.view(now, this.syncProgress(now)),
      sync: this.sync?.status(now),
      syncError: this.syncError,
      keepalived: { notifyFifo: this.ha.notifyFifo, trackFile: this.ha.trackFile, trackValue: this.trackValue, fifoError: this.fifoError },
    };
  }

  peerTable(now: number): PeerTableView {
    const t = this.sync?.synced;
    if (!t) return { sessions: [], expectations: [] };
    return {
      sessions: [...t.sessions.values()].map((s) => ({
        serial: s.serial, policy_id: s.policyId, proto: s.orig.proto, src: s.orig.src, sport: s.orig.sport, dst: s.orig.dst, dport: s.orig.dport,
        ...(s.helper ? { helper: s.helper } : {}), ...(s.parent !== undefined ? { parent: s.parent } : {}),
        // As the peer last sent it: the peer's timers moved on since (refreshes are not synced yet).
        expire: Math.round((s.expireAt - now) / 1000),
      })),
      expectations: [...t.expectations.values()].map((x) => ({ id: x.id, parent: x.parent, serial: x.serial, policy_id: x.policyId, helper: x.helper, proto: x.proto, dst: x.dst, dport: x.dport })),
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.sync?.stop();
    this.fifo.close();
    // A node whose daemon is gone is no candidate for the primary role.
    if (this.opts.keepalivedFiles !== false) this.writeTrack(1, 'daemon stopping');
  }
}
