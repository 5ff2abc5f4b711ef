// The kernel side of the daemon in one place: the ruleset, the queue and ctnetlink, started and
// stopped in the order that keeps traffic safe:
//  start: conntrack events first (DESTROY only reaches listeners subscribed before the entry was
//         created), then bind the queue (packets wait in the socket), then install the rules,
//         then deliver packets;
//  stop:  remove the rules (new packets stop coming), then give the last verdicts and unbind.

import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { DaemonConfig } from '../config/load.js';
import type { Decision, KernelFlowReport, Packet } from '../engine/types.js';
import { reverseTuple } from '../engine/flow-key.js';
import type { KernelCacheConfig, KernelReading, TimerClass } from '../engine/kernel-cache.js';
import { IPS_SEEN_REPLY } from './conntrack-codec.js';
import { RefreshSet } from './refresh-set.js';
import { decode } from '../packet/decode.js';
import type { FlowTuple } from '../packet/types.js';
import { KernelConntrack, type KernelConn } from './conntrack.js';
import { IP_CT_NEW, NF_ACCEPT, NF_DROP } from './nfqueue-codec.js';
import { PacketQueue, type QueuedPacket } from './queue.js';
import { Ruleset, type InstallResult } from './ruleset.js';
import { PinholeSet, type PinholeKey } from './pinholes.js';

export interface DatapathHandlers {
  /** Decides one packet; called for every packet of a burst with the burst's time. */
  decide(p: Packet, now: number): Pick<Decision, 'verdict' | 'mark'>;
  onKernelReports(reports: KernelFlowReport[], now: number): void;
  onKernelDump(reports: KernelFlowReport[], now: number): void;
}

/** Per-queue counters the kernel keeps (/proc/net/netfilter/nfnetlink_queue). */
export interface KernelQueueCounters {
  queue: number;
  waiting: number;
  queueDropped: number;
  userDropped: number;
  lastId: number;
}

export function readKernelQueueCounters(text?: string): KernelQueueCounters[] {
  let t = text;
  if (t === undefined) {
    try {
      t = readFileSync('/proc/net/netfilter/nfnetlink_queue', 'latin1');
    } catch {
      return [];
    }
  }
  const out: KernelQueueCounters[] = [];
  for (const line of t.split('\n')) {
    // queue portid waiting copy_mode copy_range queue_dropped user_dropped id_sequence 1
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.some((x) => Number.isNaN(x))) continue;
    out.push({ queue: f[0], waiting: f[2], queueDropped: f[5], userDropped: f[6], lastId: f[7] });
  }
  return out;
}

const toReport = (c: KernelConn): KernelFlowReport => c;

export class Datapath {
  mechanism?: InstallResult['mechanism'];
  private ruleset?: Ruleset;
  private queue?: PacketQueue;
  private conntrack?: KernelConntrack;
  private pinholes?: PinholeSet;
  private refreshSet?: RefreshSet;
  private syncing = false;
  private readonly queues: number[];
  /** Full conntrack dumps and per-session kernel reads done, for `diagnose sys session stat`. */
  private readonly kernelCounters = { dumps: 0, reads: 0, readFailures: 0 };

  /** `kernelCache`: offload at the first packet, with the kernel mirroring session timers. */
  constructor(private readonly cfg: DaemonConfig, private readonly log: Logger, private readonly h: DatapathHandlers, private readonly kernelCache?: KernelCacheConfig) {
    this.queues = Array.from({ length: cfg.queue.count }, (_, i) => cfg.queue.first + i);
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    const acct = await KernelConntrack.enableAccounting();
    if (!acct.ok) this.log.warn({ err: acct.error }, 'cannot enable nf_conntrack_acct: kernel counters of offloaded sessions will be missing');
    if (this.kernelCache) {
      // Entry creation times tell the end of an older connection on the same ports from this one's.
      const ts = await KernelConntrack.enableTimestamps();
      if (!ts.ok) this.log.warn({ err: ts.error }, 'cannot enable nf_conntrack_timestamp: the end of an older connection reusing a session\'s ports may end the session early');
    }

    // With the first-packet rules the kernel sends NEW only for pinhole children and DESTROY for
    // every connection of ours; UPDATE events are never needed.
    const ct = new KernelConntrack(this.kernelCache ? { events: ['new', 'destroy'] } : {});
    ct.onEvents = (conns) => this.h.onKernelReports(conns.map(toReport), Date.now());
    ct.onOverrun = (drops) => {
      this.log.warn({ drops }, 'conntrack events lost (socket overrun): resyncing by dump');
      // A session ends only when two dumps in a row lack it (a dump can miss entries that move).
      void this.syncKernel().then(() => setTimeout(() => void this.syncKernel(), 2000).unref());
    };
    ct.onError = (errno) => this.log.error({ errno }, 'conntrack event socket error');
    ct.subscribe();
    this.conntrack = ct;

    const queueOptions = {
      queues: this.queues,
      copyRange: cfg.queue.copyRange,
      maxLen: cfg.queue.maxlen,
      failOpen: cfg.queue.failOpen,
      gso: true,
      conntrack: this.kernelCache !== undefined,
    };
    let q: PacketQueue;
    try {
      q = new PacketQueue(queueOptions);
    } catch (e) {
      // Kernels built without the ctnetlink glue cannot attach conntrack data to queued packets.
      if (!(e instanceof Error && /ENOTSUP|EOPNOTSUPP/.test(e.message)) || !queueOptions.conntrack) throw e;
      this.log.info('the kernel cannot attach conntrack ids to queued packets: new kernel entries of offloaded sessions are told by time');
      q = new PacketQueue({ ...queueOptions, conntrack: false });
    }
    q.onPackets = (batch) => this.onBurst(batch);
    q.onOverrun = () => this.log.warn('NFQUEUE socket overrun: packets were settled by the kernel');
    q.onError = (err) => this.log.error({ err: err.message }, 'NFQUEUE error');
    this.queue = q;

    this.ruleset = new Ruleset({
      table: cfg.table,
      hooks: cfg.hooks,
      queues: { first: this.queues[0], last: this.queues[this.queues.length - 1] },
      bypass: cfg.queue.bypass,
      offloadMark: cfg.engine.offloadMark,
      nat: cfg.nat,
      ...(this.kernelCache ? {
        firstPacket: {
          classes: [...this.kernelCache.classes.all],
          refreshHold: this.kernelCache.refreshHold,
          refreshSetSize: Math.max(65536, cfg.engine.maxSessions || 1048576),
        },
      } : {}),
    });
    const res = await this.ruleset.install();
    if (this.kernelCache) {
      for (const c of this.kernelCache.classes.all) c.installed = true;
      this.refreshSet = new RefreshSet(cfg.table);
    }
    this.mechanism = res.mechanism;
    this.pinholes = new PinholeSet(cfg.table);
    this.log.info({ mechanism: res.mechanism, table: res.table, hooks: res.hooks, queues: res.queues, bypass: res.bypass },
      res.mechanism === 'xt-nfqueue' ? 'kernel has no nft queue: queueing with the xt NFQUEUE target (iptables-nft)' : 'queueing with nft queue');
    q.start();
    await this.syncKernel();
  }

  private onBurst(batch: QueuedPacket[]): void {
    const now = Date.now();
    const q = this.queue!;
    // Offload updates decided in this burst go out together, before the burst's verdicts are
    // flushed (the queue sends them when this returns): an accepted packet still reaches the
    // kernel after the mark that keeps the rest of its flow out of the queue.
    const ct = this.conntrack;
    ct?.cork();
    try {
      for (const k of batch) {
        const p: Packet = { indev: k.indev, outdev: k.outdev, mark: k.mark, decoded: decode(k.payload), data: k.payload };
        if (k.ctId !== undefined) p.ctId = k.ctId;
        if (k.ctInfo === IP_CT_NEW) p.ctNew = true;
        const d = this.h.decide(p, now);
        if (d.verdict === 'accept') q.verdict(k, NF_ACCEPT, d.mark === undefined ? undefined : (k.mark | d.mark) >>> 0);
        else q.verdict(k, NF_DROP);
      }
    } finally {
      ct?.uncork();
    }
  }

  /** Creates the ct timeout objects of timer classes a reload brought; they are used once installed. */
  async addTimerClasses(classes: TimerClass[]): Promise<void> {
    if (!this.ruleset || !classes.length) return;
    await this.ruleset.addClasses(classes);
    for (const c of classes) c.installed = true;
  }

  /**
   * Reads offloaded sessions from the kernel: the conntrack entry (remaining timeout, state,
   * counters) and, for those refreshed by one direction, their refresh-set element. Requests
   * issued together share a sendmsg; a failed read leaves that session out of the answer.
   */
  async read(items: Array<{ serial: number; orig: FlowTuple; refreshSet: boolean }>): Promise<Array<{ serial: number; reading: KernelReading }>> {
    const ct = this.conntrack;
    if (!ct) return [];
    this.kernelCounters.reads += items.length;
    // The daemon sees a destination-translated (VIP) connection after prerouting, with its mapped
    // destination: the kernel's original tuple differs, its reply tuple is the reverse of ours.
    const lookup = async (orig: FlowTuple) => (await ct.get({ tuple: orig })) ?? ct.get({ tuple: reverseTuple(orig), byReply: true });
    const got = await Promise.all(items.map((it) => lookup(it.orig).then((c) => ({ it, c }), (err: Error) => {
      this.log.debug({ serial: it.serial, err: err.message }, 'kernel read failed');
      this.kernelCounters.readFailures++;
      return undefined;
    })));
    const out = await Promise.all(got.map(async (g) => {
      if (!g) return undefined;
      const { it, c } = g;
      if (!c) return { serial: it.serial, reading: { gone: true } };
      const reading: KernelReading = {
        ...(c.timeout !== undefined ? { timeout: c.timeout } : {}),
        ...(c.tcpState !== undefined ? { tcpState: c.tcpState } : {}),
        ...(c.status !== undefined ? { seenReply: (c.status & IPS_SEEN_REPLY) !== 0 } : {}),
        ...(c.mark !== undefined ? { mark: c.mark } : {}),
        ...(c.counters ? { counters: c.counters } : {}),
        reply: c.reply,
        orig: c.orig,
      };
      if (it.refreshSet && this.refreshSet && c.id !== undefined) {
        try {
          reading.refreshLeftMs = await this.refreshSet.leftMs(c.id);
        } catch (err) {
          this.log.debug({ serial: it.serial, err: (err as Error).message }, 'refresh element read failed');
          this.kernelCounters.readFailures++;
          return undefined;
        }
      }
      return { serial: it.serial, reading };
    }));
    return out.filter((x): x is { serial: number; reading: KernelReading } => x !== undefined);
  }

  /** Marks the kernel entry offloaded (its packets skip the queue) and lengthens its timeout. */
  offload(orig: FlowTuple, mark: number, timeout: number): Promise<boolean> {
    if (!this.conntrack) return Promise.resolve(false);
    return this.conntrack.update({ tuple: orig }, { mark, markMask: mark, timeout });
  }

  async deleteKernelEntry(orig: FlowTuple): Promise<boolean> {
    const ct = this.conntrack;
    if (!ct) return false;
    // A VIP's entry is known to the kernel by the client's original destination: find it by its reply tuple.
    return (await ct.delete({ tuple: orig })) || ct.delete({ tuple: reverseTuple(orig), byReply: true });
  }

  /** Opens the kernel pinhole of an expectation (timeoutMs 0: until closed). */
  pinholeAdd(k: PinholeKey, timeoutMs: number): Promise<boolean> {
    return this.pinholes ? this.pinholes.add(k, timeoutMs) : Promise.resolve(false);
  }

  pinholeDelete(k: PinholeKey): Promise<boolean> {
    return this.pinholes ? this.pinholes.delete(k) : Promise.resolve(false);
  }

  pinholeStats(): Record<string, number> {
    return { ...(this.pinholes?.stats ?? { added: 0, deleted: 0, alreadyGone: 0, failed: 0 }) };
  }

  /** The kernel's conntrack table as reports (for the restart reconciliation). */
  async dumpKernel(): Promise<KernelFlowReport[]> {
    return this.conntrack ? (await this.conntrack.dump()).map(toReport) : [];
  }

  /** Dumps the kernel table: counters and activity of offloaded sessions, and ends missed by an overrun. */
  async syncKernel(): Promise<void> {
    if (!this.conntrack || this.syncing) return;
    this.syncing = true;
    this.kernelCounters.dumps++;
    try {
      const conns = await this.conntrack.dump();
      this.h.onKernelDump(conns.map(toReport), Date.now());
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'conntrack dump failed');
    } finally {
      this.syncing = false;
    }
  }

  /**
   * The queue's counters, ours and the kernel's. With the queue rules' counter read, every packet
   * offered to the queue is accounted for: `offered` = what the kernel numbered and sent
   * (`numbered`) + what it would not take because the queue was full (`queue_dropped`, or
   * `failopen_passed` under queue-fail-open, which the kernel does not count itself); of the
   * numbered ones, what we never read (`unread`) was lost at a full socket (`user_dropped`, or
   * passed under fail-open) or is still in the socket buffer.
   */
  async queueStats(): Promise<Record<string, number>> {
    const s = this.queue?.stats();
    // Two reads, not one snapshot: exact once traffic pauses, off by the packets between them while it flows.
    const offered = this.ruleset && this.mechanism ? await this.ruleset.queuedPackets(this.mechanism) : undefined;
    const k = readKernelQueueCounters().filter((c) => this.queues.includes(c.queue));
    const sum = (f: (c: KernelQueueCounters) => number) => k.reduce((a, c) => a + f(c), 0);
    const received = s?.received ?? 0;
    const numbered = sum((c) => c.lastId);
    const full = offered === undefined ? undefined : Math.max(0, offered - numbered - sum((c) => c.queueDropped));
    return {
      received,
      verdicts: s?.verdicts ?? 0,
      bursts: s?.bursts ?? 0,
      batch_messages: s?.batchMessages ?? 0,
      sends: s?.sends ?? 0,
      overruns: s?.overruns ?? 0,
      errors: s?.errors ?? 0,
      waiting: sum((c) => c.waiting),
      queue_dropped: sum((c) => c.queueDropped),
      user_dropped: sum((c) => c.userDropped),
      ...(offered === undefined ? {} : { offered, numbered, failopen_passed: full ?? 0 }),
      unread: Math.max(0, numbered - received - sum((c) => c.userDropped)),
      ct_events: this.conntrack?.stats.events ?? 0,
      ct_event_overruns: this.conntrack?.stats.overruns ?? 0,
      ct_dumps: this.kernelCounters.dumps,
      ct_reads: this.kernelCounters.reads,
      ct_read_failures: this.kernelCounters.readFailures,
    };
  }

  async stop(): Promise<void> {
    try {
      await this.ruleset?.remove();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'removing the ruleset failed');
    }
    this.queue?.close();
    this.conntrack?.close();
    this.pinholes?.close();
    this.refreshSet?.close();
  }
}
