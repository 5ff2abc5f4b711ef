// Packet-capture validation of a live run: tcpdump captures on both router interfaces while
// real traffic (curl, a UDP exchange, ping over IPv4 and IPv6) passes through the daemon; then
// `nfsessiond replay` of each capture, with the daemon's own config and the time the live table
// was read, must give the live table: the same sessions with the same counters, states,
// policy and offload state. The capture filter keeps client <-> server traffic (the router's
// own neighbour discovery never reaches the forward hook).

import t from 'tap';
import { join } from 'node:path';
import { withTopology, type NsProcess } from '../../src/topology/netns.js';
import { curlFetch, ping, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { eventually, runCli, startDaemon } from '../lib/daemon.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { ReplayReport } from '../../src/capture/replay.js';
import { acceptAllConfig } from '../lib/control-only.js';

const CONFIG = acceptAllConfig(7);

interface ListJson { sessions: SessionView[]; total: number }

const key = (s: SessionView) => `${s.proto} ${s.orig_tuple.src} ${s.orig_tuple.sport} ${s.orig_tuple.dst} ${s.orig_tuple.dport}`;
const essence = (s: SessionView) => ({
  proto_state: s.proto_state, policy_id: s.policy_id, offloaded: s.offloaded, refresh_dir: s.refresh_dir, timeout: s.timeout,
  org: s.org, reply: s.reply, reply_tuple: s.reply_tuple,
});

t.test('replayed captures of a live run give the live table', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { bodySize: 200_000 });
    await startUdpEcho(topo);
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());
    const a = topo.addr;
    const filter = `(host ${a.client.v4} and host ${a.server.v4}) or (host ${a.client.v6} and host ${a.server.v6})`;
    const caps: Record<string, { file: string; proc: NsProcess }> = {};
    for (const ifname of ['veth-c', 'veth-s']) {
      const file = join(d.dir, `${ifname}.pcap`);
      const proc = topo.spawn('router', ['tcpdump', '-U', '-n', '-s', '262144', '-i', ifname, '-w', file, filter]);
      await proc.waitForLine(/listening on/, { stream: 'stderr', timeoutMs: 15_000 });
      caps[ifname] = { file, proc };
    }

    t.equal((await curlFetch(topo, http.urlFor(200_000))).bytes, 200_000);
    const udp = await udpExchange(topo, { count: 10, size: 100, sport: 40100 });
    t.same([udp.sent, udp.received], [10, 10]);
    t.equal((await ping(topo, a.server.v4, { count: 3, intervalS: 0.2 })).received, 3);
    t.equal((await ping(topo, a.server.v6, { count: 2, intervalS: 0.2 })).received, 2);

    // The live table once it has settled: the HTTP session closed and gone, the offloaded
    // sessions' counters synced from the kernel (two reads in a row the same).
    let prev = '';
    const live = await eventually(async () => {
      const l = await d.json<ListJson>('diagnose', 'sys', 'session', 'list');
      const at = Date.now();
      const sig = JSON.stringify(l.sessions.map((s) => [key(s), s.org, s.reply, s.proto_state, s.offloaded]));
      const settled = sig === prev && !l.sessions.some((s) => s.proto === 6) && l.sessions.length === 3;
      prev = sig;
      return settled ? { l, at } : undefined;
    }, 20_000, 1500);
    t.ok(live, 'the live table settled');
    if (!live) return;
    for (const c of Object.values(caps)) await c.proc.kill('SIGTERM');

    const liveByKey = new Map(live.l.sessions.map((s) => [key(s), s]));
    t.same([...liveByKey.keys()].map((k) => k.split(' ')[0]).sort(), ['1', '17', '58']);
    for (const [ifname, c] of Object.entries(caps)) {
      const r = JSON.parse(await runCli(['replay', c.file, '--config', d.configPath, '--json', '--at', String(live.at / 1000),
        // Original-direction packets entered the router through veth-c whichever side was captured.
        '--org-if', 'veth-c', '--reply-if', 'veth-s'])) as ReplayReport;
      t.same(r.sessions.map(key).sort(), [...liveByKey.keys()].sort(), `${ifname}: the same sessions`);
      for (const s of r.sessions) {
        const l = liveByKey.get(key(s));
        if (l) t.same(essence(s), essence(l), `${ifname}: ${key(s)} as live`);
      }
      // The HTTP connection was tracked and closed in the replay as it was live.
      t.ok((r.replay.sessions_ended['tcp-close'] ?? 0) >= 1, `${ifname}: the HTTP session ended by its close`);
      t.equal(r.verdicts.drop, 0);
      t.equal(r.replay.non_ip, 0);
    }
  });
});

// FTP through the helper: the data connections pass only as expectations of the control
// session (the policy allows tcp/21 alone). The replay of the client-side capture must open
// the same expectations and turn them into the same child sessions.
const FTP_CONFIG = `
config system nfsessiond
    set kernel-sync-interval 1
end
config firewall policy
    edit 21
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set service "FTP"
        set action accept
    next
end
`;

t.test('FTP (passive PASV, active PORT): the replay opens and uses the expectations the live run did', async (t) => {
  const { startVsftpd, ftpTransfer } = await import('../../src/topology/ftp.js');
  await withTopology(t, async (topo) => {
    const ftp = await startVsftpd(topo, { files: { 'file.bin': 100_000 } });
    t.teardown(() => ftp.stop());
    const d = await startDaemon(topo, FTP_CONFIG);
    t.teardown(() => d.stop());
    const a = topo.addr;
    const file = join(d.dir, 'ftp.pcap');
    const cap = topo.spawn('router', ['tcpdump', '-U', '-n', '-s', '262144', '-i', 'veth-c', '-w', file, `host ${a.client.v4} and host ${a.server.v4}`]);
    await cap.waitForLine(/listening on/, { stream: 'stderr', timeoutMs: 15_000 });
    t.equal((await ftpTransfer(topo, ftp.url('file.bin'), { rfc959: true })).bytes, 100_000, 'passive PASV');
    t.equal((await ftpTransfer(topo, ftp.url('file.bin'), { active: true, rfc959: true })).bytes, 100_000, 'active PORT');
    // Settled: every connection closed and gone from the live table.
    const live = await eventually(async () => {
      const l = await d.json<ListJson>('diagnose', 'sys', 'session', 'list');
      return l.sessions.length === 0 ? { at: Date.now() } : undefined;
    }, 20_000, 500);
    t.ok(live, 'the live table emptied once the transfers closed');
    await cap.kill('SIGTERM');
    if (!live) return;
    const r = JSON.parse(await runCli(['replay', file, '--config', d.configPath, '--json', '--at', String(live.at / 1000),
      '--org-if', 'veth-c', '--reply-if', 'veth-s'])) as ReplayReport;
    t.equal(r.total, 0, 'the replayed table at that time is empty too');
    t.equal(r.verdicts.drop, 0, 'nothing the live run let through is dropped in the replay');
    t.equal(r.refusals.length, 0);
    // Two control sessions, each with one data connection that an expectation let in.
    t.equal(r.verdicts.reasons['allowed:21'], 2);
    t.equal(r.verdicts.reasons['expected:ftp'], 2);
    t.equal(r.expectation_uses.length, 2);
    const uses = r.expectation_uses.map((u) => `${u.expectation.kind} ${u.expectation.src}->${u.expectation.dst}`).sort();
    t.same(uses, [`ftp-data ${a.client.v4}->${a.server.v4}`, `ftp-data ${a.server.v4}->${a.client.v4}`], 'passive: client to server; active: server to client');
    t.ok(r.expectation_uses.every((u) => u.child !== u.expectation.parent));
  });
});
