// Typed access to the native netlink socket, plus the request/reply bookkeeping every netlink
// user needs (sequence numbers, ACK and dump completion, error decoding). Protocol codecs
// (NFQUEUE, ctnetlink, nf_tables) stay outside: this module only knows the netlink framing.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as osConstants } from 'node:os';
import {
  NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, NLMSG_NOOP,
  splitMessages, parseAttrs, errorOf, type NlMessage,
} from './nfnetlink.js';

/** The addon's socket, exactly as native/netlink.cc exports it. */
export interface NativeNetlinkSocket {
  readonly portId: number;
  readonly fd: number;
  addMembership(group: number): void;
  setReceiveBuffer(bytes: number): number;
  setNoEnobufs(on: boolean): void;
  setExtAck(on: boolean): void;
  send(buf: Buffer): void;
  sendv(bufs: Buffer[]): void;
  receiveSync(timeoutMs: number): Buffer | null;
  start(
    onBurst: (data: Buffer, ends: Uint32Array) => void,
    onEvent: (kind: 'overrun' | 'error', errno: number) => void,
    opts?: { maxBurst?: number; maxBytes?: number },
  ): void;
  stop(): void;
  close(): void;
}

export interface NativeAddon {
  NetlinkSocket: new (protocol: number) => NativeNetlinkSocket;
}

/** Directory holding package.json, found from this file so src/ (tap) and dist/src/ (tsc) agree. */
export function packageRoot(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (let i = 0; i < 16; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`nfsessiond: no package.json above ${fileURLToPath(from)}`);
}

let addon: NativeAddon | undefined;

/** Loads the addon on first use, so modules that only need the codecs never require a build. */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  const path = join(root, 'native', 'build', 'Release', 'nfsessiond_native.node');
  if (!existsSync(path)) {
    throw new Error(`nfsessiond native addon not built: ${path} is missing (run \`npm run install\` in ${root})`);
  }
  addon = createRequire(join(root, 'package.json'))(path) as NativeAddon;
  return addon;
}

const errnoNames = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);

/** Symbolic name of a positive errno ('ENOENT'), or 'E<n>' when unknown. */
export const errnoName = (errno: number): string => errnoNames.get(errno) ?? `E${errno}`;

/** An error reported by the kernel in NLMSG_ERROR (or a failed syscall), with Node-style fields. */
export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(errno: number, context: string, extAck?: string) {
    const code = errnoName(errno);
    super(`${context}: ${code}${extAck ? ` (${extAck})` : ''}`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = code;
    this.syscall = 'netlink';
  }
}

const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

/** The kernel's extended-ACK text of an NLMSG_ERROR, when NETLINK_EXT_ACK is on and it has one. */
export function extAckMessage(m: NlMessage): string | undefined {
  if (m.type !== NLMSG_ERROR || !(m.flags & NLM_F_ACK_TLVS) || m.body.length < 20) return undefined;
  // The error body is: int error, then the offending request (only its header when capped).
  const echoed = m.flags & NLM_F_CAPPED ? 16 : m.body.readUInt32LE(4);
  const off = 4 + ((echoed + 3) & ~3);
  if (off > m.body.length) return undefined;
  const msg = parseAttrs(m.body, off).get(NLMSGERR_ATTR_MSG);
  return msg ? msg.toString('utf8').replace(/\0+$/, '') : undefined;
}

/** A netlink request's identity inside the channel. */
interface Awaited {
  seq: number;
  dump: boolean;
}

interface PendingRequest {
  waiting: Set<number>;
  dumps: Set<number>;
  replies: NlMessage[];
  error?: NetlinkError;
  resolve: (msgs: NlMessage[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  context: string;
}

/** Requests held by cork() leave early once they add up to this many bytes (well below sk_sndbuf). */
const CORK_FLUSH_BYTES = 32 * 1024;

export interface ChannelOptions {
  /** SO_RCVBUF(FORCE) size in bytes; unset keeps the kernel default. */
  receiveBuffer?: number;
  /** NETLINK_NO_ENOBUFS: on for sockets whose loss is handled another way (NFQUEUE fail-open). */
  noEnobufs?: boolean;
  /** Multicast groups to join right away (ctnetlink / nf_tables events). */
  groups?: number[];
  /** Burst bounds passed to the native drain. */
  maxBurst?: number;
  maxBytes?: number;
  /** Bound on unsolicited datagrams kept while transactSync runs before start(); default 4096. */
  backlogLimit?: number;
}

export interface RequestOptions {
  timeoutMs?: number;
  /**
   * true (default): stamp NLM_F_REQUEST|NLM_F_ACK on every message and wait for each one.
   * false: keep the caller's flags and wait only for messages that carry NLM_F_ACK or are dumps
   * (nf_tables batches, whose BEGIN/END framing must keep the flags the caller chose).
   */
  ack?: boolean;
  /** Label for error messages ("bind queue 5"). */
  context?: string;
}

const DEFAULT_TIMEOUT_MS = 5000;
const MAX_TIMEOUT_MS = 120_000;

/**
 * One netlink socket with request/reply tracking. Two modes of use:
 *   - start-up: transactSync() blocks in poll() until every request is answered, so
 *     configuration errors surface as exceptions before the daemon reports ready;
 *   - running: start() polls from the event loop; request() is the async form, and every message
 *     that is not a reply goes to onMessages / onMessage (NFQUEUE packets, conntrack events).
 *
 * Replies are matched by sequence number and our port id. A multicast event caused by our own
 * request carries our port id and that request's seq, so subscribe to events on a separate
 * channel from the one used for requests whose replies must be exact.
 */
export class NetlinkChannel {
  readonly socket: NativeNetlinkSocket;
  /** Unsolicited messages of one burst, in arrival order (called before onMessage for each). */
  onMessages?: (msgs: NlMessage[]) => void;
  /** Unsolicited messages, one at a time. */
  onMessage?: (msg: NlMessage) => void;
  /** Called after each burst, once its messages were dispatched. */
  onBurstEnd?: () => void;
  /** The kernel dropped messages for us (ENOBUFS). Pending dumps are rejected as incomplete. */
  onOverrun?: () => void;
  /** Any other receive error (errno). */
  onError?: (errno: number) => void;

  private seq: number;
  private readonly pending = new Map<number, PendingRequest>();
  private readonly backlog: Buffer[] = [];
  private readonly backlogLimit: number;
  private backlogDropped = 0;
  private started = false;
  private closed = false;
  private corkDepth = 0;
  private corked: Array<{ msgs: Buffer[]; req: PendingRequest }> = [];
  private corkedBytes = 0;
  private readonly burstOpts: { maxBurst?: number; maxBytes?: number };

  constructor(protocol: number, opts: ChannelOptions = {}) {
    const { NetlinkSocket } = loadNative();
    this.socket = new NetlinkSocket(protocol);
    try {
      if (opts.receiveBuffer !== undefined) this.socket.setReceiveBuffer(opts.receiveBuffer);
      if (opts.noEnobufs) this.socket.setNoEnobufs(true);
      this.socket.setExtAck(true);
      for (const g of opts.groups ?? []) this.socket.addMembership(g);
    } catch (e) {
      this.socket.close();
      throw e;
    }
    this.backlogLimit = opts.backlogLimit ?? 4096;
    this.burstOpts = { maxBurst: opts.maxBurst, maxBytes: opts.maxBytes };
    // Start away from 0 (kernel-originated messages use seq 0) and from other sockets' ranges,
    // which makes stray replies in captures easier to attribute.
    this.seq = ((Date.now() & 0xffff) << 8) | 1;
  }

  get portId(): number {
    return this.socket.portId;
  }

  /** Unsolicited datagrams dropped because the pre-start backlog was full. */
  get droppedBeforeStart(): number {
    return this.backlogDropped;
  }

  nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  /** Sends raw bytes in one sendmsg, without any bookkeeping (verdicts, fire-and-forget). */
  sendRaw(bufs: Buffer[]): void {
    if (bufs.length === 1) this.socket.send(bufs[0]);
    else if (bufs.length > 1) this.socket.sendv(bufs);
  }

  /** Rewrites seq (and flags if ack) of every message in bufs, in place; returns what to wait for. */
  private stamp(bufs: Buffer[], ack: boolean): Awaited[] {
    const out: Awaited[] = [];
    for (const buf of bufs) {
      let off = 0;
      while (off + 16 <= buf.length) {
        const len = buf.readUInt32LE(off);
        if (len < 16 || off + len > buf.length) throw new RangeError('netlink request with a bad nlmsg_len');
        let flags = buf.readUInt16LE(off + 6);
        const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP && (flags & NLM_F_REQUEST) !== 0;
        if (ack) {
          flags |= NLM_F_REQUEST | (dump ? 0 : NLM_F_ACK);
          buf.writeUInt16LE(flags, off + 6);
        }
        const seq = this.nextSeq();
        buf.writeUInt32LE(seq, off + 8);
        if (dump || flags & NLM_F_ACK) out.push({ seq, dump });
        off += (len + 3) & ~3;
      }
    }
    return out;
  }

  /**
   * Sends msgs in one sendmsg and blocks until every awaited seq is answered (ACK, error, or
   * NLMSG_DONE for dumps). Returns the non-ACK replies in order; throws NetlinkError for the first
   * nonzero error after all replies arrived, so the socket is left with no stale answers.
   * Only for start-up and shutdown: it must not be used while start() is polling.
   */
  transactSync(msgs: Buffer[], timeoutMs = DEFAULT_TIMEOUT_MS, opts: Omit<RequestOptions, 'timeoutMs'> = {}): NlMessage[] {
    if (this.closed) throw new NetlinkError(osConstants.errno.EBADF, opts.context ?? 'netlink request');
    if (this.started) throw new Error('NetlinkChannel.transactSync while started: use request()');
    const awaited = this.stamp(msgs, opts.ack ?? true);
    const context = opts.context ?? 'netlink request';
    this.sendRaw(msgs);
    const waiting = new Set(awaited.map((a) => a.seq));
    const dumps = new Set(awaited.filter((a) => a.dump).map((a) => a.seq));
    const replies: NlMessage[] = [];
    let firstError: NetlinkError | undefined;
    const deadline = Date.now() + Math.min(Math.max(0, timeoutMs), MAX_TIMEOUT_MS);
    while (waiting.size > 0) {
      const left = deadline - Date.now();
      const dgram = left > 0 ? this.socket.receiveSync(left) : null;
      if (dgram === null) {
        throw new NetlinkError(osConstants.errno.ETIMEDOUT, `${context}: no answer for ${waiting.size} message(s)`);
      }
      let ours = false;
      for (const m of splitMessages(dgram)) {
        if (!waiting.has(m.seq) || (m.pid !== this.portId && m.pid !== 0)) continue;
        ours = true;
        const err = this.consumeReply(m, waiting, dumps, replies);
        if (err && !firstError) firstError = new NetlinkError(err, context, extAckMessage(m));
      }
      if (!ours) this.keepBacklog(dgram);
    }
    if (firstError) throw firstError;
    return replies;
  }

  /** Routes one reply; returns a nonzero errno when the kernel refused the request. */
  private consumeReply(m: NlMessage, waiting: Set<number>, dumps: Set<number>, replies: NlMessage[]): number {
    if (m.type === NLMSG_ERROR) {
      waiting.delete(m.seq);
      return errorOf(m) ?? 0;
    }
    if (m.type === NLMSG_DONE) {
      waiting.delete(m.seq);
      // A dump that fails mid-way reports the error as a negative int in DONE.
      return m.body.length >= 4 && m.body.readInt32LE(0) < 0 ? -m.body.readInt32LE(0) : 0;
    }
    if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) return 0;
    replies.push(m);
    return 0;
  }

  private keepBacklog(dgram: Buffer): void {
    if (this.backlog.length < this.backlogLimit) this.backlog.push(dgram);
    else this.backlogDropped++;
  }

  /**
   * Sends msgs in one sendmsg and resolves with the replies once every awaited seq is answered.
   * Requires start(). Rejects with NetlinkError on a nonzero error or timeout. While the channel
   * is corked (see cork()) the messages wait and leave with the others at uncork().
   */
  request(msgs: Buffer[], opts: RequestOptions = {}): Promise<NlMessage[]> {
    if (this.closed) return Promise.reject(new NetlinkError(osConstants.errno.EBADF, opts.context ?? 'netlink request'));
    if (!this.started) return Promise.reject(new Error('NetlinkChannel.request before start(): use transactSync'));
    const context = opts.context ?? 'netlink request';
    let awaited: Awaited[];
    try {
      awaited = this.stamp(msgs, opts.ack ?? true);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<NlMessage[]>((resolve, reject) => {
      const timeoutMs = Math.min(Math.max(0, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS), MAX_TIMEOUT_MS);
      const waiting = new Set<number>();
      const dumps = new Set<number>();
      for (const a of awaited) {
        waiting.add(a.seq);
        if (a.dump) dumps.add(a.seq);
      }
      const req: PendingRequest = {
        waiting,
        dumps,
        replies: [],
        resolve,
        reject,
        context,
        timer: undefined,
      };
      if (waiting.size > 0) {
        req.timer = setTimeout(() => {
          this.settle(req, new NetlinkError(osConstants.errno.ETIMEDOUT, `${context}: no answer for ${req.waiting.size} message(s)`));
        }, timeoutMs);
      }
      if (this.corkDepth > 0) {
        for (const s of waiting) this.pending.set(s, req);
        this.corked.push({ msgs, req });
        for (const m of msgs) this.corkedBytes += m.length;
        if (this.corkedBytes >= CORK_FLUSH_BYTES) this.sendCorked();
        return;
      }
      try {
        this.sendRaw(msgs);
      } catch (e) {
        clearTimeout(req.timer);
        reject(e);
        return;
      }
      if (waiting.size === 0) {
        resolve([]);
        return;
      }
      for (const s of waiting) this.pending.set(s, req);
    });
  }

  /**
   * Holds back the messages of request() until the matching uncork(), which sends everything
   * held in one sendmsg (several when it grows past CORK_FLUSH_BYTES). The kernel handles the
   * messages of a datagram one after another and answers each on its own, exactly as if they
   * had come in separate sendmsg calls; only the system calls are saved. Nests.
   */
  cork(): void {
    this.corkDepth++;
  }

  uncork(): void {
    if (this.corkDepth === 0) return;
    if (--this.corkDepth === 0) this.sendCorked();
  }

  get isCorked(): boolean {
    return this.corkDepth > 0;
  }

  private sendCorked(): void {
    if (this.corked.length === 0) return;
    const batch = this.corked;
    this.corked = [];
    this.corkedBytes = 0;
    const bufs: Buffer[] = [];
    for (const c of batch) for (const m of c.msgs) bufs.push(m);
    try {
      if (this.closed) throw new NetlinkError(osConstants.errno.EBADF, 'netlink request');
      this.sendRaw(bufs);
    } catch (e) {
      for (const c of batch) this.settle(c.req, e as Error);
      return;
    }
    for (const c of batch) if (c.req.waiting.size === 0) this.settle(c.req);
  }

  private settle(req: PendingRequest, err?: Error): void {
    if (req.timer !== undefined) clearTimeout(req.timer);
    for (const s of req.waiting) this.pending.delete(s);
    req.waiting.clear();
    if (err) req.reject(err);
    else if (req.error) req.reject(req.error);
    else req.resolve(req.replies);
  }

  /** Starts event-loop polling; backlog kept by transactSync is delivered first. */
  start(): void {
    if (this.closed) throw new NetlinkError(osConstants.errno.EBADF, 'NetlinkChannel.start');
    if (this.started) return;
    this.started = true;
    this.socket.start(
      (data, ends) => this.onBurst(data, ends),
      (kind, errno) => this.onEvent(kind, errno),
      this.burstOpts,
    );
    if (this.backlog.length > 0) {
      const old = this.backlog.splice(0);
      // Deliver after the caller finished wiring up hooks.
      setImmediate(() => {
        if (this.closed) return;
        for (const d of old) this.onBurst(d, Uint32Array.of(d.length));
      });
    }
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.socket.stop();
    const err = new Error('NetlinkChannel stopped with requests pending');
    const held = this.corked;
    this.corked = [];
    this.corkedBytes = 0;
    for (const c of held) this.settle(c.req, err);
    this.failPending(err);
  }

  close(): void {
    if (this.closed) return;
    this.stop();
    this.closed = true;
    this.socket.close();
    this.backlog.length = 0;
  }

  get isStarted(): boolean {
    return this.started;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private failPending(err: Error): void {
    const reqs = new Set(this.pending.values());
    for (const r of reqs) this.settle(r, err);
  }

  private onEvent(kind: 'overrun' | 'error', errno: number): void {
    if (kind === 'overrun') {
      // A lost datagram may have been part of a dump: its result would be silently incomplete.
      const dumps = new Set([...this.pending.values()].filter((r) => r.dumps.size > 0));
      for (const r of dumps) this.settle(r, new NetlinkError(errno, `${r.context}: receive overrun during dump`));
      this.onOverrun?.();
    } else {
      this.onError?.(errno);
    }
  }

  private onBurst(data: Buffer, ends: Uint32Array): void {
    const unsolicited: NlMessage[] = [];
    const hasPending = this.pending.size > 0;
    let start = 0;
    for (let i = 0; i < ends.length; i++) {
      const end = ends[i];
      const msgs = splitMessages(data.subarray(start, end));
      start = end;
      for (const m of msgs) {
        const req = hasPending ? this.pending.get(m.seq) : undefined;
        if (req && (m.pid === this.portId || m.pid === 0)) {
          const err = this.consumeReply(m, req.waiting, req.dumps, req.replies);
          if (err && !req.error) req.error = new NetlinkError(err, req.context, extAckMessage(m));
          if (!req.waiting.has(m.seq)) this.pending.delete(m.seq);
          if (req.waiting.size === 0) this.settle(req);
        } else {
          unsolicited.push(m);
        }
      }
    }
    if (unsolicited.length > 0) {
      this.onMessages?.(unsolicited);
      const one = this.onMessage;
      if (one) for (const m of unsolicited) one(m);
    }
    this.onBurstEnd?.();
  }
}
