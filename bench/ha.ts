// HA sync benchmark: what the sync channel costs the primary and how far the peer lags behind.
//
// Two processes in two network namespaces the bench creates, joined by a veth pair (192.0.2.1 and
// 192.0.2.2), each running the real SyncService (AEAD datagrams over UDP, sequence numbers, ACKs,
// retransmission). The primary runs a SessionEngine fed the way the daemon feeds it with
// first-packet offload: per connection one queued SYN, then the kernel's DESTROY event once the
// connection is over; `concurrency` connections are live at any time. Three phases, one run:
//   off     as many connections per second as the engine takes, HA off (the baseline)
//   on      the same with every effect handed to the sync channel, as the daemon does
//   paced   HA on at a fixed connection rate (--rate, default the daemon's measured datapath
//           rate), for the lag: first send of a message to the peer's ACK, p50/p99/max
// The secondary reports the sessions it holds at the end; they must be the primary's.
//
// Usage: node dist/bench/ha.js [--seconds N] [--rate N] [--concurrency N] [--out FILE] [--profile DIR]
// Needs root (namespaces). Targets: lag p99 <= 50 ms; conn/s with sync >= 0.9x without.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { parseConfig } from '../src/config/load.js';
import { SessionEngine } from '../src/engine/engine.js';
import { ACCEPT_ALL, defaultEngineConfig } from '../src/engine/engine-config.js';
import type { Effect, KernelFlowReport, Packet, Session } from '../src/engine/types.js';
import type { TableView } from '../src/ha/pickup.js';
import { engineTableView } from '../src/ha/engine-view.js';
import { SyncService } from '../src/ha/sync-service.js';
import { TCP_SYN, type FlowTuple } from '../src/packet/types.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '../..');
const PORT = 7030;
const A = '192.0.2.1';
const B = '192.0.2.2';

interface Options { seconds: number; rate: number; concurrency: number; out: string; profile?: string }

function parseArgs(argv: string[]): Options {
  // 4,226 conn/s: the daemon's rate through the datapath bench on this machine kind.
  const o: Options = { seconds: 3, rate: 4226, concurrency: 1000, out: join(ROOT, 'bench/results/ha.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (lo: number, hi: number) => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n < lo || n > hi) throw new Error(`${a} must be within ${lo}..${hi}`);
      return n;
    };
    if (a === '--seconds') o.seconds = num(1, 60);
    else if (a === '--rate') o.rate = num(100, 1_000_000);
    else if (a === '--concurrency') o.concurrency = num(1, 1_000_000);
    else if (a === '--out') o.out = resolve(argv[++i] ?? '');
    else if (a === '--profile') o.profile = resolve(argv[++i] ?? '');
    else if (a === '--child') break;
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const haConfig = (peer: string) => parseConfig(`config system ha
    set group-name "BENCH"
    set mode a-p
    set password "bench-password"
    set hbdev "ha0" 100
    set ha-peer-ip ${peer}
    set session-pickup enable
    set session-pickup-connectionless enable
    set session-pickup-expectation enable
end
`, 'bench-ha.conf').ha;

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const tick = () => new Promise<void>((r) => setImmediate(r));

function quantile(xs: number[], q: number): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

// ---------------------------------------------------------------------------------------------
// The primary: connections into the engine, effects into the sync channel.

/** Connection i: a distinct TCP flow from the documentation ranges (never sent anywhere). */
function tuple(i: number): FlowTuple {
  return {
    family: 4, proto: 6,
    src: `198.51.100.${1 + (i % 250)}`, dst: `203.0.113.${1 + ((i >>> 16) % 250)}`,
    sport: 1024 + ((i >>> 8) % 250) * 256 + (i % 256), dport: 443,
  };
}

function syn(t: FlowTuple): Packet {
  return { indev: 2, outdev: 3, mark: 0, decoded: { ok: true, tuple: t, length: 60, tcpFlags: TCP_SYN, icmpType: -1, icmpCode: -1, payloadOffset: 40, payloadLength: 0, fragment: false } };
}

function destroy(t: FlowTuple): KernelFlowReport {
  return { event: 'destroy', orig: t, reply: { ...t, src: t.dst, dst: t.src, sport: t.dport, dport: t.sport }, tcpState: 7, counters: { origPackets: 6, origBytes: 400, replyPackets: 5, replyBytes: 900 } };
}

interface PhaseResult { phase: string; conns: number; seconds: number; connPerS: number; cpuUsPerConn: number; lagP50?: number; lagP99?: number; lagMax?: number; lagSamples: number; messages: number; datagrams: number; resent: number; unackedAtEnd: number }

class Primary {
  engine = new SessionEngine(defaultEngineConfig({ offload: false, policy: () => ({ ...ACCEPT_ALL, policyId: 7 }) }));
  sync?: SyncService;
  lags: number[] = [];
  private next = 0;
  private readonly live: FlowTuple[] = [];

  constructor(private readonly concurrency: number) {}

  async startSync(): Promise<void> {
    const e = this.engine;
    const table = engineTableView(e);
    this.sync = new SyncService(haConfig(B), { ifname: 'ha0', priority: 100, local: A, prefix: 24, peer: B, port: PORT }, table, log, { onLag: (ms) => this.lags.push(ms) });
    await this.sync.start(Date.now());
  }

  private apply(fx: Effect[], now: number): void {
    if (this.sync) for (const x of fx) this.sync.record(x, now);
  }

  /** One connection: its SYN, and the end of the oldest once `concurrency` are live. */
  connect(now: number): void {
    const t = tuple(this.next++);
    const d = this.engine.handlePacket(syn(t), now);
    this.apply(d.effects, now);
    this.live.push(t);
    if (this.live.length > this.concurrency) this.apply(this.engine.kernelReport(destroy(this.live.shift()!), now), now);
  }

  async run(phase: string, seconds: number, rate?: number): Promise<PhaseResult> {
    this.lags = [];
    const st0 = this.sync?.status(Date.now());
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let conns = 0;
    const end = t0 + seconds * 1000;
    // Batches of connections between turns of the event loop, so ACKs are read as they come.
    const step = 10;
    while (performance.now() < end) {
      const now = Date.now();
      const n = rate ? Math.max(0, Math.round((rate * (performance.now() - t0)) / 1000) - conns) : 200;
      for (let i = 0; i < n; i++) this.connect(now);
      conns += n;
      if (rate) await sleep(step);
      else await tick();
    }
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(cpu0);
    // The messages still in flight are acknowledged before the phase counts its lag.
    for (let i = 0; i < 200 && this.sync && this.sync.status(Date.now()).tx.unacked > 0; i++) await sleep(10);
    const st = this.sync?.status(Date.now());
    return {
      phase, conns, seconds: wall, connPerS: conns / wall, cpuUsPerConn: (c.user + c.system) / conns,
      lagP50: quantile(this.lags, 0.5), lagP99: quantile(this.lags, 0.99), lagMax: quantile(this.lags, 1), lagSamples: this.lags.length,
      messages: (st?.tx.sent ?? 0) - (st0?.tx.sent ?? 0), datagrams: (st?.datagrams.out ?? 0) - (st0?.datagrams.out ?? 0),
      resent: (st?.tx.resent ?? 0) - (st0?.tx.resent ?? 0), unackedAtEnd: st?.tx.unacked ?? 0,
    };
  }
}

async function primaryChild(o: Options): Promise<void> {
  const out: PhaseResult[] = [];
  // Warm-up, so the first phase does not pay for compilation.
  const warm = new Primary(o.concurrency);
  await warm.run('warm-up', 0.5);
  const off = new Primary(o.concurrency);
  out.push(await off.run('off', o.seconds));
  const on = new Primary(o.concurrency);
  await on.startSync();
  // The peer's HELLO and the bulk exchange settle first.
  for (let i = 0; i < 300 && on.sync!.status(Date.now()).lastHeardAgoMs === undefined; i++) await sleep(10);
  out.push(await on.run('on', o.seconds));
  // The paced phase goes on with the same engine and channel.
  out.push(await on.run('paced', o.seconds, o.rate));
  process.stdout.write(`${JSON.stringify({ phases: out, primarySessions: on.engine.size, heard: on.sync!.status(Date.now()).lastHeardAgoMs !== undefined })}\n`);
  on.sync!.stop();
}

async function secondaryChild(): Promise<void> {
  const empty: TableView = { session: () => undefined, sessions: () => [] as Session[], expectations: () => [], expectationsOf: () => [] };
  const s = new SyncService(haConfig(A), { ifname: 'ha0', priority: 100, local: B, prefix: 24, peer: A, port: PORT }, empty, log);
  await s.start(Date.now());
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() !== 'report') continue;
    const st = s.status(Date.now());
    process.stdout.write(`${JSON.stringify({ held: s.synced.sessions.size, refused: st.refused, rx: st.rx })}\n`);
    s.stop();
    process.exit(0);
  }
}

// ---------------------------------------------------------------------------------------------
// The bench: namespaces, the two children, the figures.

function sh(argv: string[]): void {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

function firstLine(p: ChildProcess, pred: (o: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve_, reject) => {
    const rl = createInterface({ input: p.stdout! });
    const timer = setTimeout(() => reject(new Error('child timed out')), timeoutMs);
    rl.on('line', (l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (pred(o)) { clearTimeout(timer); rl.close(); resolve_(o); }
      } catch { /* not ours */ }
    });
    p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`child exited with ${code}`)); });
  });
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/ha needs root (it creates two network namespaces)\n');
    return 2;
  }
  const tag = `nfsb-ha-${process.pid}`;
  const nsA = `${tag}-a`;
  const nsB = `${tag}-b`;
  const children: ChildProcess[] = [];
  const load0 = loadavg()[0];
  try {
    sh(['ip', 'netns', 'add', nsA]);
    sh(['ip', 'netns', 'add', nsB]);
    sh(['ip', '-n', nsA, 'link', 'add', 'ha0', 'type', 'veth', 'peer', 'name', 'ha0', 'netns', nsB]);
    for (const [ns, addr] of [[nsA, A], [nsB, B]]) {
      sh(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'ha0']);
      sh(['ip', '-n', ns, 'link', 'set', 'ha0', 'up']);
      sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const node = (ns: string, role: string, extra: string[] = [], nodeArgs: string[] = []) => {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, ...nodeArgs, SELF, ...extra, '--child', role], { stdio: ['pipe', 'pipe', 'inherit'] });
      children.push(p);
      return p;
    };
    const sec = node(nsB, 'secondary');
    await firstLine(sec, (x) => x.ready === true, 10_000);
    const args = ['--seconds', String(o.seconds), '--rate', String(o.rate), '--concurrency', String(o.concurrency)];
    const pri = node(nsA, 'primary', args, o.profile ? ['--cpu-prof', `--cpu-prof-dir=${o.profile}`] : []);
    const res = await firstLine(pri, (x) => Array.isArray(x.phases), (o.seconds * 3 + 30) * 1000) as { phases: PhaseResult[]; primarySessions: number; heard: boolean };
    // The primary ends by itself (a profile is written at exit); the secondary when asked.
    await new Promise<void>((r) => { if (pri.exitCode !== null) r(); else { const t = setTimeout(r, 5000); pri.once('exit', () => { clearTimeout(t); r(); }); } });
    sec.stdin!.write('report\n');
    const rep = await firstLine(sec, (x) => typeof x.held === 'number', 10_000) as { held: number; refused: Record<string, number> };

    const f = (n: number | undefined, d = 0) => (n === undefined ? '-' : n.toFixed(d));
    process.stdout.write(`machine: ${cpus().length} CPUs, load ${load0.toFixed(2)}; ${o.concurrency} live connections, the peer over a veth pair in its own namespace\n\n`);
    process.stdout.write('phase   conns    conn/s   cpu us/conn  lag p50 ms  lag p99 ms  lag max ms  acks    msgs  dgrams  resent\n');
    process.stdout.write('------  -------  -------  -----------  ----------  ----------  ----------  -----  ------  ------  ------\n');
    for (const p of res.phases) {
      process.stdout.write(`${p.phase.padEnd(6)}  ${String(p.conns).padStart(7)}  ${f(p.connPerS).padStart(7)}  ${f(p.cpuUsPerConn, 2).padStart(11)}  ${f(p.lagP50, 1).padStart(10)}  ${f(p.lagP99, 1).padStart(10)}  ${f(p.lagMax, 1).padStart(10)}  ${String(p.lagSamples).padStart(5)}  ${String(p.messages).padStart(6)}  ${String(p.datagrams).padStart(6)}  ${String(p.resent).padStart(6)}\n`);
    }
    const off = res.phases.find((p) => p.phase === 'off')!;
    const on = res.phases.find((p) => p.phase === 'on')!;
    const paced = res.phases.find((p) => p.phase === 'paced')!;
    const ratio = on.connPerS / off.connPerS;
    const syncUs = on.cpuUsPerConn - off.cpuUsPerConn;
    process.stdout.write(`\nsync cost on the primary: ${syncUs.toFixed(2)} us CPU per connection (start + end records); conn/s with sync x${ratio.toFixed(2)} of without (target >= 0.9: ${ratio >= 0.9 ? 'met' : 'NOT met'})\n`);
    process.stdout.write(`lag at ${o.rate} conn/s: p99 ${f(paced.lagP99, 1)} ms (target <= 50: ${paced.lagP99 !== undefined && paced.lagP99 <= 50 ? 'met' : 'NOT met'}), ${paced.messages} messages in ${paced.datagrams} datagrams in ${paced.seconds.toFixed(1)} s, CPU ${paced.cpuUsPerConn.toFixed(1)} us per connection with sync\n`);
    process.stdout.write(`the peer holds ${rep.held} sessions, the primary ${res.primarySessions}${rep.held === res.primarySessions ? ' (the same)' : ' (DIFFERENT)'}; load ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}\n`);
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify({ at: new Date().toISOString(), cpus: cpus().length, load: [load0, loadavg()[0]], options: o, ...res, peerHeld: rep.held, peerRefused: rep.refused, ratio, syncUsPerConn: syncUs }, null, 2)}\n`);
    return rep.held === res.primarySessions ? 0 : 1;
  } finally {
    for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGTERM');
    spawnSync('ip', ['netns', 'del', nsA]);
    spawnSync('ip', ['netns', 'del', nsB]);
  }
}

const child = process.argv.indexOf('--child');
if (child >= 0) {
  const role = process.argv[child + 1];
  const o = parseArgs(process.argv.slice(2));
  (role === 'primary' ? primaryChild(o) : secondaryChild()).catch((e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
} else {
  main().then((c) => process.exit(c), (e: Error) => { process.stderr.write(`bench/ha: ${e.message}\n`); process.exit(1); });
}
