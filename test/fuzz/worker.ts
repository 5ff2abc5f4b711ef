// One target's share of a campaign, in a process of its own (so its peak RSS and its V8
// coverage are its own, and a hang can be killed from outside). Inputs come from fc.sample in
// batches seeded by (seed, batch): input k of a run is batch floor(k / BATCH), position k % BATCH,
// so any finding or hang is reproduced from its target, seed and index alone.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeJson } from '../../src/state/snapshot.js';
import { havoc, Xorshift } from './havoc.js';
import type { FuzzTarget } from './target.js';

export const BATCH = 1000;
/** Inputs run per generated one: itself and MUTANTS - 1 cheap mutants of it (see havoc.ts). */
export const MUTANTS = 32;

export interface Progress { type: 'progress'; done: number; failures: number; rss: number }
export interface Done {
  type: 'done'; inputs: number; seconds: number; failures: number; peakRssMb: number;
  rssAfterWarmupMb: number; rssEndMb: number; slowestMs: number; slowestIndex: number; findings: string[];
}

export const batchSeed = (seed: number, batch: number): number => (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + batch) | 0;

const mutantSeed = (seed: number, index: number): number => Math.imul(seed + 0x632be5ab, 0x85ebca6b) ^ index;

/** Input `index` of a run with `seed`, exactly as the campaign generated it. */
export function inputAt<I>(target: FuzzTarget<I>, seed: number, index: number): I {
  const arb = target.arbitrary();
  const generated = Math.floor(index / MUTANTS);
  const batch = fc.sample(arb, { seed: batchSeed(seed, Math.floor(generated / BATCH)), numRuns: BATCH });
  const base = batch[generated % BATCH];
  return index % MUTANTS === 0 ? base : (target.havoc ?? havoc)(base, new Xorshift(mutantSeed(seed, index)));
}

export async function runTarget(
  target: FuzzTarget<unknown>, inputs: number, seed: number, findingsDir: string,
  report: (m: Progress | Done) => void,
): Promise<void> {
  const arb = target.arbitrary();
  const mutate = target.havoc ?? havoc;
  const started = process.hrtime.bigint();
  let failures = 0;
  let slowestMs = 0;
  let slowestIndex = -1;
  let rssAfterWarmup = 0;
  let lastReport = Date.now();
  const findings: string[] = [];
  const perBatch = BATCH * MUTANTS;
  for (let b = 0; b * perBatch < inputs; b++) {
    const n = Math.min(perBatch, inputs - b * perBatch);
    const batch = fc.sample(arb, { seed: batchSeed(seed, b), numRuns: BATCH });
    for (let k = 0; k < n; k++) {
      const index = b * perBatch + k;
      const base = batch[Math.floor(k / MUTANTS)];
      const input = index % MUTANTS === 0 ? base : mutate(base, new Xorshift(mutantSeed(seed, index)));
      const t0 = performance.now();
      try {
        const r = target.run(input, index % MUTANTS === 0);
        if (r) await r;
      } catch (e) {
        failures++;
        if (findings.length < 20) {
          mkdirSync(findingsDir, { recursive: true });
          const file = join(findingsDir, `${target.name}-${seed}-${index}.json`);
          writeFileSync(file, `${JSON.stringify({ target: target.name, seed, index, error: String((e as Error)?.stack ?? e).split('\n').slice(0, 6).join('\n'), input: JSON.parse(encodeJson(input)) }, null, 1)}\n`);
          findings.push(file);
        }
      }
      const ms = performance.now() - t0;
      if (ms > slowestMs) { slowestMs = ms; slowestIndex = index; }
    }
    const done = b * perBatch + n;
    if (!rssAfterWarmup && done >= inputs / 10) rssAfterWarmup = process.memoryUsage().rss;
    if (Date.now() - lastReport > 1000) {
      lastReport = Date.now();
      report({ type: 'progress', done, failures, rss: process.memoryUsage().rss });
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const mb = (x: number) => Math.round(x / 1048576);
  report({
    type: 'done', inputs, seconds, failures, peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    rssAfterWarmupMb: mb(rssAfterWarmup || process.memoryUsage().rss), rssEndMb: mb(process.memoryUsage().rss), slowestMs, slowestIndex, findings,
  });
}
