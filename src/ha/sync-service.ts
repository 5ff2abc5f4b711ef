// The daemon's end of the sync link: a UDP socket on the sync link's local address, a SyncPeer,
// and a 10 ms tick. Our table's changes (the engine's effects, filtered by the pickup settings)
// go to the peer; the peer's arrive into the SyncedTable. At start a HELLO asks the peer for its
// whole table; when the peer asks, ours goes as a bulk transfer.

import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import type { Effect } from '../engine/types.js';
import type { HaConfig } from '../config/ha.js';
import { DEFAULT_CHANNEL, type ChannelOptions } from './channel.js';
import { SyncPeer, type PeerEvent, type RefusedReason, type SyncRecord } from './peer.js';
import { PickupFilter, type PickupStats, type TableView } from './pickup.js';
import { SyncedTable, type SyncedTableStats } from './synced-table.js';
import type { SyncLink } from './sync-link.js';

export const TICK_MS = 10;

/** The part of a datagram socket the service uses (node:dgram, or a fake in tests). */
export interface DatagramPort {
  bind(port: number, address: string): Promise<void>;
  send(d: Buffer, port: number, address: string): void;
  onMessage(fn: (d: Buffer) => void): void;
  close(): void;
}

export function udpPort(log: Logger): DatagramPort {
  const s: Socket = createSocket({ type: 'udp4' });
  s.on('error', (err) => log.warn({ err: err.message }, 'HA sync socket error'));
  return {
    bind: (port, address) => new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, address, () => { s.off('error', reject); resolve(); });
    }),
    // A send error (no route while the link is down) is the resend machinery's to handle.
    send: (d, port, address) => s.send(d, port, address, () => undefined),
    onMessage: (fn) => s.on('message', fn),
    close: () => s.close(),
  };
}

/** Why a refused datagram was refused, in the operator's words. */
export const REFUSAL_TEXT: Record<RefusedReason, string> = {
  auth: 'authentication failed (password or group-name differs)',
  replay: 'replayed or duplicated datagram',
  self: 'our own datagram came back (ha-peer-ip is this node?)',
  short: 'truncated datagram',
  magic: 'not an nfsessiond sync datagram',
  version: 'another sync protocol version',
  body: 'undecodable body',
};

export interface SyncStatus {
  boot: string;
  link: SyncLink;
  peerBoot?: string;
  /** ms since an authenticated datagram from the peer; undefined: never. */
  lastHeardAgoMs?: number;
  linkUp: boolean;
  linkReason: string;
  tx: { lastSeq: number; sent: number; acked: number; unacked: number; resent: number; overflows: number; lastAckAgoMs?: number };
  rx: { expected: number; received: number; delivered: number; duplicates: number; early: number; nacks: number; gapsTooWide: number };
  refused: Record<RefusedReason, number>;
  lastRefused?: { reason: RefusedReason; agoMs: number };
  datagrams: { in: number; out: number };
  bulk: { sent: number; lastSentRecords: number; requested: number; received: SyncedTableStats };
  pickup: PickupStats;
  lag: { samples: number; lastMs?: number; maxMs?: number };
}

/** The peer is taken for gone after this long without an authenticated datagram (ALIVE comes every second). */
export const LINK_DOWN_AFTER_MS = 3000;

export interface SyncServiceOptions {
  boot?: string;
  channel?: ChannelOptions;
  port?: DatagramPort;
  /** Each acknowledged message's lag (ms, first send to ACK). */
  onLag?: (ms: number) => void;
  /** false: no timer; the caller drives tick() and flush() (tests with their own clock). */
  timer?: boolean;
}

export class SyncService {
  readonly peer: SyncPeer;
  readonly filter: PickupFilter;
  readonly synced = new SyncedTable();
  private readonly port: DatagramPort;
  private timer?: NodeJS.Timeout;
  private queued: SyncRecord[] = [];
  private flushScheduled = false;
  private lastRefused?: { reason: RefusedReason; at: number };
  private lastBulkRecords = 0;
  private lag = { samples: 0, lastMs: undefined as number | undefined, maxMs: undefined as number | undefined };
  private stopped = false;

  constructor(private readonly ha: HaConfig, readonly link: SyncLink, table: TableView, private readonly log: Logger, private readonly opts: SyncServiceOptions = {}) {
    this.peer = new SyncPeer({ password: ha.password, group: ha.groupName, boot: opts.boot, channel: opts.channel ?? DEFAULT_CHANNEL });
    this.filter = new PickupFilter(ha.pickup, table);
    this.port = opts.port ?? udpPort(log);
    this.peer.sender.onAcked = (_seq, sentAt, now) => {
      const ms = now - sentAt;
      this.lag.samples++;
      this.lag.lastMs = ms;
      this.lag.maxMs = Math.max(this.lag.maxMs ?? 0, ms);
      opts.onLag?.(ms);
    };
  }

  /** Binds, asks the peer for its table and starts the tick. */
  async start(now: number): Promise<void> {
    await this.port.bind(this.link.port, this.link.local);
    this.port.onMessage((d) => this.receive(d, Date.now()));
    this.synced.bulkRequested();
    this.out([this.peer.hello(true, now)]);
    if (this.opts.timer !== false) {
      this.timer = setInterval(() => this.tick(Date.now()), TICK_MS);
      this.timer.unref();
    }
    this.log.info({ link: this.link.ifname, local: this.link.local, peer: this.link.peer, port: this.link.port, boot: this.peer.boot, now }, 'HA sync channel started');
  }

  /** An effect of the engine, from the daemon's apply(): what the pickup settings sync is sent (batched per turn of the event loop). */
  record(e: Effect, now: number): void {
    const r = this.filter.effect(e, now);
    if (!r.length) return;
    this.queued.push(...r);
    if (!this.flushScheduled && this.timer) {
      this.flushScheduled = true;
      setImmediate(() => this.flush(Date.now()));
    }
  }

  /** Sends what record() queued (also called by the tick and by tests). */
  flush(now: number): void {
    this.flushScheduled = false;
    if (!this.queued.length || this.stopped) return;
    const r = this.queued;
    this.queued = [];
    this.out(this.peer.send(r, now));
  }

  tick(now: number): void {
    if (this.stopped) return;
    const due = this.filter.due(now);
    if (due.length) this.queued.push(...due);
    this.flush(now);
    this.out(this.peer.tick(now));
  }

  receive(d: Buffer, now: number): void {
    if (this.stopped) return;
    const r = this.peer.receive(d, now);
    if (r.apply.length) this.synced.apply(r.apply, now);
    this.out(r.out);
    for (const e of r.events) this.event(e, now);
  }

  private event(e: PeerEvent, now: number): void {
    switch (e.kind) {
      case 'hello':
        this.log.info({ peerBoot: e.boot, bulkWanted: e.bulkWanted }, 'HA peer (re)started');
        if (e.bulkWanted) this.sendBulk(now);
        break;
      case 'bulk-request':
        this.sendBulk(now);
        break;
      case 'refused': {
        // Logged when the reason changes, not per datagram: a misconfigured peer sends many.
        if (this.lastRefused?.reason !== e.reason) this.log.warn({ reason: e.reason, peer: this.link.peer }, `HA peer refused: ${REFUSAL_TEXT[e.reason]}`);
        this.lastRefused = { reason: e.reason, at: now };
        break;
      }
    }
  }

  private sendBulk(now: number): void {
    // What was queued is part of the table the bulk carries.
    this.queued = [];
    const records = this.filter.bulk(now);
    this.lastBulkRecords = records.length;
    this.out(this.peer.sendBulk(records, now));
    this.log.info({ records: records.length }, 'HA bulk transfer sent');
  }

  private out(ds: Buffer[]): void {
    for (const d of ds) this.port.send(d, this.link.port, this.link.peer);
  }

  status(now: number): SyncStatus {
    const p = this.peer;
    const heard = p.stats.lastHeardAt ? now - p.stats.lastHeardAt : undefined;
    const linkUp = heard !== undefined && heard < LINK_DOWN_AFTER_MS;
    let linkReason = 'up';
    if (!linkUp) {
      const refusedRecently = this.lastRefused && (heard === undefined || this.lastRefused.at > p.stats.lastHeardAt);
      if (refusedRecently) linkReason = `peer refused: ${REFUSAL_TEXT[this.lastRefused!.reason]}`;
      else if (heard === undefined) linkReason = `nothing heard from ${this.link.peer}:${this.link.port} since start`;
      else linkReason = `nothing heard from ${this.link.peer}:${this.link.port} for ${Math.round(heard / 1000)} s`;
    }
    const s = p.sender.stats;
    const r = p.receiver.stats;
    return {
      boot: p.boot,
      link: this.link,
      peerBoot: p.stats.peerBoot,
      lastHeardAgoMs: heard,
      linkUp,
      linkReason,
      tx: { lastSeq: s.lastSeq, sent: s.sent, acked: s.acked, unacked: s.unacked, resent: s.resent, overflows: s.overflows, lastAckAgoMs: s.lastAckAt ? now - s.lastAckAt : undefined },
      rx: { expected: r.expected, received: r.received, delivered: r.delivered, duplicates: r.duplicates, early: r.early, nacks: r.nacks, gapsTooWide: r.gapsTooWide },
      refused: { ...p.stats.refused },
      lastRefused: this.lastRefused && { reason: this.lastRefused.reason, agoMs: now - this.lastRefused.at },
      datagrams: { in: p.stats.datagramsIn, out: p.stats.datagramsOut },
      bulk: { sent: p.stats.bulksSent, lastSentRecords: this.lastBulkRecords, requested: p.stats.bulksRequested, received: this.synced.stats() },
      pickup: this.filter.stats(),
      lag: { ...this.lag },
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.port.close();
  }
}
