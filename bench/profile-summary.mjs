#!/usr/bin/env node
// Sums self time by function (and by file) in a V8 .cpuprofile, e.g. one written by
// `node dist/bench/datapath.js --modes daemon --profile DIR`.
// usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 40);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const dt = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const d = prof.timeDeltas[i] ?? 0;
  dt.set(prof.samples[i], (dt.get(prof.samples[i]) ?? 0) + d);
}
const total = [...dt.values()].reduce((a, b) => a + b, 0);
const fn = new Map();
const files = new Map();
const short = (u) => (u ? u.replace(/^.*\/(dist|node_modules)\//, '$1/') : '');
for (const [id, t] of dt) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const key = `${cf.functionName || '(anonymous)'}  ${short(cf.url)}:${cf.lineNumber + 1}`;
  fn.set(key, (fn.get(key) ?? 0) + t);
  const f = short(cf.url) || cf.functionName;
  files.set(f, (files.get(f) ?? 0) + t);
}
const pct = (t) => ((100 * t) / total).toFixed(1).padStart(5);
const print = (title, m, k) => {
  process.stdout.write(`\n${title}\n`);
  for (const [name, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, k)) process.stdout.write(`${pct(t)}%  ${(t / 1000).toFixed(0).padStart(7)} ms  ${name}\n`);
};
process.stdout.write(`total sampled ${(total / 1e6).toFixed(2)} s\n`);
print('self time by function', fn, top);
print('self time by file', files, 25);

// With a third argument NAME: self time of functions named NAME split by their call chains
// (up to 6 frames), to tell e.g. verdict sends from ctnetlink requests.
const focus = process.argv[4];
if (focus) {
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const chains = new Map();
  for (const [id, t] of dt) {
    const n = byId.get(id);
    if (n.callFrame.functionName !== focus) continue;
    const names = [];
    for (let p = parent.get(id), k = 0; p !== undefined && k < 6; p = parent.get(p), k++) names.push(byId.get(p).callFrame.functionName || '(anon)');
    const key = names.join(' < ');
    chains.set(key, (chains.get(key) ?? 0) + t);
  }
  print(`callers of ${focus}`, chains, 15);
}
