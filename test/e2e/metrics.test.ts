// The Prometheus endpoint during a real run: the daemon on the router of a namespace topology,
// scraped with curl inside the router namespace (the endpoint is on the router's loopback).
// Sessions by protocol/state/VDOM, setup counts and refusals by reason, the queue counters from
// /proc/net/netfilter/nfnetlink_queue, the verdict latency histogram, config reloads.

import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import { curlFetch, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { eventually, queueCounters, startDaemon } from '../lib/daemon.js';

const PORT = 9469;
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const config = (extra = '') => `
config system nfsessiond
    set kernel-sync-interval 1
    set metrics-listen 127.0.0.1:${PORT}
${extra}end
config firewall service custom
    edit "udp-7009"
        set udp-portrange 7009
    next
end
config firewall policy
    edit 1
        set srcintf "any"
        set dstintf "any"
        set srcaddr "all"
        set dstaddr "all"
        set service "udp-7009"
        set action deny
    next
    edit 2
        set srcintf "any"
        set dstintf "any"
        set srcaddr "all"
        set dstaddr "all"
        set service "ALL"
        set action accept
    next
end
`;

async function scrape(topo: Topology, path = '/metrics', port = PORT): Promise<{ code: number | null; body: string }> {
  const r = await topo.exec('router', ['curl', '-sS', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${path}`]);
  const i = r.stdout.lastIndexOf('\n');
  return { code: r.code === 0 ? Number(r.stdout.slice(i + 1)) : null, body: r.stdout.slice(0, i) };
}

/** The value of one sample; labels must match exactly (all of them, any order). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const kv of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got[kv[1]] = kv[2];
    const keys = Object.keys(labels);
    if (keys.length !== Object.keys(got).length || keys.some((k) => got[k] !== labels[k])) continue;
    return Number(m[3]);
  }
  return undefined;
}

t.test('metrics endpoint scraped during an e2e run', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { bodySize: 10_000 });
    await startUdpEcho(topo);
    await startUdpEcho(topo, { port: 7009 });
    const d = await startDaemon(topo, config());
    t.teardown(() => d.stop());
    t.match(d.proc.stdout(), /"msg":"metrics endpoint listening","listen":"127.0.0.1:9469"|"listen":"127.0.0.1:9469".*"msg":"metrics endpoint listening"/);

    const empty = await scrape(topo);
    t.equal(empty.code, 200);
    t.match(empty.body, /^# HELP nfsessiond_sessions Sessions in the table by protocol, state and VDOM\.$/m);
    t.match(empty.body, /^# TYPE nfsessiond_verdict_latency_seconds histogram$/m);
    t.match(empty.body, /^# TYPE nfsessiond_expectations gauge$/m);
    t.match(empty.body, /^process_cpu_seconds_total /m, 'process metrics too');
    t.equal(sample(empty.body, 'nfsessiond_sessions_created_total'), 0);
    t.equal(sample(empty.body, 'nfsessiond_conserve_mode'), 0);
    t.equal(sample(empty.body, 'nfsessiond_failopen', { mode: 'disable' }), 1, 'av-failopen-session is off by default');
    t.equal(sample(empty.body, 'nfsessiond_queue_dropped_total', { queue: '0' }), 0);
    t.equal(sample(empty.body, 'nfsessiond_config_reloads_total', { result: 'ok' }), 0);
    t.equal(sample(empty.body, 'nfsessiond_info', { version: VERSION, mechanism: 'xt-nfqueue' }), 1);

    // Traffic: one HTTP connection, one UDP flow, one UDP flow refused by policy 1.
    t.equal((await curlFetch(topo, http.urlFor(10_000))).bytes, 10_000);
    const udp = await udpExchange(topo, { count: 5, sport: 40300 });
    t.equal(udp.received, 5);
    const denied = await udpExchange(topo, { count: 2, port: 7009, sport: 40301, waitMs: 300 });
    t.equal(denied.received, 0, 'policy 1 denies udp/7009');

    const m = await eventually(async () => {
      const s = await scrape(topo);
      return sample(s.body, 'nfsessiond_sessions', { protocol: 'udp', state: 'established', vdom: 'root' }) === 1 ? s.body : undefined;
    });
    t.ok(m, 'the UDP session is counted by protocol, state and VDOM');
    if (!m) return;
    t.ok(sample(m, 'nfsessiond_sessions_created_total')! >= 2, 'TCP and UDP sessions created');
    t.equal(sample(m, 'nfsessiond_session_setup_failures_total', { reason: 'policy_deny' }), 2, 'both denied datagrams');
    t.equal(sample(m, 'nfsessiond_session_setup_failures_total', { reason: 'limit' }), 0);
    t.equal(sample(m, 'nfsessiond_session_setup_failures_total', { reason: 'memory' }), 0);
    t.ok(sample(m, 'nfsessiond_packets_total', { verdict: 'drop' })! >= 2);
    const decided = sample(m, 'nfsessiond_packets_total', { verdict: 'accept' })! + sample(m, 'nfsessiond_packets_total', { verdict: 'drop' })!;
    t.equal(sample(m, 'nfsessiond_verdict_latency_seconds_count'), decided, 'one latency observation per decided packet');
    t.ok(sample(m, 'nfsessiond_verdict_latency_seconds_bucket', { le: '+Inf' }) === decided);
    t.ok(sample(m, 'nfsessiond_verdict_latency_seconds_sum')! > 0);
    const kernel = await queueCounters(topo);
    t.equal(sample(m, 'nfsessiond_queue_user_dropped_total', { queue: '0' }), kernel?.userDropped, 'user drops as the kernel counts them');
    t.equal(sample(m, 'nfsessiond_queue_dropped_total', { queue: '0' }), kernel?.queueDropped);
    t.ok(sample(m, 'nfsessiond_sessions_offloaded')! >= 1, 'established UDP is offloaded');

    // Only /metrics is served.
    t.equal((await scrape(topo, '/')).code, 404);

    // Reloads: a good file, then a refused one; a changed metrics-listen moves the endpoint.
    writeFileSync(d.configPath, config());
    d.proc.child.kill('SIGHUP');
    t.ok(await eventually(async () => (sample((await scrape(topo)).body, 'nfsessiond_config_reloads_total', { result: 'ok' }) === 1 ? true : undefined)), 'reload counted ok');
    writeFileSync(d.configPath, 'config system nfsessiond\n    set metrics-listen nowhere\nend\n');
    d.proc.child.kill('SIGHUP');
    const rej = await eventually(async () => {
      const body = (await scrape(topo)).body;
      return sample(body, 'nfsessiond_config_reloads_total', { result: 'rejected' }) === 1 ? body : undefined;
    });
    t.ok(rej, 'a refused file is counted and the endpoint stays');
    writeFileSync(d.configPath, config(`    set metrics-listen 127.0.0.1:${PORT + 1}\n`));
    d.proc.child.kill('SIGHUP');
    const moved = await eventually(async () => ((await scrape(topo, '/metrics', PORT + 1)).code === 200 ? true : undefined));
    t.ok(moved, 'endpoint rebound on the new address');
    t.equal((await scrape(topo)).code, null, 'and the old one is closed');
    t.equal(sample((await scrape(topo, '/metrics', PORT + 1)).body, 'nfsessiond_config_reloads_total', { result: 'ok' }), 2, 'counters survive the move');
  });
});

t.test('set metrics disable: no endpoint', async (t) => {
  await withTopology(t, async (topo) => {
    const d = await startDaemon(topo, config('    set metrics disable\n'));
    t.teardown(() => d.stop());
    t.equal((await scrape(topo)).code, null, 'connection refused');
    t.notMatch(d.proc.stdout(), /metrics endpoint/);
  });
});
