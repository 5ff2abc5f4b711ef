// The serialisable view of a session at a given time: what `diagnose sys session list` shows,
// and what `--json` hands to scripts. Field names follow the vendor's record.

import { scaledExpiry } from '../engine/adaptive.js';
import type { Session } from '../engine/types.js';
import type { FlowTuple } from '../packet/types.js';
import { referenceCount, type ReferenceHolders } from './session-refs.js';

export interface SessionView {
  serial: number;
  proto: number;
  proto_state: string;
  duration: number;
  /** Seconds left, scaled by adaptive timeouts when they apply. */
  expire: number;
  /** The adaptive-timeout factor scaling `expire`, present only while it is below 1. */
  adaptive?: number;
  timeout: number;
  refresh_dir: 'both' | 'org' | 'reply';
  /** Holders of the session counted when the view was built (session-refs.ts). */
  use: number;
  helper?: string;
  /** A child of an expectation: its parent's serial, the serial it inherited and what it used. */
  parent?: number;
  inherited_serial?: number;
  expected?: { helper: string; kind: string };
  policy_id: number;
  vd: number;
  offloaded: boolean;
  org: { bytes: number; packets: number; allow_err: number };
  reply: { bytes: number; packets: number; allow_err: number };
  tx_speed_bps: number;
  rx_speed_bps: number;
  orig_tuple: FlowTuple;
  reply_tuple: FlowTuple;
  dev_org: [number, number];
  dev_reply: [number, number];
  /**
   * Next hop of the original direction / of the reply direction (session-gateways.ts); the
   * family's unspecified address where none is known (no router asked, no packet that way yet,
   * or the lookup failed).
   */
  gwy: [string, string];
  snat?: { addr: string; port: number };
  dnat?: { addr: string; port: number };
  /** The VIP the client addressed (the kernel translated it to orig_tuple's destination before the daemon saw it). */
  vip?: { addr: string; port: number };
  log: boolean;
  /** Why the session is not offloaded to the kernel (absent when it is). */
  no_ofld_reason?: string;
}

const REFRESH: Record<Session['refreshDir'], SessionView['refresh_dir']> = { both: 'both', outgoing: 'org', incoming: 'reply' };

/**
 * Why a session stays in userspace, in the vendor's `no_ofld_reason:` words where they fit:
 * offload disabled in the config, a helper that must see every packet, a handshake not yet
 * complete, a request the kernel has not confirmed yet.
 */
export function noOffloadReason(s: Session, offloadEnabled: boolean): string | undefined {
  if (s.offloaded) return undefined;
  if (!offloadEnabled) return 'disabled-by-config';
  if (s.helper) return 'helper';
  if (s.offloadPending) return 'offload-pending';
  return 'not-established';
}

/** The `gwy=` of a direction whose next hop is not known. */
export const noGateway = (family: 4 | 6): string => (family === 6 ? '::' : '0.0.0.0');

/**
 * `adaptive`: the session's adaptive-timeout factor (SessionEngine.adaptiveFactor), 1 when none
 * applies. `table`: the engine holding the session, for `use`; without it only what the session
 * records itself (its timer) is counted.
 */
export function viewOf(s: Session, now: number, offloadEnabled = true, adaptive = 1, table?: ReferenceHolders): SessionView {
  const reason = noOffloadReason(s, offloadEnabled);
  return {
    serial: s.serial,
    proto: s.orig.proto,
    proto_state: `${s.state[0]}${s.state[1]}`,
    duration: Math.max(0, Math.floor((now - s.createdAt) / 1000)),
    expire: Math.max(0, Math.ceil((scaledExpiry(s, adaptive) - now) / 1000)),
    ...(adaptive < 1 ? { adaptive: Math.round(adaptive * 100) / 100 } : {}),
    timeout: s.timeout,
    refresh_dir: REFRESH[s.refreshDir],
    use: referenceCount(s, table),
    ...(s.helper ? { helper: s.helper } : {}),
    ...(s.parent !== undefined ? { parent: s.parent } : {}),
    ...(s.inheritedSerial !== undefined ? { inherited_serial: s.inheritedSerial } : {}),
    ...(s.expected ? { expected: { helper: s.expected.helper, kind: s.expected.kind } } : {}),
    policy_id: s.policyId,
    vd: s.vd,
    offloaded: s.offloaded,
    org: { bytes: s.org.bytes, packets: s.org.packets, allow_err: s.org.allowErr },
    reply: { bytes: s.rep.bytes, packets: s.rep.packets, allow_err: s.rep.allowErr },
    tx_speed_bps: s.rate.txBps,
    rx_speed_bps: s.rate.rxBps,
    orig_tuple: s.orig,
    reply_tuple: s.reply,
    dev_org: s.devOrg,
    dev_reply: s.devReply,
    gwy: [noGateway(s.orig.family), noGateway(s.orig.family)],
    ...(s.nat?.snat ? { snat: s.nat.snat } : {}),
    ...(s.nat?.dnat ? { dnat: s.nat.dnat } : {}),
    ...(s.nat?.vip ? { vip: s.nat.vip } : {}),
    log: s.logTraffic,
    ...(reason ? { no_ofld_reason: reason } : {}),
  };
}

/** The engine a session is viewed in: its offload setting, adaptive factor and reference holders. */
export interface ViewingEngine extends ReferenceHolders {
  readonly config: { readonly offload: boolean };
  adaptiveFactor(vd: number): number;
}

/** The view of a session of `engine`'s table, as the daemon's list shows it. */
export function viewIn(engine: ViewingEngine, s: Session, now: number): SessionView {
  return viewOf(s, now, engine.config.offload, engine.adaptiveFactor(s.vd), engine);
}
