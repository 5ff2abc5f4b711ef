// The data path end to end: the daemon on the router of a client/router/server topology decides
// the first packets of real flows (curl, UDP, ping, iperf3), offloads them, keeps counting from
// conntrack, removes exactly its rules on SIGTERM and never black-holes traffic when killed.

import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import { curlFetch, iperf3Client, iperf3Server, ping, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { eventually, queueCounters, startDaemon, type RunningDaemon } from '../lib/daemon.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { StatView } from '../../src/control/format.js';

const CONFIG = `
config system nfsessiond
    set queue-num 0
    set queue-bypass enable
    set kernel-sync-interval 1
end
`;

interface ListJson { sessions: SessionView[]; total: number }

async function rules(topo: Topology): Promise<{ xt: string; nft: string }> {
  const xt = (await topo.exec('router', ['iptables-save'])).stdout + (await topo.exec('router', ['ip6tables-save'])).stdout;
  const nft = (await topo.exec('router', ['nft', 'list', 'tables'])).stdout;
  return { xt, nft };
}

function find(list: ListJson, f: (s: SessionView) => boolean): SessionView | undefined {
  return list.sessions.find(f);
}

t.test('daemon on the router: sessions, counters, offload, clean stop, crash safety', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { bodySize: 200_000 });
    await startUdpEcho(topo);
    await iperf3Server(topo);
    let d: RunningDaemon | undefined = await startDaemon(topo, CONFIG);
    t.teardown(async () => { await d?.stop(); });

    // The log says which queueing mechanism was chosen (this kernel has no nft queue).
    t.match(d.proc.stdout(), /"mechanism":"xt-nfqueue"/);
    const installed = await rules(topo);
    t.match(installed.nft, /table inet nfsessiond/);
    t.equal(installed.xt.match(/-A FORWARD .*-j NFSESSIOND/g)?.length, 2, 'one jump for IPv4 and one for IPv6');

    // Real traffic through the router.
    const got = await curlFetch(topo, http.urlFor(200_000));
    t.equal(got.httpCode, 200);
    t.equal(got.bytes, 200_000);
    const udp = await udpExchange(topo, { count: 10, size: 100, sport: 40100 });
    t.same([udp.sent, udp.received], [10, 10]);
    const pg = await ping(topo, topo.addr.server.v4, { count: 3, intervalS: 0.2 });
    t.equal(pg.received, 3);
    const pg6 = await ping(topo, topo.addr.server.v6, { count: 2, intervalS: 0.2 });
    t.equal(pg6.received, 2);

    // Counters once the kernel's have been read (sync every second). UDP is exact: 10 datagrams of
    // 100 bytes each way, 128 bytes each at the IP layer.
    const list = await eventually(async () => {
      const l = await d!.json<ListJson>('diagnose', 'sys', 'session', 'list');
      const u = find(l, (s) => s.proto === 17 && s.orig_tuple.sport === 40100);
      const i4 = find(l, (s) => s.proto === 1);
      const i6 = find(l, (s) => s.proto === 58);
      // Offloaded sessions get the kernel's counters at the next sync: wait for all three.
      return u && u.org.packets === 10 && u.reply.packets === 10 && i4?.reply.packets === 3 && i6?.reply.packets === 2 ? l : undefined;
    });
    t.ok(list, 'UDP, ICMP and ICMPv6 session counters reached what was sent');
    if (!list) return;
    const u = find(list, (s) => s.proto === 17 && s.orig_tuple.sport === 40100)!;
    t.same(u.org, { bytes: 1280, packets: 10, allow_err: 0 });
    t.same(u.reply, { bytes: 1280, packets: 10, allow_err: 0 });
    t.equal(u.proto_state, '01');
    t.equal(u.offloaded, true);
    t.equal(u.policy_id, 1);
    t.equal(u.timeout, 3600);
    t.same([u.orig_tuple.src, u.orig_tuple.dst, u.orig_tuple.dport], [topo.addr.client.v4, topo.addr.server.v4, 7007]);

    const icmp = find(list, (s) => s.proto === 1)!;
    t.ok(icmp, 'ICMP echo session');
    t.same([icmp.org.packets, icmp.reply.packets, icmp.org.bytes, icmp.reply.bytes], [3, 3, 252, 252]);
    const icmp6 = find(list, (s) => s.proto === 58)!;
    t.ok(icmp6, 'ICMPv6 echo session');
    t.equal(icmp6.reply.packets, 2);

    // The HTTP session ended (curl closed it) and was logged with the kernel's final counters.
    const httpLog = await eventually(async () => d!.proc.stdout().split('\n').find((l) => l.includes('"type":"traffic"') && l.includes('"dstport":8080')));
    t.ok(httpLog, 'traffic log record for the HTTP session');
    if (httpLog) {
      const rec = JSON.parse(httpLog);
      t.equal(rec.action, 'close');
      t.equal(rec.srcip, topo.addr.client.v4);
      t.equal(rec.policyid, 1);
      t.ok(rec.rcvdbyte >= 200_000, `received bytes ${rec.rcvdbyte} include the 200000-byte body`);
      t.ok(rec.rcvdbyte <= 200_000 + 1000 + 60 * rec.rcvdpkt, 'and no more than headers on top');
    }

    // Text views in the vendor layout.
    const text = await d.cli('diagnose', 'sys', 'session', 'list');
    t.match(text, /^session info: proto=17 proto_state=01 duration=\d+ expire=\d+ timeout=3600 /m);
    t.match(text, /statistic\(bytes\/packets\/allow_err\): org=1280\/10\/0 reply=1280\/10\/0 tuples=2/);
    const records = text.match(/^session info: /gm)?.length ?? 0;
    t.match(text, new RegExp(`\\ntotal session: ${records}\\n$`), 'total matches the records printed');
    const stat = await d.json<StatView>('diagnose', 'sys', 'session', 'stat');
    t.ok(stat.session_count >= 3);
    t.equal(stat.queue?.errors, 0);

    // Established bulk traffic stays in the kernel: the queue's packet id barely moves while
    // iperf3 pushes a second of TCP through the router.
    const before = await queueCounters(topo);
    const bulk = await iperf3Client(topo, { seconds: 2 });
    const after = await queueCounters(topo);
    t.ok(before && after, 'queue counters readable');
    const segments = Math.round((bulk.json.end.sum_sent.bytes as number) / 1448);
    const queued = after!.lastId - before!.lastId;
    t.ok(segments > 10_000, `iperf3 sent ~${segments} segments`);
    t.ok(queued < 100, `only ${queued} packets were queued while ${segments} segments passed`);

    // Clearing the table deletes the kernel entries too.
    const cleared = JSON.parse(await d.cli('diagnose', 'sys', 'session', 'clear', '--json')) as { cleared: number };
    t.ok(cleared.cleared >= 3);
    const emptied = await eventually(async () => {
      const ct = (await topo.exec('router', ['conntrack', '-L', '-p', 'udp', '--sport', '40100'])).stdout;
      return ct.includes('40100') ? undefined : true;
    }, 5000);
    t.ok(emptied, 'kernel conntrack entry of the UDP session deleted');

    // SIGTERM removes exactly our rules.
    t.equal(await d.stop(), 0, 'daemon exits 0 on SIGTERM');
    d = undefined;
    const gone = await rules(topo);
    t.notMatch(gone.nft, /nfsessiond/);
    t.notMatch(gone.xt, /NFSESSIOND/);

    // A SIGKILLed daemon leaves its rules, and --queue-bypass keeps traffic flowing.
    const k = await startDaemon(topo, CONFIG);
    k.proc.child.kill('SIGKILL');
    await k.proc.exited;
    const afterKill = await rules(topo);
    t.match(afterKill.xt, /NFSESSIOND/, 'rules are still there after SIGKILL');
    t.equal((await ping(topo, topo.addr.server.v4, { count: 2, intervalS: 0.2 })).received, 2, 'ping passes with no daemon');
    t.equal((await curlFetch(topo, http.urlFor(1000))).bytes, 1000, 'new TCP connections pass with no daemon');

    // Restarting installs the rules once (no duplicates), and the next SIGTERM cleans up.
    d = await startDaemon(topo, CONFIG);
    const again = await rules(topo);
    t.equal(again.xt.match(/-A FORWARD .*-j NFSESSIOND/g)?.length, 2, 'still one jump per family after a restart');
    t.equal(again.xt.match(/-j NFQUEUE/g)?.length, 2, 'one queue rule per family');
    t.equal(await d.stop(), 0);
    d = undefined;
    t.notMatch((await rules(topo)).xt, /NFSESSIOND/);
  });
});
