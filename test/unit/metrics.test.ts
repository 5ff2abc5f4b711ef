// The metrics module without a daemon: the burst histogram formats exactly like prom-client's
// own Histogram, and a fresh engine's metrics carry every series with the values of its counters.

import t from 'tap';
import { Histogram, Registry, type Metric } from 'prom-client';
import { engineConfigFor, parseConfig } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { BurstHistogram, DaemonMetrics, LATENCY_BUCKETS, sessionState } from '../../src/metrics/metrics.js';

t.test('BurstHistogram text equals prom-client Histogram text for the same observations', async (t) => {
  const a = new Registry();
  const b = new Registry();
  const ref = new Histogram({ name: 'lat_seconds', help: 'h', buckets: LATENCY_BUCKETS, registers: [a] });
  const mine = new BurstHistogram('lat_seconds', 'h', LATENCY_BUCKETS);
  b.registerMetric(mine as unknown as Metric);
  const obs: Array<[number, number]> = [[0.000003, 4], [0.00001, 1], [0.00004, 7], [0.0009, 2], [0.5, 3]];
  for (const [v, n] of obs) {
    for (let i = 0; i < n; i++) ref.observe(v);
    mine.observe(v, n);
  }
  t.equal(await b.metrics(), await a.metrics());
});

t.test('DaemonMetrics on a fresh engine', async (t) => {
  const engine = new SessionEngine(engineConfigFor(parseConfig(''), (i) => `if${i}`));
  const m = new DaemonMetrics({
    engine: () => engine,
    vdName: () => 'root',
    queues: () => [{ queue: 0, waiting: 1, queueDropped: 5, userDropped: 7, lastId: 100 }],
    expectations: () => [{ helper: 'ftp' }, { helper: 'ftp' }, { helper: 'sip' }],
    mechanism: () => 'xt-nfqueue',
    version: '9.9.9',
    journal: () => ({ records: 12, bytes: 3400, flushes: 3, last_flush_us: 250, compactions: 2, replayed: 5, dropped: 1, write_errors: 0, failing: 0 }),
  }, { processMetrics: false });
  for (let i = 0; i < 3; i++) m.packetDecided();
  await Promise.resolve();
  m.packetDecided();
  await Promise.resolve();
  m.reloaded(true);
  m.reloaded(false);
  m.reloaded(false);
  const text = await m.text();
  for (const line of [
    'nfsessiond_info{version="9.9.9",mechanism="xt-nfqueue"} 1',
    'nfsessiond_sessions_created_total 0',
    'nfsessiond_session_setup_failures_total{reason="policy_deny"} 0',
    'nfsessiond_expectations{helper="ftp"} 2',
    'nfsessiond_expectations{helper="sip"} 1',
    'nfsessiond_conserve_mode 0',
    'nfsessiond_failopen{mode="disable"} 1',
    'nfsessiond_failopen{mode="pass"} 0',
    'nfsessiond_queue_dropped_total{queue="0"} 5',
    'nfsessiond_queue_user_dropped_total{queue="0"} 7',
    'nfsessiond_queue_waiting{queue="0"} 1',
    'nfsessiond_verdict_latency_seconds_count 4',
    'nfsessiond_verdict_latency_seconds_bucket{le="+Inf"} 4',
    'nfsessiond_config_reloads_total{result="ok"} 1',
    'nfsessiond_config_reloads_total{result="rejected"} 2',
    'nfsessiond_journal_records_total 12',
    'nfsessiond_journal_bytes_total 3400',
    'nfsessiond_journal_flushes_total 3',
    'nfsessiond_journal_compactions_total 2',
    'nfsessiond_journal_write_errors_total 0',
    'nfsessiond_journal_failing 0',
    'nfsessiond_journal_last_flush_seconds 0.00025',
    'nfsessiond_journal_replayed_records 5',
    'nfsessiond_journal_dropped_records 1',
  ]) t.ok(text.split('\n').includes(line), line);
  t.notMatch(text, /^process_/m, 'process metrics off when asked');
  // A second scrape gives the same counter values (collect sets, never adds twice).
  const again = await m.text();
  t.equal(again.match(/^nfsessiond_queue_dropped_total\{queue="0"\} (\d+)$/m)?.[1], '5');
});

t.test('session state labels', async (t) => {
  t.equal(sessionState(6, [1, 1]), 'established');
  t.equal(sessionState(6, [2, 0]), 'syn_sent');
  t.equal(sessionState(17, [0, 0]), 'new');
  t.equal(sessionState(17, [0, 1]), 'established');
});

t.test('a scrape waits for the table to be brought up to date first; a failed refresh still serves', async (t) => {
  const engine = new SessionEngine(engineConfigFor(parseConfig(''), (i) => `if${i}`));
  const order: string[] = [];
  let fail = false;
  const m = new DaemonMetrics({
    engine: () => { order.push('collect'); return engine; },
    vdName: () => 'root',
    queues: () => [],
    beforeScrape: async () => {
      await new Promise((r) => setTimeout(r, 5));
      order.push('refresh');
      if (fail) throw new Error('netlink gone');
    },
  }, { processMetrics: false });
  await m.text();
  t.equal(order[0], 'refresh', 'the refresh ends before any collect reads the engine');
  fail = true;
  t.match(await m.text(), /^nfsessiond_sessions_created_total 0$/m);
});
