// Text layouts of the `diagnose` views, following the vendor's records line by line. Lines
// carrying vendor internals we have no equivalent for keep their fixed values (shapers, tunnel,
// class) so that operators' scripts that parse them keep working.

import { reverseTuple } from '../engine/flow-key.js';
import type { FlowTuple } from '../packet/types.js';
import type { SessionView } from './session-view.js';

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

function endpoint(family: 4 | 6, addr: string, port: number): string {
  return `${addr}:${port}`;
}

function noNat(family: 4 | 6): string {
  return family === 6 ? ':::0' : '0.0.0.0:0';
}

function hop(t: FlowTuple): string {
  return `${endpoint(t.family, t.src, t.sport)}->${endpoint(t.family, t.dst, t.dport)}`;
}

function hookLines(v: SessionView): string[] {
  const o = v.orig_tuple;
  const f = o.family;
  const revOrig = reverseTuple(o);
  if (!v.snat && !v.dnat && !v.vip) {
    return [
      `hook=pre dir=org act=noop ${hop(o)}(${noNat(f)})`,
      `hook=post dir=reply act=noop ${hop(revOrig)}(${noNat(f)})`,
    ];
  }
  const lines: string[] = [];
  if (v.vip) {
    // The vendor's view: the client's tuple to the VIP, translated to the mapped destination.
    lines.push(`hook=pre dir=org act=dnat ${hop({ ...o, dst: v.vip.addr, dport: v.vip.port })}(${endpoint(f, o.dst, o.dport)})`);
    lines.push(`hook=post dir=reply act=snat ${hop(v.reply_tuple)}(${endpoint(f, v.vip.addr, v.vip.port)})`);
  }
  if (v.dnat) {
    lines.push(`hook=pre dir=org act=dnat ${hop(o)}(${endpoint(f, v.dnat.addr, v.dnat.port)})`);
    lines.push(`hook=post dir=reply act=snat ${hop(v.reply_tuple)}(${endpoint(f, o.dst, o.dport)})`);
  }
  if (v.snat) {
    lines.push(`hook=post dir=org act=snat ${hop(o)}(${endpoint(f, v.snat.addr, v.snat.port)})`);
    lines.push(`hook=pre dir=reply act=dnat ${hop(v.reply_tuple)}(${endpoint(f, o.src, o.sport)})`);
  }
  return lines;
}

export function formatSession(v: SessionView): string {
  const kbps = (bps: number) => Math.floor((bps * 8) / 1000);
  const dev = `dev=${v.dev_org[0]}->${v.dev_org[1]}/${v.dev_reply[0]}->${v.dev_reply[1]}`;
  const gwy = `gwy=${v.gwy[0]}/${v.gwy[1]}`;
  // `npu` is the vendor's flag of an offloaded session; ours are offloaded to the kernel.
  const state = [v.log ? 'log' : '', 'may_dirty', v.offloaded ? 'npu' : ''].filter(Boolean).join(' ');
  return [
    `session info: proto=${v.proto} proto_state=${v.proto_state} duration=${v.duration} expire=${v.expire}${v.adaptive !== undefined ? ` adaptive=${v.adaptive.toFixed(2)}` : ''} timeout=${v.timeout} refresh_dir=${v.refresh_dir} flags=00000000 socktype=0 sockport=0 av_idx=0 use=${v.use}`,
    'origin-shaper=',
    'reply-shaper=',
    'per_ip_shaper=',
    `class_id=0 ha_id=0 policy_dir=0 tunnel=/${v.helper ? ` helper=${v.helper}` : ''} vlan_cos=0/0`,
    `state=${state}`,
    `statistic(bytes/packets/allow_err): org=${v.org.bytes}/${v.org.packets}/${v.org.allow_err} reply=${v.reply.bytes}/${v.reply.packets}/${v.reply.allow_err} tuples=2`,
    `tx speed(Bps/kbps): ${v.tx_speed_bps}/${kbps(v.tx_speed_bps)} rx speed(Bps/kbps): ${v.rx_speed_bps}/${kbps(v.rx_speed_bps)}`,
    `orgin->sink: org pre->post, reply pre->post ${dev} ${gwy}`,
    ...hookLines(v),
    `misc=0 policy_id=${v.policy_id} auth_info=0 chk_client_info=0 vd=${v.vd}`,
    `serial=${hex8(v.inherited_serial ?? v.serial)} tos=ff/ff app_list=0 app=0 url_cat=0`,
    // A child shows its parent's serial (seed 004); this line links it to the parent itself.
    ...(v.parent !== undefined ? [`expectation: parent=${hex8(v.parent)} helper=${v.expected?.helper ?? ''} kind=${v.expected?.kind ?? ''} own_serial=${hex8(v.serial)}`] : []),
    'rpdb_link_id=00000000 ngfwid=n/a',
    v.offloaded ? 'npu_state=0x000000 ofld=kernel' : 'npu_state=0x000001 no_offload',
    ...(v.offloaded ? [] : [`no_ofld_reason:  ${v.no_ofld_reason ?? 'not-established'}`]),
  ].join('\n');
}

export function formatSessionList(views: SessionView[]): string {
  const parts = views.map((v) => `${formatSession(v)}\n`);
  return `${parts.join('\n')}total session: ${views.length}\n`;
}

export interface StatView {
  session_count: number;
  setup_rate: number;
  exp_count: number;
  clash: number;
  /** New sessions refused because memory was low (conserve mode red with fail-open off, or extreme). */
  memory_tension_drop: number;
  /** Conserve mode and fail-open (src/engine/admission.ts). */
  conserve?: { mode: 'on' | 'off'; reasons: string[]; memory: number; failopen: string; one_shot: boolean; enter: number; leave: number; bypass_flows: number };
  ephemeral: number;
  ephemeral_limit: number;
  removeable: number;
  delete: number;
  flush: number;
  tcp_states: Record<string, number>;
  ses_limit: number;
  ses6_limit: number;
  /**
   * Adaptive timeouts (src/engine/adaptive.ts), absent while adaptive-timeout-start is 0: the
   * lowest factor in force, and each session limit they count against (none configured: no effect).
   */
  adaptive?: AdaptiveStat;
  counters: Record<string, number>;
  /**
   * Every packet the daemon decided (one per packet read from the queue), accepted or dropped,
   * and the sessions it created: with `counters` and the queue's line, each packet offered is
   * accounted for.
   */
  packets: { decided: number; accepted: number; dropped: number; new_sessions: number };
  queue?: Record<string, number>;
  /** The table journal (records, bytes, flushes, compactions, start-up replay, write errors). */
  journal?: Record<string, number>;
}

export interface AdaptiveStat {
  start: number;
  end: number;
  factor: number;
  /** Sessions ended by a scaled timer before their own ran out. */
  expired: number;
  limits: Array<{ limit: 'global' | 'vdom'; vdom?: string; sessions: number; max: number; factor: number }>;
}

function adaptiveLines(a: AdaptiveStat): string[] {
  const head = `adaptive timeout: start=${a.start}% end=${a.end}% factor=${a.factor.toFixed(2)} expired=${a.expired}`;
  if (!a.limits.length) return [`${head} (no session limit configured: no effect)`];
  return [head, ...a.limits.map((l) => `\t${l.limit === 'global' ? 'global' : `vdom ${l.vdom}`}: sessions=${l.sessions}/${l.max} (${Math.floor((l.sessions * 100) / l.max)}%) factor=${l.factor.toFixed(2)}`)];
}

/** What `full-stat` adds: the table line, the offloaded count, the kernel's conntrack table. */
export interface FullStatView extends StatView {
  table: { table_size: number; max_depth: number; used: number };
  npu_session_count: number;
  kernel?: { buckets?: number; max?: number; count?: number };
}

const isFull = (s: StatView | FullStatView): s is FullStatView => 'table' in s;

const keyValues = (o: Record<string, number | undefined>): string => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ');

export function formatStat(s: StatView | FullStatView): string {
  const full = isFull(s);
  const lines = [
    ...(full ? [`session table:\ttable_size=${s.table.table_size} max_depth=${s.table.max_depth} used=${s.table.used}`] : []),
    `misc info:\tsession_count=${s.session_count} setup_rate=${s.setup_rate} exp_count=${s.exp_count} clash=${s.clash}`,
    `\tmemory_tension_drop=${s.memory_tension_drop} ephemeral=${s.ephemeral}/${s.ephemeral_limit} removeable=${s.removeable}`,
    ...(full ? [`\tnpu_session_count=${s.npu_session_count}`] : []),
    `delete=${s.delete}, flush=${s.flush}, dev_down=0/0`,
    'TCP sessions:',
    ...Object.entries(s.tcp_states).map(([name, n]) => `\t ${n} in ${name} state`),
    'firewall error stat:',
    ...Object.entries(s.counters).map(([k, n]) => `${k}=${hex8(n)}`),
    `packets: ${keyValues(s.packets)}`,
    `global: ses_limit=${s.ses_limit} ses6_limit=${s.ses6_limit} rt_limit=0 rt6_limit=0`,
    ...(s.adaptive ? adaptiveLines(s.adaptive) : []),
  ];
  if (s.conserve) {
    const k = s.conserve;
    lines.push(`conserve: mode=${k.mode} memory=${k.memory}% reasons=${k.reasons.join(',') || '-'} failopen=${k.failopen}${k.one_shot ? '(latched)' : ''} enter=${k.enter} leave=${k.leave} bypass_flows=${k.bypass_flows}`);
  }
  if (s.queue) lines.push(`nfqueue: ${keyValues(s.queue)}`);
  if (s.journal) lines.push(`journal: ${keyValues(s.journal)}`);
  if (full && s.kernel) lines.push(`kernel conntrack: ${keyValues(s.kernel)}`);
  return `${lines.join('\n')}\n`;
}
