// The serialisable view of a session at a given time: what `diagnose sys session list` shows,
// and what `--json` hands to scripts. Field names follow the vendor's record.

import { scaledExpiry } from '../engine/adaptive.js';
import type { Session } from '../engine/types.js';
import type { FlowTuple } from '../packet/types.js';

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
  snat?: { addr: string; port: number };
  dnat?: { addr: string; port: number };
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

/** `adaptive`: the session's adaptive-timeout factor (SessionEngine.adaptiveFactor), 1 when none applies. */
export function viewOf(s: Session, now: number, offloadEnabled = true, adaptive = 1): SessionView {
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
    ...(s.nat?.snat ? { snat: s.nat.snat } : {}),
    ...(s.nat?.dnat ? { dnat: s.nat.dnat } : {}),
    log: s.logTraffic,
    ...(reason ? { no_ofld_reason: reason } : {}),
  };
}
