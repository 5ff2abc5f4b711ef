// The operator documentation stays true: the config examples in the README parse as one file and
// cover every block of the schema, and every metric the daemon exports is documented.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { BLOCKS, TABLES } from '../../src/config/blocks.js';
import { parseConfig, engineConfigFor } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { DaemonMetrics } from '../../src/metrics/metrics.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function section(heading: string): string {
  const i = README.indexOf(`\n${heading}\n`);
  if (i < 0) throw new Error(`README has no '${heading}'`);
  const level = heading.split(' ')[0];
  const rest = README.slice(i + heading.length + 2);
  const next = rest.search(new RegExp(`\\n#{1,${level.length}} `));
  return next < 0 ? rest : rest.slice(0, next);
}

t.test('every config block by example, and the examples form one valid file', async (t) => {
  const s = section('### Every block by example');
  const conf = [...s.matchAll(/```conf\n([\s\S]*?)```/g)].map((m) => m[1]).join('');
  t.doesNotThrow(() => parseConfig(conf, 'README examples'));
  for (const path of [...Object.keys(BLOCKS), ...Object.keys(TABLES)]) t.match(conf, new RegExp(`^\\s*config ${path}$`, 'm'), `config ${path}`);
  t.match(conf, /^config vdom$/m, 'config vdom');
});

t.test('every exported metric is documented', async (t) => {
  const engine = new SessionEngine(engineConfigFor(parseConfig(''), (i) => `if${i}`));
  const m = new DaemonMetrics({ engine: () => engine, vdName: () => 'root', queues: () => [] }, { processMetrics: false });
  const names = [...new Set((await m.text()).split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]))];
  t.ok(names.length > 15);
  const doc = section('### Metrics');
  for (const n of names) t.match(doc, `\`${n}`, n);
});

t.test('operate, troubleshoot, vendor CLI sections', async (t) => {
  const op = section('## Operate');
  for (const c of ['diagnose sys session filter', 'diagnose sys session list', 'diagnose sys session clear', 'diagnose sys session full-stat',
    'diagnose sys conserve', 'diagnose wad user list', 'get test proxyworker 4', 'get test proxyworker 1', 'get test proxyworker 4444', 'get test proxyworker 99', 'diagnose debug flow trace start', 'diagnose debug flow trace read',
    'execute log display']) t.match(op, `$ nfsessiond ${c}`, c);
  const tr = section('## Troubleshoot');
  for (const topic of ['**Queue drops.**', '**Conserve mode.**', '**A helper does not fire.**']) t.match(tr, topic);
  t.match(section('## From the vendor CLI'), '| vendor | nfsessiond |');
  t.match(section('## Install on a router'), 'nfsessiond install --dry-run');
});
