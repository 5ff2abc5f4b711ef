// The kernel as an exact cache of the table, with real traffic: sessions offloaded at their first
// packet live in the kernel as long as their TTL says (not the kernel's own UDP timeouts), a
// refresh in one direction is dated exactly while offloaded (an ICMP error in the history cannot
// fake or hide one), one queued packet and about one conntrack event per short TCP connection,
// and no dump while the table sits idle.

import t from 'tap';
import { withTopology, type NsProcess, type Topology } from '../../src/topology/netns.js';
import { startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { StatView } from '../../src/control/format.js';
import { eventually, queueCounters, startDaemon, type RunningDaemon } from '../lib/daemon.js';

interface ListJson { sessions: SessionView[]; total: number }

const CONFIG = `
config system session-ttl
    config port
        edit 7007
            set protocol 17
            set timeout 12
            set start-port 7007
            set end-port 7007
        next
        edit 5001
            set protocol 17
            set timeout 30
            set refresh-direction incoming
            set start-port 5001
            set end-port 5001
        next
    end
end
config firewall address
    edit "clients"
        set subnet 198.51.100.0/24
    next
end
config firewall service custom
    edit "cache-test"
        set udp-portrange 7007 5001
        set tcp-portrange 8090
    next
end
config firewall policy
    edit 7
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "clients"
        set dstaddr "all"
        set service "cache-test" "PING"
        set action accept
        set logtraffic all
    next
end
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function session(d: RunningDaemon, match: (s: SessionView) => boolean): Promise<SessionView | undefined> {
  return (await d.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions.find(match);
}

async function kernelHas(topo: Topology, sport: number): Promise<boolean> {
  return (await topo.exec('router', ['conntrack', '-L', '-p', 'udp', '--sport', String(sport)])).stdout.includes(`sport=${sport}`);
}

t.test('a UDP session lives its TTL in the kernel, past the kernel\'s own UDP timeouts, then ends', async (t) => {
  await withTopology(t, async (topo) => {
    // The kernel would forget an idle UDP entry after 3 s; the session's TTL is 12 s.
    for (const k of ['nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream']) await topo.execOk('router', ['sysctl', '-qw', `net.netfilter.${k}=3`]);
    await startUdpEcho(topo);
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());
    const sport = 40700;
    // The expiry a list shows counts from the last packet, which went out during the exchange;
    // the list itself may take seconds on a loaded machine (a CLI process), so the bounds come
    // from the clock around both rather than from fixed numbers.
    const ttlLeft = (exchange: { start: number; end: number }, list: { start: number; end: number }) => ({
      min: 12 - Math.ceil((list.end - exchange.start) / 1000),
      max: 12 - Math.floor((list.start - exchange.end) / 1000),
    });
    const timed = async <T>(f: () => Promise<T>) => { const start = Date.now(); const v = await f(); return { v, start, end: Date.now() }; };
    const ex1 = await timed(() => udpExchange(topo, { count: 3, size: 40, sport }));
    t.equal(ex1.v.received, 3);
    const first = await session(d, (s) => s.orig_tuple.sport === sport);
    t.match(first, { offloaded: true, timeout: 12, policy_id: 7 }, 'offloaded at the first packet with its TTL');
    if (!first) return;

    await sleep(6000);
    const l1 = await timed(() => session(d, (s) => s.orig_tuple.sport === sport));
    const b1 = ttlLeft(ex1, l1);
    if (b1.min <= 0) t.fail(`the machine is too slow for this check: the list came ${((l1.end - ex1.end) / 1000).toFixed(1)} s after the packets`);
    const idle = l1.v;
    t.match(idle, { serial: first.serial, offloaded: true }, 'still listed after 6 s idle (kernel UDP timeout 3 s)');
    t.ok(idle && idle.expire >= b1.min && idle.expire <= b1.max, `its timer ran from the last packet: expire ${idle?.expire} in [${b1.min}, ${b1.max}]`);
    t.ok(await kernelHas(topo, sport), 'and the kernel still holds the entry');
    const more = await timed(() => udpExchange(topo, { count: 3, size: 40, sport }));
    t.equal(more.v.received, 3, 'traffic still passes, through the kernel alone');
    const l2 = await timed(() => session(d, (s) => s.orig_tuple.sport === sport));
    const b2 = ttlLeft(more, l2);
    const again = l2.v;
    t.match(again, { serial: first.serial, offloaded: true }, 'the same session');
    t.ok(again && again.expire >= b2.min && again.expire <= b2.max, `refreshed by the new packets: expire ${again?.expire} in [${b2.min}, ${b2.max}]`);
    t.ok((again?.org.packets ?? 0) >= 6, `counters from the kernel: ${again?.org.packets} packets`);

    // Idle past the TTL: the daemon's timer ends it and deletes the kernel entry.
    const ended = await eventually(async () => ((await session(d, (s) => s.orig_tuple.sport === sport)) ? undefined : true), 20_000, 500);
    t.ok(ended, 'gone from the table at its TTL');
    t.notOk(await kernelHas(topo, sport), 'its kernel entry deleted');
    t.match(d.proc.stdout(), new RegExp(`"srcport":${sport},[^\\n]*"action":"timeout"`), 'a timeout traffic record');
  });
});

/** A UDP client with one socket (fixed source port), driven line by line: `send TEXT`. */
const DRIVEN_CLIENT = `
const dgram = require('node:dgram');
const [host, port, sport] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.on('message', (m) => process.stdout.write('got ' + m + '\\n'));
s.on('error', (e) => process.stdout.write('err ' + e.code + '\\n'));
s.bind(Number(sport), () => s.connect(Number(port), host, () => {
  process.stdout.write('ready\\n');
  require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => { if (l.startsWith('send ')) s.send(l.slice(5)); });
}));
`;

/** Answers only datagrams that start with "r". */
const REPLY_ON_R = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => { if (String(m).startsWith('r')) s.send(m, r.port, r.address); });
s.bind(5001, () => process.stdout.write('bound\\n'));
`;

t.test('refresh-direction incoming while offloaded, with an ICMP port unreachable in the history', async (t) => {
  await withTopology(t, async (topo) => {
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());
    const client: NsProcess = topo.spawn('client', [process.execPath, '-e', DRIVEN_CLIENT, topo.addr.server.v4, '5001', '2051'], { stdin: true });
    t.teardown(() => client.kill());
    await client.waitForLine(/^ready$/);
    const send = (text: string) => client.child.stdin!.write(`send ${text}\n`);
    const find = () => session(d, (s) => s.orig_tuple.sport === 2051);

    // Nobody listens yet: the server's kernel answers with an ICMP port unreachable.
    send('p0');
    await client.waitForLine(/^err ECONNREFUSED$/);
    const opened = await find();
    t.match(opened, { offloaded: true, timeout: 30, refresh_dir: 'reply' }, 'offloaded at the first packet');
    if (!opened) return;
    const peer = topo.spawn('server', [process.execPath, '-e', REPLY_ON_R]);
    t.teardown(() => peer.kill());
    await peer.waitForLine(/^bound$/);

    send('r1');
    await client.waitForLine(/^got r1$/);
    const q0 = await queueCounters(topo);
    const replied = await find();
    t.ok(replied && replied.expire >= 28, `the reply refreshed it: expire ${replied?.expire}`);

    // Only the client talks for 3 s: its packets never extend expire.
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      send(`p${i + 1}`);
      await sleep(500);
      seen.push((await find())?.expire ?? -1);
    }
    t.ok(seen.every((e, i) => e >= 0 && (i === 0 || e <= seen[i - 1])), `expire kept falling while only the client sent: ${seen.join(' ')}`);
    t.ok(seen[seen.length - 1] <= 27, 'by the time the client sent for 3 s');

    // One reply: the view shows the refresh right away.
    send('r2');
    await client.waitForLine(/^got r2$/);
    const at = Date.now();
    const refreshed = await find();
    t.ok(refreshed && refreshed.expire >= 28, `a reply extends it, shown ${Date.now() - at} ms after the packet: expire ${refreshed?.expire}`);
    t.equal(refreshed?.serial, opened.serial, 'the same session throughout');
    const q1 = await queueCounters(topo);
    t.equal(q1!.lastId - q0!.lastId, 0, 'no packet of the offloaded session reached the queue');
  });
});

/** Accepts and closes at once (the server side of a short connection). */
const CLOSE_SERVER = `
require('node:net').createServer((c) => c.end()).listen(8090, () => process.stdout.write('listening\\n'));
`;

/** N short connections, C in flight; prints the number completed. */
const CONNECTOR = `
const net = require('node:net');
const [host, n, c] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
let started = 0, done = 0, failed = 0;
const one = () => {
  if (started >= n) return;
  started++;
  const s = net.connect(8090, host);
  s.on('error', () => { failed++; });
  s.on('end', () => s.end());
  s.on('close', () => { done++; if (done === n) process.stdout.write(JSON.stringify({ done: done - failed, failed }) + '\\n'); else one(); });
};
for (let i = 0; i < c; i++) one();
`;

t.test('short TCP connections: one queued packet and about one conntrack event each, no dump while idle', async (t) => {
  await withTopology(t, async (topo) => {
    const server = topo.spawn('server', [process.execPath, '-e', CLOSE_SERVER]);
    t.teardown(() => server.kill());
    await server.waitForLine(/^listening$/);
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());
    const N = 400;
    const q0 = await queueCounters(topo);
    const s0 = (await d.json<StatView>('diagnose', 'sys', 'session', 'stat')).queue!;
    const r = await topo.execOk('client', [process.execPath, '-e', CONNECTOR, topo.addr.server.v4, String(N), '16'], { timeoutMs: 60_000 });
    t.same(JSON.parse(r.stdout.trim()), { done: N, failed: 0 }, `${N} connections completed`);
    const q1 = await queueCounters(topo);
    t.equal(q1!.lastId - q0!.lastId, N, 'the queue saw exactly one packet (the SYN) per connection');

    // Each ends with the kernel's DESTROY, carrying its counters.
    const drained = await eventually(async () => {
      const l = await d.json<ListJson>('diagnose', 'sys', 'session', 'list');
      return l.sessions.some((s) => s.orig_tuple.dport === 8090) ? undefined : true;
    }, 60_000, 1000);
    t.ok(drained, 'every connection left the table on the kernel\'s DESTROY');
    const s1 = (await d.json<StatView>('diagnose', 'sys', 'session', 'stat')).queue!;
    const events = s1.ct_events! - s0.ct_events!;
    t.ok(events >= N && events <= N + N / 20, `conntrack events: ${events} for ${N} connections`);
    t.equal(s1.ct_event_overruns, 0);

    // Idle: no dump, no reading.
    await sleep(4000);
    const s2 = (await d.json<StatView>('diagnose', 'sys', 'session', 'stat')).queue!;
    t.same([s2.ct_dumps, s2.ct_reads], [s1.ct_dumps, s1.ct_reads], `idle: no dump (${s2.ct_dumps} since start), no reading`);
  });
});
