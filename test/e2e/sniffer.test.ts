// diagnose sniffer packet on the router of a topology while real traffic passes (vendor-style
// lines at each verbosity, --write readable by tshark), and diagnose debug capture: the packets
// the daemon decided, with their verdicts as pcapng packet comments.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { withTopology } from '../../src/topology/netns.js';
import { curlFetch, ping, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { CLI, requireBuild, startDaemon } from '../lib/daemon.js';

const hasTshark = spawnSync('tshark', ['--version']).status === 0;

function tshark(file: string, fields: string[], filter?: string): string[][] {
  const r = spawnSync('tshark', ['-r', file, ...(filter ? ['-Y', filter] : []), '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tshark -r ${file} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

t.test('diagnose sniffer packet: vendor lines by verbosity, --write pcap for tshark', async (t) => {
  requireBuild();
  await withTopology(t, async (topo) => {
    const dir = (await topo.execOk('router', ['mktemp', '-d', '/tmp/nfs-sniffer-XXXXXX'])).stdout.trim();
    t.teardown(() => { spawnSync('rm', ['-rf', dir]); });
    const file = join(dir, 'icmp.pcap');
    // Verbosity 4 on one interface: interface name and direction; three packets then it stops.
    const sn = topo.spawn('router', [process.execPath, CLI, 'diagnose', 'sniffer', 'packet', 'veth-c', 'icmp', '4', '4', '--write', file]);
    await sn.waitForLine(/^filters=\[icmp\]$/, { timeoutMs: 15_000 });
    const pg = await ping(topo, topo.addr.server.v4, { count: 2, intervalS: 0.2 });
    t.equal(pg.received, 2);
    await sn.exited;
    const lines = sn.stdout().trim().split('\n');
    t.equal(lines[0], 'interfaces=[veth-c]');
    t.equal(lines[1], 'filters=[icmp]');
    const pkts = lines.filter((l) => /^\d+\.\d{6} /.test(l));
    t.equal(pkts.length, 4, sn.stdout());
    t.match(pkts[0], /^\d+\.\d{6} veth-c in 198\.51\.100\.2 -> 203\.0\.113\.2: icmp: echo request$/);
    t.match(pkts[1], /^\d+\.\d{6} veth-c out 203\.0\.113\.2 -> 198\.51\.100\.2: icmp: echo reply$/);
    t.match(sn.stdout(), /\n4 packets received by filter\n0 packets dropped by kernel\n$/);
    t.ok(existsSync(file));
    if (hasTshark) {
      const rows = tshark(file, ['ip.src', 'icmp.type']);
      t.same(rows, [['198.51.100.2', '8'], ['203.0.113.2', '0'], ['198.51.100.2', '8'], ['203.0.113.2', '0']], 'tshark reads the written pcap');
    }

    // Verbosity 1 on any interface: a TCP handshake as the vendor prints it.
    const http = await startHttpServer(topo, { bodySize: 1000 });
    const s1 = topo.spawn('router', [process.execPath, CLI, 'diagnose', 'sniffer', 'packet', 'any', 'tcp port 8080 and tcp[tcpflags] & tcp-syn != 0', '1', '2']);
    await s1.waitForLine(/^filters=/, { timeoutMs: 15_000 });
    t.equal((await curlFetch(topo, http.urlFor(1000))).bytes, 1000);
    await s1.exited;
    const l1 = s1.stdout().split('\n').filter((l) => /^\d+\.\d{6} /.test(l));
    t.equal(l1.length, 2);
    t.match(l1[0], /^\d+\.\d{6} 198\.51\.100\.2\.\d+ -> 203\.0\.113\.2\.8080: syn \d+$/);
    t.match(l1[1], /^\d+\.\d{6} (198\.51\.100\.2\.\d+ -> 203\.0\.113\.2\.8080: syn \d+|203\.0\.113\.2\.8080 -> 198\.51\.100\.2\.\d+: syn \d+ ack \d+)$/);

    // Verbosity 2 (IP hex) and 6 (interface, Ethernet hex) on a UDP datagram.
    await startUdpEcho(topo);
    const s2 = topo.spawn('router', [process.execPath, CLI, 'diagnose', 'sniffer', 'packet', 'veth-s', 'udp port 7007', '6', '1']);
    await s2.waitForLine(/^filters=/, { timeoutMs: 15_000 });
    await udpExchange(topo, { count: 1, size: 16, sport: 40200 });
    await s2.exited;
    const out6 = s2.stdout();
    t.match(out6, /\n\d+\.\d{6} veth-s out 198\.51\.100\.2\.40200 -> 203\.0\.113\.2\.7007: udp 16\n0x0000\t [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} 0800 45[0-9a-f]{2}\t/);
    const s3 = topo.spawn('router', [process.execPath, CLI, 'diagnose', 'sniffer', 'packet', 'veth-c', 'udp', '2', '1', 'a']);
    await s3.waitForLine(/^filters=/, { timeoutMs: 15_000 });
    await udpExchange(topo, { count: 1, size: 16, sport: 40201 });
    await s3.exited;
    t.match(s3.stdout(), /\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} 198\.51\.100\.2\.40201 -> 203\.0\.113\.2\.7007: udp 16\n0x0000\t 4500 002c [0-9a-f ]+\tE\.\.,/);
  });
});

t.test('diagnose debug capture: decided packets with verdicts in pcapng comments', { skip: !hasTshark && 'tshark missing' }, async (t) => {
  requireBuild();
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { bodySize: 5000 });
    const d = await startDaemon(topo, `
config firewall service custom
    edit "web8080"
        set tcp-portrange 8080
    next
end
config firewall policy
    edit 3
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set service "web8080" "PING"
        set action accept
    next
end
`);
    t.teardown(() => d.stop());
    const file = join(d.dir, 'decided.pcapng');
    t.match(await d.cli('diagnose', 'debug', 'capture', 'start', file), /^capture: running file=.*decided\.pcapng count=unlimited written=0/);
    t.equal((await curlFetch(topo, http.urlFor(5000))).bytes, 5000);
    // Denied by the implicit policy: UDP is not in the policy's services.
    const u = await udpExchange(topo, { count: 2, size: 10, sport: 40300, waitMs: 300 });
    t.equal(u.received, 0);
    const st = JSON.parse(await d.cli('diagnose', 'debug', 'capture', 'stop', '--json'));
    t.equal(st.active, false);
    t.ok(st.written >= 4, `written ${st.written}`);
    t.equal(st.dropped, 2);
    const rows = tshark(file, ['frame.comment', 'ip.src', 'udp.srcport', 'tcp.flags.syn']);
    t.equal(rows.length, st.written, 'tshark reads every packet');
    const syn = rows.find((r) => r[3] === '1' && r[1] === topo.addr.client.v4);
    t.match(syn?.[0], /^verdict=accept reason=allowed:3 serial=[0-9a-f]{8} dir=org in=veth-c out=veth-s$/);
    const udp = rows.filter((r) => r[2] === '40300');
    t.equal(udp.length, 2);
    t.match(udp[0][0], /^verdict=drop reason=policy-deny:0 in=veth-c out=veth-s$/);
    // A count stops the capture by itself.
    const file2 = join(d.dir, 'two.pcapng');
    await d.cli('diagnose', 'debug', 'capture', 'start', file2, '2');
    await curlFetch(topo, http.urlFor(100));
    const st2 = JSON.parse(await d.cli('diagnose', 'debug', 'capture', 'status', '--json'));
    t.same([st2.active, st2.written], [false, 2]);
    t.equal(tshark(file2, ['frame.number']).length, 2);
    await t.rejects(d.cli('diagnose', 'debug', 'capture', 'start', file2), /already exists|EEXIST/, 'an existing file is not overwritten');
  });
});
