// HA phase 1 with real daemons: router A forwards UDP, TCP (iperf3) and an FTP control session
// with a pending PASV expectation; router B, linked to A by a sync veth, holds A's table: the same
// serials and policy ids, the expectation too. A session cleared on A leaves B; B restarted gets
// the table again by bulk; a B with another password holds nothing and says why.
//
//   client ── router A (veth-c, veth-s, sync0 192.0.2.1) ── server
//                       sync0 192.0.2.2 router B (no traffic through it in this phase)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { fixturePath, iperf3Client, iperf3Server, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { startVsftpd } from '../../src/topology/ftp.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { ExpectationView } from '../../src/control/expectation-view.js';
import type { HaStatus, PeerTableView } from '../../src/ha/ha-service.js';
import { eventually, startDaemon, type RunningDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';

type Status = HaStatus & { peer_table: PeerTableView };

const haBlock = (dir: string, peer: string, password: string) => `
config system ha
    set group-name "HA-APP"
    set mode a-p
    set password "${password}"
    set hbdev "sync0" 100
    set ha-peer-ip ${peer}
    set session-pickup enable
    set session-pickup-connectionless enable
    set session-pickup-expectation enable
    set ha-notify-fifo ${join(dir, 'keepalived.fifo')}
    set ha-track-file ${join(dir, 'ha-track')}
end
`;

// The PASV expectation must outlive B's two restarts before its data connection is made.
const config = (dir: string, peer: string, password = 's3cret') => controlOnlyConfig({
  policyId: 43, service: 'ha-flows', tcp: '21 5201', udp: '7007',
  extra: 'config system session-helper-options\n    set expectation-timeout 600\nend\n',
}) + haBlock(dir, peer, password);

const pairs = (xs: Array<{ serial: number; policy_id: number }>) => xs.map((s) => `${s.serial}/${s.policy_id}`).sort();

t.test('router B holds router A\'s table: by bulk, by changes, after a restart; not with another password', async (t) => {
  const dirA = mkdtempSync(join(tmpdir(), 'nfsessiond-ha-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'nfsessiond-ha-b-'));
  t.teardown(() => { rmSync(dirA, { recursive: true, force: true }); rmSync(dirB, { recursive: true, force: true }); });
  await withTopology(t, async (topo) => {
    const rb = topo.extraNs('routerb');
    await topo.execOk('router', ['ip', 'link', 'add', 'sync0', 'type', 'veth', 'peer', 'name', 'sync0', 'netns', rb]);
    await topo.execOk('router', ['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'sync0']);
    await topo.execOk(rb, ['ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'sync0']);
    await topo.execOk('router', ['ip', 'link', 'set', 'sync0', 'up']);
    await topo.execOk(rb, ['ip', 'link', 'set', 'sync0', 'up']);

    await startUdpEcho(topo, { port: 7007 });
    const iperf = await iperf3Server(topo);
    t.teardown(() => iperf.stop());
    const ftp = await startVsftpd(topo);
    t.teardown(() => ftp.stop());

    const a = await startDaemon(topo, config(dirA, '192.0.2.2'), { dir: dirA });
    t.teardown(() => a.stop());
    let b: RunningDaemon = await startDaemon(topo, config(dirB, '192.0.2.1'), { dir: dirB, ns: rb });

    t.equal((await udpExchange(topo, { count: 3, sport: 40950, port: 7007 })).received, 3, 'a UDP flow through A');
    t.equal((await udpExchange(topo, { count: 2, sport: 40951, port: 7007 })).received, 2, 'a second one');
    const stream = iperf3Client(topo, { seconds: 8, tcpBitrate: '2M' });
    const ctl = topo.spawn('client', [process.execPath, fixturePath('ftp-control.mjs'), topo.addr.server.v4, '21'], { stdin: true });
    t.teardown(() => { ctl.child.stdin?.end('close\n'); });
    await ctl.waitForLine(/"reply":"220/);
    for (const cmd of ['USER anonymous', 'PASS x', 'PASV']) ctl.child.stdin!.write(`send ${cmd}\n`);
    const port = (JSON.parse(await ctl.waitForLine(/"reply":"227/)) as { pasv: { port: number } }).pasv.port;

    const listA = async () => (await a.json<{ sessions: SessionView[] }>('diagnose', 'sys', 'session', 'list')).sessions;
    const statusOf = (d: RunningDaemon) => d.json<Status>('diagnose', 'sys', 'ha', 'status');
    const sessionsA = await eventually(async () => {
      const s = await listA();
      return s.some((x) => x.orig_tuple.dport === 5201) && s.some((x) => x.orig_tuple.dport === 21) && s.filter((x) => x.orig_tuple.dport === 7007).length === 2 ? s : undefined;
    });
    t.ok(sessionsA, 'UDP, TCP and FTP control sessions on A');
    const expA = (await a.json<{ expectations: ExpectationView[] }>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
    t.match(expA, [{ tuple: { dport: port } }], 'the PASV expectation is pending on A');

    // B holds exactly A's table (A's list read again: the iperf3 control and data connections
    // may both be there by now).
    const same = async (d: RunningDaemon) => eventually(async () => {
      const want = pairs((await listA()).map((s) => ({ serial: s.serial, policy_id: s.policy_id })));
      const st = await statusOf(d);
      return JSON.stringify(pairs(st.peer_table.sessions)) === JSON.stringify(want) && st.peer_table.expectations.length === 1 ? { st, want } : undefined;
    });
    const got = await same(b);
    t.ok(got, 'B holds A\'s sessions with their serials and policy ids');
    if (got) {
      t.ok(got.want.every((p) => p.endsWith('/43')), `all of policy 43: ${got.want.join(' ')}`);
      t.match(got.st.peer_table.expectations, [{ id: expA[0].id, policy_id: 43, helper: 'ftp', dport: port }], 'and the pending expectation');
      t.match(got.st.peer_table.sessions.find((s) => s.dport === 21), { helper: 'ftp', proto: 6 }, 'the control session with its helper');
      t.match(got.st, { mode: 'a-p', sync: { linkUp: true, peerBoot: /^[0-9a-f]{16}$/, bulk: { received: { bulk: 'complete' } } }, role: { heldBack: false } });
    }
    const stA = await statusOf(a);
    t.ok(stA.sync!.tx.acked > 0 && stA.sync!.lag.samples > 0, `A's messages acknowledged, lag measured: last ${stA.sync!.lag.lastMs} ms, max ${stA.sync!.lag.maxMs} ms`);
    t.comment(`sync lag on A: ${stA.sync!.lag.samples} samples, last ${stA.sync!.lag.lastMs} ms, max ${stA.sync!.lag.maxMs} ms`);
    t.match(await b.cli('get', 'system', 'ha', 'status'), /^HA Health Status: OK\n[\s\S]*ses_pickup: enable, ses_pickup_delay=disable\n/);
    t.match(await b.cli('diagnose', 'sys', 'ha', 'status'), /sync link: sync0 \(priority 100\) 192\.0\.2\.2 -> 192\.0\.2\.1:7030 {2}state: up/);

    // A session ended on A leaves B.
    const udp = sessionsA!.find((s) => s.orig_tuple.sport === 40950)!;
    await a.cli('diagnose', 'sys', 'session', 'filter', 'sport', '40950');
    t.same(await a.json('diagnose', 'sys', 'session', 'clear'), { cleared: 1 });
    await a.cli('diagnose', 'sys', 'session', 'filter', 'clear');
    const gone = await eventually(async () => ((await statusOf(b)).peer_table.sessions.some((s) => s.serial === udp.serial) ? undefined : true));
    t.ok(gone, `session ${udp.serial} cleared on A is gone from B`);

    // B restarted: the table comes again, by bulk.
    await b.stop();
    b = await startDaemon(topo, config(dirB, '192.0.2.1'), { dir: dirB, ns: rb });
    const again = await same(b);
    t.ok(again, 'the restarted B holds A\'s table again');
    if (again) t.match(again.st.sync, { bulk: { received: { bulksComplete: 1, bulk: 'complete' } }, rx: { delivered: again.st.sync!.rx.delivered } });
    t.ok((await statusOf(a)).sync!.bulk.sent >= 2, 'A sent a bulk for each start of B');

    // B with another password: refused both ways, nothing held, and the view says why.
    await b.stop();
    b = await startDaemon(topo, config(dirB, '192.0.2.1', 'not-the-password'), { dir: dirB, ns: rb });
    t.teardown(() => b.stop());
    const refused = await eventually(async () => {
      const st = await statusOf(b);
      return st.sync!.refused.auth > 0 ? st : undefined;
    });
    t.ok(refused, 'B refused A\'s datagrams');
    t.match(refused, { sync: { linkUp: false, linkReason: 'peer refused: authentication failed (password or group-name differs)', peerBoot: undefined }, peer_table: { sessions: [], expectations: [] }, role: { heldBack: true } });
    t.match(await b.cli('get', 'system', 'ha', 'status'), /^HA Health Status: ERROR: sync link down: peer refused: authentication failed \(password or group-name differs\)\n/);

    ctl.child.stdin!.write('data LIST\n');
    const listing = JSON.parse(await ctl.waitForLine(/"data":/)) as { data: number };
    t.ok(listing.data > 0, 'the FTP data connection through A works');
    const r = await stream;
    t.ok(Number(r.json.end.sum_received.bytes) > 0, 'the TCP stream ran to its end');
  }, { extraNamespaces: ['routerb'] });
});
