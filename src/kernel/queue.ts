// NFQUEUE consumer: binds queue numbers, delivers packets to JS one burst at a time and sends the
// verdicts of a burst back in a single sendmsg, batching runs of equal verdicts.
//
// One netlink socket serves every queue number of the process. nfnetlink_queue routes each queue
// instance to the port id that bound it, so one socket can own many queues; with one socket a
// burst drains all of them in a single wake-up and the verdicts for all of them leave in one
// sendmsg, which is where the per-packet cost goes. Separate sockets only pay off with one
// consumer per thread, and then each worker constructs its own PacketQueue for its own queues.

import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { NetlinkChannel, NetlinkError } from './netlink-socket.js';
import { NETLINK_NETFILTER, NFNL_SUBSYS_QUEUE, NLMSG_ERROR, errorOf, parseAttrs, type NlMessage } from './nfnetlink.js';
import {
  NFQA_CFG_F_CONNTRACK, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO, NFQA_CFG_F_UID_GID, NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND,
  NFQNL_COPY_PACKET, NFQNL_MAX_COPY_RANGE, NFQNL_MSG_PACKET, NF_ACCEPT, NF_DROP, NFQA_PACKET_HDR, encodeConfig, encodeVerdictMessages, parsePacket,
  planVerdicts, type Decision, type NfqPacket,
} from './nfqueue-codec.js';

export interface PacketQueueOptions {
  /** Queue numbers to bind, e.g. [0, 1] for `--queue-balance 0:1`. */
  queues: number[];
  /** Bytes of each packet copied to us; default 0xffff (whole packet). */
  copyRange?: number;
  /** Kernel queue length per queue number; default 4096. */
  maxLen?: number;
  /** Accept instead of drop when the kernel queue is full; default false (fail closed). */
  failOpen?: boolean;
  /** Receive GSO super-packets unsegmented (checksums may be partial); default true. */
  gso?: boolean;
  /** Ask for the socket owner's uid/gid on locally generated packets; default false. */
  uidGid?: boolean;
  /** Deliver each packet's conntrack id and ctinfo (NFQA_CFG_F_CONNTRACK). */
  conntrack?: boolean;
  /** SO_RCVBUFFORCE bytes; default 8 MiB. */
  receiveBuffer?: number;
  /** Bounds of one burst (datagrams, bytes); defaults 64 and 4 MiB. */
  maxBurst?: number;
  maxBytes?: number;
  /** Bound on each bind/unbind exchange at start-up and shutdown; default 5000 ms. */
  configTimeoutMs?: number;
}

const UNDECIDED = 0;
const DECIDED = 1;
const SENT = 2;

/** A packet waiting for (or given) a verdict. payload views the burst's buffer, never reused. */
export interface QueuedPacket extends NfqPacket {
  /** Verdict recorded by verdict(); undefined while undecided. */
  verdict?: number;
  verdictMark?: number;
  /** Internal: 0 undecided, 1 decided (not yet sent), 2 sent. */
  state: number;
}

export interface QueueStats {
  /** Packet messages received and decoded. */
  received: number;
  /** Messages that looked like packets but did not decode (left to the kernel; see close()). */
  malformed: number;
  bursts: number;
  /** Packets whose verdict was handed to the kernel. */
  verdicts: number;
  /** Verdict messages sent (single + batch). */
  messages: number;
  /** Of those, NFQNL_MSG_VERDICT_BATCH messages. */
  batchMessages: number;
  /** sendmsg calls carrying verdicts. */
  sends: number;
  overruns: number;
  /** Error answers from the kernel (e.g. ENOENT for a verdict on an unknown id), receive and send errors. */
  errors: number;
  /** Packets received and not yet decided. */
  undecided: number;
}

interface QueueState {
  queue: number;
  /** Packets in delivery order; head is the oldest one not yet covered by a sent verdict. */
  fifo: QueuedPacket[];
  head: number;
  /** Packets decided since the last flush, in decision order. */
  late: QueuedPacket[];
}

const PACKET_TYPE = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
const PROC_QUEUES = '/proc/net/netfilter/nfnetlink_queue';

/** Port id that holds a queue number in this network namespace, from procfs (undefined if unbound). */
export function queueOwner(queue: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(PROC_QUEUES, 'latin1');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 2 && Number(f[0]) === queue) return Number(f[1]);
  }
  return undefined;
}

export class PacketQueue {
  /** Called once per burst with every packet of it, in delivery order (queues may be mixed). */
  onPackets?: (batch: QueuedPacket[]) => void;
  /** The socket overran; packets were lost to us (the kernel settled them per failOpen). */
  onOverrun?: () => void;
  /** Errors the queue survived: kernel error answers to verdicts, receive or send failures. */
  onError?: (err: Error) => void;

  readonly queues: readonly number[];
  private readonly channel: NetlinkChannel;
  private readonly states = new Map<number, QueueState>();
  private readonly timeoutMs: number;
  private readonly counters = {
    received: 0, malformed: 0, bursts: 0, verdicts: 0, messages: 0, batchMessages: 0, sends: 0, overruns: 0, errors: 0,
  };
  private decidedCount = 0;
  private pendingDecisions = 0;
  private inBurst = false;
  private flushScheduled = false;
  private closed = false;
  private readonly failOpen: boolean;

  /** Opens the socket and binds every queue; throws (with errno) naming the queue that failed. */
  constructor(opts: PacketQueueOptions) {
    if (opts.queues.length === 0) throw new RangeError('PacketQueue: no queue numbers');
    for (const q of opts.queues) {
      if (!Number.isInteger(q) || q < 0 || q > 0xffff) throw new RangeError(`PacketQueue: bad queue number ${q}`);
    }
    this.queues = [...new Set(opts.queues)];
    this.timeoutMs = opts.configTimeoutMs ?? 5000;
    this.channel = new NetlinkChannel(NETLINK_NETFILTER, {
      receiveBuffer: opts.receiveBuffer ?? 8 * 1024 * 1024,
      // Losing a packet message to a full socket buffer is settled by the kernel (fail-open or
      // drop); ENOBUFS would only add an error state to clear, so turn it off.
      noEnobufs: true,
      maxBurst: opts.maxBurst,
      maxBytes: opts.maxBytes,
      // Packets that arrive while later queues are still being bound wait here until start().
      // The kernel never has more than maxLen unsettled packets per queue, which bounds this.
      backlogLimit: (opts.maxLen ?? 4096) * opts.queues.length + 64,
    });
    this.failOpen = opts.failOpen ?? false;
    const mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID | NFQA_CFG_F_CONNTRACK;
    const value =
      (opts.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0) | (opts.gso ?? true ? NFQA_CFG_F_GSO : 0) | (opts.uidGid ? NFQA_CFG_F_UID_GID : 0) |
      (opts.conntrack ? NFQA_CFG_F_CONNTRACK : 0);
    const bound: number[] = [];
    try {
      for (const queue of this.queues) {
        const msg = encodeConfig({
          queue, cmd: NFQNL_CFG_CMD_BIND, copyMode: NFQNL_COPY_PACKET,
          copyRange: Math.min(opts.copyRange ?? NFQNL_MAX_COPY_RANGE, NFQNL_MAX_COPY_RANGE),
          maxLen: opts.maxLen ?? 4096, flags: { mask, value },
        });
        try {
          this.channel.transactSync([msg], this.timeoutMs, { context: `bind NFQUEUE ${queue}` });
        } catch (e) {
          throw this.bindError(queue, e);
        }
        bound.push(queue);
        this.states.set(queue, { queue, fifo: [], head: 0, late: [] });
      }
    } catch (e) {
      this.unbind(bound);
      this.channel.close();
      throw e;
    }
    this.channel.onMessages = (msgs) => this.onMessages(msgs);
    this.channel.onOverrun = () => {
      this.counters.overruns++;
      this.onOverrun?.();
    };
    this.channel.onError = (errno) => this.fail(new NetlinkError(errno, 'NFQUEUE receive'));
  }

  private bindError(queue: number, e: unknown): Error {
    if (!(e instanceof NetlinkError)) return e as Error;
    const owner = queueOwner(queue);
    // The kernel answers EPERM both without CAP_NET_ADMIN and when another socket owns the queue
    // (its port id check comes first), and EBUSY when this socket already bound it.
    if (e.errno === osConstants.errno.EPERM && owner !== undefined && owner !== this.channel.portId) {
      return new NetlinkError(e.errno, `bind NFQUEUE ${queue}: already bound by another process (netlink port ${owner})`);
    }
    if (e.errno === osConstants.errno.EPERM) {
      return new NetlinkError(e.errno, `bind NFQUEUE ${queue}: not permitted (needs CAP_NET_ADMIN)`);
    }
    if (e.errno === osConstants.errno.EBUSY) {
      return new NetlinkError(e.errno, `bind NFQUEUE ${queue}: already bound${owner !== undefined ? ` (netlink port ${owner})` : ''}`);
    }
    return e;
  }

  get portId(): number {
    return this.channel.portId;
  }

  /** Starts delivering packets (including any that queued up while binding). */
  start(): void {
    if (this.closed) throw new Error('PacketQueue closed');
    this.channel.start();
  }

  /** Stops reading; the kernel keeps queueing up to maxLen, then drops or accepts per failOpen. */
  pause(): void {
    this.channel.stop();
  }

  resume(): void {
    this.start();
  }

  private onMessages(msgs: NlMessage[]): void {
    const batch: QueuedPacket[] = [];
    this.inBurst = true;
    try {
      for (const m of msgs) {
        if (m.type === NLMSG_ERROR) {
          const errno = errorOf(m) ?? 0;
          if (errno !== 0) this.fail(new NetlinkError(errno, 'NFQUEUE verdict'));
          continue;
        }
        if (m.type !== PACKET_TYPE) continue;
        const p = parsePacket(m) as QueuedPacket | undefined;
        if (p === undefined) {
          this.settleMalformed(m);
          continue;
        }
        p.state = UNDECIDED;
        this.stateOf(p.queue).fifo.push(p);
        batch.push(p);
      }
      this.counters.bursts++;
      this.counters.received += batch.length;
      if (batch.length > 0) this.onPackets?.(batch);
    } finally {
      this.inBurst = false;
      // Consumers that decide synchronously get exactly one send per burst.
      this.flush();
    }
  }

  private stateOf(queue: number): QueueState {
    let st = this.states.get(queue);
    if (st === undefined) {
      st = { queue, fifo: [], head: 0, late: [] };
      this.states.set(queue, st);
    }
    return st;
  }

  /**
   * A packet message we cannot decode still holds a place in the kernel's queue. Left alone, the
   * next batch verdict would settle it with whatever verdict that batch carries; instead it gets
   * its own verdict in order, following the configured failure policy.
   */
  private settleMalformed(m: NlMessage): void {
    this.counters.malformed++;
    if (m.body.length < 4) return;
    const hdr = parseAttrs(m.body, 4).get(NFQA_PACKET_HDR);
    if (hdr === undefined || hdr.length < 4) return;
    const p = {
      queue: m.body.readUInt16BE(2), id: hdr.readUInt32BE(0), family: m.body.readUInt8(0), hwProtocol: 0, hook: 0,
      mark: 0, indev: 0, outdev: 0, payload: Buffer.alloc(0), capLen: 0, state: UNDECIDED,
    } satisfies QueuedPacket;
    this.counters.received++;
    this.stateOf(p.queue).fifo.push(p);
    this.verdict(p, this.failOpen ? NF_ACCEPT : NF_DROP);
  }

  /** Records a decision; it is sent at the end of the current burst or on the next turn of the loop. */
  verdict(pkt: QueuedPacket, verdict: number, mark?: number): void {
    if (pkt.state !== UNDECIDED) throw new Error(`NFQUEUE ${pkt.queue} packet ${pkt.id}: verdict given twice`);
    if (this.closed) return;
    const st = this.states.get(pkt.queue);
    if (st === undefined) throw new Error(`NFQUEUE ${pkt.queue} packet ${pkt.id}: not from this PacketQueue`);
    pkt.state = DECIDED;
    pkt.verdict = verdict;
    pkt.verdictMark = mark;
    st.late.push(pkt);
    this.pendingDecisions++;
    this.decidedCount++;
    if (!this.inBurst && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  accept(pkt: QueuedPacket, mark?: number): void {
    this.verdict(pkt, NF_ACCEPT, mark);
  }

  drop(pkt: QueuedPacket): void {
    this.verdict(pkt, NF_DROP);
  }

  /**
   * Sends every recorded decision in one sendmsg. Per queue, decisions at the head of the
   * delivery order (nothing undecided before them) may be batched; decisions made behind an
   * undecided packet go out as single verdicts so they are not held up by it, and can never
   * settle it by accident (see planVerdicts).
   */
  flush(): void {
    if (this.pendingDecisions === 0 || this.closed) return;
    const bufs: Buffer[] = [];
    let packets = 0;
    let messages = 0;
    let batches = 0;
    for (const st of this.states.values()) {
      if (st.late.length === 0) continue;
      const decided: Decision[] = [];
      const fifo = st.fifo;
      let h = st.head;
      for (; h < fifo.length && fifo[h].state !== UNDECIDED; h++) {
        const p = fifo[h];
        if (p.state === DECIDED) {
          decided.push(p.verdictMark === undefined ? { id: p.id, verdict: p.verdict! } : { id: p.id, verdict: p.verdict!, mark: p.verdictMark });
          p.state = SENT;
        }
      }
      const batchable = decided.length;
      for (const p of st.late) {
        if (p.state !== DECIDED) continue;
        decided.push(p.verdictMark === undefined ? { id: p.id, verdict: p.verdict! } : { id: p.id, verdict: p.verdict!, mark: p.verdictMark });
        p.state = SENT;
      }
      st.late.length = 0;
      // Drop references to settled packets so their burst buffers can be collected.
      if (h === fifo.length) {
        fifo.length = 0;
        st.head = 0;
      } else if (h > 1024 && h * 2 > fifo.length) {
        fifo.splice(0, h);
        st.head = 0;
      } else {
        st.head = h;
      }
      if (decided.length === 0) continue;
      const plan = planVerdicts(decided, batchable);
      for (const v of plan) if (v.batch) batches++;
      messages += plan.length;
      packets += decided.length;
      bufs.push(encodeVerdictMessages(st.queue, plan));
    }
    this.pendingDecisions = 0;
    if (bufs.length === 0) return;
    try {
      this.channel.sendRaw(bufs);
      this.counters.sends++;
      this.counters.verdicts += packets;
      this.counters.messages += messages;
      this.counters.batchMessages += batches;
    } catch (e) {
      // The decisions are lost; the packets stay queued in the kernel until unbind settles them.
      this.fail(e as Error);
    }
  }

  private fail(err: Error): void {
    this.counters.errors++;
    this.onError?.(err);
  }

  stats(): QueueStats {
    return { ...this.counters, undecided: this.counters.received - this.decidedCount };
  }

  /**
   * Sends pending verdicts, unbinds every queue and closes the socket. Packets still undecided
   * are settled by the kernel when the queue is unbound (it drops them). Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.channel.stop();
    this.unbind([...this.states.keys()].filter((q) => this.queues.includes(q)));
    this.channel.close();
  }

  private unbind(queues: number[]): void {
    for (const queue of queues) {
      try {
        this.channel.transactSync([encodeConfig({ queue, cmd: NFQNL_CFG_CMD_UNBIND })], this.timeoutMs, {
          context: `unbind NFQUEUE ${queue}`,
        });
      } catch (e) {
        // Closing the socket unbinds too (the kernel releases a port's queues), so this only
        // reports; shutdown carries on.
        this.fail(e as Error);
      }
    }
  }
}
