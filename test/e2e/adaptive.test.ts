// Adaptive timeouts with real UDP flows: a session limit of 10, lifetimes scaled from 40 % of it.
// Idle flows opened first, two flows that keep talking, then a new flow every 2.5 s: the idle ones
// leave in the order they went quiet (their kernel entries deleted), the talking ones stay though
// they are older than the new ones, and every new flow is admitted.

import t from 'tap';
import { withTopology, type NsProcess } from '../../src/topology/netns.js';
import { startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { StatView } from '../../src/control/format.js';
import { eventually, startDaemon, type RunningDaemon } from '../lib/daemon.js';

interface ListJson { sessions: SessionView[]; total: number }

const CONFIG = `
config system global
    set adaptive-timeout-start 40
    set adaptive-timeout-end 110
end
config system resource-limits
    set session 10
end
config system session-ttl
    config port
        edit 7007
            set protocol 17
            set timeout 60
            set start-port 7007
            set end-port 7007
        next
    end
end
config firewall address
    edit "clients"
        set subnet 198.51.100.0/24
    next
end
config firewall service custom
    edit "echo"
        set udp-portrange 7007
    next
end
config firewall policy
    edit 1
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "clients"
        set dstaddr "all"
        set service "echo"
        set action accept
        set logtraffic all
    next
end
`;

/** Sends a datagram every 500 ms from one source port until killed. */
const TALKER = `
const s = require('node:dgram').createSocket('udp4');
const [host, port, sport] = process.argv.slice(1);
let got = 0;
s.on('message', () => { got++; });
s.bind(Number(sport), () => {
  process.stdout.write('ready\\n');
  setInterval(() => s.send('talk', Number(port), host), 500);
  setInterval(() => process.stdout.write('got ' + got + '\\n'), 1000);
});
`;

const IDLE = [42001, 42002, 42003, 42004];
const TALKING = [42101, 42102];
const NEW = Array.from({ length: 10 }, (_, i) => 42201 + i);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function list(d: RunningDaemon): Promise<SessionView[]> {
  return (await d.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions;
}

/** Source ports of the sessions the daemon's traffic log says ended, in the order they ended. */
function endedPorts(d: RunningDaemon): number[] {
  const out: number[] = [];
  for (const line of d.proc.stdout().split('\n')) {
    if (!line.includes('"type":"traffic"')) continue;
    try {
      const r = JSON.parse(line) as { action?: string; srcport?: number };
      if (r.action && r.action !== 'start' && r.srcport !== undefined) out.push(r.srcport);
    } catch { /* a partial line */ }
  }
  return out;
}

t.test('under a small session limit the most idle flows leave first while new flows are admitted', async (t) => {
  await withTopology(t, async (topo) => {
    await startUdpEcho(topo);
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());
    const server = topo.addr.server.v4;

    for (const sport of IDLE) t.equal((await udpExchange(topo, { count: 1, size: 40, sport })).received, 1, `idle flow ${sport} answered`);
    const talkers: NsProcess[] = [];
    for (const sport of TALKING) {
      const p = topo.spawn('client', [process.execPath, '-e', TALKER, server, '7007', String(sport)]);
      t.teardown(() => p.kill());
      await p.waitForLine(/^ready$/);
      talkers.push(p);
    }
    const before = await eventually(async () => {
      const l = await list(d);
      return l.length === IDLE.length + TALKING.length ? l : undefined;
    }, 10_000);
    t.equal(before?.length, 6, 'four idle and two talking sessions');
    const talkingSerials = TALKING.map((p) => before?.find((s) => s.orig_tuple.sport === p)?.serial);

    let lowest = 1;
    let statText = '';
    let listText = '';
    for (const sport of NEW) {
      const r = await udpExchange(topo, { count: 2, size: 40, sport, waitMs: 1000 });
      t.ok(r.received >= 1, `new flow ${sport} admitted and answered (${r.received}/2)`);
      const st = await d.json<StatView>('diagnose', 'sys', 'session', 'stat');
      if (st.adaptive && st.adaptive.factor < lowest) {
        lowest = st.adaptive.factor;
        statText = await d.cli('diagnose', 'sys', 'session', 'stat');
        listText = await d.cli('diagnose', 'sys', 'session', 'list');
      }
      await sleep(1500);
    }

    t.ok(lowest < 0.5, `the factor went down with the table (lowest ${lowest.toFixed(2)})`);
    t.match(statText, /^adaptive timeout: start=40% end=110% factor=0\.\d\d expired=\d+$/m, 'stat shows the factor');
    t.match(statText, /^\tglobal: sessions=\d+\/10 \(\d+%\) factor=0\.\d\d$/m, 'and the global limit it counts against');
    t.match(listText, /expire=\d+ adaptive=0\.\d\d timeout=60 /, 'list shows adaptive= on expire');

    const gone = await eventually(async () => {
      const l = await list(d);
      return IDLE.every((p) => !l.some((s) => s.orig_tuple.sport === p)) ? l : undefined;
    }, 60_000, 500);
    t.ok(gone, 'every idle flow has left the table');
    const ended = endedPorts(d);
    const idleEnds = ended.filter((p) => IDLE.includes(p));
    t.same(idleEnds, IDLE, `the idle flows left in the order they went quiet (ended: ${ended.join(' ')})`);
    const firstNew = ended.findIndex((p) => NEW.includes(p));
    const lastIdle = Math.max(...IDLE.map((p) => ended.indexOf(p)));
    t.ok(firstNew < 0 || firstNew > lastIdle, 'before any of the newer flows');
    t.notOk(ended.some((p) => TALKING.includes(p)), 'no talking flow ended');
    const now = gone ?? [];
    for (const [i, sport] of TALKING.entries()) {
      t.equal(now.find((s) => s.orig_tuple.sport === sport)?.serial, talkingSerials[i], `talking flow ${sport} is the same session, older than the new ones`);
    }
    t.ok(NEW.slice(-2).every((p) => now.some((s) => s.orig_tuple.sport === p)), 'the newest flows are in the table');

    for (const sport of IDLE) {
      const ct = await topo.exec('router', ['conntrack', '-L', '-p', 'udp', '--sport', String(sport)]);
      t.notMatch(ct.stdout, `sport=${sport}`, `idle flow ${sport}: its kernel entry deleted`);
    }
    const st = await d.json<StatView>('diagnose', 'sys', 'session', 'stat');
    t.ok((st.adaptive?.expired ?? 0) >= IDLE.length, `counted as adaptive expiries: ${st.adaptive?.expired}`);
    t.comment(`new flows that found the table full at their first datagram: ${st.counters.table_full}`);
    for (const p of talkers) t.match(p.stdout(), /got [1-9]\d*/, 'the talking flows kept getting answers');
  });
});
