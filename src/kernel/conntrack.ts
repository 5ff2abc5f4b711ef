// The kernel's conntrack table as the daemon sees it: an event stream, dumps, and the two writes
// the daemon makes (delete an entry when its session ends, update mark/timeout on offload).
//
// Two netlink sockets, on purpose:
//   - the event socket joins the NEW/UPDATE/DESTROY groups, with a large receive buffer
//     (SO_RCVBUFFORCE, 8 MiB: SO_RCVBUF is capped by rmem_max, which a netns cannot raise);
//   - the request socket carries dumps, deletes and updates. An event caused by our own request
//     carries our port id and that request's seq, so on a shared socket it could be taken for
//     the reply; separate sockets keep replies exact and events complete.
//
// Lost events. The event socket sets NETLINK_NO_ENOBUFS, so a full buffer does not put the socket
// in an error state; the kernel still counts each dropped message in the socket's sk_drops,
// which /proc/self/net/netlink shows per port id. checkDrops() (also run on a timer) compares
// it and calls onOverrun when it grew; an ENOBUFS/overrun report from the socket itself (when
// NO_ENOBUFS is off) goes to the same callback. Either way the daemon resyncs with dump(): lost
// events are never a crash, only a counter and a resync.
//
// Kernel facts that shape the use (see DESIGN.md): DESTROY events only come for entries created
// while some listener was subscribed, so subscribe before queueing starts and dump() to adopt
// older entries; counters only exist for entries created while nf_conntrack_acct=1, hence
// enableAccounting() at start-up.

import { readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { NetlinkChannel, NetlinkError } from './netlink-socket.js';
import { encodeNfMessage, NETLINK_NETFILTER, type NlMessage } from './nfnetlink.js';
import {
  decodeConntrack, ctDumpRequest, ctDumpZeroRequest, ctGetRequest, encodeCtDelete, encodeCtUpdate,
  NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY,
  type KernelConn, type TupleKey, type CtUpdate,
} from './conntrack-codec.js';

export type { KernelConn, TupleKey, CtUpdate } from './conntrack-codec.js';

const ENOENT = 2;
const ACCT_SYSCTL = '/proc/sys/net/netfilter/nf_conntrack_acct';
const TIMESTAMP_SYSCTL = '/proc/sys/net/netfilter/nf_conntrack_timestamp';

/** Writes 1 to a boolean sysctl unless it is 1 already; the outcome, never an exception. */
async function enableSysctl(path: string): Promise<SysctlResult> {
  let previous: string | undefined;
  try {
    previous = (await readFile(path, 'utf8')).trim();
  } catch {
    // Fall through: the write reports the real problem.
  }
  if (previous === '1') return { ok: true, previous };
  try {
    await writeFile(path, '1\n');
    return { ok: true, ...(previous !== undefined ? { previous } : {}) };
  } catch (e) {
    return { ok: false, ...(previous !== undefined ? { previous } : {}), error: `writing 1 to ${path}: ${(e as Error).message}` };
  }
}

export type ConntrackEventKind = 'new' | 'update' | 'destroy';

export interface KernelConntrackOptions {
  /** Receive buffer of the event socket in bytes (SO_RCVBUFFORCE). Default 8 MiB. */
  receiveBuffer?: number;
  /** Event groups to join. Default all three. */
  events?: ConntrackEventKind[];
  /** NETLINK_NO_ENOBUFS on the event socket (losses then show only in sk_drops). Default true. */
  noEnobufs?: boolean;
  /** How often to compare the socket's drop counter, ms; 0 disables the timer. Default 1000. */
  dropCheckIntervalMs?: number;
  /** Timeout for dumps, deletes and updates, ms. Default 10000. */
  requestTimeoutMs?: number;
}

export interface ConntrackStats {
  /** Decoded event entries delivered to onEvents. */
  events: number;
  /** Event messages that did not decode (counted, skipped). */
  malformed: number;
  /** Times a loss was detected (overrun report or sk_drops growth). */
  overruns: number;
  /** Messages the kernel dropped for the event socket, from sk_drops (last read). */
  kernelDrops: number;
  /** Other receive errors on the event socket. */
  receiveErrors: number;
  /** Deletes/updates that found the entry already gone. */
  alreadyGone: number;
}

export interface SysctlResult {
  ok: boolean;
  /** Value before the write ('0' or '1'), when it could be read. */
  previous?: string;
  error?: string;
}

/** sk_drops of our netlink socket as shown in /proc/<self>/net/netlink (protocol 12, our port id). */
export function readNetlinkDrops(portId: number, text?: string): number | undefined {
  let t = text;
  if (t === undefined) {
    try {
      t = readFileSync('/proc/self/net/netlink', 'utf8');
    } catch {
      return undefined;
    }
  }
  // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
  for (const line of t.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && f[1] === String(NETLINK_NETFILTER) && f[2] === String(portId >>> 0)) {
      const d = Number(f[8]);
      return Number.isFinite(d) ? d : undefined;
    }
  }
  return undefined;
}

const MAX_INFLIGHT = 256;

export class KernelConntrack {
  /** Event entries of one socket burst, in kernel order. */
  onEvents?: (conns: KernelConn[]) => void;
  /** Events were lost: the caller should resync with dump(). */
  onOverrun?: (drops: number) => void;
  /** A receive error other than an overrun (errno). */
  onError?: (errno: number) => void;

  readonly stats: ConntrackStats = { events: 0, malformed: 0, overruns: 0, kernelDrops: 0, receiveErrors: 0, alreadyGone: 0 };

  private readonly opts: Required<KernelConntrackOptions>;
  private events?: NetlinkChannel;
  private requests?: NetlinkChannel;
  /**
   * Requests in flight on the request socket. Each answer takes about a kilobyte of the socket's
   * receive buffer until read, so thousands issued in one go (a tick ending many sessions, a
   * view reading many) would overrun it and lose answers: past the limit, requests wait.
   */
  private inflight = 0;
  private readonly waiters: Array<() => void> = [];
  private dropTimer?: NodeJS.Timeout;

  constructor(opts: KernelConntrackOptions = {}) {
    this.opts = {
      receiveBuffer: opts.receiveBuffer ?? 8 * 1024 * 1024,
      events: opts.events ?? ['new', 'update', 'destroy'],
      noEnobufs: opts.noEnobufs ?? true,
      dropCheckIntervalMs: opts.dropCheckIntervalMs ?? 1000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
    };
  }

  /**
   * Sets nf_conntrack_acct=1 for the current network namespace so entries carry packet/byte
   * counters. Never throws: the daemon logs the result and runs without counters if it failed.
   */
  static enableAccounting(path = ACCT_SYSCTL): Promise<SysctlResult> {
    return enableSysctl(path);
  }

  /** Sets nf_conntrack_timestamp=1 so entries carry their creation time. Never throws. */
  static enableTimestamps(path = TIMESTAMP_SYSCTL): Promise<SysctlResult> {
    return enableSysctl(path);
  }

  /** Joins the event groups and starts delivering to onEvents. Idempotent. */
  subscribe(): void {
    if (this.events) return;
    const groups = this.opts.events.map((k) => ({ new: NFNLGRP_CONNTRACK_NEW, update: NFNLGRP_CONNTRACK_UPDATE, destroy: NFNLGRP_CONNTRACK_DESTROY })[k]);
    const ch = new NetlinkChannel(NETLINK_NETFILTER, {
      receiveBuffer: this.opts.receiveBuffer,
      noEnobufs: this.opts.noEnobufs,
      groups,
    });
    ch.onMessages = (msgs) => this.deliver(msgs);
    ch.onOverrun = () => {
      this.stats.overruns++;
      this.onOverrun?.(this.stats.kernelDrops);
    };
    ch.onError = (errno) => {
      this.stats.receiveErrors++;
      this.onError?.(errno);
    };
    ch.start();
    this.events = ch;
    this.stats.kernelDrops = readNetlinkDrops(ch.portId) ?? 0;
    if (this.opts.dropCheckIntervalMs > 0) {
      this.dropTimer = setInterval(() => this.checkDrops(), this.opts.dropCheckIntervalMs);
      this.dropTimer.unref();
    }
  }

  /** Port id of the event socket (0 before subscribe); for diagnostics. */
  get eventPortId(): number {
    return this.events?.portId ?? 0;
  }

  /**
   * Compares the event socket's kernel drop counter with the last reading; on growth counts an
   * overrun and calls onOverrun. Returns true when events were lost since the last check.
   */
  checkDrops(): boolean {
    if (!this.events) return false;
    const d = readNetlinkDrops(this.events.portId);
    if (d === undefined || d <= this.stats.kernelDrops) return false;
    this.stats.kernelDrops = d;
    this.stats.overruns++;
    this.onOverrun?.(d);
    return true;
  }

  private deliver(msgs: NlMessage[]): void {
    const out: KernelConn[] = [];
    for (const m of msgs) {
      const c = decodeConntrack(m);
      if (c) out.push(c);
      else this.stats.malformed++;
    }
    if (out.length === 0) return;
    this.stats.events += out.length;
    this.onEvents?.(out);
  }

  private channel(): NetlinkChannel {
    if (!this.requests) {
      const ch = new NetlinkChannel(NETLINK_NETFILTER, { receiveBuffer: 4 * 1024 * 1024 });
      ch.start();
      this.requests = ch;
    }
    return this.requests;
  }

  /** Every entry of the table (or one family). Entries that fail to decode are skipped and counted. */
  async dump(family?: 4 | 6): Promise<KernelConn[]> {
    return this.dumpWith(encodeNfMessage(ctDumpRequest({ family })), 'conntrack dump');
  }

  /** Like dump(), and each entry's counters are reset by the kernel as it is read. */
  async dumpAndZero(family?: 4 | 6): Promise<KernelConn[]> {
    return this.dumpWith(encodeNfMessage(ctDumpZeroRequest({ family })), 'conntrack dump-and-zero');
  }

  private async dumpWith(req: Buffer, context: string): Promise<KernelConn[]> {
    const replies = await this.channel().request([req], { timeoutMs: this.opts.requestTimeoutMs, context });
    const out: KernelConn[] = [];
    for (const m of replies) {
      const c = decodeConntrack(m, true);
      if (c) out.push(c);
      else this.stats.malformed++;
    }
    return out;
  }

  /**
   * Deletes the entry with this original tuple. Resolves true when deleted, false when it was
   * already gone (ENOENT is the normal race with the kernel's own expiry, not an error).
   */
  async delete(key: TupleKey | KernelConn): Promise<boolean> {
    const k = toKey(key);
    return this.write(encodeCtDelete(k), `conntrack delete ${describe(k)}`);
  }

  /**
   * Runs a request when a slot is free: at once (synchronously, so requests of one burst still
   * share the cork) while under the limit, else when an earlier one is answered.
   */
  private limited<T>(run: () => Promise<T>): Promise<T> {
    if (this.inflight < MAX_INFLIGHT) {
      this.inflight++;
      return run().finally(() => this.release());
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve)).then(run).finally(() => this.release());
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.inflight--;
  }

  /** One entry by its original tuple; undefined when the kernel has none. */
  get(key: TupleKey | KernelConn): Promise<KernelConn | undefined> {
    const k = toKey(key);
    return this.limited(() => this.getNow(k));
  }

  private async getNow(k: TupleKey): Promise<KernelConn | undefined> {
    const ch = this.channel();
    if (!ch.isCorked) {
      ch.cork();
      queueMicrotask(() => ch.uncork());
    }
    try {
      const replies = await ch.request([encodeNfMessage(ctGetRequest(k))], { timeoutMs: this.opts.requestTimeoutMs, context: `conntrack get ${describe(k)}` });
      for (const m of replies) {
        const c = decodeConntrack(m, true);
        if (c) return c;
      }
      return undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENOENT) return undefined;
      throw e;
    }
  }

  /** Changes mark bits and/or the timeout of an existing entry; false when it is gone. */
  async update(key: TupleKey | KernelConn, u: CtUpdate): Promise<boolean> {
    if (u.mark === undefined && u.timeout === undefined) return true;
    const k = toKey(key);
    return this.write(encodeCtUpdate(k, u), `conntrack update ${describe(k)}`);
  }

  /**
   * Deletes and updates issued until uncork() leave in one sendmsg (see NetlinkChannel.cork).
   * The datapath corks around a burst of decisions so that the offload updates of a burst cost
   * one system call, and still reach the kernel before the burst's verdicts. Nests.
   */
  cork(): void {
    this.channel().cork();
  }

  uncork(): void {
    this.requests?.uncork();
  }

  private write(req: Buffer, context: string): Promise<boolean> {
    return this.limited(() => this.writeNow(req, context));
  }

  private async writeNow(req: Buffer, context: string): Promise<boolean> {
    const ch = this.channel();
    if (!ch.isCorked) {
      // Writes issued in one go (the session ends of a timer tick, an operator's clear) share a
      // sendmsg too: held until the current job's synchronous code is done.
      ch.cork();
      queueMicrotask(() => ch.uncork());
    }
    try {
      await ch.request([req], { timeoutMs: this.opts.requestTimeoutMs, context });
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENOENT) {
        this.stats.alreadyGone++;
        return false;
      }
      throw e;
    }
  }

  /** Closes both sockets; pending requests are rejected. */
  close(): void {
    if (this.dropTimer) clearInterval(this.dropTimer);
    this.dropTimer = undefined;
    this.events?.close();
    this.events = undefined;
    this.requests?.close();
    this.requests = undefined;
  }
}

function toKey(k: TupleKey | KernelConn): TupleKey {
  if ('tuple' in k) return k;
  return { tuple: k.orig, ...(k.origIcmp ? { icmp: k.origIcmp } : {}), ...(k.zone ? { zone: k.zone } : {}) };
}

function describe(k: TupleKey): string {
  const t = k.tuple;
  const a = (h: string, p: number): string => (t.family === 6 ? `[${h}]:${p}` : `${h}:${p}`);
  return `proto ${t.proto} ${a(t.src, t.sport)} -> ${a(t.dst, t.dport)}${k.zone ? ` zone ${k.zone}` : ''}`;
}
