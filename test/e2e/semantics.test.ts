// Session semantics with real traffic: the seed's refresh-direction scenario on an offloaded UDP
// session, firewall policies deciding real connections, and config reload on SIGHUP.

import { writeFileSync } from 'node:fs';
import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import { curlFetch, startHttpServer } from '../../src/topology/peers.js';
import { eventually, runCli, startDaemon } from '../lib/daemon.js';
import type { SessionView } from '../../src/control/session-view.js';

interface ListJson { sessions: SessionView[]; total: number }

const BASE = `
config system nfsessiond
    set kernel-sync-interval 1
end
config system session-ttl
    config port
        edit 5001
            set protocol 17
            set timeout 6
            set refresh-direction incoming
            set start-port 5001
            set end-port 5001
        next
        edit 5002
            set protocol 17
            set timeout 6
            set refresh-direction both
            set start-port 5002
            set end-port 5002
        next
    end
end
config firewall address
    edit "clients"
        set subnet 198.51.100.0/24
    next
end
config firewall service custom
    edit "udp-test"
        set udp-portrange 5001-5002
    next
end
config firewall policy
    edit 5
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "clients"
        set dstaddr "all"
        set service "udp-test"
        set action accept
        set logtraffic all
    next
    edit 6
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "clients"
        set dstaddr "all"
        set service "HTTP" "web"
        set action accept
    next
end
`;

const WEB = (port: number) => `
config firewall service custom
    edit "web"
        set tcp-portrange ${port}
    next
end
`;

/** A UDP peer in the server namespace that answers only the first datagram it gets on each port. */
const REPLY_ONCE = `
const dgram = require('node:dgram');
for (const port of [5001, 5002]) {
  const s = dgram.createSocket('udp4');
  let answered = false;
  s.on('message', (m, r) => { if (!answered) { answered = true; s.send('pong', r.port, r.address); } });
  s.bind(port, '0.0.0.0', () => process.stdout.write('bound ' + port + '\\n'));
}
`;

/** Client: sends one datagram every 400 ms from a fixed source port, for a bounded time. */
const sender = (dst: string, dport: number, sport: number, count: number) => `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
s.bind(${sport}, () => {
  let n = 0;
  const tick = () => { s.send('ping', ${dport}, '${dst}'); if (++n < ${count}) setTimeout(tick, 400); else setTimeout(() => s.close(), 200); };
  tick();
});
`;

async function list(control: string): Promise<ListJson> {
  return JSON.parse(await runCli(['diagnose', 'sys', 'session', 'list', '--json', '--control', control])) as ListJson;
}

function trafficRecords(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.includes('"type":"traffic"')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function sendUdp(topo: Topology, dport: number, sport: number, count: number): Promise<void> {
  await topo.execOk('client', [process.execPath, '-e', sender(topo.addr.server.v4, dport, sport, count)], { timeoutMs: 30_000 });
}

t.test('refresh-direction incoming on an offloaded UDP session (seed 002), and both for contrast', async (t) => {
  await withTopology(t, async (topo) => {
    const peer = topo.spawn('server', [process.execPath, '-e', REPLY_ONCE]);
    await peer.waitForLine(/bound 5002/);
    const d = await startDaemon(topo, BASE + WEB(8080));
    t.teardown(() => d.stop());

    // One datagram each way opens and offloads both sessions.
    await sendUdp(topo, 5001, 2041, 1);
    await sendUdp(topo, 5002, 2042, 1);
    const opened = await eventually(async () => {
      const l = await list(d.control);
      const a = l.sessions.find((s) => s.orig_tuple.dport === 5001);
      const b = l.sessions.find((s) => s.orig_tuple.dport === 5002);
      return a?.offloaded && b?.offloaded && a.proto_state === '01' ? { a, b } : undefined;
    });
    t.ok(opened, 'both sessions offloaded after the reply');
    if (!opened) return;
    t.same([opened.a.timeout, opened.a.refresh_dir, opened.a.policy_id], [6, 'reply', 5]);
    t.same([opened.b.timeout, opened.b.refresh_dir], [6, 'both']);

    // Now only the client talks, for longer than the timeout: 24 datagrams, 400 ms apart. The
    // server never answers again. With `incoming`, original-direction packets do not refresh the
    // timer, so the session ends while they still flow (its kernel entry deleted, the next
    // datagram starts a new session); with `both` it lives on.
    await Promise.all([sendUdp(topo, 5001, 2041, 24), sendUdp(topo, 5002, 2042, 24)]);
    // The both-refresh session is looked at first: its last datagram is under a second old, so
    // it cannot have timed out yet however slow what follows is.
    const b = (await list(d.control)).sessions.find((s) => s.orig_tuple.dport === 5002);
    t.equal(b?.serial, opened.b.serial, 'the both-refresh session is the same one');
    t.equal(trafficRecords(d.proc.stdout()).filter((r) => r.dstport === 5002).length, 0, 'the both-refresh session did not end');
    const ended = await eventually(async () => {
      const e = trafficRecords(d.proc.stdout()).filter((r) => r.dstport === 5001 && r.action === 'timeout');
      return e.length ? e : undefined;
    }) ?? [];
    t.ok(ended.length >= 1, 'the incoming-refresh session timed out while the client kept sending');
    t.equal(ended[0]?.sessionid, opened.a.serial, 'it was the first session');
    t.equal(ended[0]?.policyid, 5);
    // A datagram after the end opens a new session. One more is sent before each look, so the
    // check does not depend on when a loaded machine got to the end.
    const again = await eventually(async () => {
      await sendUdp(topo, 5001, 2041, 1);
      const x = (await list(d.control)).sessions.find((s) => s.orig_tuple.dport === 5001);
      return x && x.serial > opened.a.serial ? x : undefined;
    }, 20_000, 400);
    t.ok(again && again.serial > opened.a.serial, 'later datagrams opened a new session');
    t.ok((b?.org.packets ?? 0) >= 20, `its counters kept growing from the kernel (${b?.org.packets} packets)`);
  });
});

t.test('policies decide real connections; SIGHUP reloads, a bad file keeps the running config', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { port: 8080 });
    const http2 = await startHttpServer(topo, { port: 8081 });
    const d = await startDaemon(topo, BASE + WEB(8080));
    t.teardown(() => d.stop());

    t.equal((await curlFetch(topo, http.urlFor(5000))).bytes, 5000, 'policy 6 allows the web service');
    const denied = await curlFetch(topo, http2.urlFor(5000), { timeoutMs: 8000, extraArgs: ['--max-time', '3'] });
    t.equal(denied.bytes, 0, 'port 8081 matches no policy: implicit deny');
    const stat = JSON.parse(await d.cli('diagnose', 'sys', 'session', 'stat', '--json')) as { counters: Record<string, number> };
    t.ok(stat.counters.policy_deny >= 1, 'the denial is counted');

    // A broken file: the reload is refused with its line and column; the running config stays.
    writeFileSync(d.configPath, `${BASE}\nconfig firewall policy\n    edit 7\n        set action maybe\n    next\nend\n`);
    d.proc.child.kill('SIGHUP');
    const rejected = await d.proc.waitForLine(/config reload rejected/);
    t.match(rejected, /nfsessiond\.conf:\d+:20: 'action' in 'config firewall policy' > edit 7: expected one of accept\|deny, got 'maybe'/);
    t.equal((await curlFetch(topo, http.urlFor(100))).bytes, 100, 'old policy still in force');

    // A good file moves the web service to 8081.
    writeFileSync(d.configPath, BASE + WEB(8081));
    d.proc.child.kill('SIGHUP');
    await d.proc.waitForLine(/config reloaded/);
    t.equal((await curlFetch(topo, http2.urlFor(100))).bytes, 100, 'new policy allows 8081');
    const blocked = await curlFetch(topo, http.urlFor(100), { timeoutMs: 8000, extraArgs: ['--max-time', '3'] });
    t.equal(blocked.bytes, 0, 'and no longer 8080');

    // A key only a restart applies: named, the running value kept, the rest of the file applied.
    writeFileSync(d.configPath, BASE.replace('    set kernel-sync-interval 1\n', '    set kernel-sync-interval 1\n    set queue-num 5\n') + WEB(8080));
    d.proc.child.kill('SIGHUP');
    const kept = await d.proc.waitForLine(/takes effect only at a restart/);
    t.match(kept, /"key":"queue-num","running":0,"file":5/);
    await d.proc.waitForLine((l) => l.includes('config reloaded') && d.proc.stdout().indexOf(l) > d.proc.stdout().indexOf(kept));
    t.equal((await curlFetch(topo, http.urlFor(100))).bytes, 100, 'queue 0 still decides, and the new policy is in force');

    // `check` reports every error of a bad file with its position, exit code 2.
    const bad = `${d.dir}/bad.conf`;
    writeFileSync(bad, 'config system global\n    set tcp-halfopen-timer x\n    set nope 1\nend\n');
    const err = await runCli(['check', '--config', bad]).then(() => '', (e: Error) => e.message);
    t.match(err, /bad\.conf:2:28: 'tcp-halfopen-timer' in 'config system global': expected an integer, got 'x'/);
    t.match(err, /bad\.conf:3:9: unknown key 'nope'/);
  });
});
