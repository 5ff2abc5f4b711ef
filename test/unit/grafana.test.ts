// contrib/grafana/nfsessiond.json queries only what the daemon exports: every metric name in a
// panel's PromQL (and in the template variables' label_values) is a series of DaemonMetrics, and
// the panels the operators asked for are there.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { engineConfigFor, parseConfig } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { DaemonMetrics } from '../../src/metrics/metrics.js';

interface Target { expr: string; refId: string }
interface Panel { id: number; type: string; title: string; targets?: Target[]; panels?: Panel[]; gridPos?: { x: number; y: number; w: number; h: number }; datasource?: { uid: string } }
interface Dashboard { uid: string; title: string; panels: Panel[]; templating: { list: Array<{ name: string; type: string; query: string | { query: string } }> } }

const dashboard = JSON.parse(readFileSync(new URL('../../contrib/grafana/nfsessiond.json', import.meta.url), 'utf8')) as Dashboard;
const panels = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...panels(p.panels ?? [])]);
const all = panels(dashboard.panels);

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * Metric names of a PromQL expression: identifiers left once strings, label matchers, range
 * selectors, grouping clauses and numbers are gone, other than function names (followed by a
 * parenthesis) and keywords.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\b\d+(\.\d+)?(e[+-]?\d+)?\b/gi, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue;
    names.push(m[1]);
  }
  return names;
}

async function exported(): Promise<Set<string>> {
  const engine = new SessionEngine(engineConfigFor(parseConfig(''), (i) => `if${i}`));
  const m = new DaemonMetrics({ engine: () => engine, vdName: () => 'root', queues: () => [{ queue: 0, waiting: 0, queueDropped: 0, userDropped: 0, lastId: 0 }] });
  const names = new Set<string>();
  for (const line of (await m.text()).split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      names.add(type[1]);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${type[1]}${s}`);
      continue;
    }
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]);
  }
  return names;
}

t.test('the PromQL reader finds metric names and nothing else', (t) => {
  t.same(metricNames('histogram_quantile(0.99, sum by (le) (rate(nfsessiond_verdict_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))'), ['nfsessiond_verdict_latency_seconds_bucket']);
  t.same(metricNames('sum by (protocol) (nfsessiond_sessions{vdom=~"a|b", x="rate(y)"}) / on (instance) group_left up * 1e9'), ['nfsessiond_sessions', 'up']);
  t.same(metricNames('max(nfsessiond_conserve_mode) or vector(0)'), ['nfsessiond_conserve_mode']);
  t.end();
});

t.test('every metric a panel or a variable queries is exported by the daemon', async (t) => {
  const names = await exported();
  t.ok(names.has('nfsessiond_verdict_latency_seconds_bucket') && names.has('process_resident_memory_bytes'), 'the exported set has histogram buckets and process metrics');
  const queries: Array<[string, string]> = [];
  for (const p of all) for (const q of p.targets ?? []) queries.push([`${p.title} ${q.refId}`, q.expr]);
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const text = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\((.*),\s*[A-Za-z_]+\)$/.exec(text);
    t.ok(m, `variable ${v.name}: label_values(<selector>, <label>)`);
    if (m) queries.push([`variable ${v.name}`, m[1]]);
  }
  t.ok(queries.length >= 25);
  for (const [where, expr] of queries) {
    const used = metricNames(expr);
    t.ok(used.length > 0, `${where}: queries a metric`);
    for (const n of used) t.ok(names.has(n), `${where}: '${n}' is exported`);
  }
});

t.test('the panels operators look for, each with a query, a place and the datasource variable', (t) => {
  t.equal(dashboard.uid, 'nfsessiond');
  const titles = all.map((p) => p.title);
  for (const title of ['Sessions by protocol', 'Sessions by VDOM', 'Session setup rate', 'Setup failures by reason', 'Conserve mode', 'Queue drops', 'Verdict latency', 'Expectations by helper']) {
    t.ok(titles.includes(title), title);
  }
  const byTitle = (title: string) => all.find((p) => p.title === title)!.targets!.map((q) => q.expr).join('\n');
  t.match(byTitle('Sessions by protocol'), /sum by \(protocol\) \(nfsessiond_sessions\{/);
  t.match(byTitle('Sessions by VDOM'), /sum by \(vdom\) \(nfsessiond_sessions\{/);
  t.match(byTitle('Session setup rate'), /rate\(nfsessiond_sessions_created_total\{/);
  t.match(byTitle('Setup failures by reason'), /sum by \(reason\) \(rate\(nfsessiond_session_setup_failures_total\{/);
  t.match(byTitle('Conserve mode'), /nfsessiond_conserve_mode\{/);
  t.match(byTitle('Queue drops'), /rate\(nfsessiond_queue_dropped_total\{[\s\S]*rate\(nfsessiond_queue_user_dropped_total\{/);
  t.match(byTitle('Verdict latency'), /histogram_quantile\(0\.99, sum by \(le\) \(rate\(nfsessiond_verdict_latency_seconds_bucket\{/);
  t.match(byTitle('Expectations by helper'), /sum by \(helper\) \(nfsessiond_expectations\{/);

  const ids = all.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of all) {
    t.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: on the grid`);
    if (p.type === 'row') continue;
    t.ok((p.targets ?? []).length > 0, `${p.title}: has a query`);
    t.equal(p.datasource?.uid, '${datasource}', `${p.title}: uses the datasource variable`);
  }
  t.end();
});
