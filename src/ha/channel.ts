// Reliable, ordered delivery of table changes to the peer over datagrams, after conntrackd's FTFW:
// every DATA message carries a sequence number, the receiver acknowledges what arrived in order,
// asks again for a gap (NACK), and the sender keeps what is unacknowledged to send it again when
// asked or when it has waited too long. Unlike FTFW the receiver applies changes in order only (a
// session's end must never arrive before its start), holding early messages until the gap fills.
// Pure: time is a parameter and messages go out as return values.

import type { JournalRecord } from '../state/journal.js';

export interface DataBody { seq: number; records: JournalRecord[] }
export interface AckBody { upTo: number }
export interface NackBody { from: number; to: number }

export type Outgoing =
  | { type: 'data'; body: DataBody }
  | { type: 'ack'; body: AckBody }
  | { type: 'nack'; body: NackBody }
  | { type: 'alive'; body: { last: number } };

export interface ChannelOptions {
  /** Records per DATA message: six binary session records (about 180 B each for IPv4, 230 for IPv6) stay below a 1500-byte MTU. */
  batchRecords: number;
  /** Unacknowledged messages kept for resending; beyond it the oldest go and the peer needs a bulk transfer. */
  resendQueue: number;
  /** A message unacknowledged this long (ms) is sent again; each further try waits twice as long, up to 4x (800 ms by default). */
  resendAfterMs: number;
  /** Messages resent by one tick at most: a peer that is slow to acknowledge gets no resend storm. */
  resendBurst: number;
  /** Send ALIVE after this long (ms) without anything else. */
  aliveMs: number;
  /** Acknowledge at most this long (ms) after the first unacknowledged arrival. */
  ackDelayMs: number;
  /** Early messages held while waiting for a gap to fill; beyond it the receiver asks for a bulk transfer. */
  reorderWindow: number;
}

export const DEFAULT_CHANNEL: ChannelOptions = {
  batchRecords: 6, resendQueue: 131072, resendAfterMs: 200, resendBurst: 64, aliveMs: 1000, ackDelayMs: 10, reorderWindow: 4096,
};

interface Pending { body: DataBody; sentAt: number; tries: number }

export interface SenderStats { sent: number; resent: number; acked: number; overflows: number; unacked: number; lastSeq: number; lastAckAt: number }

export class SyncSender {
  private nextSeq = 1;
  private readonly unacked = new Map<number, Pending>();
  private lastSentAt = 0;
  readonly stats: SenderStats = { sent: 0, resent: 0, acked: 0, overflows: 0, unacked: 0, lastSeq: 0, lastAckAt: 0 };
  /** The resend queue overflowed: the peer missed changes and needs the whole table. */
  needsBulk = false;
  /** Called with each acknowledged message's sequence and the time it was first sent (sync lag). */
  onAcked?: (seq: number, sentAt: number, now: number) => void;
  private readonly firstSent = new Map<number, number>();
  /** First sequence of the last bulk transfer: older messages are covered by it. */
  private bulkFrom = 0;
  /** Set by nack(): the peer asked for messages a bulk transfer covers; it should resume here. */
  skipTo = 0;

  constructor(private readonly opts: ChannelOptions = DEFAULT_CHANNEL) {}

  get lastSeq(): number { return this.nextSeq - 1; }

  send(records: JournalRecord[], now: number): Outgoing[] {
    const out: Outgoing[] = [];
    for (let i = 0; i < records.length; i += this.opts.batchRecords) {
      const body: DataBody = { seq: this.nextSeq++, records: records.slice(i, i + this.opts.batchRecords) };
      this.unacked.set(body.seq, { body, sentAt: now, tries: 0 });
      this.firstSent.set(body.seq, now);
      out.push({ type: 'data', body });
      this.stats.sent++;
    }
    while (this.unacked.size > this.opts.resendQueue) {
      const oldest = this.unacked.keys().next().value as number;
      this.unacked.delete(oldest);
      this.firstSent.delete(oldest);
      this.stats.overflows++;
      this.needsBulk = true;
    }
    if (out.length) this.lastSentAt = now;
    this.stats.unacked = this.unacked.size;
    this.stats.lastSeq = this.lastSeq;
    return out;
  }

  ack(b: AckBody, now: number): void {
    for (const [seq] of this.unacked) {
      if (seq > b.upTo) break;
      this.unacked.delete(seq);
      const first = this.firstSent.get(seq);
      this.firstSent.delete(seq);
      this.stats.acked++;
      if (first !== undefined) this.onAcked?.(seq, first, now);
    }
    this.stats.lastAckAt = now;
    this.stats.unacked = this.unacked.size;
  }

  /**
   * The peer lacks [from, to]: what is still held goes again. What a bulk transfer since covers
   * is skipped (`skipTo` says where the peer should resume); anything else dropped needs a bulk.
   */
  nack(b: NackBody, now: number): Outgoing[] {
    const out: Outgoing[] = [];
    for (let seq = b.from; seq <= b.to && seq < this.nextSeq; seq++) {
      const p = this.unacked.get(seq);
      if (!p) {
        if (seq < this.bulkFrom) this.skipTo = this.bulkFrom;
        else if (seq > 0) this.needsBulk = true;
        continue;
      }
      p.sentAt = now;
      out.push({ type: 'data', body: p.body });
      this.stats.resent++;
    }
    if (out.length) this.lastSentAt = now;
    return out;
  }

  tick(now: number): Outgoing[] {
    const out: Outgoing[] = [];
    for (const p of this.unacked.values()) {
      if (out.length >= this.opts.resendBurst) break;
      if (now - p.sentAt < this.opts.resendAfterMs * 2 ** Math.min(p.tries, 2)) continue;
      p.sentAt = now;
      p.tries++;
      out.push({ type: 'data', body: p.body });
      this.stats.resent++;
    }
    if (!out.length && now - this.lastSentAt >= this.opts.aliveMs) out.push({ type: 'alive', body: { last: this.lastSeq } });
    if (out.length) this.lastSentAt = now;
    return out;
  }

  /** A bulk transfer starts: what was queued is covered by it. Sequence numbers go on. */
  resetForBulk(): void {
    this.bulkFrom = this.nextSeq;
    this.unacked.clear();
    this.firstSent.clear();
    this.needsBulk = false;
    this.stats.unacked = 0;
  }
}

export interface ReceiverStats { received: number; delivered: number; duplicates: number; early: number; nacks: number; gapsTooWide: number; expected: number }

export class SyncReceiver {
  /** The next sequence to deliver: a sender boot starts at 1; a HELLO or a bulk transfer says otherwise. */
  private expected = 1;
  private readonly early = new Map<number, JournalRecord[]>();
  private ackDue = 0;
  private nackedUpTo = 0;
  private nackAt = 0;
  readonly stats: ReceiverStats = { received: 0, delivered: 0, duplicates: 0, early: 0, nacks: 0, gapsTooWide: 0, expected: 1 };
  /** The gap grew past the reorder window: the table needs a bulk transfer from the peer. */
  needsBulk = false;

  constructor(private readonly opts: ChannelOptions = DEFAULT_CHANNEL) {}

  /** Starts (again) at `next`: a new peer boot, or the end of a bulk transfer. */
  restart(next: number): void {
    this.expected = next;
    this.early.clear();
    this.nackedUpTo = 0;
    this.needsBulk = false;
    this.stats.expected = next;
  }

  /** A DATA message: what can be applied now, in order, and what to answer. */
  data(b: DataBody, now: number): { apply: JournalRecord[]; out: Outgoing[] } {
    this.stats.received++;
    const apply: JournalRecord[] = [];
    const out: Outgoing[] = [];
    if (b.seq < this.expected || this.early.has(b.seq)) {
      this.stats.duplicates++;
      // Our ACK may have been lost: say again where we are.
      out.push(this.ackNow());
      return { apply, out };
    }
    if (b.seq > this.expected) {
      if (b.seq - this.expected > this.opts.reorderWindow) {
        this.stats.gapsTooWide++;
        this.needsBulk = true;
        return { apply, out };
      }
      this.early.set(b.seq, b.records);
      this.stats.early++;
      out.push(...this.gapNack(b.seq - 1, now));
      return { apply, out };
    }
    apply.push(...b.records);
    this.expected++;
    for (let r = this.early.get(this.expected); r; r = this.early.get(this.expected)) {
      this.early.delete(this.expected);
      apply.push(...r);
      this.expected++;
    }
    this.stats.delivered += apply.length;
    this.stats.expected = this.expected;
    if (!this.ackDue) this.ackDue = now + this.opts.ackDelayMs;
    return { apply, out };
  }

  /** The peer's ALIVE: a message we never saw is a gap to ask for. */
  alive(last: number, now: number): Outgoing[] {
    return last >= this.expected ? this.gapNack(last, now) : [];
  }

  tick(now: number): Outgoing[] {
    const out: Outgoing[] = [];
    if (this.ackDue && now >= this.ackDue) out.push(this.ackNow());
    // A NACK may be lost too: ask again while the gap stays open.
    if (this.early.size && now - this.nackAt >= this.opts.resendAfterMs) {
      this.nackedUpTo = 0;
      out.push(...this.gapNack(Math.min(...this.early.keys()) - 1, now));
    }
    return out;
  }

  private ackNow(): Outgoing {
    this.ackDue = 0;
    return { type: 'ack', body: { upTo: this.expected - 1 } };
  }

  private gapNack(to: number, now: number): Outgoing[] {
    if (to < this.expected || to <= this.nackedUpTo) return [];
    const from = Math.max(this.expected, this.nackedUpTo + 1);
    this.nackedUpTo = to;
    this.nackAt = now;
    this.stats.nacks++;
    return [{ type: 'nack', body: { from, to } }];
  }
}
