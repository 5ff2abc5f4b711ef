// HA phase 2 with real daemons: an iperf3 stream through router A, synced to router B; A's daemon
// is killed (SIGKILL, by PID) and its links taken down, the client and server route through B,
// and B is told it is master on its notify FIFO the way keepalived writes it. B carries the
// stream on: no TCP reset seen by the client or the server, bytes in the intervals after the
// move, and B lists the stream's session with A's serial and policy id.
//
//   client eth0 ── veth-c router A veth-s ── eth0 server
//   client eth1 ── veth-c router B veth-s ── eth1 server      A sync0 192.0.2.1 ── 192.0.2.2 sync0 B

import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { iperf3Client, iperf3Server } from '../../src/topology/peers.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { HaStatus, PeerTableView } from '../../src/ha/ha-service.js';
import { eventually, startDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';

type Status = HaStatus & { peer_table: PeerTableView };

const haBlock = (dir: string, peer: string) => `
config system ha
    set group-name "HA-APP"
    set mode a-p
    set password "s3cret"
    set hbdev "sync0" 100
    set ha-peer-ip ${peer}
    set session-pickup enable
    set ha-notify-fifo ${join(dir, 'keepalived.fifo')}
    set ha-track-file ${join(dir, 'ha-track')}
end
`;
const config = (dir: string, peer: string) => controlOnlyConfig({ policyId: 44, service: 'ha-flows', tcp: '5201' }) + haBlock(dir, peer);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('B takes over A\'s TCP stream after A\'s daemon is killed: no reset, same serial and policy id', async (t) => {
  const dirA = mkdtempSync(join(tmpdir(), 'nfsessiond-hafo-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'nfsessiond-hafo-b-'));
  t.teardown(() => { rmSync(dirA, { recursive: true, force: true }); rmSync(dirB, { recursive: true, force: true }); });
  await withTopology(t, async (topo) => {
    const rb = topo.extraNs('routerb');
    const ok = (ns: string, argv: string[]) => topo.execOk(ns, argv);
    await ok('router', ['ip', 'link', 'add', 'sync0', 'type', 'veth', 'peer', 'name', 'sync0', 'netns', rb]);
    await ok('router', ['ip', 'addr', 'add', '192.0.2.1/25', 'dev', 'sync0']);
    await ok(rb, ['ip', 'addr', 'add', '192.0.2.2/25', 'dev', 'sync0']);
    // B's own links to the client and the server, with its routes; B forwards like A.
    await ok('client', ['ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'veth-c', 'netns', rb]);
    await ok('server', ['ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'veth-s', 'netns', rb]);
    await ok('client', ['ip', 'addr', 'add', '192.0.2.133/30', 'dev', 'eth1']);
    await ok(rb, ['ip', 'addr', 'add', '192.0.2.134/30', 'dev', 'veth-c']);
    await ok('server', ['ip', 'addr', 'add', '192.0.2.137/30', 'dev', 'eth1']);
    await ok(rb, ['ip', 'addr', 'add', '192.0.2.138/30', 'dev', 'veth-s']);
    for (const [ns, dev] of [['router', 'sync0'], [rb, 'sync0'], [rb, 'veth-c'], [rb, 'veth-s'], ['client', 'eth1'], ['server', 'eth1']]) await ok(ns, ['ip', 'link', 'set', dev, 'up']);
    await ok(rb, ['ip', 'route', 'add', '198.51.100.0/24', 'via', '192.0.2.133']);
    await ok(rb, ['ip', 'route', 'add', '203.0.113.0/24', 'via', '192.0.2.137']);
    await ok(rb, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);

    // Resets seen on either end, on either link.
    const dumps = ['client', 'server'].map((ns) => topo.spawn(ns, ['tcpdump', '-l', '-n', '-i', 'any', 'tcp[tcpflags] & tcp-rst != 0']));
    for (const d of dumps) t.teardown(() => d.kill('SIGTERM', 2000));
    await Promise.all(dumps.map((d) => d.waitForLine(/listening on/, { timeoutMs: 10_000 }).catch(() => undefined)));

    const iperf = await iperf3Server(topo);
    t.teardown(() => iperf.stop());
    const a = await startDaemon(topo, config(dirA, '192.0.2.2'), { dir: dirA });
    const b = await startDaemon(topo, config(dirB, '192.0.2.1'), { dir: dirB, ns: rb });
    t.teardown(() => b.stop());

    const stream = iperf3Client(topo, { seconds: 14, tcpBitrate: '2M' });
    const listA = async () => (await a.json<{ sessions: SessionView[] }>('diagnose', 'sys', 'session', 'list')).sessions;
    // iperf3's control and data connections, both on B's peer table.
    const onA = await eventually(async () => {
      const s = (await listA()).filter((x) => x.orig_tuple.dport === 5201);
      return s.length === 2 ? s : undefined;
    });
    t.ok(onA, 'the iperf3 connections on A');
    const synced = await eventually(async () => {
      const st = await b.json<Status>('diagnose', 'sys', 'ha', 'status');
      return onA && onA.every((s) => st.peer_table.sessions.some((p) => p.serial === s.serial)) ? st : undefined;
    });
    t.ok(synced, 'B holds them');
    await sleep(2000);

    // The failover, in keepalived's order: A's daemon dies, keepalived on B says MASTER (and would
    // move the VIPs: here the routes move), then the traffic arrives at B.
    process.kill(a.proc.pid, 'SIGKILL');
    await a.proc.exited;
    await ok('router', ['ip', 'link', 'set', 'veth-c', 'down']);
    await ok('router', ['ip', 'link', 'set', 'veth-s', 'down']);
    appendFileSync(join(dirB, 'keepalived.fifo'), 'INSTANCE "HA-APP" MASTER 100\n');
    const adoptedLines = () => b.proc.stdout().split('\n').filter((l) => l.includes('HA: peer sessions adopted')).map((l) => JSON.parse(l) as { why: string; sessions: number });
    const byMaster = await eventually(async () => adoptedLines().find((x) => x.why === 'keepalived master'), 10_000, 100);
    t.ok(byMaster && byMaster.sessions >= 2, `keepalived's MASTER alone took A's sessions over (${byMaster?.sessions ?? 0} adopted)`);
    await ok('client', ['ip', 'route', 'add', '203.0.113.0/25', 'via', '192.0.2.134']);
    await ok('server', ['ip', 'route', 'add', '198.51.100.0/25', 'via', '192.0.2.138']);
    const movedAt = Date.now();

    const r = await stream;
    const intervals = (r.json.intervals as Array<{ sum: { start: number; bytes: number } }>).map((i) => i.sum);
    const startedAt = Number(r.json.start.timestamp.timesecs) * 1000;
    const after = intervals.filter((i) => startedAt + i.start * 1000 > movedAt + 1000);
    t.ok(after.length > 0 && after.every((i) => i.bytes > 0), `bytes in every interval after the move (${after.map((i) => i.bytes).join(' ')})`);
    let gap = 0, run = 0;
    for (const i of intervals) { run = i.bytes > 0 ? 0 : run + 1; gap = Math.max(gap, run); }
    t.comment(`longest run of empty 1 s intervals: ${gap}`);

    const listB = (await b.json<{ sessions: SessionView[] }>('diagnose', 'sys', 'session', 'list')).sessions.filter((x) => x.orig_tuple.dport === 5201);
    for (const s of onA ?? []) {
      t.match(listB.find((x) => x.orig_tuple.sport === s.orig_tuple.sport), { serial: s.serial, policy_id: s.policy_id }, `session ${s.serial} on B with A's serial and policy id ${s.policy_id}`);
    }
    const adopted = adoptedLines();
    t.ok(adopted.reduce((n, x) => n + x.sessions, 0) >= 2, `B adopted A's sessions (${adopted.map((x) => `${x.sessions} on ${x.why}`).join(', ')})`);
    for (const d of dumps) await d.kill('SIGTERM', 2000);
    const resets = dumps.map((d) => d.stdout().split('\n').filter((l) => / IP6? /.test(l)));
    t.same(resets, [[], []], 'no TCP reset seen by the client or the server');
  }, { extraNamespaces: ['routerb'] });
});
