// One end of the sync link: seals and opens datagrams, keeps the channel in both directions, and
// handles a peer (re)starting. Pure like the engine: datagrams and time in, datagrams and table
// changes out; the daemon owns the socket and the table.
//
// A node announces itself with HELLO { next, bulk }: `next` is the sequence its next DATA will
// carry, `bulk` asks the peer for its whole table. A HELLO from a boot id not seen before resets
// the receiving side to `next`, answers with our own HELLO, and, when asked, starts a bulk
// transfer: a `bulk-begin` record, every session and expectation, a `bulk-end` record, all on the
// ordinary reliable stream, so the receiver knows when it holds the complete table.

import { randomBytes } from 'node:crypto';
import type { JournalRecord } from '../state/journal.js';
import { DEFAULT_CHANNEL, SyncReceiver, SyncSender, type ChannelOptions, type Outgoing } from './channel.js';
import { MessageType, open, peekBoot, ReplayWindow, seal, senderKey, type OpenResult } from './wire.js';

/** What travels on the stream: table changes, and the marks around a bulk transfer. */
export type SyncRecord = JournalRecord | { t: 'bulk-begin' } | { t: 'bulk-end'; records: number };

export interface PeerOptions {
  password: string;
  group: string;
  /** 16 hex digits; random per start unless a test pins it. */
  boot?: string;
  channel?: ChannelOptions;
}

export type PeerEvent =
  /** The peer (re)started: its boot id, and whether it asked for our table. */
  | { kind: 'hello'; boot: string; bulkWanted: boolean }
  /** The peer asked for the whole table (its receive side lost track). */
  | { kind: 'bulk-request' }
  /** A datagram that was not accepted, and why. */
  | { kind: 'refused'; reason: RefusedReason };

export type RefusedReason = OpenResult extends infer R ? (R extends { ok: false; reason: infer X } ? X : never) | 'replay' | 'self' : never;

export interface PeerStats {
  datagramsIn: number;
  datagramsOut: number;
  refused: Record<RefusedReason, number>;
  peerBoot?: string;
  lastHeardAt: number;
  bulksSent: number;
  bulksRequested: number;
}

interface Incoming { key: Buffer; window: ReplayWindow }

export class SyncPeer {
  readonly boot: string;
  private readonly key: Buffer;
  private counter = 0n;
  readonly sender: SyncSender;
  readonly receiver: SyncReceiver;
  private peer?: { boot: string } & Incoming;
  /** We asked for the peer's table and its transfer has not begun. */
  private wantBulk = false;
  private askedAt = 0;
  readonly stats: PeerStats = {
    datagramsIn: 0, datagramsOut: 0, lastHeardAt: 0, bulksSent: 0, bulksRequested: 0,
    refused: { short: 0, magic: 0, version: 0, auth: 0, body: 0, replay: 0, self: 0 },
  };

  constructor(private readonly opts: PeerOptions) {
    this.boot = opts.boot ?? randomBytes(8).toString('hex');
    this.key = senderKey(opts.password, opts.group, this.boot);
    this.sender = new SyncSender(opts.channel ?? DEFAULT_CHANNEL);
    this.receiver = new SyncReceiver(opts.channel ?? DEFAULT_CHANNEL);
  }

  /**
   * Our HELLO: sent at start (asking for the peer's table when `bulk`) and in answer to the peer's.
   * A request for the table is repeated by tick() until the transfer begins.
   */
  hello(bulk: boolean): Buffer {
    if (bulk) this.wantBulk = true;
    return this.frame(MessageType.HELLO, { next: this.sender.lastSeq + 1, bulk });
  }

  /** Table changes to the peer. */
  send(records: SyncRecord[], now: number): Buffer[] {
    return this.frames(this.sender.send(records as JournalRecord[], now));
  }

  /**
   * The whole table to the peer, between bulk marks; what was waiting for an ACK is covered by it.
   * A HELLO first tells the peer's receiver where the transfer starts.
   */
  sendBulk(records: SyncRecord[], now: number): Buffer[] {
    this.sender.resetForBulk();
    this.stats.bulksSent++;
    return [this.hello(false), ...this.send([{ t: 'bulk-begin' }, ...records, { t: 'bulk-end', records: records.length }], now)];
  }

  /** Asks the peer for its whole table (our receive side lost track). */
  requestBulk(): Buffer {
    this.wantBulk = true;
    this.stats.bulksRequested++;
    return this.frame(MessageType.BULK_REQUEST, {});
  }

  receive(d: Buffer, now: number): { apply: SyncRecord[]; out: Buffer[]; events: PeerEvent[] } {
    this.stats.datagramsIn++;
    const none = { apply: [], out: [], events: [] as PeerEvent[] };
    const boot = peekBoot(d);
    if (boot === this.boot) return this.refuse('self', none);
    let inc: Incoming | undefined = this.peer?.boot === boot ? this.peer : undefined;
    const fresh = !inc && boot !== undefined;
    if (fresh) inc = { key: senderKey(this.opts.password, this.opts.group, boot!), window: new ReplayWindow() };
    const r = open(inc?.key ?? this.key, d);
    if (!r.ok) return this.refuse(r.reason, none);
    const f = r.frame;
    // A new boot id is believed only once a message from it opened with the shared password.
    if (fresh && f.type !== MessageType.HELLO) {
      // A peer we never heard start: its sequence is unknown, so ask for everything.
      this.peer = { boot: f.boot, ...inc! };
      this.stats.peerBoot = f.boot;
    }
    if (!inc!.window.accept(f.counter)) return this.refuse('replay', none);
    this.stats.lastHeardAt = now;
    const events: PeerEvent[] = [];
    const out: Outgoing[] = [];
    const extra: Buffer[] = [];
    const apply: SyncRecord[] = [];
    const body = f.body as Record<string, unknown>;
    switch (f.type) {
      case MessageType.HELLO: {
        // The peer's stream starts (again) at `next`: a new boot, or a bulk transfer. From a
        // known boot it only moves forward, so a late HELLO never replays what was applied.
        const next = num(body.next, 1);
        const known = this.peer?.boot === f.boot && !fresh;
        if (!known || next > this.receiver.stats.expected) this.receiver.restart(next);
        if (this.peer?.boot !== f.boot) {
          this.peer = { boot: f.boot, ...inc! };
          this.stats.peerBoot = f.boot;
          // Answer a new peer once, so it learns where our stream stands.
          extra.push(this.hello(false));
        }
        if (fresh || body.bulk === true) events.push({ kind: 'hello', boot: f.boot, bulkWanted: body.bulk === true });
        break;
      }
      case MessageType.DATA: {
        if (fresh) { extra.push(this.requestBulk()); break; }
        const x = this.receiver.data(body as never, now);
        apply.push(...(x.apply as SyncRecord[]));
        if (this.wantBulk && apply.some((a) => a.t === 'bulk-begin')) this.wantBulk = false;
        out.push(...x.out);
        if (this.receiver.needsBulk) { this.receiver.restart(this.receiver.stats.expected); extra.push(this.requestBulk()); }
        break;
      }
      case MessageType.ACK: this.sender.ack(body as never, now); break;
      case MessageType.NACK:
        out.push(...this.sender.nack(body as never, now));
        if (this.sender.skipTo) {
          extra.push(this.frame(MessageType.HELLO, { next: this.sender.skipTo, bulk: false }));
          this.sender.skipTo = 0;
        }
        break;
      case MessageType.ALIVE: out.push(...this.receiver.alive(num(body.last, 0), now)); break;
      case MessageType.BULK_REQUEST: events.push({ kind: 'bulk-request' }); break;
      default: break;
    }
    if (this.sender.needsBulk) events.push({ kind: 'bulk-request' });
    return { apply, out: [...extra, ...this.frames(out)], events };
  }

  tick(now: number): Buffer[] {
    const out = this.frames([...this.receiver.tick(now), ...this.sender.tick(now)]);
    if (this.wantBulk && now - this.askedAt >= (this.opts.channel ?? DEFAULT_CHANNEL).resendAfterMs) {
      this.askedAt = now;
      // Until the peer answered it does not know us: a HELLO; then a plain request.
      out.push(this.peer ? this.frame(MessageType.BULK_REQUEST, {}) : this.hello(true));
    }
    return out;
  }

  private refuse(reason: RefusedReason, r: { apply: SyncRecord[]; out: Buffer[]; events: PeerEvent[] }) {
    this.stats.refused[reason]++;
    r.events.push({ kind: 'refused', reason });
    return r;
  }

  private frames(msgs: Outgoing[]): Buffer[] {
    return msgs.map((m) => this.frame(TYPE[m.type], m.body));
  }

  private frame(type: MessageType, body: unknown): Buffer {
    this.stats.datagramsOut++;
    return seal(this.key, { type, boot: this.boot, counter: ++this.counter, body });
  }
}

const TYPE: Record<Outgoing['type'], MessageType> = {
  data: MessageType.DATA, ack: MessageType.ACK, nack: MessageType.NACK, alive: MessageType.ALIVE,
};

function num(v: unknown, dflt: number): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : dflt;
}
