// The operator views end to end, through the real CLI against the daemon on the router: the
// session filter narrows list/stat and clears only matching sessions and their kernel entries,
// a flow trace of a new TCP connection prints the vendor's message sequence, and the traffic
// records kept in memory come back from `execute log display`.

import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { curlFetch, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { eventually, startDaemon, type RunningDaemon } from '../lib/daemon.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { StatView } from '../../src/control/format.js';
import type { LogDisplay } from '../../src/log/display.js';

const CONFIG = `
config system nfsessiond
    set queue-num 0
    set kernel-sync-interval 1
    set log-session-start enable
    set log-memory-records 100
end
`;

interface ListJson { sessions: SessionView[]; total: number }

/** Behind the server, for routes through a gateway. */
const FAR = '192.0.2.10';
const FAR6 = '2001:db8:2::10';

const udpPorts = (l: ListJson) => l.sessions.filter((s) => s.proto === 17).map((s) => s.orig_tuple.sport).sort();

t.test('session filter, flow trace and log display on a live daemon', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { bodySize: 1000 });
    await startUdpEcho(topo);
    let d: RunningDaemon | undefined = await startDaemon(topo, CONFIG);
    t.teardown(async () => { await d?.stop(); });
    const cli = d.cli;
    const C = topo.addr.client.v4;
    const S = topo.addr.server.v4;

    for (const sport of [40100, 40101, 40102]) {
      const u = await udpExchange(topo, { count: 3, size: 50, sport });
      t.equal(u.received, 3, `UDP from ${sport} echoed`);
    }
    const ct = async (sport: number) => (await topo.exec('router', ['conntrack', '-L', '-p', 'udp', '--sport', String(sport)])).stdout.includes(`sport=${sport}`);

    // The filter: set, shown in the vendor's listing, honoured by list and stat.
    t.equal(await cli('diagnose', 'sys', 'session', 'filter', 'sport', '40100', '40101'), '', 'setting prints nothing');
    await cli('diagnose', 'sys', 'session', 'filter', 'src', C);
    const shown = await cli('diagnose', 'sys', 'session', 'filter');
    t.match(shown, `\tsource ip: ${C}-${C}\n`);
    t.match(shown, '\tsource port: 40100-40101\n');
    t.match(shown, '\tdest port: any\n');
    t.same(udpPorts(await d.json<ListJson>('diagnose', 'sys', 'session', 'list')), [40100, 40101]);
    const text = await cli('diagnose', 'sys', 'session', 'list');
    t.equal(text.match(/^session info: /gm)?.length, 2);
    t.match(text, /\ntotal session: 2\n$/);
    t.equal((await d.json<StatView>('diagnose', 'sys', 'session', 'stat')).session_count, 2);
    const full = await cli('diagnose', 'sys', 'session', 'full-stat');
    t.match(full, /^session table:\ttable_size=0 max_depth=1 used=3\nmisc info:\tsession_count=2 /);
    t.match(full, /\n\tnpu_session_count=2\n/, 'both UDP sessions are offloaded');
    await cli('diagnose', 'sys', 'session', 'filter', 'negate', 'sport');
    t.same(udpPorts(await d.json<ListJson>('diagnose', 'sys', 'session', 'list')), [40102], 'negated sport');

    // Clear only what the filter matches, kernel entries included.
    await cli('diagnose', 'sys', 'session', 'filter', 'clear');
    await cli('diagnose', 'sys', 'session', 'filter', 'sport', '40101');
    t.same([await ct(40100), await ct(40101), await ct(40102)], [true, true, true], 'three kernel entries before the clear');
    t.same(await d.json('diagnose', 'sys', 'session', 'clear'), { cleared: 1 });
    t.ok(await eventually(async () => ((await ct(40101)) ? undefined : true), 5000), 'kernel entry of the cleared session deleted');
    t.same([await ct(40100), await ct(40102)], [true, true], 'the other kernel entries stay');
    await cli('diagnose', 'sys', 'session', 'filter', 'clear');
    t.same(udpPorts(await d.json<ListJson>('diagnose', 'sys', 'session', 'list')), [40100, 40102]);

    // Flow trace of the first three packets of a new connection.
    await cli('diagnose', 'debug', 'flow', 'filter', 'clear');
    await cli('diagnose', 'debug', 'flow', 'filter', 'port', '8080');
    t.match(await cli('diagnose', 'debug', 'flow', 'filter'), 'port: 8080-8080\n');
    await cli('diagnose', 'debug', 'flow', 'show', 'function-name', 'enable');
    await cli('diagnose', 'debug', 'flow', 'trace', 'start', '3');
    const got = await curlFetch(topo, http.urlFor(1000), { extraArgs: ['--local-port', '40500'] });
    t.equal(got.bytes, 1000);
    const trace = (await cli('diagnose', 'debug', 'flow', 'trace', 'read', '--follow')).trimEnd().split('\n');
    const id = /allocate a new session-([0-9a-f]{8})/.exec(trace[1] ?? '')?.[1] ?? 'missing';
    const norm = trace.map((l) => l.replace(/seq \d+, ack \d+, win \d+/, 'seq S, ack A, win W'));
    t.same(norm, [
      `id=65308 trace_id=1 func=print_pkt_detail line=5866 msg="vd-root:0 received a packet(proto=6, ${C}:40500->${S}:8080) from veth-c. flag [S], seq S, ack A, win W"`,
      `id=65308 trace_id=1 func=init_ip_session_common line=6047 msg="allocate a new session-${id}"`,
      'id=65308 trace_id=1 func=fw_forward_handler line=881 msg="Allowed by Policy-1:"',
      `id=65308 trace_id=2 func=print_pkt_detail line=5866 msg="vd-root:0 received a packet(proto=6, ${S}:8080->${C}:40500) from veth-s. flag [S.], seq S, ack A, win W"`,
      `id=65308 trace_id=2 func=resolve_ip_tuple_fast line=5946 msg="Find an existing session, id-${id}, reply direction"`,
      `id=65308 trace_id=3 func=print_pkt_detail line=5866 msg="vd-root:0 received a packet(proto=6, ${C}:40500->${S}:8080) from veth-c. flag [.], seq S, ack A, win W"`,
      `id=65308 trace_id=3 func=resolve_ip_tuple_fast line=5946 msg="Find an existing session, id-${id}, original direction"`,
    ]);
    t.match(trace[0], /ack 0, win \d+"$/, 'a SYN acknowledges nothing');
    t.equal(await cli('diagnose', 'debug', 'flow', 'trace', 'read'), trace.join('\n') + '\n', 'the last trace can be read again');

    // Traffic records in memory: start and close of the HTTP session, the cleared UDP session.
    await cli('execute', 'log', 'filter', 'field', 'dstport', '8080');
    const logs = await eventually(async () => {
      const l = await d!.json<LogDisplay>('execute', 'log', 'display');
      return l.records.some((r) => r.action === 'close') ? l : undefined;
    });
    t.ok(logs, 'close record of the HTTP session');
    t.same(logs?.records.map((r) => [r.action, r.srcport, r.sessionid]), [['close', 40500, parseInt(id, 16)], ['start', 40500, parseInt(id, 16)]]);
    const display = await cli('execute', 'log', 'display');
    t.match(display, /^2 logs found\.\n2 logs returned\.\n\n1: date=\d{4}-\d\d-\d\d time=\d\d:\d\d:\d\d logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" /);
    t.match(display, `srcip=${C} srcport=40500 srcintf="veth-c" dstip=${S} dstport=8080 dstintf="veth-s" sessionid=${parseInt(id, 16)} proto=6 action="close" policyid=1 service="tcp/8080" `);
    t.match(display, /\n\n2: date=.* logid="0000000015" .* action="start" /);
    await cli('execute', 'log', 'filter', 'reset');
    await cli('execute', 'log', 'filter', 'field', 'action', 'clear');
    const cleared = await d.json<LogDisplay>('execute', 'log', 'display');
    t.same(cleared.records.map((r) => [r.srcport, r.dstport]), [[40101, 7007]]);

    // gwy=: the router's next hop for each direction. 192.0.2.10 and 2001:db8:2::10 sit behind
    // the server, reached through it as a gateway; the server and the client are directly
    // connected, so their own addresses are the next hop. use=: two tuples and a timer.
    await topo.execOk('server', ['ip', 'addr', 'add', `${FAR}/32`, 'dev', 'lo']);
    await topo.execOk('server', ['ip', '-6', 'addr', 'add', `${FAR6}/128`, 'dev', 'lo']);
    await topo.execOk('router', ['ip', 'route', 'add', '192.0.2.0/24', 'via', S]);
    await topo.execOk('router', ['ip', '-6', 'route', 'add', '2001:db8:2::/64', 'via', topo.addr.server.v6]);
    await startUdpEcho(topo, { bind: FAR, port: 7010 });
    await startUdpEcho(topo, { bind: FAR6, port: 7011 });
    t.equal((await udpExchange(topo, { count: 2, size: 50, sport: 40110, host: FAR, port: 7010 })).received, 2, 'UDP through a gateway echoed');
    t.equal((await udpExchange(topo, { count: 2, size: 50, sport: 40111, host: FAR6, port: 7011 })).received, 2, 'UDP over IPv6 through a gateway echoed');
    const listed = await d.json<ListJson>('diagnose', 'sys', 'session', 'list');
    const bySport = (p: number) => listed.sessions.find((v) => v.proto === 17 && v.orig_tuple.sport === p);
    t.same(bySport(40100)?.gwy, [S, C], 'directly connected both ways: the peers themselves');
    t.same(bySport(40110)?.gwy, [S, C], 'through a gateway: the gateway, not the destination');
    t.same(bySport(40111)?.gwy, [topo.addr.server.v6, topo.addr.client.v6], 'IPv6 through a gateway');
    t.same([bySport(40100)?.use, bySport(40110)?.use, bySport(40111)?.use], [3, 3, 3]);
    const record = (await cli('diagnose', 'sys', 'session', 'list')).split('\n\n').find((r) => r.includes(`${C}:40110->${FAR}:7010`)) ?? '';
    t.match(record, / use=3\n/);
    t.match(record, ` gwy=${S}/${C}\nhook=pre dir=org act=noop ${C}:40110->${FAR}:7010(0.0.0.0:0)\n`);

    t.equal(await d.stop(), 0);
    d = undefined;
  });
});
