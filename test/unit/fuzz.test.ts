// Fuzz targets in CI: each one for a short burst with a fixed seed (the campaign runs them at
// scale: test/fuzz/campaign.ts), and every input a campaign found a bug with, replayed.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import fc from 'fast-check';
import { decodeJson } from '../../src/state/snapshot.js';
import { REGRESSIONS_DIR } from '../fuzz/seeds.js';
import { targetByName, TARGETS } from '../fuzz/targets.js';

const SEED = 20261203;
/** Inputs per target in CI, divided by the target's cost. */
const RUNS = 1000;

for (const target of TARGETS) {
  t.test(`${target.name}: ${RUNS / (target.cost ?? 1)} inputs, seed ${SEED}`, async (t) => {
    await fc.assert(fc.asyncProperty(target.arbitrary(), async (input) => { await target.run(input, true); }), {
      seed: SEED, numRuns: Math.ceil(RUNS / (target.cost ?? 1)),
    });
    t.pass(target.invariants.join('; '));
  });
}

t.test('every regression input passes its target', async (t) => {
  const files = readdirSync(REGRESSIONS_DIR).filter((f) => f.endsWith('.json'));
  t.ok(files.length > 0, 'there are regression inputs');
  for (const f of files) {
    const r = JSON.parse(readFileSync(join(REGRESSIONS_DIR, f), 'utf8')) as { target: string; finding: string; input: unknown };
    const target = targetByName(r.target);
    t.ok(target, `${f}: target ${r.target} exists`);
    if (!target) continue;
    await target.run(decodeJson(JSON.stringify(r.input)), true);
    t.pass(`${f}: ${r.finding}`);
  }
});
