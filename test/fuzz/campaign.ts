// Fuzz campaign: every target (or --targets a,b) for its share of --inputs, each in a child
// process, one or --jobs at a time. Prints per target: inputs, seconds, inputs/s, failures,
// peak RSS (and RSS after the first tenth vs at the end, to see growth), the slowest input, and
// the branch coverage of the target's source files reached during the run.
//
//   node dist/test/fuzz/campaign.js --inputs 10000000 --seed 1 --jobs 2
//   node dist/test/fuzz/campaign.js --replay decode --seed 1 --index 12345   (writes that input)
//
// Findings go to --findings (default fuzz-findings/) as JSON; a child silent for --hang-ms is
// killed and reported as a hang with the index it had reached.

import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeJson } from '../../src/state/snapshot.js';
import { summarise, type Coverage } from './coverage.js';
import { REPO_ROOT } from './seeds.js';
import { targetByName, TARGETS } from './targets.js';
import { inputAt, runTarget, type Done, type Progress } from './worker.js';

interface Args { inputs: number; seed: number; jobs: number; targets: string[]; hangMs: number; findings: string; coverage: boolean; json?: string; child?: string; replay?: string; index?: number }

function parseArgs(argv: string[]): Args {
  const a: Args = { inputs: 120_000, seed: 1, jobs: 1, targets: TARGETS.map((t) => t.name), hangMs: 30_000, findings: resolve('fuzz-findings'), coverage: true };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--inputs': a.inputs = Number(v); i++; break;
      case '--seed': a.seed = Number(v); i++; break;
      case '--jobs': a.jobs = Number(v); i++; break;
      case '--targets': a.targets = v.split(','); i++; break;
      case '--hang-ms': a.hangMs = Number(v); i++; break;
      case '--findings': a.findings = resolve(v); i++; break;
      case '--json': a.json = resolve(v); i++; break;
      case '--no-coverage': a.coverage = false; break;
      case '--child': a.child = v; i++; break;
      case '--replay': a.replay = v; i++; break;
      case '--index': a.index = Number(v); i++; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  for (const t of a.targets) if (!targetByName(t)) throw new Error(`unknown target ${t} (targets: ${TARGETS.map((x) => x.name).join(', ')})`);
  return a;
}

interface Row { target: string; done?: Done; hang?: { index: number }; crash?: string; coverage?: Coverage }

function runChild(a: Args, name: string, inputs: number): Promise<Row> {
  const v8 = mkdtempSync(join(tmpdir(), `fuzz-cov-${name}-`));
  const env = { ...process.env, ...(a.coverage ? { NODE_V8_COVERAGE: v8 } : {}) };
  const child = fork(fileURLToPath(import.meta.url), ['--child', name, '--inputs', String(inputs), '--seed', String(a.seed), '--findings', a.findings], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const row: Row = { target: name };
  let last = Date.now();
  let reached = 0;
  const watchdog = setInterval(() => {
    if (Date.now() - last > a.hangMs) { row.hang = { index: reached }; child.kill('SIGKILL'); }
  }, 1000);
  child.on('message', (m: Progress | Done) => {
    last = Date.now();
    if (m.type === 'progress') reached = m.done;
    else row.done = m;
  });
  return new Promise((res) => {
    child.on('exit', (code, signal) => {
      clearInterval(watchdog);
      if (!row.done && !row.hang) row.crash = `exited with ${signal ?? code} after ${reached} inputs`;
      if (a.coverage && row.done) {
        const t = targetByName(name)!;
        try { row.coverage = summarise(REPO_ROOT, v8, t.sources); } catch (e) { row.crash = `coverage: ${(e as Error).message}`; }
      }
      rmSync(v8, { recursive: true, force: true });
      res(row);
    });
  });
}

function print(rows: Row[], total: number, seconds: number): void {
  const head = ['target', 'inputs', 'seconds', 'inputs/s', 'failures', 'peak RSS MB', 'RSS 10%->end MB', 'slowest ms', 'branches'];
  const lines = rows.map((r) => {
    const d = r.done;
    if (!d) return [r.target, '-', '-', '-', r.hang ? `HANG at ${r.hang.index}` : `CRASH ${r.crash}`, '-', '-', '-', '-'];
    const cov = r.coverage ? `${r.coverage.branches.covered}/${r.coverage.branches.total} (${((100 * r.coverage.branches.covered) / Math.max(1, r.coverage.branches.total)).toFixed(1)}%)` : 'n/a';
    return [r.target, String(d.inputs), d.seconds.toFixed(1), String(Math.round(d.inputs / d.seconds)), String(d.failures), String(d.peakRssMb), `${d.rssAfterWarmupMb}->${d.rssEndMb}`, d.slowestMs.toFixed(1), cov];
  });
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (l: string[]) => l.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  console.log(fmt(head));
  for (const l of lines) console.log(fmt(l));
  console.log(`total: ${total} inputs in ${seconds.toFixed(0)} s`);
  for (const r of rows) if (r.coverage) console.log(`  ${r.target}: ${Object.entries(r.coverage.perFile).map(([f, c]) => `${f} ${c}`).join(', ')}`);
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.child) {
    await runTarget(targetByName(a.child)!, a.inputs, a.seed, a.findings, (m) => process.send!(m));
    // Exit (rather than wait for the IPC channel to close) so V8 writes the coverage now.
    process.disconnect();
    process.exit(0);
  }
  if (a.replay) {
    const t = targetByName(a.replay)!;
    const input = inputAt(t, a.seed, a.index ?? 0);
    const file = resolve(`${t.name}-${a.seed}-${a.index ?? 0}.json`);
    writeFileSync(file, `${JSON.stringify({ target: t.name, input: JSON.parse(encodeJson(input)) }, null, 1)}\n`);
    console.log(`wrote ${file}`);
    await t.run(input, true);
    console.log('the input passes');
    return;
  }
  // Shares inversely proportional to each target's cost per input, summing to --inputs.
  const weight = (n: string) => 1 / (targetByName(n)!.cost ?? 1);
  const sum = a.targets.reduce((s, n) => s + weight(n), 0);
  const share = (n: string) => Math.ceil((a.inputs * weight(n)) / sum);
  console.log(`campaign: ${a.targets.length} targets, ${a.inputs} inputs (${a.targets.map((n) => `${n} ${share(n)}`).join(', ')}), seed ${a.seed}, ${a.jobs} at a time, coverage ${a.coverage ? 'on (NODE_V8_COVERAGE + c8)' : 'off'}`);
  const started = Date.now();
  const queue = [...a.targets];
  const rows: Row[] = [];
  await Promise.all(Array.from({ length: a.jobs }, async () => {
    for (let name = queue.shift(); name; name = queue.shift()) {
      const row = await runChild(a, name, share(name));
      rows.push(row);
      const d = row.done;
      const cov = row.coverage ? `, branches ${row.coverage.branches.covered}/${row.coverage.branches.total}` : '';
      const mem = d ? `, peak RSS ${d.peakRssMb} MB (${d.rssAfterWarmupMb}->${d.rssEndMb}), slowest ${d.slowestMs.toFixed(0)} ms` : '';
      console.log(`  ${name}: ${d ? `${d.inputs} inputs, ${d.seconds.toFixed(0)} s, ${d.failures} failures${mem}${cov}` : row.hang ? `hang at ${row.hang.index}` : row.crash}`);
    }
  }));
  rows.sort((x, y) => a.targets.indexOf(x.target) - a.targets.indexOf(y.target));
  const seconds = (Date.now() - started) / 1000;
  print(rows, rows.reduce((n, r) => n + (r.done?.inputs ?? 0), 0), seconds);
  if (a.json) writeFileSync(a.json, `${JSON.stringify({ seed: a.seed, seconds, rows }, null, 1)}\n`);
  const bad = rows.some((r) => !r.done || r.done.failures > 0);
  process.exitCode = bad ? 1 : 0;
}

await main();
