// A SYN flood through the pure engine with the table limited: 60 s of simulated time, every SYN
// from a new source port (and many sources), in each admission mode. The table never holds more
// than its limit, and no collection anywhere in the engine's state (side maps, bypass sets,
// users, expectations, timer queues) grows with the number of SYNs: each stays within a bound
// set by the limit. Counts only, no timing.

import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { ACCEPT_ALL, defaultEngineConfig } from '../../src/engine/engine-config.js';
import { defaultLimits, type LimitsConfig } from '../../src/engine/limits.js';
import type { Packet } from '../../src/engine/types.js';
import { TCP_SYN, type FlowTuple } from '../../src/packet/types.js';

const LIMIT = 500;
const RATE = 1000; // SYNs per simulated second
const SECONDS = 60;
/** What any one collection may hold: a few entries per session the table can hold, plus slack. */
const BOUND = 4 * LIMIT + 256;
/** Seconds of flood after which the table has been full for a while. */
const WARM = 10;

interface Flow { proto: 6 | 17; dport: number }

function syn(i: number, f: Flow = { proto: 6, dport: 80 }): Packet {
  // Every SYN a new flow: 251 IPv4 sources from ever new ports, and IPv6 sources.
  const v4 = i % 2 === 1;
  // IPv6 sources never repeat: each SYN of them could be a new user.
  const src = v4 ? `198.51.100.${i % 251 + 1}` : `2001:db8::${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
  const tuple: FlowTuple = { family: v4 ? 4 : 6, proto: f.proto, src, dst: v4 ? '203.0.113.2' : '2001:db8:1::2', sport: 1024 + (Math.floor(i / 2) % 64000), dport: f.dport };
  const tcp = f.proto === 6;
  return {
    indev: 2, outdev: 3, mark: 0,
    decoded: { ok: true, tuple, length: 60, tcpFlags: tcp ? TCP_SYN : 0, icmpType: -1, icmpCode: -1, payloadOffset: tcp ? 40 : 28, payloadLength: tcp ? 20 : 32, fragment: false },
  };
}

/**
 * Sizes of every Map, Set and Array reachable from `root`, by path (each object once), and the
 * bytes of its typed arrays (the compact table's columns) under 'typed-bytes'.
 */
function collections(root: object): Map<string, number> {
  const out = new Map<string, number>();
  const seen = new Set<object>();
  let typed = 0;
  const walk = (v: unknown, path: string, depth: number): void => {
    if (v === null || typeof v !== 'object' || seen.has(v) || depth > 6) return;
    seen.add(v);
    if (ArrayBuffer.isView(v)) { typed += v.byteLength; return; }
    if (v instanceof Map || v instanceof Set || Array.isArray(v)) {
      out.set(path, Math.max(out.get(path) ?? 0, v instanceof Map || v instanceof Set ? v.size : v.length));
      // Members are looked at once per collection: their own collections are bounded by the same rule.
      let n = 0;
      for (const m of v instanceof Map ? v.values() : v) { if (n++ > 4) break; walk(m, `${path}[]`, depth + 1); }
      return;
    }
    for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
  };
  walk(root, 'st', 0);
  out.set('typed-bytes', typed);
  return out;
}

function flood(t: { ok(c: boolean, m: string): void; same(a: unknown, b: unknown, m: string): void }, limits: Partial<LimitsConfig>, offload: boolean, memory?: number, flow?: Flow): SessionEngine {
  const e = new SessionEngine(defaultEngineConfig({ offload, maxSessions: LIMIT, policy: () => ACCEPT_ALL, limits: defaultLimits(limits) }));
  const st = (e as unknown as { st: object }).st;
  const most = new Map<string, number>();
  let maxSize = 0;
  let typedAtWarm = 0;
  let accepted = 0;
  let i = 0;
  const t0 = 1_000_000;
  if (memory !== undefined) e.observeMemory(memory, t0);
  for (let s = 0; s < SECONDS; s++) {
    for (let k = 0; k < RATE; k++) {
      const now = t0 + s * 1000 + Math.floor((k * 1000) / RATE);
      if (e.handlePacket(syn(i++, flow), now).verdict === 'accept') accepted++;
      maxSize = Math.max(maxSize, e.size);
    }
    e.tick(t0 + (s + 1) * 1000);
    for (const [p, n] of collections(st)) most.set(p, Math.max(most.get(p) ?? 0, n));
    if (s === WARM - 1) typedAtWarm = most.get('typed-bytes')!;
  }
  t.ok(maxSize <= LIMIT, `the table held at most ${maxSize} sessions (limit ${LIMIT})`);
  t.ok(accepted > 0, `${accepted} of ${i} SYNs accepted`);
  const over = [...most].filter(([p, n]) => p !== 'typed-bytes' && n > BOUND).map(([p, n]) => `${p}: ${n}`);
  // The table's columns reach their size while it first fills, and grow no more.
  t.ok(most.get('typed-bytes')! <= typedAtWarm, `typed arrays: ${most.get('typed-bytes')} bytes at most, ${typedAtWarm} after ${WARM} s`);
  t.same(over, [], `no collection past ${BOUND} entries after ${i} SYNs`);
  // Every SYN is accounted for: tracked, refused or let through uninspected.
  const v = e.admission.view();
  t.same(e.counters.sessionsCreated + v.refused_limit + v.refused_memory + v.bypassed, i, 'each SYN tracked, refused or bypassed');
  return e;
}

t.test('table full, fail-open off: refused, nothing remembered per refusal', (t) => {
  const e = flood(t, { failopenSession: false }, true);
  // Without a user limit, users whose sessions ended are kept no longer than the table could
  // hold sessions: a flood from ever new sources does not pile up an hour of idle users.
  t.ok(e.admission.users.size <= 2 * LIMIT, `${e.admission.users.size} users remembered`);
  t.end();
});

t.test('a user limit keeps its idle users: they count against it until they expire', (t) => {
  const e = flood(t, { failopenSession: false, users: 3 * LIMIT }, true);
  t.equal(e.admission.users.size, 3 * LIMIT, 'the user limit reached and held');
  t.end();
});

t.test('table full, fail-open pass: let through, the bypass set bounded', (t) => {
  const e = flood(t, { failopenSession: true, failopen: 'pass' }, true);
  const v = e.admission.view();
  t.ok(v.bypass_flows <= LIMIT, `${v.bypass_flows} bypass flows remembered`);
  t.ok(v.bypass_evicted > 0, `${v.bypass_evicted} forgotten before going idle`);
  t.end();
});

t.test('table full, fail-open pass without offload', (t) => {
  flood(t, { failopenSession: true, failopen: 'pass' }, false);
  t.end();
});

t.test('table full, fail-open one-shot: latched, every later flow let through, bounded', (t) => {
  flood(t, { failopenSession: true, failopen: 'one-shot' }, true);
  t.end();
});

t.test('memory red, fail-open pass', (t) => {
  flood(t, { failopenSession: true, failopen: 'pass', memoryRed: 88, memoryGreen: 82, memoryExtreme: 95 }, true, 90);
  t.end();
});

t.test('table full on a helper port (FTP): helper state goes with its session', (t) => {
  flood(t, { failopenSession: true, failopen: 'pass' }, true, undefined, { proto: 6, dport: 21 });
  t.end();
});

t.test('a UDP flood (TFTP port, a helper too), fail-open off', (t) => {
  flood(t, { failopenSession: false }, true, undefined, { proto: 17, dport: 69 });
  t.end();
});

t.test('adaptive timeouts on while the table is full', (t) => {
  flood(t, { failopenSession: false, adaptiveStart: 50, adaptiveEnd: 100 }, true);
  t.end();
});
