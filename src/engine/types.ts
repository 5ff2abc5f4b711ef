// Domain types of the session engine. The engine is pure: time comes in as an argument and
// everything it wants done to the world (kernel, logs) goes out as Effect values.

import type { DecodedPacket, Direction, FlowTuple, PacketResult } from '../packet/types.js';
import type { Expectation, ExpectationEndReason, ExpectationRefusal } from './expectations.js';

export type RefreshDirection = 'both' | 'outgoing' | 'incoming';
export type Verdict = 'accept' | 'drop';

/** Per-endpoint TCP state codes as printed in proto_state (one digit per side). */
export const enum TcpCode {
  NONE = 0,
  ESTABLISHED = 1,
  SYN_SENT = 2,
  SYN_RECV = 3,
  FIN_WAIT = 4,
  TIME_WAIT = 5,
  CLOSE = 6,
  CLOSE_WAIT = 7,
  LAST_ACK = 8,
  LISTEN = 9,
}

export interface DirCounters {
  bytes: number;
  packets: number;
  /** Packets allowed although they were errors (ICMP errors related to the session). */
  allowErr: number;
}

/** Network address translation seen in the kernel's reply tuple (the engine itself never translates). */
export interface NatView {
  /** Source after SNAT (reply tuple's destination), when it differs from the original source. */
  snat?: { addr: string; port: number };
  /** Destination after DNAT (reply tuple's source), when it differs from the original destination. */
  dnat?: { addr: string; port: number };
  /**
   * The destination the client addressed, a VIP the kernel translated in prerouting before the
   * daemon saw the packet (the session's orig already carries the mapped destination).
   */
  vip?: { addr: string; port: number };
}

export interface Session {
  serial: number;
  orig: FlowTuple;
  /** The tuple replies travel with: the reverse of orig unless NAT rewrote it. */
  reply: FlowTuple;
  policyId: number;
  vd: number;
  /** Admission counts this session against this user record (UserTable id); unset = not counted. */
  userId?: number;
  /** Admission accounts this session to this service (index into SERVICES). */
  serviceIndex?: number;
  /** The session helper parsing this session's payload (it then stays in userspace). */
  helper?: string;
  /** A child of an expectation: the serial (engine key) of the session whose helper expected it. */
  parent?: number;
  /** A child's serial as shown: inherited from the parent (seed 004), which may itself have inherited it. */
  inheritedSerial?: number;
  /** A child: the expectation it used. */
  expected?: { id: number; helper: string; kind: string };
  /** Endpoint states: [original side, reply side]. UDP/ICMP use [0, replySeen ? 1 : 0]. */
  state: [number, number];
  createdAt: number;
  /** Absolute expiry time (ms). */
  expireAt: number;
  /** Time of this session's entry in the expiry queue (ms); 0 before it is filed. */
  timerAt: number;
  /** The timeout that refreshes set (s): the session TTL or a TCP transitional timer. */
  timeout: number;
  /** The TTL configured for this session (s), kept while transitional timers apply. */
  ttl: number;
  /** The TTL came from a session-ttl port entry or the policy (not the default). */
  ttlFromRule: boolean;
  refreshDir: RefreshDirection;
  org: DirCounters;
  rep: DirCounters;
  /** Interface indexes seen in each direction (0 = not yet seen). */
  devOrg: [number, number];
  devReply: [number, number];
  offloaded: boolean;
  /** Offload requested but not yet confirmed by the kernel. */
  offloadPending: boolean;
  /**
   * Offloaded by its first packet's verdict: the index of the timer class (kernel-cache.ts) whose
   * conntrack timeouts mirror this session's, so kernel readings translate into refresh times.
   */
  kernelClass?: number;
  /** Id of the kernel conntrack entry that carries the session (from its first packet). */
  ctId?: number;
  /** Time (ms) the current timer counts from: the last refresh or state change. */
  timerBase?: number;
  /**
   * The timer ran out while offloaded: 1 = waiting a grace for the kernel's DESTROY, 2 = a reading
   * was asked for, 3 = a reading was asked for because the adaptive (scaled) timer ran out.
   */
  kernelWait?: 0 | 1 | 2 | 3;
  nat?: NatView;
  /** Consecutive kernel dumps that lacked this offloaded session. */
  kernelMisses?: number;
  /** Last kernel counters seen, to tell per-direction activity while offloaded. */
  kernelSeen?: { orgPackets: number; replyPackets: number };
  /** Recent rate samples, for the tx/rx speed line. */
  rate: { at: number; orgBytes: number; replyBytes: number; txBps: number; rxBps: number };
  logTraffic: boolean;
}

/** What the shell knows about a packet besides its bytes. */
export interface PacketMeta {
  indev: number;
  outdev: number;
  mark: number;
  /** The kernel conntrack entry's id, when the queue delivers it. */
  ctId?: number;
  /** The packet created that conntrack entry (ctinfo IP_CT_NEW): the kernel knew no connection for it. */
  ctNew?: boolean;
  /**
   * An operator traces or captures this flow: its session is not offloaded at the first packet
   * but once established, so the trace or capture shows the handshake.
   */
  watched?: boolean;
  /**
   * The shell knows no interfaces (a capture): every packet comes as entering through indev, and
   * a reply's pair is the mirror of that, as it would have entered through the other side.
   */
  mirrorReplyDevs?: boolean;
}

export interface Packet extends PacketMeta {
  decoded: PacketResult;
  /** The raw L3 packet, for helpers that parse payloads. */
  data?: Buffer;
}

/** `dirty`: a changed policy no longer admits the session (or the session it was expected by). */
export type SessionEndReason = 'ttl' | 'tcp-close' | 'kernel-destroy' | 'kernel-gone' | 'clear' | 'replaced' | 'parent-closed' | 'dirty';

export type Effect =
  | { kind: 'offload'; serial: number; orig: FlowTuple; mark: number; kernelTimeout: number }
  | { kind: 'ct-delete'; serial: number; orig: FlowTuple }
  /**
   * Read an offloaded session from the kernel (conntrack entry, and its refresh-set element when
   * `refreshSet`) and hand the result to SessionEngine.kernelReading.
   */
  | { kind: 'kernel-read'; serial: number; orig: FlowTuple; refreshSet: boolean }
  | { kind: 'session-start'; session: Session }
  | { kind: 'session-end'; session: Session; reason: SessionEndReason; at: number }
  /** A helper's expectation: open its pinhole in the kernel (timeout 0 = as long as it lives). */
  | { kind: 'expect-add'; expectation: Expectation }
  /** An expectation ended: close its pinhole. `child` is the session that used it. */
  | { kind: 'expect-end'; expectation: Expectation; reason: ExpectationEndReason; child?: number; at: number }
  | { kind: 'expect-refused'; refusal: ExpectationRefusal }
  /** Conserve mode entered or left, or the one-shot fail-open latch set or reset (src/engine/admission.ts). */
  | { kind: 'conserve'; event: 'enter' | 'leave' | 'one-shot-latched' | 'one-shot-reset'; reasons: string[]; memory: number; at: number };

export interface Decision {
  verdict: Verdict;
  /** Packet mark bits the verdict sets (OR'ed into the packet's mark): the first-packet offload. */
  mark?: number;
  /** Why, for counters and the flow trace. */
  reason: string;
  session?: Session;
  dir?: Direction;
  effects: Effect[];
}

export interface PolicyMatch {
  policyId: number;
  action: 'accept' | 'deny';
  logTraffic: boolean;
  /** Index of the virtual domain (VDOM) the session belongs to; 0 is root. */
  vd: number;
  /** The policy's own session TTL (s), overriding session-ttl. */
  sessionTtl?: number;
  /** Packet mark bits the verdict of a new session carries so the kernel source-translates it (nat.ts). */
  natMark?: number;
}

/** A kernel conntrack entry as the engine needs it (from events or dumps). */
export interface KernelFlowReport {
  event: 'new' | 'update' | 'destroy' | 'dump';
  /** The conntrack entry's id (CTA_ID). */
  id?: number;
  /** When the kernel created the entry (ms since the epoch), when it keeps timestamps. */
  startMs?: number;
  orig: FlowTuple;
  reply: FlowTuple;
  mark?: number;
  /** Linux TCP_CONNTRACK_* state number. */
  tcpState?: number;
  counters?: { origPackets: number; origBytes: number; replyPackets: number; replyBytes: number };
}

export type { DecodedPacket, Direction, FlowTuple, PacketResult };
