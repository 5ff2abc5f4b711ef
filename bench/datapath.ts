// Datapath benchmark: what does putting a router's forwarding path through NFQUEUE cost?
//
// One topology (client <-> router <-> server namespaces, src/topology/netns.ts), one run, four
// modes measured one after another on the router:
//   kernel       plain kernel forwarding, no rules (the baseline)
//   nfq-c        iptables -A FORWARD -j NFQUEUE --queue-num 0 --queue-bypass + bench/c/nfq-accept.c,
//                a libnetfilter_queue consumer that accepts everything (the floor for "a userspace
//                process decides every packet")
//   nfq-c-first  the same consumer with the daemon's first-packet offload: only connections not
//                yet offloaded are queued, the verdict carries the offload bit as packet mark, and
//                a later nft chain copies it into the ct mark (the floor for the daemon's design)
//   daemon       nfsessiond (`node dist/src/cli.js run --config ...`), which installs its own rules
// Each mode measures (a) bulk TCP throughput, iperf3, 1 stream, and (b) new TCP connections per
// second, bench/c/connect-rate.c against bench/c/accept-server.c (connect, server closes, client
// closes), with the handshake latency's p50/p99. Results are printed as a table with ratios
// against the kernel baseline of the same run (and daemon vs nfq-c, daemon vs nfq-c-first) and
// written to bench/results/latest.json.
//
// Usage: node dist/bench/datapath.js [--seconds 5] [--conn-seconds 5] [--concurrency 16]
//                                    [--modes kernel,nfq-c,nfq-c-first,daemon] [--out FILE] [--budget S]
//                                    [--nfq-args "ARGS"] [--nfq-src FILE.c] [--no-rebaseline] [--profile DIR]
//                                    [--ref-cli OTHER/dist/src/cli.js] [--rounds N] [--daemon-node-args "ARGS"]
// Whole run is bounded (default budget 170 s); everything is cleaned up on exit or interrupt.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopology, type NsProcess, type Topology } from '../src/topology/netns.js';
import { iperf3Client, iperf3Server, waitForTcpListen } from '../src/topology/peers.js';
import { cpuMs } from '../src/topology/proc-stats.js';

type ModeName = 'kernel' | 'nfq-c' | 'nfq-c-first' | 'daemon';
const ALL_MODES: ModeName[] = ['kernel', 'nfq-c', 'nfq-c-first', 'daemon'];

/** The daemon's default offload mark (src/kernel/ruleset.ts), so nfq-c-first marks the same bit. */
const OFFLOAD_MARK = 0x00100000;
const OFFLOAD_HEX = `0x${OFFLOAD_MARK.toString(16).padStart(8, '0')}`;
const FIRST_TABLE = 'nfqcfirst';

interface Options {
  seconds: number;
  connSeconds: number;
  concurrency: number;
  modes: ModeName[];
  out: string;
  budgetS: number;
  nfqArgs: string[];
  /** Source of the C consumer; default bench/c/nfq-accept.c. */
  nfqSrc: string;
  /** Measure the kernel baseline again at the end (default on). */
  rebaseline: boolean;
  /** Directory for a V8 CPU profile of the daemon (--cpu-prof), written when it exits. */
  profileDir: string;
  /** Another build's dist/src/cli.js, measured as mode daemon-ref right after daemon (A/B in one run). */
  refCli: string;
  /** Measure the queue modes this many times, interleaved (default 1). */
  rounds: number;
  /** Extra node options for the daemon process (e.g. "--trace-deopt"). */
  daemonNodeArgs: string[];
}

interface QueueStats {
  /** Packets handed to the queue while the consumer was bound (id_sequence). */
  queued: number;
  /** Dropped because the queue was full. */
  queueDropped: number;
  /** Dropped because the netlink unicast to the consumer failed (socket buffer full). */
  userDropped: number;
}

type ResultName = ModeName | 'kernel-end' | 'daemon-ref';

interface ModeResult {
  /** 'kernel-end' is the baseline measured again after the other modes (drift check). */
  mode: ResultName;
  skipped?: string;
  error?: string;
  throughputBps?: number;
  retransmits?: number;
  connPerSec?: number;
  connCompleted?: number;
  connFailed?: number;
  connTimeouts?: number;
  /** Handshakes connect-rate timed (connect() to writable) and their nearest-rank p50/p99, µs. */
  handshakes?: number;
  handshakeP50Us?: number;
  handshakeP99Us?: number;
  queue?: QueueStats;
  /** Queued packets per connection attempt of the whole mode (iperf3's few included). */
  queuedPerConn?: number;
  /** How nfq-c-first queued: the nft queue statement, or the xt NFQUEUE target where the kernel lacks it. */
  queueMechanism?: 'nft-queue' | 'xt-nfqueue';
  /** Packets the C consumer says it accepted (its `packets N` line on exit). */
  consumerPackets?: number;
  /** CPU time (user+sys, all threads) the queue consumer used per completed connection during connect-rate, µs. */
  consumerCpuUsPerConn?: number;
  /** The daemon's `diagnose sys session stat --json` at the end of its run. */
  daemonStat?: unknown;
  notes: string[];
}

// ---------------------------------------------------------------------------------------------

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root (package.json + bench/) above this file');
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 5, connSeconds: 5, concurrency: 16, modes: [...ALL_MODES], out: '', budgetS: 170, nfqArgs: ['0'], nfqSrc: '', rebaseline: true, profileDir: '', refCli: '', rounds: 1, daemonNodeArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = (lo: number, hi: number): number => {
      const n = Number(val());
      if (!Number.isFinite(n) || n < lo || n > hi) throw new Error(`${a} must be within ${lo}..${hi}`);
      return n;
    };
    switch (a) {
      case '--seconds': o.seconds = num(1, 30); break;
      case '--conn-seconds': o.connSeconds = num(1, 30); break;
      case '--concurrency': o.concurrency = num(1, 1024); break;
      case '--budget': o.budgetS = num(10, 600); break;
      case '--out': o.out = val(); break;
      case '--nfq-args': o.nfqArgs = val().split(/\s+/).filter(Boolean); break;
      case '--nfq-src': o.nfqSrc = resolve(val()); break;
      case '--no-rebaseline': o.rebaseline = false; break;
      case '--profile': o.profileDir = resolve(val()); break;
      case '--ref-cli': o.refCli = resolve(val()); break;
      case '--rounds': o.rounds = num(1, 5); break;
      case '--daemon-node-args': o.daemonNodeArgs = val().split(/\s+/).filter(Boolean); break;
      case '--modes': {
        const m = val().split(',').map((s) => s.trim()).filter(Boolean);
        for (const x of m) if (!ALL_MODES.includes(x as ModeName)) throw new Error(`unknown mode ${x} (known: ${ALL_MODES.join(', ')})`);
        if (!m.includes('kernel')) m.unshift('kernel'); // ratios need the baseline
        o.modes = ALL_MODES.filter((x) => m.includes(x));
        break;
      }
      case '-h': case '--help':
        process.stdout.write('usage: node dist/bench/datapath.js [--seconds N] [--conn-seconds N] [--concurrency N] [--modes kernel,nfq-c,nfq-c-first,daemon] [--out FILE] [--budget S] [--nfq-args "0"] [--nfq-src FILE.c] [--no-rebaseline] [--profile DIR] [--ref-cli DIST/src/cli.js] [--rounds N] [--daemon-node-args "ARGS"]\n');
        process.exit(0);
      // falls through (process.exit never returns)
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return o;
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function gcc(out: string, src: string, libs: string[] = []): void {
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', out, src, ...libs], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`gcc ${src} failed:\n${(r.stderr || r.error?.message || '').trim()}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Queue `num` line of /proc/net/netfilter/nfnetlink_queue in the router namespace (per netns). */
async function readQueue(topo: Topology, num: number): Promise<QueueStats | undefined> {
  const r = await topo.exec('router', ['cat', '/proc/net/netfilter/nfnetlink_queue'], { timeoutMs: 5000 });
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    // queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
    if (f.length >= 8 && f[0] === num) return { queued: f[7]!, queueDropped: f[5]!, userDropped: f[6]! };
  }
  return undefined;
}

/** Wait until some process is bound to queue `num` in the router namespace. */
async function waitQueueBound(topo: Topology, num: number, proc: NsProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!proc.running) throw new Error(`consumer exited before binding queue ${num}:\n${proc.stderr().slice(-1500)}${proc.stdout().slice(-1500)}`);
    if (await readQueue(topo, num)) return;
    await sleep(100);
  }
  throw new Error(`nothing bound to queue ${num} after ${timeoutMs} ms`);
}

function fmtBps(bps: number | undefined): string {
  if (bps === undefined) return '-';
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  return `${(bps / 1e6).toFixed(1)} Mbit/s`;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

const fmtRatio = (r: number | undefined): string => (r === undefined ? '-' : r.toFixed(3));

// ---------------------------------------------------------------------------------------------

interface Ctx {
  topo: Topology;
  opt: Options;
  bin: { connectRate: string; acceptServer: string; nfqAccept?: string; nfqAcceptSkip?: string };
  root: string;
  tmp: string;
}

const IPERF_PORT = 5201;
const CONN_PORT = 9000;


/** consumerPid: the queue consumer whose CPU time per connection is reported (noise-robust efficiency). */
async function measure(ctx: Ctx, r: ModeResult, consumerPid?: number): Promise<void> {
  const { topo, opt } = ctx;
  const ip = await iperf3Client(topo, { host: topo.addr.server.v4, port: IPERF_PORT, seconds: opt.seconds, streams: 1 });
  r.throughputBps = ip.receivedBps;
  r.retransmits = ip.retransmits;
  const cpu0 = consumerPid === undefined ? undefined : cpuMs(consumerPid);
  const c = await topo.exec('client', [ctx.bin.connectRate, topo.addr.server.v4, String(CONN_PORT), String(opt.connSeconds), '10000000', String(opt.concurrency)],
    { timeoutMs: (opt.connSeconds + 10) * 1000 });
  let parsed: {
    completed: number; failed: number; timeouts: number; per_second: number;
    handshakes?: number; handshake_p50_us?: number | null; handshake_p99_us?: number | null;
  };
  try {
    parsed = JSON.parse(c.stdout.trim().split('\n').pop() ?? '');
  } catch {
    throw new Error(`connect-rate failed (code ${c.code}${c.timedOut ? ', timed out' : ''}): ${c.stderr.trim()}`);
  }
  r.connPerSec = parsed.per_second;
  r.connCompleted = parsed.completed;
  const cpu1 = consumerPid === undefined ? undefined : cpuMs(consumerPid);
  if (cpu0 !== undefined && cpu1 !== undefined && parsed.completed > 0) r.consumerCpuUsPerConn = ((cpu1 - cpu0) * 1000) / parsed.completed;
  r.connFailed = parsed.failed;
  r.connTimeouts = parsed.timeouts;
  r.handshakes = parsed.handshakes;
  r.handshakeP50Us = parsed.handshake_p50_us ?? undefined;
  r.handshakeP99Us = parsed.handshake_p99_us ?? undefined;
}

function setQueuedPerConn(r: ModeResult): void {
  const attempts = (r.connCompleted ?? 0) + (r.connFailed ?? 0) + (r.connTimeouts ?? 0);
  if (r.queue && attempts > 0) r.queuedPerConn = r.queue.queued / attempts;
}

async function flushConntrack(topo: Topology): Promise<void> {
  // Only meaningful once a rule made conntrack run in the router; harmless otherwise.
  await topo.exec('router', ['conntrack', '-F'], { timeoutMs: 10_000 });
}

async function runKernel(ctx: Ctx): Promise<ModeResult> {
  const r: ModeResult = { mode: 'kernel', notes: [] };
  await measure(ctx, r);
  return r;
}

async function runNfqC(ctx: Ctx): Promise<ModeResult> {
  const r: ModeResult = { mode: 'nfq-c', notes: [] };
  if (!ctx.bin.nfqAccept) {
    r.skipped = ctx.bin.nfqAcceptSkip ?? 'nfq-accept not built';
    return r;
  }
  const { topo } = ctx;
  const rule = ['FORWARD', '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass'];
  await topo.execOk('router', ['iptables', '-A', ...rule]);
  const proc = topo.spawn('router', [ctx.bin.nfqAccept, ...ctx.opt.nfqArgs], { captureLimit: 64 * 1024 });
  try {
    await waitQueueBound(topo, 0, proc, 10_000);
    await flushConntrack(topo);
    await measure(ctx, r, proc.pid);
    r.queue = await readQueue(topo, 0);
    setQueuedPerConn(r);
    if (!r.queue || r.queue.queued === 0) r.notes.push('no packet went through the queue: this measured the kernel path');
    if (!proc.running) r.notes.push('consumer exited during the run');
  } finally {
    await proc.kill('SIGTERM', 3000);
    const m = /^packets (\d+)$/m.exec(proc.stdout());
    if (m) r.consumerPackets = Number(m[1]);
    await topo.exec('router', ['iptables', '-D', ...rule]);
  }
  return r;
}

/**
 * Same probe as the daemon's (src/kernel/ruleset.ts): `nft -c` passes without kernel support, so
 * a throw-away table holding a queue rule is really created, then deleted.
 */
async function nftQueueWorks(topo: Topology): Promise<boolean> {
  const probe = `${FIRST_TABLE}_probe`;
  const made = await topo.exec('router', ['nft', '-f', '-'], { input: `table inet ${probe} {\n\tchain c {\n\t\tqueue flags bypass to 0\n\t}\n}\n`, timeoutMs: 10_000 });
  if (made.code !== 0) return false;
  await topo.exec('router', ['nft', 'delete', 'table', 'inet', probe], { timeoutMs: 10_000 });
  return true;
}

/**
 * The daemon's ruleset reduced to its offload path: a connection whose ct mark has the offload
 * bit is not queued; the queue's verdict marks the first packet, and a chain after the queueing
 * one (the xt NFQUEUE rule runs at priority filter) turns that packet mark into the ct mark.
 * No ct event rules: nothing here listens to conntrack events, so the kernel sends none.
 */
function renderFirstTable(mechanism: 'nft-queue' | 'xt-nfqueue'): string {
  const m = OFFLOAD_HEX;
  const lines = [`table inet ${FIRST_TABLE} {`];
  if (mechanism === 'nft-queue') {
    lines.push('\tchain fwd {', '\t\ttype filter hook forward priority filter; policy accept;',
      `\t\tct mark & ${m} == ${m} accept`, '\t\tqueue flags bypass to 0', '\t}');
  }
  lines.push('\tchain fwd_after {', '\t\ttype filter hook forward priority filter + 10; policy accept;',
    `\t\tct state new meta mark & ${m} == ${m} ct mark set ct mark | ${m}`, '\t}', '}');
  return `${lines.join('\n')}\n`;
}

async function runNfqCFirst(ctx: Ctx): Promise<ModeResult> {
  const r: ModeResult = { mode: 'nfq-c-first', notes: [] };
  if (!ctx.bin.nfqAccept) {
    r.skipped = ctx.bin.nfqAcceptSkip ?? 'nfq-accept not built';
    return r;
  }
  const { topo } = ctx;
  const mechanism = (await nftQueueWorks(topo)) ? 'nft-queue' : 'xt-nfqueue';
  r.queueMechanism = mechanism;
  // An accept in an nft chain does not stop the iptables base chain, so the xt rule itself must skip offloaded connections.
  const xtRule = ['FORWARD', '-m', 'connmark', '!', '--mark', `${OFFLOAD_HEX}/${OFFLOAD_HEX}`, '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass'];
  await topo.execOk('router', ['nft', '-f', '-'], { input: renderFirstTable(mechanism), timeoutMs: 10_000 });
  let proc: NsProcess | undefined;
  try {
    if (mechanism === 'xt-nfqueue') await topo.execOk('router', ['iptables', '-A', ...xtRule]);
    proc = topo.spawn('router', [ctx.bin.nfqAccept, '--mark', OFFLOAD_HEX, ...ctx.opt.nfqArgs], { captureLimit: 64 * 1024 });
    await waitQueueBound(topo, 0, proc, 10_000);
    // Entries of earlier modes would otherwise pass (or be queued) on a stale ct mark.
    await flushConntrack(topo);
    await measure(ctx, r, proc.pid);
    r.queue = await readQueue(topo, 0);
    setQueuedPerConn(r);
    if (!r.queue || r.queue.queued === 0) r.notes.push('no packet went through the queue: this measured the kernel path');
    else if ((r.queuedPerConn ?? 0) > 2) {
      r.notes.push(`${r.queuedPerConn!.toFixed(1)} packets queued per connection: the verdict mark did not offload (a --nfq-src consumer must take --mark MARK)`);
    }
    if (!proc.running) r.notes.push('consumer exited during the run');
  } finally {
    if (proc) {
      await proc.kill('SIGTERM', 3000);
      const m = /^packets (\d+)$/m.exec(proc.stdout());
      if (m) r.consumerPackets = Number(m[1]);
    }
    if (mechanism === 'xt-nfqueue') await topo.exec('router', ['iptables', '-D', ...xtRule]);
    await topo.exec('router', ['nft', 'delete', 'table', 'inet', FIRST_TABLE]);
  }
  return r;
}

async function runDaemon(ctx: Ctx, refCli?: string): Promise<ModeResult> {
  const r: ModeResult = { mode: refCli ? 'daemon-ref' : 'daemon', notes: [] };
  const cli = refCli ?? join(ctx.root, 'dist', 'src', 'cli.js');
  if (!existsSync(cli)) {
    r.skipped = `${cli} is missing (daemon not built yet); daemon mode skipped`;
    return r;
  }
  const { topo } = ctx;
  const config = join(ctx.tmp, 'nfsessiond.conf');
  writeFileSync(config, 'config system nfsessiond\n    set queue-num 0\n    set queue-bypass enable\nend\n');
  const control = join(ctx.tmp, 'control.sock');
  // --cpu-prof is not allowed in NODE_OPTIONS, so it goes on the command line.
  const prof = [...(ctx.opt.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.opt.profileDir}`] : []), ...ctx.opt.daemonNodeArgs];
  if (ctx.opt.profileDir) mkdirSync(ctx.opt.profileDir, { recursive: true });
  // A state directory of its own: the default one would restore another run's table at start.
  const stateDir = mkdtempSync(join(ctx.tmp, 'state-'));
  const proc = topo.spawn('router', [process.execPath, ...prof, cli, 'run', '--config', config, '--control', control, '--state-dir', stateDir], { captureLimit: 256 * 1024 });
  try {
    await proc.waitForLine((l) => {
      try {
        return (JSON.parse(l) as { msg?: unknown }).msg === 'ready';
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, what: 'the pino "msg":"ready" line' });
    await waitQueueBound(topo, 0, proc, 10_000);
    await flushConntrack(topo);
    await measure(ctx, r, proc.pid);
    r.queue = await readQueue(topo, 0);
    setQueuedPerConn(r);
    // The daemon's own view (queue bursts and verdict sends, engine counters), for diagnosis.
    const st = await topo.exec('router', [process.execPath, cli, 'diagnose', 'sys', 'session', 'stat', '--json', '--control', control], { timeoutMs: 10_000 });
    try {
      r.daemonStat = JSON.parse(st.stdout) as unknown;
    } catch {
      r.notes.push(`diagnose sys session stat failed: ${(st.stderr || st.stdout).trim().slice(0, 300)}`);
    }
    if (!r.queue || r.queue.queued === 0) r.notes.push('no packet went through the queue');
    if (!proc.running) r.notes.push('daemon exited during the run');
  } finally {
    await proc.kill('SIGTERM', 5000);
    if (ctx.opt.daemonNodeArgs.length) writeFileSync(join(ctx.opt.profileDir || tmpdir(), `daemon-${r.mode}.out`), proc.stdout());
  }
  return r;
}

// ---------------------------------------------------------------------------------------------

interface Summary {
  rows: Record<string, unknown>[];
  baseline: { throughputBps?: number; connPerSec?: number };
  drift?: { throughput?: number; connPerSec?: number };
  daemonVsC?: { throughput?: number; connPerSec?: number };
  daemonVsCFirst?: { connPerSec?: number; cpuUsPerConn?: number; daemonCpuUsPerConn?: number; nfqCFirstCpuUsPerConn?: number };
}

function printTable(results: ModeResult[], opt: Options): Summary {
  const k0 = results.find((x) => x.mode === 'kernel' && !x.error);
  const k1 = results.find((x) => x.mode === 'kernel-end' && !x.error);
  const mean = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : (a + b) / 2);
  const base = { throughputBps: mean(k0?.throughputBps, k1?.throughputBps), connPerSec: mean(k0?.connPerSec, k1?.connPerSec) };
  const lines: string[] = [];
  const head = ['mode', 'throughput', 'x kernel', 'conn/s', 'x kernel', 'queued pkts', 'q/user drops', 'cpu us/conn', 'handshake p50/p99 us'];
  const rows: string[][] = [];
  const jsonRows: Record<string, unknown>[] = [];
  for (const x of results) {
    if (x.skipped || x.error) {
      rows.push([x.mode, x.skipped ? 'skipped' : 'ERROR', '', '', '', '', '', '', '']);
      continue;
    }
    const tr = ratio(x.throughputBps, base?.throughputBps);
    const cr = ratio(x.connPerSec, base?.connPerSec);
    rows.push([x.mode, fmtBps(x.throughputBps), fmtRatio(tr), x.connPerSec === undefined ? '-' : x.connPerSec.toFixed(0), fmtRatio(cr),
      x.queue ? String(x.queue.queued) : '-', x.queue ? `${x.queue.queueDropped}/${x.queue.userDropped}` : '-',
      x.consumerCpuUsPerConn === undefined ? '-' : x.consumerCpuUsPerConn.toFixed(0),
      `${x.handshakeP50Us ?? '-'}/${x.handshakeP99Us ?? '-'}`]);
    jsonRows.push({ mode: x.mode, throughputRatio: tr, connPerSecRatio: cr, handshakeP50Us: x.handshakeP50Us, handshakeP99Us: x.handshakeP99Us });
  }
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  lines.push(fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(fmt));
  for (const x of results) {
    if (x.skipped) lines.push(`${x.mode}: skipped: ${x.skipped}`);
    if (x.error) lines.push(`${x.mode}: error: ${x.error.length > 1200 ? `${x.error.slice(0, 1200)}...` : x.error}`);
    for (const n of x.notes) lines.push(`${x.mode}: note: ${n}`);
  }
  let drift: { throughput?: number; connPerSec?: number } | undefined;
  if (k0 && k1) {
    drift = { throughput: ratio(k1.throughputBps, k0.throughputBps), connPerSec: ratio(k1.connPerSec, k0.connPerSec) };
    lines.push(`kernel baseline drift (end/start): throughput x${fmtRatio(drift.throughput)}, conn/s x${fmtRatio(drift.connPerSec)}; "x kernel" columns use the mean of both kernel runs`);
  }
  const c = results.find((x) => x.mode === 'nfq-c' && !x.skipped && !x.error);
  const d = results.find((x) => x.mode === 'daemon' && !x.skipped && !x.error);
  let daemonVsC: { throughput?: number; connPerSec?: number } | undefined;
  if (c && d) {
    daemonVsC = { throughput: ratio(d.throughputBps, c.throughputBps), connPerSec: ratio(d.connPerSec, c.connPerSec) };
    lines.push(`daemon vs nfq-c: throughput x${fmtRatio(daemonVsC.throughput)}, conn/s x${fmtRatio(daemonVsC.connPerSec)}`);
  }
  const meanConn = (m: ResultName): number | undefined => {
    const xs = results.filter((x) => x.mode === m && !x.skipped && !x.error && x.connPerSec !== undefined).map((x) => x.connPerSec!);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
  };
  const meanCpu = (m: ResultName): number | undefined => {
    const xs = results.filter((x) => x.mode === m && x.consumerCpuUsPerConn !== undefined).map((x) => x.consumerCpuUsPerConn!);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
  };
  // Means, so that with --rounds the line compares every round of both modes.
  let daemonVsCFirst: Summary['daemonVsCFirst'];
  const dConn = meanConn('daemon');
  const fConn = meanConn('nfq-c-first');
  if (dConn !== undefined && fConn !== undefined) {
    const dCpu = meanCpu('daemon');
    const fCpu = meanCpu('nfq-c-first');
    daemonVsCFirst = { connPerSec: ratio(dConn, fConn), cpuUsPerConn: ratio(dCpu, fCpu), daemonCpuUsPerConn: dCpu, nfqCFirstCpuUsPerConn: fCpu };
    lines.push(`daemon vs nfq-c-first: conn/s x${fmtRatio(daemonVsCFirst.connPerSec)}, CPU µs/conn x${fmtRatio(daemonVsCFirst.cpuUsPerConn)} `
      + `(daemon ${dCpu?.toFixed(0) ?? '-'} µs, nfq-c-first ${fCpu?.toFixed(0) ?? '-'} µs)`);
  }
  const refRatio = ratio(meanConn('daemon'), meanConn('daemon-ref'));
  if (refRatio !== undefined) {
    lines.push(`daemon vs daemon-ref (mean over rounds): conn/s x${fmtRatio(refRatio)}, consumer CPU per connection x${fmtRatio(ratio(meanCpu('daemon'), meanCpu('daemon-ref')))}`);
  }
  if (opt.rounds > 1) {
    const m = (x: ResultName): string => meanConn(x)?.toFixed(0) ?? '-';
    lines.push(`means over rounds: conn/s nfq-c ${m('nfq-c')}, nfq-c-first ${m('nfq-c-first')}, daemon ${m('daemon')}, daemon-ref ${m('daemon-ref')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return { rows: jsonRows, baseline: base, drift, daemonVsC, daemonVsCFirst };
}

async function main(): Promise<number> {
  const opt = parseArgs(process.argv.slice(2));
  const root = findRepoRoot();
  const out = opt.out ? resolve(opt.out) : join(root, 'bench', 'results', 'latest.json');
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'nfs-bench-'));
  let topo: Topology | undefined;
  const budget = setTimeout(() => {
    log(`time budget of ${opt.budgetS} s exceeded; aborting`);
    // process 'exit' handlers of the topology kill what we started and delete the namespaces.
    rmSync(tmp, { recursive: true, force: true });
    process.exit(3);
  }, opt.budgetS * 1000);

  try {
    const src = join(root, 'bench', 'c');
    const bin: Ctx['bin'] = { connectRate: join(tmp, 'connect-rate'), acceptServer: join(tmp, 'accept-server') };
    gcc(bin.connectRate, join(src, 'connect-rate.c'));
    gcc(bin.acceptServer, join(src, 'accept-server.c'));
    if (opt.modes.includes('nfq-c') || opt.modes.includes('nfq-c-first')) {
      const nfqSrc = opt.nfqSrc || join(src, 'nfq-accept.c');
      if (!existsSync(nfqSrc)) {
        bin.nfqAcceptSkip = `${nfqSrc} does not exist yet`;
      } else {
        try {
          gcc(join(tmp, 'nfq-accept'), nfqSrc, ['-lnetfilter_queue', '-lmnl']);
          bin.nfqAccept = join(tmp, 'nfq-accept');
        } catch (e) {
          bin.nfqAcceptSkip = (e as Error).message;
        }
      }
    }

    log('creating topology');
    topo = await createTopology({ label: 'bench' });
    // Many short connections from one client: widen the client's port range (this netns only).
    await topo.execOk('client', ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535']);
    await iperf3Server(topo, { port: IPERF_PORT });
    const acc = topo.spawn('server', [bin.acceptServer, '::', String(CONN_PORT)]);
    await acc.waitForLine(/"listening":true/, { timeoutMs: 5000 });
    await waitForTcpListen(topo, 'server', CONN_PORT);

    const ctx: Ctx = { topo, opt, bin, root, tmp };
    const results: ModeResult[] = [];
    const plan: ResultName[] = [];
    for (let round = 0; round < opt.rounds; round++) {
      for (const mode of opt.modes) {
        if (mode === 'kernel' && round > 0) continue;
        plan.push(mode);
        if (mode === 'daemon' && opt.refCli) plan.push('daemon-ref');
      }
    }
    for (const mode of plan) {
      log(`mode ${mode}: measuring (${opt.seconds} s iperf3 + ${opt.connSeconds} s connect-rate)`);
      try {
        const r = mode === 'kernel' ? await runKernel(ctx) : mode === 'nfq-c' ? await runNfqC(ctx)
          : mode === 'nfq-c-first' ? await runNfqCFirst(ctx) : mode === 'daemon-ref' ? await runDaemon(ctx, opt.refCli) : await runDaemon(ctx);
        if (r.skipped) log(`mode ${mode}: skipped: ${r.skipped}`);
        results.push(r);
      } catch (e) {
        log(`mode ${mode}: error: ${(e as Error).message}`);
        results.push({ mode, error: (e as Error).message, notes: [] });
      }
    }
    // The machine's load can change during the run (other jobs, thermal): measure the baseline
    // again at the end; ratios use the mean of both kernel runs, and the drift is printed.
    if (opt.rebaseline && results.some((x) => x.mode !== 'kernel' && !x.skipped && !x.error)) {
      log('mode kernel: measuring again (drift check)');
      try {
        const r = await runKernel(ctx);
        results.push({ ...r, mode: 'kernel-end' });
      } catch (e) {
        results.push({ mode: 'kernel-end', error: (e as Error).message, notes: [] });
      }
    }

    const summary = printTable(results, opt);
    const doc = {
      bench: 'datapath',
      started: started.toISOString(),
      finished: new Date().toISOString(),
      host: { kernel: release(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memBytes: totalmem(), node: process.version },
      params: { iperf3Seconds: opt.seconds, iperf3Streams: 1, connSeconds: opt.connSeconds, connConcurrency: opt.concurrency, path: 'client -> router (forward) -> server, IPv4' },
      results,
      baseline: summary.baseline,
      baselineDrift: summary.drift ?? null,
      ratiosVsKernel: summary.rows,
      daemonVsNfqC: summary.daemonVsC ?? null,
      daemonVsNfqCFirst: summary.daemonVsCFirst ?? null,
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
    log(`results written to ${out}`);
    return results.some((x) => x.error) || results[0]?.error ? 1 : 0;
  } finally {
    clearTimeout(budget);
    if (topo) await topo.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
