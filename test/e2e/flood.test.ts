// A SYN flood at the full rate one core sends, from 250 sources the client does not own, through
// the daemon on the router (src/topology/flood.ts), with `resource-limits session` and the queue
// told to drop, not pass, what it cannot hold (`queue-fail-open disable`). Two TCP and two UDP
// flows established before the flood exchange a message every 20 ms throughout.
//
// Each flood SYN has its own fate, and the test's own counters at the router (arrived before
// conntrack, forwarded after every hook) must equal the daemon's accounting exactly:
//   arrived - forwarded = dropped by the daemon + dropped by the kernel's queue (full, or socket)
//   forwarded           = new sessions + flows let through by fail-open
// and, per conserve mode, every daemon drop is a limit refusal (refuse) or there is none (pass).
// The table never holds more than the limit, the established flows pass traffic during the
// flood, and the daemon's memory stays bounded. The bench (bench/flood.ts) runs the same for 60 s.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import {
  buildFloodTools, flood, floodAccount, floodChecks, flowProgress, prepareFlood, readRouterCount, settledStat, startFlows, stopFlows,
} from '../../src/topology/flood.js';
import { rssKiB } from '../../src/topology/proc-stats.js';
import type { StatView } from '../../src/control/format.js';
import { eventually, startDaemon } from '../lib/daemon.js';

const LIMIT = 1500;
const FLOOD_SECONDS = 5;

const config = (mode: 'refuse' | 'pass') => `
config system nfsessiond
    set queue-fail-open disable
end
config system global
    set av-failopen-session ${mode === 'pass' ? 'enable' : 'disable'}
    set av-failopen pass
end
config system resource-limits
    set session ${LIMIT}
end
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tools: ReturnType<typeof buildFloodTools> | undefined;
let skip: string | false = false;
const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-flood-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
try {
  tools = buildFloodTools(dir);
} catch (e) {
  skip = `cannot build the flood generator with gcc: ${(e as Error).message}`;
}

for (const mode of ['refuse', 'pass'] as const) {
  t.test(`SYN flood, conserve mode ${mode}: every SYN accounted for, the limit held, established flows pass`, { skip }, async (t) => {
    await withTopology(t, async (topo) => {
      await prepareFlood(topo, tools!);
      const d = await startDaemon(topo, config(mode));
      t.teardown(() => d.stop());
      const stat = () => d.json<StatView>('diagnose', 'sys', 'session', 'stat');
      const flows = await startFlows(topo, 2, 2);
      // Offloaded before the flood: their packets no longer reach the queue.
      await eventually(async () => ((await d.json<{ sessions: Array<{ offloaded?: boolean }> }>('diagnose', 'sys', 'session', 'list')).sessions
        .filter((s) => s.offloaded).length >= 4 ? true : undefined));
      const s0 = await settledStat(stat, 10_000);
      const rss0 = rssKiB(d.proc.pid) ?? 0;
      const p0 = await flowProgress(flows);

      const samples: Array<{ sessions: number; rss: number }> = [];
      let flooding = true;
      const sampler = (async () => {
        while (flooding) {
          const s = await stat().catch(() => undefined);
          if (s) samples.push({ sessions: s.session_count, rss: rssKiB(d.proc.pid) ?? 0 });
          await sleep(500);
        }
      })();
      const gen = await flood(topo, tools!, FLOOD_SECONDS);
      flooding = false;
      await sampler;
      const p1 = await flowProgress(flows);

      // Quiet again: the queue has drained and the counts stand still.
      const s1 = await settledStat(stat);
      const count = await readRouterCount(topo);
      const ended = await stopFlows(flows);
      const a = floodAccount(s0, s1);
      const maxRss = Math.max(rss0, ...samples.map((x) => x.rss));
      t.comment(`generator: ${gen.sent} SYNs in ${gen.seconds} s (${gen.pps}/s, ${gen.failed} not sent); router: arrived ${count.arrived}, forwarded ${count.forwarded}`);
      t.comment(`daemon and queue: ${JSON.stringify(a)}`);
      t.comment(`sessions sampled: max ${Math.max(...samples.map((x) => x.sessions))} of ${LIMIT}; RSS ${rss0} KiB before, ${maxRss} KiB at most`);
      t.comment(`flows: ${ended.map((f) => `${f.proto} sent ${f.sent} echoed ${f.echoed} max gap ${f.maxGapMs} ms`).join('; ')}`);

      t.ok(count.arrived > LIMIT * 4, `the flood was far beyond the limit (${count.arrived} SYNs arrived)`);
      for (const [what, holds] of Object.entries(floodChecks(a, count))) t.ok(holds, what);
      if (mode === 'refuse') {
        t.equal(a.dropped, a.limitDrop, 'every packet the daemon dropped was refused by the session limit');
        t.equal(a.bypassed, 0, 'nothing let through without a session');
        t.ok(a.limitDrop > 0, 'the limit refused new sessions');
      } else {
        t.equal(a.dropped, 0, 'the daemon dropped nothing: over the limit, flows pass uninspected');
        t.equal(a.limitDrop, 0);
        t.ok(a.bypassed > 0, 'fail-open let flows through');
      }
      t.ok(samples.length > 0 && samples.every((x) => x.sessions <= LIMIT), 'the table never held more than the limit');
      t.ok(maxRss - rss0 < 256 * 1024, `memory stayed bounded (RSS grew ${maxRss - rss0} KiB)`);
      for (const [i, f] of ended.entries()) {
        t.equal(f.errors, 0, `${f.proto} flow ${i}: no error (${f.error ?? 'none'})`);
        t.ok(p1[i] - p0[i] > 0, `${f.proto} flow ${i}: ${p1[i] - p0[i]} echoes during the flood`);
      }
      t.ok(d.proc.running, 'the daemon is still running');
    });
  });
}
