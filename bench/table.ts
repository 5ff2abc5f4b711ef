// Table benchmark: what one session costs in memory and time, in the compact table (typed-array
// columns, open-addressing indexes, slot timers: src/engine/table/) against the storage the engine
// has used so far (a Session object graph, string-keyed Maps, a heap of timer entries), and
// against the kernel's own conntrack object (/proc/slabinfo), all in one run on this machine.
//
//   node dist/bench/table.js [--sizes 100000,1000000] [--churn-seconds 5] [--lookups 2000000]
//                            [--no-old] [--no-engine] [--out FILE]
//
// Every measurement runs in a fresh child process (node --expose-gc), so one heap never carries
// into the next:
//   bytes     heap + array buffers after a forced GC, minus the same before the table, per session,
//             at each size, IPv4 and IPv6 separately; with the creation rate (sessions/s and CPU
//             µs per session) and the lookup rate (random known tuples, both directions)
//   engine    the same bytes figure for SessionEngine.handlePacket (the whole engine as it stands)
//   churn     the largest size kept full while a tenth of it is replaced every second (sessions
//             run out on their timers, new ones take their place, in 100 ms steps on the event
//             loop, 500 at a time): the longest GC pause (PerformanceObserver 'gc') and the
//             event-loop delay p99
//   workers   in-process creation + lookup rate of 2 worker threads, each with its own table
//             shard, against 1 worker doing the same total work
// Lookups include making the key from the flow number: text tuple and string key for the old
// storage (what the decoder and the engine build per packet today), address words for the compact.
// Targets: ≤ 200 bytes per IPv4 session and ≤ 256 per IPv6 session at 1M, ≥ 1M lookups/s,
// longest GC pause during churn ≤ 10 ms.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CompactTable } from '../src/engine/table/compact-table.js';
import { ORG_BYTES, ORG_PACKETS, SessionFlag } from '../src/engine/table/session-store.js';
import { TupleKey } from '../src/engine/table/tuple-key.js';
import { ExpiryQueue } from '../src/engine/expiry-queue.js';
import { flowKey, reverseTuple } from '../src/engine/flow-key.js';
import { SessionEngine } from '../src/engine/engine.js';
import { defaultEngineConfig } from '../src/engine/engine-config.js';
import { acceptAllPolicySet, compilePolicy } from '../src/engine/policy.js';
import type { Direction, Packet, Session } from '../src/engine/types.js';
import type { FlowTuple } from '../src/packet/types.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '../..');

type Family = 4 | 6;
type Storage = 'compact' | 'old';

// ---------------------------------------------------------------------------------------------
// Flows: number i → a distinct UDP flow from the documentation ranges (unique for i < 16.5M).

const V4_SRC = 0xc6336400 | 0; // 198.51.100.0
const V4_DST = 0xcb007100 | 0; // 203.0.113.0
const V6_PREFIX = 0x20010db8 | 0; // 2001:db8::/32

function flowKeyOf(i: number, family: Family, k: TupleKey): TupleKey {
  k.family = family;
  k.proto = 17;
  k.sport = 1024 + ((i >>> 8) % 64512);
  k.dport = 53;
  if (family === 4) {
    k.src[0] = V4_SRC | (i & 0xff);
    k.dst[0] = V4_DST | ((i * 7) & 0xff);
  } else {
    k.src[0] = V6_PREFIX; k.src[1] = 1; k.src[2] = 0; k.src[3] = i & 0xff;
    k.dst[0] = V6_PREFIX; k.dst[1] = 2; k.dst[2] = 0; k.dst[3] = (i * 7) & 0xff;
  }
  return k;
}

function flowTupleOf(i: number, family: Family): FlowTuple {
  const sport = 1024 + ((i >>> 8) % 64512);
  if (family === 4) return { family, proto: 17, src: `198.51.100.${i & 0xff}`, dst: `203.0.113.${(i * 7) & 0xff}`, sport, dport: 53 };
  return { family, proto: 17, src: `2001:db8:0:1::${(i & 0xff).toString(16)}`, dst: `2001:db8:0:2::${((i * 7) & 0xff).toString(16)}`, sport, dport: 53 };
}

const TTL = 10;

// ---------------------------------------------------------------------------------------------
// The two storages behind one small interface: create flow i, look up flow i, expire by time.

interface Table {
  create(i: number, now: number): void;
  lookup(i: number, reply: boolean): boolean;
  /** Ends at most `max` sessions whose timer ran out. */
  expire(now: number, max?: number): number;
  readonly size: number;
}

/** The compact table, filled the way the engine fills a new UDP session. */
class Compact implements Table {
  readonly t: CompactTable;
  private readonly k = new TupleKey();
  private serial = 1;
  constructor(private readonly family: Family, expected?: number) { this.t = new CompactTable(expected ? { expected } : {}); }
  get size(): number { return this.t.size; }
  create(i: number, now: number): void {
    const t = this.t;
    const slot = t.add(flowKeyOf(i, this.family, this.k), this.serial++);
    const st = t.store;
    st.flags[slot] |= SessionFlag.LOG_TRAFFIC;
    st.policyId[slot] = 1;
    st.createdAt[slot] = now;
    st.expireAt[slot] = now + TTL * 1000;
    st.timeout[slot] = TTL;
    st.ttl[slot] = TTL;
    st.counters[4 * slot + ORG_BYTES] = 60;
    st.counters[4 * slot + ORG_PACKETS] = 1;
    st.setDev(slot, 0, 2);
    st.setDev(slot, 1, 3);
    st.rateBytes[2 * slot] = 60;
    t.timers.schedule(slot);
  }
  lookup(i: number, reply: boolean): boolean {
    const k = flowKeyOf(i, this.family, this.k);
    if (reply) {
      const s = k.sport; k.sport = k.dport; k.dport = s;
      for (let w = 0; w < 4; w++) { const a = k.src[w]; k.src[w] = k.dst[w]; k.dst[w] = a; }
    }
    return this.t.find(k) >= 0;
  }
  expire(now: number, max = Infinity): number {
    let n = 0;
    for (let slot = n < max ? this.t.timers.popExpired(now) : -1; slot >= 0; slot = ++n < max ? this.t.timers.popExpired(now) : -1) this.t.remove(slot);
    return n;
  }
}

/** The storage the engine kept until now: a Session object per session, two Map entries keyed by strings, timer entries. */
class Old implements Table {
  private readonly byKey = new Map<string, { session: Session; dir: Direction }>();
  private readonly bySerial = new Map<number, Session>();
  private readonly expiry = new ExpiryQueue<Session>();
  private serial = 1;
  constructor(private readonly family: Family) {}
  get size(): number { return this.bySerial.size; }
  create(i: number, now: number): void {
    const orig = flowTupleOf(i, this.family);
    const s: Session = {
      serial: this.serial++, orig, reply: reverseTuple(orig), policyId: 1, vd: 0, state: [0, 0], createdAt: now,
      expireAt: now + TTL * 1000, timerAt: 0, timeout: TTL, ttl: TTL, ttlFromRule: false, refreshDir: 'both',
      org: { bytes: 60, packets: 1, allowErr: 0 }, rep: { bytes: 0, packets: 0, allowErr: 0 }, devOrg: [2, 3], devReply: [0, 0],
      offloaded: false, offloadPending: false, rate: { at: now, orgBytes: 60, replyBytes: 0, txBps: 0, rxBps: 0 }, logTraffic: true,
    };
    this.byKey.set(flowKey(s.orig), { session: s, dir: 'org' });
    this.byKey.set(flowKey(s.reply), { session: s, dir: 'reply' });
    this.bySerial.set(s.serial, s);
    this.expiry.schedule(s);
  }
  lookup(i: number, reply: boolean): boolean {
    const t = flowTupleOf(i, this.family);
    return this.byKey.has(flowKey(reply ? reverseTuple(t) : t));
  }
  expire(now: number): number {
    // The old queue hands out everything due at once.
    const out = this.expiry.popExpired(now, (s) => this.bySerial.get(s.serial) === s);
    for (const s of out) {
      this.byKey.delete(flowKey(s.orig));
      this.byKey.delete(flowKey(s.reply));
      this.bySerial.delete(s.serial);
    }
    return out.length;
  }
}

function makeTable(storage: Storage, family: Family, expected?: number): Table {
  return storage === 'compact' ? new Compact(family, expected) : new Old(family);
}

// ---------------------------------------------------------------------------------------------
// Child tasks (run with --expose-gc). Each prints one JSON line.

const gc = (globalThis as { gc?: () => void }).gc;

function memory(): number {
  gc!(); gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function cpuMicros(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

/** A deterministic pseudo-random sequence (xorshift), so both storages look up the same flows. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
}

function taskBytes(storage: Storage, family: Family, n: number, lookups: number): object {
  const before = memory();
  const table = makeTable(storage, family);
  const t0 = performance.now();
  const c0 = cpuMicros();
  for (let i = 0; i < n; i++) table.create(i, 1_000_000);
  const createCpu = cpuMicros() - c0;
  const createMs = performance.now() - t0;
  const bytes = (memory() - before) / n;
  const r = rng(12345);
  let found = 0;
  const l0 = performance.now();
  const lc0 = cpuMicros();
  for (let j = 0; j < lookups; j++) { const x = r(); if (table.lookup(x % n, (x & 1) === 1)) found++; }
  const lookCpu = cpuMicros() - lc0;
  const lookMs = performance.now() - l0;
  if (found !== lookups) throw new Error(`lookups found ${found} of ${lookups}`);
  return {
    storage, family, sessions: table.size, bytesPerSession: Math.round(bytes),
    arrayBytesPerSession: table instanceof Compact ? Math.round(table.t.bytes() / n) : undefined,
    createPerSec: Math.round(n / (createMs / 1000)), createCpuUs: createCpu / n,
    lookupsPerSec: Math.round(lookups / (lookMs / 1000)), lookupCpuUs: lookCpu / lookups,
  };
}

function enginePacket(i: number, family: Family): Packet {
  const tuple = flowTupleOf(i, family);
  return {
    indev: 2, outdev: 3, mark: 0,
    decoded: { ok: true, tuple, length: 60, tcpFlags: 0, icmpType: -1, icmpCode: -1, payloadOffset: 28, payloadLength: 32, fragment: false },
  };
}

function taskEngine(family: Family, n: number): object {
  const before = memory();
  const e = new SessionEngine(defaultEngineConfig({ offload: false }));
  const t0 = performance.now();
  const c0 = cpuMicros();
  for (let i = 0; i < n; i++) e.handlePacket(enginePacket(i, family), 1_000_000);
  const cpu = cpuMicros() - c0;
  const ms = performance.now() - t0;
  const bytes = (memory() - before) / n;
  if (e.size !== n) throw new Error(`engine holds ${e.size} of ${n}`);
  // A reload with changed policies looks every session up again (policy-recheck.ts): its cost
  // with a compiled policy set, which parses the tuple's addresses as a new session's lookup does.
  e.config = { ...e.config, policy: compilePolicy(acceptAllPolicySet(), (i) => `if${i}`) };
  const r0 = performance.now();
  const rc0 = cpuMicros();
  const rc = e.recheckPolicies(1_000_000);
  const recheckCpuUs = (cpuMicros() - rc0) / n;
  const recheckMs = performance.now() - r0;
  if (rc.report.checked !== n) throw new Error(`recheck looked at ${rc.report.checked} of ${n}`);
  return { storage: 'engine', family, sessions: n, bytesPerSession: Math.round(bytes), createPerSec: Math.round(n / (ms / 1000)), createCpuUs: cpu / n, recheckMs: Math.round(recheckMs), recheckCpuUs };
}

async function taskChurn(storage: Storage, family: Family, n: number, seconds: number): Promise<object> {
  const table = makeTable(storage, family);
  // Fill with timers spread over one TTL, so a tenth of the table runs out every second.
  const start = 1_000_000;
  for (let i = 0; i < n; i++) table.create(i, start - TTL * 1000 + Math.floor((i / n) * TTL * 1000));
  gc!();
  let longestGc = 0;
  let gcTotal = 0;
  let gcCount = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) { longestGc = Math.max(longestGc, e.duration); gcTotal += e.duration; gcCount++; }
  });
  obs.observe({ entryTypes: ['gc'] });
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const step = 100;
  const perStep = Math.round(n / TTL / (1000 / step));
  let next = n;
  let now = start;
  let replaced = 0;
  const c0 = cpuMicros();
  const end = performance.now() + seconds * 1000;
  // Each step's work goes in chunks with the event loop in between, as the daemon interleaves
  // packets and timers: the loop delay then shows stalls (GC), not the length of one batch.
  const CHUNK = 500;
  await new Promise<void>((done) => {
    const tick = () => {
      now += step;
      let left = perStep;
      const chunk = () => {
        replaced += table.expire(now, CHUNK);
        const n = Math.min(CHUNK, left);
        for (let j = 0; j < n; j++) table.create(next++, now);
        left -= n;
        if (left > 0) { setImmediate(chunk); return; }
        if (performance.now() >= end) { done(); return; }
        setTimeout(tick, step);
      };
      chunk();
    };
    setTimeout(tick, step);
  });
  const cpu = cpuMicros() - c0;
  delay.disable();
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  return {
    storage, family, sessions: table.size, replaced, seconds,
    longestGcMs: +longestGc.toFixed(2), gcMsTotal: +gcTotal.toFixed(1), gcCount,
    loopDelayP99Ms: +(delay.percentile(99) / 1e6).toFixed(2), loopDelayMaxMs: +(delay.max / 1e6).toFixed(2),
    cpuUsPerReplaced: replaced ? cpu / replaced : 0,
  };
}

/** One shard's work in a worker: create `n` sessions, then `n` lookups. */
function shardWork(n: number, offset: number): void {
  const table = new Compact(4, n);
  for (let i = 0; i < n; i++) table.create(offset + i, 1_000_000);
  const r = rng(offset + 1);
  for (let j = 0; j < n; j++) { const x = r(); if (!table.lookup(offset + (x % n), (x & 1) === 1)) throw new Error('shard lost a session'); }
}

async function taskWorkers(total: number): Promise<object> {
  // Workers load first and start together; the rate counts from the start signal to the last
  // worker's end, so thread start-up is not in it.
  const run = async (workers: number) => {
    const per = Math.floor(total / workers);
    const ready: Array<Promise<Worker>> = [];
    const done: Array<Promise<void>> = [];
    for (let w = 0; w < workers; w++) {
      const wk = new Worker(SELF, { argv: ['--shard', String(per), String(w * per)] });
      ready.push(new Promise((ok) => wk.once('message', () => ok(wk))));
      done.push(new Promise((ok, fail) => {
        wk.on('message', (m) => { if (m === 'done') ok(); });
        wk.on('error', fail);
        wk.on('exit', (c) => { if (c !== 0) fail(new Error(`worker exit ${c}`)); });
      }));
    }
    const started = await Promise.all(ready);
    const t0 = performance.now();
    for (const wk of started) wk.postMessage('go');
    await Promise.all(done);
    const rate = (2 * per * workers) / ((performance.now() - t0) / 1000);
    for (const wk of started) await wk.terminate();
    return rate;
  };
  const one = await run(1);
  const two = await run(2);
  return { opsPerSec1: Math.round(one), opsPerSec2: Math.round(two), ratio: +(two / one).toFixed(2) };
}

// ---------------------------------------------------------------------------------------------
// The parent: runs the children, reads the kernel's object size, prints the table.

interface Options { sizes: number[]; churnSeconds: number; lookups: number; old: boolean; engine: boolean; out: string }

function parseArgs(argv: string[]): Options {
  const o: Options = { sizes: [100_000, 1_000_000], churnSeconds: 5, lookups: 2_000_000, old: true, engine: true, out: join(ROOT, 'bench/results/table.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--sizes') o.sizes = v().split(',').map(Number);
    else if (a === '--churn-seconds') o.churnSeconds = Number(v());
    else if (a === '--lookups') o.lookups = Number(v());
    else if (a === '--no-old') o.old = false;
    else if (a === '--no-engine') o.engine = false;
    else if (a === '--out') o.out = v();
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.sizes.length || o.sizes.some((n) => !(n > 0))) throw new Error('--sizes needs positive numbers');
  return o;
}

function child(args: string[]): Record<string, number | string> {
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', SELF, '--task', ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`task ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** The kernel's conntrack object size on this machine, from /proc/slabinfo (root only). */
function kernelObjectSize(): number | undefined {
  try {
    const line = readFileSync('/proc/slabinfo', 'utf8').split('\n').find((l) => l.startsWith('nf_conntrack '));
    return line ? Number(line.trim().split(/\s+/)[3]) : undefined;
  } catch { return undefined; }
}

function pad(s: string | number, n: number): string { return String(s).padStart(n); }

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const kernel = kernelObjectSize();
  const results: Record<string, unknown>[] = [];
  const load0 = loadavg()[0];
  console.log(`machine: ${cpus().length} CPUs, load ${load0.toFixed(2)}; kernel nf_conntrack object: ${kernel ?? 'unavailable (no /proc/slabinfo entry)'} bytes`);
  console.log('');
  console.log('storage  family  sessions  bytes/session  x kernel  create/s   cpu us/create  lookups/s  cpu us/lookup');
  console.log('-------  ------  --------  -------------  --------  ---------  -------------  ---------  -------------');
  for (const family of [4, 6] as const) {
    for (const n of o.sizes) {
      const rows = [child(['bytes', 'compact', String(family), String(n), String(o.lookups)])];
      if (o.old) rows.push(child(['bytes', 'old', String(family), String(n), String(o.lookups)]));
      if (o.engine) rows.push(child(['engine', String(family), String(n)]));
      for (const r of rows) {
        results.push({ kind: 'bytes', ...r });
        const bps = Number(r.bytesPerSession);
        console.log(`${String(r.storage).padEnd(7)}  ${pad(`v${family}`, 6)}  ${pad(n, 8)}  ${pad(bps, 13)}  ${pad(kernel ? (bps / kernel).toFixed(2) : '-', 8)}  ${pad(r.createPerSec, 9)}  ${pad(Number(r.createCpuUs).toFixed(2), 13)}  ${pad(r.lookupsPerSec ?? '-', 9)}  ${pad(r.lookupCpuUs !== undefined ? Number(r.lookupCpuUs).toFixed(3) : '-', 13)}`);
      }
      if (o.old) {
        const c = rows[0];
        const old = rows[1];
        console.log(`  compact vs old at ${n} v${family}: bytes x${(Number(c.bytesPerSession) / Number(old.bytesPerSession)).toFixed(2)}, create/s x${(Number(c.createPerSec) / Number(old.createPerSec)).toFixed(2)}, lookups/s x${(Number(c.lookupsPerSec) / Number(old.lookupsPerSec)).toFixed(2)}`);
      }
    }
  }
  const big = Math.max(...o.sizes);
  console.log('');
  console.log(`churn: ${big} IPv4 sessions, a tenth replaced per second, ${o.churnSeconds} s`);
  console.log('storage  replaced  longest GC ms  GC ms total  GCs  loop delay p99/max ms  cpu us/replaced');
  console.log('-------  --------  -------------  -----------  ---  ---------------------  ---------------');
  const churn = [child(['churn', 'compact', '4', String(big), String(o.churnSeconds)])];
  if (o.old) churn.push(child(['churn', 'old', '4', String(big), String(o.churnSeconds)]));
  for (const r of churn) {
    results.push({ kind: 'churn', ...r });
    console.log(`${String(r.storage).padEnd(7)}  ${pad(r.replaced, 8)}  ${pad(r.longestGcMs, 13)}  ${pad(r.gcMsTotal, 11)}  ${pad(r.gcCount, 3)}  ${pad(`${r.loopDelayP99Ms}/${r.loopDelayMaxMs}`, 21)}  ${pad(Number(r.cpuUsPerReplaced).toFixed(2), 15)}`);
  }
  const w = child(['workers', String(Math.min(big, 1_000_000) * 2)]);
  results.push({ kind: 'workers', ...w });
  console.log('');
  console.log(`workers (compact shards, create + lookup, in-process): 1 worker ${w.opsPerSec1} ops/s, 2 workers ${w.opsPerSec2} ops/s, ratio x${w.ratio} on ${cpus().length} CPUs`);
  const find = (kind: string, storage: string, family: number, n: number) => results.find((r) => r.kind === kind && r.storage === storage && r.family === family && r.sessions === n) as Record<string, number> | undefined;
  const v4 = find('bytes', 'compact', 4, big);
  const v6 = find('bytes', 'compact', 6, big);
  const cc = churn[0];
  console.log('');
  console.log(`targets at ${big}: IPv4 ${v4?.bytesPerSession} B/session (≤ 200: ${v4 && v4.bytesPerSession <= 200 ? 'met' : 'NOT met'}), IPv6 ${v6?.bytesPerSession} B/session (≤ 256: ${v6 && v6.bytesPerSession <= 256 ? 'met' : 'NOT met'}), lookups ${v4?.lookupsPerSec}/s (≥ 1M: ${v4 && v4.lookupsPerSec >= 1e6 ? 'met' : 'NOT met'}), longest GC pause in churn ${cc.longestGcMs} ms (≤ 10: ${Number(cc.longestGcMs) <= 10 ? 'met' : 'NOT met'})`);
  const e4 = find('bytes', 'engine', 4, big);
  const e6 = find('bytes', 'engine', 6, big);
  if (e4 || e6) console.log(`the whole engine (SessionEngine.handlePacket, with limits and users) at ${big}: IPv4 ${e4?.bytesPerSession ?? '-'} B/session (≤ 200: ${e4 && e4.bytesPerSession <= 200 ? 'met' : 'NOT met'}), IPv6 ${e6?.bytesPerSession ?? '-'} B/session (≤ 256: ${e6 && e6.bytesPerSession <= 256 ? 'met' : 'NOT met'})`);
  for (const x of [e4, e6]) if (x?.recheckMs !== undefined) console.log(`policy change (firewall-session-dirty check-all) at ${x.sessions} IPv${x.family} sessions: every session looked up again in ${x.recheckMs} ms, ${x.recheckCpuUs.toFixed(2)} µs CPU/session`);
  console.log(`load average during the run: ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, JSON.stringify({ at: new Date().toISOString(), cpus: cpus().length, load: [load0, loadavg()[0]], kernelObjectSize: kernel, results }, null, 2) + '\n');
}

async function task(args: string[]): Promise<void> {
  const [kind, ...rest] = args;
  let out: object;
  if (kind === 'bytes') out = taskBytes(rest[0] as Storage, Number(rest[1]) as Family, Number(rest[2]), Number(rest[3]));
  else if (kind === 'engine') out = taskEngine(Number(rest[0]) as Family, Number(rest[1]));
  else if (kind === 'churn') out = await taskChurn(rest[0] as Storage, Number(rest[1]) as Family, Number(rest[2]), Number(rest[3]));
  else if (kind === 'workers') out = await taskWorkers(Number(rest[0]));
  else throw new Error(`unknown task ${kind}`);
  process.stdout.write(JSON.stringify(out) + '\n');
}

const { isMainThread, parentPort } = await import('node:worker_threads');
const argv = process.argv.slice(2);
if (!isMainThread) {
  const i = argv.indexOf('--shard');
  parentPort!.once('message', () => {
    shardWork(Number(argv[i + 1]), Number(argv[i + 2]));
    parentPort!.postMessage('done');
  });
  parentPort!.postMessage('ready');
} else if (argv[0] === '--task') {
  if (!gc) throw new Error('tasks need node --expose-gc');
  await task(argv.slice(1));
} else {
  main();
}
