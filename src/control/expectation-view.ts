// What `diagnose sys session list expectation` shows: each expectation as the pseudo-session the
// vendor prints (seed 004), and, for scripts, which child each used expectation became.

import type { Expectation } from '../engine/expectations.js';
import type { FlowTuple } from '../packet/types.js';
import { noGateway, type SessionView } from './session-view.js';

export interface ExpectationView {
  id: number;
  helper: string;
  kind: string;
  proto: number;
  /** Seconds since the helper created it. */
  duration: number;
  /** Seconds left; negative once past its nominal lifetime when it tracks its parent. */
  expire: number;
  /** Seconds it was given (the nominal lifetime when it tracks its parent). */
  lifetime: number;
  tracks_parent: boolean;
  /** The parent's session TTL, as the vendor's `timeout=`. */
  timeout: number;
  policy_id: number;
  vd: number;
  /** Serial inherited from the parent, shown as `serial=`. */
  serial: number;
  /** The parent session's serial (the engine's key; differs from `serial` when the parent is itself a child). */
  parent: number;
  /** Expected tuple; sport 0 = any source port. */
  tuple: FlowTuple;
}

export function expectationView(x: Expectation, now: number): ExpectationView {
  return {
    id: x.id,
    helper: x.helper,
    kind: x.kind,
    proto: x.proto,
    duration: Math.max(0, Math.floor((now - x.createdAt) / 1000)),
    expire: Math.ceil((x.expireAt - now) / 1000),
    lifetime: x.lifetime,
    tracks_parent: x.tracksParent,
    timeout: x.sessionTimeout,
    policy_id: x.policyId,
    vd: x.vd,
    serial: x.serial,
    parent: x.parent,
    tuple: { family: x.family, proto: x.proto, src: x.src, dst: x.dst, sport: x.sport, dport: x.dport },
  };
}

/** The expectation as a session view, so the session filter (`diagnose sys session filter`) applies to it. */
export function filterableView(v: ExpectationView): SessionView {
  return {
    serial: v.serial, proto: v.proto, proto_state: '00', duration: v.duration, expire: v.expire, timeout: v.timeout,
    refresh_dir: 'both', helper: v.helper, policy_id: v.policy_id, vd: v.vd, offloaded: false,
    org: { bytes: 0, packets: 0, allow_err: 0 }, reply: { bytes: 0, packets: 0, allow_err: 0 }, tx_speed_bps: 0, rx_speed_bps: 0,
    orig_tuple: v.tuple, reply_tuple: { ...v.tuple, src: v.tuple.dst, dst: v.tuple.src, sport: v.tuple.dport, dport: v.tuple.sport },
    dev_org: [0, 0], dev_reply: [0, 0], gwy: [noGateway(v.tuple.family), noGateway(v.tuple.family)], log: false,
    // Not shown: the filter has no `use` term.
    use: 0,
  };
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** The seed's record: an expectation is a session in state `new` with empty counters. */
export function formatExpectation(v: ExpectationView): string {
  const t = v.tuple;
  const none = t.family === 6 ? ':::0' : '0.0.0.0:0';
  return [
    `session info: proto=${v.proto} proto_state=00 duration=${v.duration} expire=${v.expire} timeout=${v.timeout} flags=00000000 sockflag=00000000 sockport=0 av_idx=0 use=3`,
    'origin-shaper=',
    'reply-shaper=',
    'per_ip_shaper=',
    `ha_id=0 policy_dir=1 tunnel=/ helper=${v.helper} expect=${v.kind}${v.tracks_parent ? ' track-parent' : ''}`,
    'state=new complex',
    'statistic(bytes/packets/allow_err): org=0/0/0 reply=0/0/0 tuples=2',
    'orgin->sink: org pre->post, reply pre->post dev=0->0/0->0',
    `hook=pre dir=org act=noop ${t.src}:${t.sport}->${t.dst}:${t.dport}(${none})`,
    `hook=pre dir=org act=noop ${none}->${none}(${none})`,
    'pos/(before,after) 0/(0,0), 0/(0,0)',
    `misc=0 policy_id=${v.policy_id} id_policy_id=0 auth_info=0 chk_client_info=0 vd=${v.vd}`,
    `serial=${hex8(v.serial)} tos=ff/ff ips_view=0 app_list=0 app=0`,
    'dd_type=0 dd_mode=0',
    'npu_state=00000000',
  ].join('\n');
}

export function formatExpectationList(views: ExpectationView[]): string {
  const parts = views.map((v) => `${formatExpectation(v)}\n`);
  return `${parts.join('\n')}total expectation session: ${views.length}\n`;
}
