// `diagnose debug flow`: the packet filter of a flow trace and the trace messages of one packet,
// generated from the packet and the engine's Decision in the vendor's words. Pure: the stateful
// part (trace counter, buffer, readers) is in tracer.ts.
//
// A message line reads
//   id=65308 trace_id=1 func=print_pkt_detail line=5866 msg="vd-root:0 received a packet(...)"
// `func=`/`line=` appear with `diagnose debug flow show function-name enable`; they are stable
// labels per message (the vendor's function names where we know them), not source positions.

import type { Decision, Packet } from '../engine/types.js';
import { parseAddress } from '../packet/address.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type FlowTuple } from '../packet/types.js';

// ---- the flow filter ----------------------------------------------------------------------

export const FLOW_FILTER_FIELDS = ['vd', 'proto', 'addr', 'saddr', 'daddr', 'port', 'sport', 'dport'] as const;
export type FlowFilterField = (typeof FLOW_FILTER_FIELDS)[number];

export interface FlowFilter {
  vd?: number;
  proto?: number;
  addr?: { from: string; to: string };
  saddr?: { from: string; to: string };
  daddr?: { from: string; to: string };
  port?: { from: number; to: number };
  sport?: { from: number; to: number };
  dport?: { from: number; to: number };
  negate?: FlowFilterField[];
}

const isFlowField = (s: string): s is FlowFilterField => (FLOW_FILTER_FIELDS as readonly string[]).includes(s);

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function port(text: string, field: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new Error(`${field}: '${text}' is not a port (0-65535)`);
  return Number(text);
}

/** The filter after one `diagnose debug flow filter <args...>` command; throws on bad input. */
export function applyFlowFilterArgs(f: FlowFilter, args: string[]): FlowFilter {
  const [field, a, b, ...rest] = args;
  if (!field) return f;
  if (field === 'clear') return {};
  if (field === 'negate') {
    if (!a || !isFlowField(a)) throw new Error(`negate: expected a field (${FLOW_FILTER_FIELDS.join(', ')})`);
    return f.negate?.includes(a) ? f : { ...f, negate: [...(f.negate ?? []), a] };
  }
  if (!isFlowField(field)) throw new Error(`unknown flow filter '${field}': expected ${FLOW_FILTER_FIELDS.join(', ')}, negate <field> or clear`);
  if (a === undefined) throw new Error(`${field}: expected a value`);
  if (rest.length) throw new Error(`${field}: too many values (at most a range: <from> <to>)`);
  const next = { ...f };
  switch (field) {
    case 'vd':
    case 'proto': {
      if (b !== undefined) throw new Error(`${field}: one number`);
      const max = field === 'proto' ? 255 : 65535;
      if (field === 'vd' && a === '-1') { delete next.vd; return next; }
      if (!/^\d+$/.test(a) || Number(a) > max) throw new Error(`${field}: '${a}' is not a number (0-${max})`);
      next[field] = Number(a);
      return next;
    }
    case 'addr':
    case 'saddr':
    case 'daddr': {
      const lo = parseAddress(a);
      const hi = b === undefined ? lo : parseAddress(b);
      if (!lo) throw new Error(`${field}: '${a}' is not an IPv4 or IPv6 address`);
      if (!hi) throw new Error(`${field}: '${b}' is not an IPv4 or IPv6 address`);
      if (lo.family !== hi.family) throw new Error(`${field}: '${a}' and '${b}' are of different address families`);
      if (cmpBytes(lo.bytes, hi.bytes) > 0) throw new Error(`${field}: range ${a}-${b} is reversed`);
      next[field] = { from: a, to: b ?? a };
      return next;
    }
    default: {
      const lo = port(a, field);
      const hi = b === undefined ? lo : port(b, field);
      if (lo > hi) throw new Error(`${field}: range ${lo}-${hi} is reversed`);
      next[field] = { from: lo, to: hi };
      return next;
    }
  }
}

/** `diagnose debug flow filter` with no argument. */
export function formatFlowFilter(f: FlowFilter): string {
  const r = (x?: { from: unknown; to: unknown }) => (x ? `${x.from}-${x.to}` : 'any');
  const neg = (k: FlowFilterField) => (f.negate?.includes(k) ? ' (negated)' : '');
  return [
    `vf: ${f.vd ?? 'any'}${neg('vd')}`,
    `proto: ${f.proto ?? 'any'}${neg('proto')}`,
    `Host addr: ${r(f.addr)}${neg('addr')}`,
    `Host saddr: ${r(f.saddr)}${neg('saddr')}`,
    `Host daddr: ${r(f.daddr)}${neg('daddr')}`,
    `port: ${r(f.port)}${neg('port')}`,
    `sport: ${r(f.sport)}${neg('sport')}`,
    `dport: ${r(f.dport)}${neg('dport')}`,
  ].join('\n') + '\n';
}

type PacketTest = (t: FlowTuple | undefined, vd: number) => boolean;

function inAddr(r: { from: string; to: string }): (x: string) => boolean {
  const lo = parseAddress(r.from)!;
  const hi = parseAddress(r.to)!;
  return (x) => {
    const p = parseAddress(x);
    return !!p && p.family === lo.family && cmpBytes(p.bytes, lo.bytes) >= 0 && cmpBytes(p.bytes, hi.bytes) <= 0;
  };
}

/**
 * Compiles the flow filter into a predicate over a packet's tuple (as it travels) and the VDOM of
 * its ingress interface. A packet without a tuple (malformed) matches only an empty filter.
 */
export function compileFlowFilter(f: FlowFilter): PacketTest {
  const tests: PacketTest[] = [];
  const add = (k: FlowFilterField, fn: (t: FlowTuple, vd: number) => boolean) => {
    const negated = f.negate?.includes(k);
    tests.push((t, vd) => (t ? fn(t, vd) !== !!negated : false));
  };
  if (f.vd !== undefined) { const want = f.vd; add('vd', (_t, vd) => vd === want); }
  if (f.proto !== undefined) { const want = f.proto; add('proto', (t) => t.proto === want); }
  if (f.addr) { const m = inAddr(f.addr); add('addr', (t) => m(t.src) || m(t.dst)); }
  if (f.saddr) { const m = inAddr(f.saddr); add('saddr', (t) => m(t.src)); }
  if (f.daddr) { const m = inAddr(f.daddr); add('daddr', (t) => m(t.dst)); }
  const pr = (r: { from: number; to: number }) => (x: number) => x >= r.from && x <= r.to;
  const hasPorts = (t: FlowTuple) => t.proto !== IPPROTO_ICMP && t.proto !== IPPROTO_ICMPV6;
  if (f.port) { const m = pr(f.port); add('port', (t) => hasPorts(t) && (m(t.sport) || m(t.dport))); }
  if (f.sport) { const m = pr(f.sport); add('sport', (t) => hasPorts(t) && m(t.sport)); }
  if (f.dport) { const m = pr(f.dport); add('dport', (t) => hasPorts(t) && m(t.dport)); }
  if (!tests.length) return () => true;
  return (t, vd) => tests.every((x) => x(t, vd));
}

// ---- the messages -------------------------------------------------------------------------

export interface TraceContext {
  traceId: number;
  showFunctionName: boolean;
  /** VDOM index of the ingress interface (the vendor picks the VDOM by interface). */
  vd: number;
  vdName: (vd: number) => string;
  ifname: (index: number) => string;
}

/** The vendor's message id of the flow-trace category. */
export const TRACE_MSG_ID = 65308;

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** tcpdump-style flags: F S R P, then '.' for ACK. */
export function tcpFlagText(flags: number): string {
  let s = '';
  if (flags & TCP_FIN) s += 'F';
  if (flags & TCP_SYN) s += 'S';
  if (flags & TCP_RST) s += 'R';
  if (flags & TCP_PSH) s += 'P';
  if (flags & TCP_ACK) s += '.';
  return s;
}

/** Offset of the L4 header in a raw IP packet (IPv6 extension headers walked), or -1. */
export function l4Offset(data: Buffer): number {
  if (data.length < 1) return -1;
  const v = data[0] >> 4;
  if (v === 4) return (data[0] & 0x0f) * 4;
  if (v !== 6 || data.length < 40) return -1;
  let next = data[6];
  let off = 40;
  for (let hops = 0; hops < 8; hops++) {
    if (next === 0 || next === 43 || next === 60) {
      if (off + 2 > data.length) return -1;
      next = data[off];
      off += (data[off + 1] + 1) * 8;
    } else if (next === 44) {
      if (off + 8 > data.length) return -1;
      next = data[off];
      off += 8;
    } else if (next === 51) {
      if (off + 2 > data.length) return -1;
      next = data[off];
      off += (data[off + 1] + 2) * 4;
    } else return off;
  }
  return -1;
}

type Step = [func: string, line: number, msg: string];

function detail(p: Packet): string {
  const d = p.decoded;
  if (!d.ok) return '';
  const t = d.tuple;
  const off = p.data ? l4Offset(p.data) : -1;
  if (t.proto === IPPROTO_TCP) {
    const flags = `flag [${tcpFlagText(d.tcpFlags)}]`;
    if (off < 0 || !p.data || off + 16 > p.data.length) return ` ${flags}`;
    const seq = p.data.readUInt32BE(off + 4);
    const ack = p.data.readUInt32BE(off + 8);
    const win = p.data.readUInt16BE(off + 14);
    return ` ${flags}, seq ${seq}, ack ${ack}, win ${win}`;
  }
  if ((t.proto === IPPROTO_ICMP || t.proto === IPPROTO_ICMPV6) && d.icmpType >= 0) {
    const seq = !d.quoted && off >= 0 && p.data && off + 8 <= p.data.length ? `, seq=${p.data.readUInt16BE(off + 6)}` : '';
    const id = d.quoted ? '' : `, id=${t.sport}`;
    return ` type=${d.icmpType}, code=${d.icmpCode}${id}${seq}.`;
  }
  return '';
}

function received(p: Packet, c: TraceContext): string {
  const d = p.decoded;
  const vd = `vd-${c.vdName(c.vd)}:${c.vd}`;
  const from = c.ifname(p.indev);
  if (!d.ok) return `${vd} received a malformed packet(${d.reason}) from ${from}.`;
  const t = d.tuple;
  // ICMP shows the echo id as the source port and type<<8|code as the destination port.
  const icmp = t.proto === IPPROTO_ICMP || t.proto === IPPROTO_ICMPV6;
  const dport = icmp && d.icmpType >= 0 ? (d.icmpType << 8) | d.icmpCode : t.dport;
  return `${vd} received a packet(proto=${t.proto}, ${t.src}:${t.sport}->${t.dst}:${dport}) from ${from}.${detail(p)}`;
}

function natSteps(p: Packet, d: Decision): Step[] {
  const s = d.session;
  const pk = p.decoded;
  if (!s?.nat || !pk.ok) return [];
  const t = pk.tuple;
  const out: Step[] = [];
  if (d.dir === 'org') {
    if (s.nat.dnat) out.push(['__ip_session_run_tuple', 3554, `DNAT ${t.dst}:${t.dport}->${s.nat.dnat.addr}:${s.nat.dnat.port}`]);
    if (s.nat.snat) out.push(['__ip_session_run_tuple', 3517, `SNAT ${t.src}->${s.nat.snat.addr}:${s.nat.snat.port}`]);
  } else {
    if (s.nat.snat) out.push(['__ip_session_run_tuple', 3530, `DNAT ${t.dst}:${t.dport}->${s.orig.src}:${s.orig.sport}`]);
    if (s.nat.dnat) out.push(['__ip_session_run_tuple', 3541, `SNAT ${t.src}->${s.orig.dst}:${s.orig.dport}`]);
  }
  return out;
}

function helperStep(d: Decision): Step[] {
  // Session helpers (ALGs) hook in here: the vendor prints this for every packet a helper sees.
  const h = d.session?.helper;
  return h ? [['ip_session_run_helper', 1389, `run helper-${h}(dir=${d.dir === 'reply' ? 'reply' : 'original'})`]] : [];
}

function decisionSteps(p: Packet, d: Decision): Step[] {
  const [kind, arg] = d.reason.split(':', 2);
  const s = d.session;
  switch (kind) {
    case 'allowed':
      return [
        ['init_ip_session_common', 6047, `allocate a new session-${hex8(s!.serial)}`],
        ['fw_forward_handler', 881, `Allowed by Policy-${arg}:`],
        ...natSteps(p, d),
        ...helperStep(d),
      ];
    case 'existing':
    case 'icmp-error-related':
      return [
        ['resolve_ip_tuple_fast', 5946, `Find an existing session, id-${hex8(s!.serial)}, ${d.dir === 'reply' ? 'reply' : 'original'} direction`],
        ...natSteps(p, d),
        ...helperStep(d),
      ];
    case 'policy-deny':
      return [['fw_forward_handler', 719, `Denied by forward policy check (policy ${arg})`]];
    case 'tcp-without-syn':
      return [['ip_session_handle_no_dst', 6148, 'no session matched']];
    case 'icmp-error-unrelated':
      return [['ip_session_handle_no_dst', 6148, `no session matched for the ICMP error, ${d.verdict}`]];
    case 'table-full':
      return [['init_ip_session_common', 6012, 'session table full, drop']];
    case 'fragment':
      return [['ip_session_core_in', 5480, 'non-first fragment, left to the kernel']];
    case 'malformed':
      return [['ip_session_core_in', 5470, `malformed packet, ${d.verdict}`]];
    default:
      return [['ip_session_core_in', 5490, `${d.reason}, ${d.verdict}`]];
  }
}

/** The trace lines of one packet, in order. */
export function traceMessages(p: Packet, d: Decision, c: TraceContext): string[] {
  const steps: Step[] = [['print_pkt_detail', 5866, received(p, c)], ...decisionSteps(p, d)];
  return steps.map(([func, line, msg]) =>
    `id=${TRACE_MSG_ID} trace_id=${c.traceId}${c.showFunctionName ? ` func=${func} line=${line}` : ''} msg="${msg}"`);
}
