// Flood benchmark: a SYN flood at the full rate one core sends, from 250 sources, through the
// router (src/topology/flood.ts), with two TCP and two UDP flows established before it exchanging
// a message every 20 ms throughout. In one run, one phase after another on one topology (the
// baselines last: the closing packets of their flows, in a fresh conntrack table, would reach the
// daemon's queue as segments of no session and spoil its exact accounting):
//   kernel   no queue at all: what the router forwards (the baseline of the flood's rate)
//   nfq-c    bench/c/nfq-accept.c accepts every packet from the queue: what a C consumer decides
//   refuse   the daemon, `resource-limits session N`, new sessions over it refused
//   pass     the same, over the limit let through uninspected (av-failopen pass)
// Both daemon phases run with `queue-fail-open disable`, so every flood SYN is accounted for:
// the router's own counters (arrived, forwarded) against the daemon's stat (see floodChecks).
// Printed per phase: SYNs arrived and forwarded per second, packets decided per second and CPU
// per decided packet (against nfq-c), the most sessions held against the limit, the daemon's RSS,
// the established flows' echoes and longest gap, and whether each accounting identity held.
//
// Usage: node dist/bench/flood.js [--seconds 60] [--baseline-seconds 10] [--limit 50000]
//                                 [--phases refuse,pass,kernel,nfq-c] [--out FILE]
//                                 [--profile DIR]   (a V8 CPU profile of each daemon phase)

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopology, type NsProcess, type Topology } from '../src/topology/netns.js';
import {
  buildFloodTools, flood, floodAccount, floodChecks, flowProgress, prepareFlood, readRouterCount, settledStat, startFlows, stopFlows,
  type FloodAccount, type FloodStat, type GeneratorResult, type PingFlow,
} from '../src/topology/flood.js';
import { cpuMs, rssKiB } from '../src/topology/proc-stats.js';

type Phase = 'kernel' | 'nfq-c' | 'refuse' | 'pass';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Options { seconds: number; baselineSeconds: number; limit: number; phases: Phase[]; out: string; profileDir: string }

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 60, baselineSeconds: 10, limit: 50000, phases: ['refuse', 'pass', 'kernel', 'nfq-c'], out: join(ROOT, 'bench', 'results', 'flood.json'), profileDir: '' };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--seconds': o.seconds = Number(v); i++; break;
      case '--baseline-seconds': o.baselineSeconds = Number(v); i++; break;
      case '--limit': o.limit = Number(v); i++; break;
      case '--phases': o.phases = v.split(',') as Phase[]; i++; break;
      case '--out': o.out = resolve(v); i++; break;
      case '--profile': o.profileDir = resolve(v); i++; break;
      default: throw new Error(`unknown argument ${argv[i]} (see the usage at the top of bench/flood.ts)`);
    }
  }
  return o;
}

interface PhaseResult {
  phase: Phase;
  generator: GeneratorResult;
  arrived: number;
  forwarded: number;
  /** Packets the queue's consumer decided, and its CPU for them. */
  decided?: number;
  cpuMs?: number;
  account?: FloodAccount;
  checks?: Record<string, boolean>;
  maxSessions?: number;
  rssKiB?: { before: number; max: number; after: number };
  flows: Array<PingFlow & { duringFlood: number }>;
}

const log = (m: string) => process.stderr.write(`flood: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const daemonConfig = (phase: 'refuse' | 'pass', limit: number) => `
config system nfsessiond
    set queue-fail-open disable
end
config system global
    set av-failopen-session ${phase === 'pass' ? 'enable' : 'disable'}
    set av-failopen pass
end
config system resource-limits
    set session ${limit}
end
`;

/** Runs the flood with the established flows around it; `during` samples once a second. */
async function floodWithFlows(topo: Topology, tools: ReturnType<typeof buildFloodTools>, seconds: number, during?: () => Promise<void>, ready?: () => Promise<void>) {
  const flows = await startFlows(topo, 2, 2);
  // The flows' own sessions are made before the counts the flood is measured by.
  await ready?.();
  const before = await readRouterCount(topo);
  const p0 = await flowProgress(flows);
  let on = true;
  const sampler = (async () => { while (on) { await during?.(); await sleep(1000); } })();
  const generator = await flood(topo, tools, seconds);
  on = false;
  await sampler;
  const p1 = await flowProgress(flows);
  return { flows, before, generator, progress: p1.map((x, i) => x - p0[i]) };
}

async function finish(topo: Topology, flows: NsProcess, before: { arrived: number; forwarded: number }, progress: number[]) {
  const after = await readRouterCount(topo);
  const ended = await stopFlows(flows);
  return { arrived: after.arrived - before.arrived, forwarded: after.forwarded - before.forwarded, flows: ended.map((f, i) => ({ ...f, duringFlood: progress[i] })) };
}

async function runBaseline(topo: Topology, tools: ReturnType<typeof buildFloodTools>, phase: 'kernel' | 'nfq-c', seconds: number, nfqAccept?: string): Promise<PhaseResult> {
  let consumer: NsProcess | undefined;
  const rule = ['FORWARD', '-j', 'NFQUEUE', '--queue-num', '0'];
  if (phase === 'nfq-c') {
    await topo.execOk('router', ['iptables', '-I', ...rule]);
    consumer = topo.spawn('router', [nfqAccept!, '0', '4096']);
    await consumer.waitForLine(/ready/, { timeoutMs: 10_000 });
  }
  try {
    const cpu0 = consumer ? cpuMs(consumer.pid) ?? 0 : 0;
    const r = await floodWithFlows(topo, tools, seconds);
    const cpu = consumer ? (cpuMs(consumer.pid) ?? 0) - cpu0 : undefined;
    const f = await finish(topo, r.flows, r.before, r.progress);
    let decided: number | undefined;
    if (consumer) {
      await consumer.kill('SIGTERM', 3000);
      const m = /^packets (\d+)$/m.exec(consumer.stdout());
      decided = m ? Number(m[1]) : undefined;
    }
    return { phase, generator: r.generator, ...f, ...(decided !== undefined ? { decided } : {}), ...(cpu !== undefined ? { cpuMs: cpu } : {}) };
  } finally {
    if (consumer) {
      await consumer.kill('SIGTERM', 3000);
      await topo.exec('router', ['iptables', '-D', ...rule]);
    }
  }
}

async function runDaemon(topo: Topology, tools: ReturnType<typeof buildFloodTools>, phase: 'refuse' | 'pass', opt: Options, tmp: string): Promise<PhaseResult> {
  const dir = mkdtempSync(join(tmp, `${phase}-`));
  const cfg = join(dir, 'nfsessiond.conf');
  writeFileSync(cfg, daemonConfig(phase, opt.limit));
  const control = join(dir, 'control.sock');
  const cli = join(ROOT, 'dist', 'src', 'cli.js');
  const prof = opt.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opt.profileDir}`, `--cpu-prof-name=flood-${phase}.cpuprofile`] : [];
  const proc = topo.spawn('router', [process.execPath, ...prof, cli, 'run', '--config', cfg, '--control', control, '--state-dir', dir], { captureLimit: 256 * 1024 });
  try {
    await proc.waitForLine(/"msg":"ready"/, { timeoutMs: 30_000 });
    const stat = async (): Promise<FloodStat> => {
      const r = await topo.exec('router', [process.execPath, cli, 'diagnose', 'sys', 'session', 'stat', '--json', '--control', control], { timeoutMs: 20_000 });
      return JSON.parse(r.stdout) as FloodStat;
    };
    let s0: FloodStat | undefined;
    let rss0 = 0;
    let maxRss = 0;
    let maxSessions = 0;
    let cpu0 = 0;
    const r = await floodWithFlows(topo, tools, opt.seconds, async () => {
      const s = await stat().catch(() => undefined);
      if (s) maxSessions = Math.max(maxSessions, s.session_count);
      maxRss = Math.max(maxRss, rssKiB(proc.pid) ?? 0);
    }, async () => {
      await settledStat(stat, 10_000);
      s0 = await stat();
      rss0 = maxRss = rssKiB(proc.pid) ?? 0;
      cpu0 = cpuMs(proc.pid) ?? 0;
    });
    if (!s0) throw new Error('no stat before the flood');
    const s1 = await settledStat(stat);
    const cpu = (cpuMs(proc.pid) ?? 0) - cpu0;
    const f = await finish(topo, r.flows, r.before, r.progress);
    const account = floodAccount(s0, s1);
    return {
      phase, generator: r.generator, ...f, decided: account.decided, cpuMs: cpu, account,
      checks: floodChecks(account, { arrived: f.arrived, forwarded: f.forwarded }),
      maxSessions: Math.max(maxSessions, s1.session_count), rssKiB: { before: rss0, max: maxRss, after: rssKiB(proc.pid) ?? 0 },
    };
  } finally {
    await proc.kill('SIGTERM', 10_000);
  }
}

function print(results: PhaseResult[], opt: Options): void {
  const c = results.find((r) => r.phase === 'nfq-c');
  const perS = (n: number | undefined, r: PhaseResult) => (n === undefined ? '-' : Math.round(n / r.generator.seconds).toString());
  const usPer = (r: PhaseResult) => (r.cpuMs !== undefined && r.decided ? (r.cpuMs * 1000) / r.decided : undefined);
  const rows = results.map((r) => {
    const us = usPer(r);
    const cUs = c ? usPer(c) : undefined;
    const xC = c?.decided && r.decided !== undefined ? (r.decided / r.generator.seconds) / (c.decided / c.generator.seconds) : undefined;
    return [
      r.phase, perS(r.arrived, r), perS(r.forwarded, r), perS(r.decided, r), xC === undefined ? '-' : xC.toFixed(3),
      us === undefined ? '-' : us.toFixed(2), us !== undefined && cUs ? (us / cUs).toFixed(2) : '-',
      r.maxSessions === undefined ? '-' : `${r.maxSessions}/${opt.limit}`,
      r.rssKiB ? `${Math.round(r.rssKiB.before / 1024)}/${Math.round(r.rssKiB.max / 1024)}/${Math.round(r.rssKiB.after / 1024)}` : '-',
      r.flows.map((f) => `${f.duringFlood}`).join(','), `${Math.max(...r.flows.map((f) => f.maxGapMs))}`,
      r.flows.reduce((a, f) => a + f.errors, 0).toString(),
      r.checks ? (Object.values(r.checks).every(Boolean) ? 'all hold' : `FAILED: ${Object.entries(r.checks).filter(([, v]) => !v).map(([k]) => k).join('; ')}`) : '-',
    ];
  });
  const head = ['phase', 'arrived/s', 'forwarded/s', 'decided/s', 'x nfq-c', 'cpu us/pkt', 'x nfq-c', 'max sessions', 'rss MiB b/max/a', 'echoes in flood', 'max gap ms', 'flow errors', 'accounting'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((x, i) => (i === 0 || i === cells.length - 1 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<number> {
  const opt = parseArgs(process.argv.slice(2));
  const tmp = mkdtempSync(join(tmpdir(), 'nfs-flood-'));
  let topo: Topology | undefined;
  try {
    const tools = buildFloodTools(tmp);
    let nfqAccept: string | undefined;
    if (opt.phases.includes('nfq-c')) {
      nfqAccept = join(tmp, 'nfq-accept');
      const b = spawnSync('gcc', ['-O2', '-o', nfqAccept, join(ROOT, 'bench', 'c', 'nfq-accept.c'), '-lnetfilter_queue', '-lmnl'], { encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`building nfq-accept: ${b.stderr}`);
    }
    topo = await createTopology({ label: 'flood' });
    await prepareFlood(topo, tools);
    const results: PhaseResult[] = [];
    for (const phase of opt.phases) {
      const secs = phase === 'kernel' || phase === 'nfq-c' ? opt.baselineSeconds : opt.seconds;
      log(`phase ${phase}: ${secs} s of flood`);
      const r = phase === 'kernel' || phase === 'nfq-c' ? await runBaseline(topo, tools, phase, secs, nfqAccept) : await runDaemon(topo, tools, phase, opt, tmp);
      results.push(r);
      // The kernel's half-open entries of one phase would weigh on the next.
      await topo.exec('router', ['conntrack', '-F']);
    }
    print(results, opt);
    mkdirSync(dirname(opt.out), { recursive: true });
    writeFileSync(opt.out, `${JSON.stringify({ bench: 'flood', finished: new Date().toISOString(), host: { kernel: release(), cpus: cpus().length }, params: opt, results }, null, 2)}\n`);
    log(`results written to ${opt.out}`);
    return results.some((r) => r.checks && !Object.values(r.checks).every(Boolean)) ? 1 : 0;
  } finally {
    if (topo) await topo.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`flood: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
