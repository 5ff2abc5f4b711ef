// The kernel as an exact cache of the session table.
//
// A session without a helper is decided once, at its first packet: the verdict carries a packet
// mark, and rules of ours later on the same packet path turn it into
//   - the offload bit in the conntrack mark (the connection's next packets skip the queue),
//   - a refresh-direction bit in the conntrack mark when only one direction refreshes the session
//     (a rule then `update`s the connection's ct id in an nf_tables set on every packet of that
//     direction: the element's remaining time tells the exact moment of the last refresh),
//   - a conntrack timeout policy (an nft `ct timeout` object) whose per-state timeouts are the
//     session's own, so the kernel never forgets a session before its TTL; the kernel otherwise
//     resets every entry to its per-protocol timeouts on each packet (UDP 30 s / 120 s).
// The engine's timer stays the authority: when it runs out, the engine asks for the kernel's
// reading of the session (remaining conntrack timeout, state, counters, last refresh) and either
// re-files the timer or ends the session and deletes the kernel entry.
//
// Mark layout, from the configured offload bit B upwards (packet mark and conntrack mark):
//   B      offloaded
//   B+1    refresh-direction outgoing (only original-direction packets refresh)
//   B+2    refresh-direction incoming (only reply packets refresh)
//   B+3..  timer class, CLASS_BITS wide (packet mark only; 0 = none)

import { IPPROTO_TCP, IPPROTO_UDP } from '../packet/types.js';
import type { FlowTuple } from '../packet/types.js';
import type { RefreshDirection } from './types.js';

export const CLASS_BITS = 6;
export const MAX_TIMER_CLASSES = (1 << CLASS_BITS) - 1;

export interface MarkLayout {
  offload: number;
  refreshOrg: number;
  refreshReply: number;
  /** The bits copied into the conntrack mark. */
  ctBits: number;
  classShift: number;
  classMask: number;
  /** Every bit of ours in the packet mark (cleared after the copy). */
  all: number;
}

/** The mark layout above an offload bit; throws when the bit leaves too little room. */
export function markLayout(offloadMark: number): MarkLayout {
  const bit = Math.log2(offloadMark);
  if (!Number.isInteger(bit)) throw new Error(`offload-mark must be a single bit (a power of two), got 0x${offloadMark.toString(16)}`);
  if (bit + 3 + CLASS_BITS > 31) throw new Error(`offload-mark 0x${offloadMark.toString(16)} leaves no room above it for ${3 + CLASS_BITS} more mark bits (use 0x00800000 or lower)`);
  const classShift = bit + 3;
  const classMask = (MAX_TIMER_CLASSES << classShift) >>> 0;
  const offload = offloadMark >>> 0;
  const refreshOrg = (offloadMark << 1) >>> 0;
  const refreshReply = (offloadMark << 2) >>> 0;
  const ctBits = (offload | refreshOrg | refreshReply) >>> 0;
  return { offload, refreshOrg, refreshReply, ctBits, classShift, classMask, all: (ctBits | classMask) >>> 0 };
}

/** The kernel's per-state timeouts (s) for one protocol and TTL: a `ct timeout` object. */
export interface TimerClass {
  /** 1..MAX_TIMER_CLASSES, the value in the packet mark's class field. */
  index: number;
  proto: typeof IPPROTO_TCP | typeof IPPROTO_UDP;
  ttl: number;
  /** nft object name. */
  name: string;
  /** nft `policy = { state: seconds }` for the object. */
  policy: Record<string, number>;
  /** The kernel has the object and the rule naming it; until then no session is given the class. */
  installed: boolean;
}

/** The global TCP timers the kernel mirrors for every TCP class. */
export interface TcpTimers { halfOpen: number; halfClose: number; timeWait: number }

function policyFor(proto: number, ttl: number, t: TcpTimers): Record<string, number> {
  if (proto === IPPROTO_UDP) return { unreplied: ttl, replied: ttl };
  // Retransmission and unacknowledged-data timeouts would otherwise cut an established session
  // below its TTL; the transitional states use the daemon's own timers.
  return {
    syn_sent: t.halfOpen, syn_recv: t.halfOpen, established: ttl, fin_wait: t.halfClose, close_wait: t.halfClose,
    last_ack: t.halfClose, time_wait: t.timeWait, close: t.timeWait, syn_sent2: t.halfOpen, retrans: ttl, unack: ttl,
  };
}

/**
 * The timer classes of a running daemon. Indexes only ever grow: a connection the kernel already
 * holds keeps the object its first packet named, so a reload adds classes and never renumbers.
 */
export class TimerClasses {
  private readonly byKey = new Map<string, TimerClass>();
  private readonly list: TimerClass[] = [];

  constructor(private tcp: TcpTimers) {}

  get all(): readonly TimerClass[] { return this.list; }

  /** Makes sure a class exists for each TTL; returns the ones added. Past the limit none is added. */
  ensure(entries: Iterable<{ proto: number; ttl: number }>, tcp: TcpTimers = this.tcp): TimerClass[] {
    const added: TimerClass[] = [];
    // TCP objects carry the transitional timers in their key and name: new timers are new objects.
    this.tcp = tcp;
    for (const e of entries) {
      if (e.proto !== IPPROTO_TCP && e.proto !== IPPROTO_UDP) continue;
      if (!(e.ttl > 0)) continue;
      const key = this.key(e.proto, e.ttl);
      if (this.byKey.has(key)) continue;
      if (this.list.length >= MAX_TIMER_CLASSES) continue;
      const index = this.list.length + 1;
      const c: TimerClass = {
        index, proto: e.proto, ttl: e.ttl,
        name: `${e.proto === IPPROTO_TCP ? 'tcp' : 'udp'}_${e.ttl}${e.proto === IPPROTO_TCP ? `_${tcp.halfOpen}_${tcp.halfClose}_${tcp.timeWait}` : ''}`,
        policy: policyFor(e.proto, e.ttl, tcp),
        installed: false,
      };
      this.byKey.set(key, c);
      this.list.push(c);
      added.push(c);
    }
    return added;
  }

  private key(proto: number, ttl: number): string {
    return proto === IPPROTO_TCP ? `6/${ttl}/${this.tcp.halfOpen}/${this.tcp.halfClose}/${this.tcp.timeWait}` : `${proto}/${ttl}`;
  }

  /** The exact class for a TTL, else the shortest longer one (never shorter: the daemon's timer deletes). */
  classFor(proto: number, ttl: number): TimerClass | undefined {
    const exact = this.byKey.get(this.key(proto, ttl));
    if (exact?.installed) return exact;
    let best: TimerClass | undefined;
    for (const c of this.list) {
      if (!c.installed || c.proto !== proto || c.ttl < ttl) continue;
      if (proto === IPPROTO_TCP && c.name !== `tcp_${c.ttl}_${this.tcp.halfOpen}_${this.tcp.halfClose}_${this.tcp.timeWait}`) continue;
      if (!best || c.ttl < best.ttl) best = c;
    }
    return best;
  }

  byIndex(index: number): TimerClass | undefined { return this.list[index - 1]; }
}

/** What the kernel mirrors for the engine: the layout, the classes, and the refresh set's element timeout. */
export interface KernelCacheConfig {
  layout: MarkLayout;
  classes: TimerClasses;
  /** Timeout (s) every refresh-set update gives its element; at least the longest TTL. */
  refreshHold: number;
}

/** The packet mark bits of a session's first-packet verdict. */
export function verdictMark(layout: MarkLayout, cls: TimerClass, refresh: RefreshDirection): number {
  let m = layout.offload | ((cls.index << layout.classShift) >>> 0);
  if (refresh === 'outgoing') m |= layout.refreshOrg;
  else if (refresh === 'incoming') m |= layout.refreshReply;
  return m >>> 0;
}

// Linux enum tcp_conntrack names, as used in the nft ct timeout policy.
const KERNEL_TCP_STATE_NAMES = ['none', 'syn_sent', 'syn_recv', 'established', 'fin_wait', 'close_wait', 'last_ack', 'time_wait', 'close', 'syn_sent2'];

/**
 * The timeout (s) the kernel gives an entry of this class on each packet in its current state:
 * remaining = stateTimeout - (now - last packet), so the last packet's time follows.
 */
export function kernelStateTimeout(cls: TimerClass, tcpState: number | undefined): number {
  if (cls.proto === IPPROTO_UDP) return cls.ttl;
  const name = tcpState === undefined ? 'established' : KERNEL_TCP_STATE_NAMES[tcpState];
  return (name && cls.policy[name]) || cls.ttl;
}

/** One reading of an offloaded session from the kernel, as the shell gathers it. */
export interface KernelReading {
  /** The entry is gone (the kernel ended it and the DESTROY was missed). */
  gone?: boolean;
  /** Seconds before the kernel expires the entry. */
  timeout?: number;
  tcpState?: number;
  /** The kernel saw a reply (IPS_SEEN_REPLY). */
  seenReply?: boolean;
  mark?: number;
  counters?: { origPackets: number; origBytes: number; replyPackets: number; replyBytes: number };
  /** The entry's tuples: the translation the kernel's NAT gave the connection. */
  reply?: FlowTuple;
  orig?: FlowTuple;
  /**
   * For a session refreshed in one direction only: ms left on its refresh-set element, or null
   * when the set holds none (no refreshing packet for refreshHold seconds).
   */
  refreshLeftMs?: number | null;
}

/**
 * Every (protocol, TTL) a session can get from this config: each VDOM's default, its session-ttl
 * port entries, and the policies' own session-ttl.
 */
export function sessionTtls(cfg: { defaultTtl: number; ttlRules: Array<{ proto: number; timeout: number }>; vdoms: Array<{ defaultTtl: number; ttlRules: Array<{ proto: number; timeout: number }> }> }, policyTtls: number[]): Array<{ proto: number; ttl: number }> {
  const out: Array<{ proto: number; ttl: number }> = [];
  const both = (ttl: number) => out.push({ proto: IPPROTO_TCP, ttl }, { proto: IPPROTO_UDP, ttl });
  for (const v of [cfg, ...cfg.vdoms]) {
    both(v.defaultTtl);
    for (const r of v.ttlRules) out.push({ proto: r.proto, ttl: r.timeout });
  }
  for (const t of policyTtls) if (t > 0) both(t);
  return out;
}
