// `diagnose sys session filter`: the one session filter the daemon holds (as the vendor box holds
// one per CLI), set field by field, shown in the vendor's layout, and matched against session
// views. Pure: the state is plain JSON, so the daemon keeps it and the CLI prints it.
//
// Semantics, following the vendor's documentation:
//  - each field holds one value or an inclusive range (`src 198.51.100.1 198.51.100.9`); setting a
//    field again replaces it; fields combine with AND;
//  - `negate <field>` inverts that field's condition (a negated field that is not set still
//    matches everything);
//  - `vd -1` matches every VDOM; `clear` empties the filter, `clear <field>` one field.
//  - src/dst/sport/dport are the original direction's; nsrc/nport the source after SNAT (as the
//    kernel reported it; sessions without SNAT match on their original source).

import { parseAddress } from '../packet/address.js';
import type { SessionView } from './session-view.js';

export const FILTER_FIELDS = ['vd', 'sintf', 'dintf', 'src', 'nsrc', 'dst', 'proto', 'sport', 'nport', 'dport', 'policy', 'expire', 'duration'] as const;
export type FilterField = (typeof FILTER_FIELDS)[number];

export interface Range<T> { from: T; to: T }

export interface SessionFilter {
  vd?: number;
  sintf?: string;
  dintf?: string;
  src?: Range<string>;
  nsrc?: Range<string>;
  dst?: Range<string>;
  proto?: Range<number>;
  sport?: Range<number>;
  nport?: Range<number>;
  dport?: Range<number>;
  policy?: Range<number>;
  expire?: Range<number>;
  duration?: Range<number>;
  /** Fields whose condition is inverted, in the order they were negated. */
  negate?: FilterField[];
}

const NUMERIC: Partial<Record<FilterField, { min: number; max: number }>> = {
  proto: { min: 0, max: 255 },
  sport: { min: 0, max: 65535 },
  nport: { min: 0, max: 65535 },
  dport: { min: 0, max: 65535 },
  policy: { min: 0, max: 0xffffffff },
  expire: { min: 0, max: 0xffffffff },
  duration: { min: 0, max: 0xffffffff },
};

const isField = (s: string): s is FilterField => (FILTER_FIELDS as readonly string[]).includes(s);

function int(text: string, field: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new Error(`${field}: '${text}' is not a number`);
  const n = Number(text);
  if (n < min || n > max) throw new Error(`${field}: ${n} is out of range ${min}-${max}`);
  return n;
}

function addr(text: string, field: string): { family: 4 | 6; bytes: Uint8Array } {
  const a = parseAddress(text);
  if (!a) throw new Error(`${field}: '${text}' is not an IPv4 or IPv6 address`);
  return a;
}

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * The filter after one `diagnose sys session filter <args...>` command. Throws an Error with an
 * operator-facing message on bad input. `[]` is not a change (the CLI shows the filter then).
 */
export function applyFilterArgs(f: SessionFilter, args: string[]): SessionFilter {
  const [field, a, b, ...rest] = args;
  if (!field) return f;
  if (field === 'clear') {
    if (!a) return {};
    if (!isField(a)) throw new Error(`clear: unknown field '${a}' (fields: ${FILTER_FIELDS.join(', ')})`);
    const next = { ...f };
    delete next[a];
    if (next.negate) next.negate = next.negate.filter((x) => x !== a);
    if (next.negate?.length === 0) delete next.negate;
    return next;
  }
  if (field === 'negate') {
    if (!a || !isField(a)) throw new Error(`negate: expected a field (${FILTER_FIELDS.join(', ')})`);
    return f.negate?.includes(a) ? f : { ...f, negate: [...(f.negate ?? []), a] };
  }
  if (!isField(field)) throw new Error(`unknown filter field '${field}': expected ${FILTER_FIELDS.join(', ')}, negate <field> or clear`);
  if (a === undefined) throw new Error(`${field}: expected a value`);
  if (rest.length) throw new Error(`${field}: too many values (at most a range: <from> <to>)`);
  const next: SessionFilter = { ...f };
  switch (field) {
    case 'vd': {
      if (b !== undefined) throw new Error('vd: one VDOM index (-1 = all)');
      if (a === '-1') delete next.vd;
      else next.vd = int(a, 'vd', 0, 65535);
      return next;
    }
    case 'sintf':
    case 'dintf':
      if (b !== undefined) throw new Error(`${field}: one interface name`);
      next[field] = a;
      return next;
    case 'src':
    case 'nsrc':
    case 'dst': {
      const lo = addr(a, field);
      const hi = b === undefined ? lo : addr(b, field);
      if (lo.family !== hi.family) throw new Error(`${field}: '${a}' and '${b}' are of different address families`);
      if (cmpBytes(lo.bytes, hi.bytes) > 0) throw new Error(`${field}: range ${a}-${b} is reversed`);
      next[field] = { from: a, to: b ?? a };
      return next;
    }
    default: {
      const lim = NUMERIC[field]!;
      const lo = int(a, field, lim.min, lim.max);
      const hi = b === undefined ? lo : int(b, field, lim.min, lim.max);
      if (lo > hi) throw new Error(`${field}: range ${lo}-${hi} is reversed`);
      next[field] = { from: lo, to: hi };
      return next;
    }
  }
}

const LABELS: [FilterField | 'proto-state' | 'state1' | 'state2', string][] = [
  ['vd', 'vd'], ['sintf', 'sintf'], ['dintf', 'dintf'], ['proto', 'proto'], ['proto-state', 'proto-state'],
  ['src', 'source ip'], ['nsrc', "NAT'd source ip"], ['dst', 'dest ip'], ['sport', 'source port'],
  ['nport', "NAT'd source port"], ['dport', 'dest port'], ['policy', 'policy id'], ['expire', 'expire'],
  ['duration', 'duration'], ['state1', 'state1'], ['state2', 'state2'],
];

/** `diagnose sys session filter` with no argument: the vendor's listing, `any` for unset fields. */
export function formatFilter(f: SessionFilter): string {
  const lines = ['session filter:'];
  for (const [key, label] of LABELS) {
    let value = 'any';
    if (key === 'vd' && f.vd !== undefined) value = String(f.vd);
    else if ((key === 'sintf' || key === 'dintf') && f[key] !== undefined) value = f[key]!;
    else if (key !== 'vd' && key !== 'sintf' && key !== 'dintf' && key !== 'proto-state' && key !== 'state1' && key !== 'state2') {
      const r = f[key];
      if (r) value = `${r.from}-${r.to}`;
    }
    const neg = f.negate?.includes(key as FilterField) ? ' (negated)' : '';
    lines.push(`\t${label}: ${value}${neg}`);
  }
  return `${lines.join('\n')}\n`;
}

export function isEmptyFilter(f: SessionFilter): boolean {
  return FILTER_FIELDS.every((k) => f[k] === undefined);
}

type Test = (v: SessionView, ifname: (i: number) => string) => boolean;

function addrTest(r: Range<string>, pick: (v: SessionView) => string): Test {
  const lo = parseAddress(r.from)!;
  const hi = parseAddress(r.to)!;
  return (v) => {
    const x = parseAddress(pick(v));
    return !!x && x.family === lo.family && cmpBytes(x.bytes, lo.bytes) >= 0 && cmpBytes(x.bytes, hi.bytes) <= 0;
  };
}

const numTest = (r: Range<number>, pick: (v: SessionView) => number): Test => (v) => {
  const x = pick(v);
  return x >= r.from && x <= r.to;
};

/** Compiles the filter into a predicate over session views; ifname resolves dev indexes for sintf/dintf. */
export function compileFilter(f: SessionFilter): Test {
  const tests: Test[] = [];
  const add = (field: FilterField, t: Test) => {
    tests.push(f.negate?.includes(field) ? (v, n) => !t(v, n) : t);
  };
  if (f.vd !== undefined) { const vd = f.vd; add('vd', (v) => v.vd === vd); }
  if (f.sintf !== undefined) { const n = f.sintf; add('sintf', (v, ifname) => ifname(v.dev_org[0]) === n); }
  if (f.dintf !== undefined) { const n = f.dintf; add('dintf', (v, ifname) => ifname(v.dev_org[1]) === n); }
  if (f.src) add('src', addrTest(f.src, (v) => v.orig_tuple.src));
  if (f.nsrc) add('nsrc', addrTest(f.nsrc, (v) => v.snat?.addr ?? v.orig_tuple.src));
  if (f.dst) add('dst', addrTest(f.dst, (v) => v.orig_tuple.dst));
  if (f.proto) add('proto', numTest(f.proto, (v) => v.proto));
  if (f.sport) add('sport', numTest(f.sport, (v) => v.orig_tuple.sport));
  if (f.nport) add('nport', numTest(f.nport, (v) => v.snat?.port ?? v.orig_tuple.sport));
  if (f.dport) add('dport', numTest(f.dport, (v) => v.orig_tuple.dport));
  if (f.policy) add('policy', numTest(f.policy, (v) => v.policy_id));
  if (f.expire) add('expire', numTest(f.expire, (v) => v.expire));
  if (f.duration) add('duration', numTest(f.duration, (v) => v.duration));
  return (v, ifname) => tests.every((t) => t(v, ifname));
}
