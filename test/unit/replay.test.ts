// nfsessiond replay: a capture built here goes through the engine with its timestamps; the
// table, counters, timers, interfaces, fragments and the report are checked with exact values.

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FdSink, LINKTYPE_ETHERNET, PcapWriter } from '../../src/capture/pcap.js';
import { formatReplayReport, parseAt, replayFiles } from '../../src/capture/replay.js';
import { parseConfig } from '../../src/config/load.js';
import { buildIcmpEcho, buildTcp, buildUdp, fragmentPacket } from '../../src/packet/build.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/packet/types.js';

const C = '198.51.100.2';
const S = '203.0.113.2';
const T0 = 1_700_000_000_000;

const eth = (ip: Buffer) => Buffer.concat([Buffer.from('020000000002020000000001', 'hex'), Buffer.from(ip[0] >> 4 === 6 ? '86dd' : '0800', 'hex'), ip]);

function writeCapture(dir: string, name: string, frames: Array<[number, Buffer]>): string {
  const f = join(dir, name);
  const w = new PcapWriter(FdSink.open(f), LINKTYPE_ETHERNET);
  for (const [ms, frame] of frames) w.write(T0 + ms, frame);
  w.close();
  return f;
}

function traffic(): { frames: Array<[number, Buffer]>; tcpOrg: number; tcpReply: number } {
  const frames: Array<[number, Buffer]> = [];
  const tcp = [
    buildTcp({ src: C, dst: S, sport: 33000, dport: 80, flags: TCP_SYN, seq: 100 }),
    buildTcp({ src: S, dst: C, sport: 80, dport: 33000, flags: TCP_SYN | TCP_ACK, seq: 500, ack: 101 }),
    buildTcp({ src: C, dst: S, sport: 33000, dport: 80, flags: TCP_ACK, seq: 101, ack: 501 }),
    buildTcp({ src: C, dst: S, sport: 33000, dport: 80, flags: TCP_ACK | TCP_PSH, seq: 101, ack: 501, payload: 'GET / HTTP/1.0\r\n\r\n' }),
    buildTcp({ src: S, dst: C, sport: 80, dport: 33000, flags: TCP_ACK | TCP_PSH, seq: 501, ack: 119, payload: 'x'.repeat(300) }),
  ];
  tcp.forEach((p, i) => frames.push([10 + i, eth(p)]));
  const tcpOrg = tcp[0].length + tcp[2].length + tcp[3].length;
  const tcpReply = tcp[1].length + tcp[4].length;
  frames.push([20, eth(buildUdp({ src: C, dst: S, sport: 40000, dport: 53, payload: 'q'.repeat(30) }))]);
  frames.push([21, eth(buildUdp({ src: S, dst: C, sport: 53, dport: 40000, payload: 'a'.repeat(60) }))]);
  frames.push([30, eth(buildIcmpEcho({ src: C, dst: S, id: 7, seq: 1, payload: 'p'.repeat(56) }))]);
  frames.push([31, eth(buildIcmpEcho({ src: S, dst: C, id: 7, seq: 1, reply: true, payload: 'p'.repeat(56) }))]);
  // A UDP datagram in three fragments (the reply direction of nothing: a new session of its own).
  const big = buildUdp({ src: C, dst: S, sport: 41000, dport: 9999, payload: Buffer.alloc(2500, 1), id: 4242 });
  fragmentPacket(big, 1000).forEach((f, i) => frames.push([40 + i, eth(f)]));
  // ARP: not IP.
  frames.push([50, Buffer.from('ffffffffffff0200000000020806' + '0001080006040001' + '00'.repeat(20), 'hex')]);
  // A UDP flow nobody answers, then 200 s of silence: the udp-idle-timer (180 s) ends it.
  frames.push([60, eth(buildUdp({ src: C, dst: S, sport: 42000, dport: 7777, payload: 'z' }))]);
  frames.push([200_000, eth(buildUdp({ src: C, dst: S, sport: 40000, dport: 53, payload: 'q'.repeat(30) }))]);
  return { frames, tcpOrg, tcpReply };
}

t.test('replay: table, counters, fragments, timers, interfaces', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { frames, tcpOrg, tcpReply } = traffic();
  const file = writeCapture(dir, 'a.pcap', frames);
  const r = replayFiles({ files: [file], config: parseConfig('') });

  t.equal(r.replay.packets, frames.length);
  t.equal(r.replay.non_ip, 1);
  t.same([r.replay.defrag.fragments, r.replay.defrag.reassembled, r.replay.defrag.incomplete], [3, 1, 0]);
  t.equal(r.replay.decided, frames.length - 1 - 3 + 1, 'ARP not decided, three fragments decided as one datagram');
  t.equal(r.replay.at, T0 + 200_000);
  t.same(r.replay.sessions_ended, { ttl: 2 }, 'the unanswered UDP flows (7777, and 9999 of the fragments) ended by the udp-idle-timer');
  t.same(r.replay.interfaces, { org: 'port1', reply: 'port2' });

  t.equal(r.total, 3);
  const tcp = r.sessions.find((s) => s.proto === 6)!;
  t.same(tcp.org, { bytes: tcpOrg, packets: 3, allow_err: 0 });
  t.same(tcp.reply, { bytes: tcpReply, packets: 2, allow_err: 0 });
  t.equal(tcp.proto_state, '11');
  t.same([tcp.dev_org, tcp.dev_reply], [[1, 2], [2, 1]]);
  t.equal(tcp.offloaded, true, 'offload confirmed as the kernel would');
  t.equal(tcp.duration, 199, 'duration at the last packet');
  const dns = r.sessions.find((s) => s.proto === 17 && s.orig_tuple.dport === 53)!;
  t.same([dns.org.packets, dns.reply.packets, dns.org.bytes, dns.reply.bytes], [2, 1, 116, 88]);
  const icmp = r.sessions.find((s) => s.proto === 1)!;
  t.same([icmp.org.packets, icmp.reply.packets], [1, 1]);
  t.same([r.verdicts.accept, r.verdicts.drop], [12, 0]);
  t.equal(r.verdicts.reasons['existing'], 7);
  t.same([r.accounting.services.HTTP.current, r.accounting.services.HTTP.setupOk], [1, 1], 'per-service accounting: one HTTP session');

  const text = formatReplayReport(r);
  t.match(text, /^=== sessions \(diagnose sys session list\)\nsession info: proto=6 proto_state=11 /);
  t.match(text, /orgin->sink: org pre->post, reply pre->post dev=1->2\/2->1 gwy=0\.0\.0\.0\/0\.0\.0\.0/);
  t.match(text, /\ntotal session: 3\n/);
  t.match(text, /=== expectations\ntotal expectation: 0\n/);
  t.match(text, /=== refused expectations\ntotal refused: 0\n/);
  t.match(text, /=== per-service accounting \(diagnose test proxyworker 4\)\nWorker\[0\]\nHTTP Common\nCurrent Connections 1\/0/);
  t.match(text, /=== verdicts\naccept=12 drop=0\n/);
  t.match(text, /packets=15 decided=12 non_ip=1 unsupported_link=0\nfragments=3 reassembled=1 incomplete=0/);

  // Later: every session's timer has run out.
  const later = replayFiles({ files: [file], config: parseConfig(''), ...parseAt('+3601') });
  t.equal(later.total, 0);
  // Earlier: only the packets up to that time are fed.
  const early = replayFiles({ files: [file], config: parseConfig(''), ...parseAt(String((T0 + 45) / 1000)) });
  t.equal(early.total, 4);
  t.equal(early.replay.at, T0 + 45);
  const frag = early.sessions.find((s) => s.orig_tuple.dport === 9999)!;
  t.same(frag.org, { bytes: 2528, packets: 1, allow_err: 0 }, 'the reassembled datagram counts once with its whole length');
});

t.test('replay: policies see interfaces 1 (original direction) and 2 (replies) by the names given', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = writeCapture(dir, 'b.pcap', traffic().frames.slice(0, 5));
  const cfg = parseConfig(`
config firewall policy
    edit 5
        set srcintf "lan"
        set dstintf "wan"
        set srcaddr "all"
        set dstaddr "all"
        set service "ALL"
        set action accept
    next
end
`);
  const ok = replayFiles({ files: [file], config: cfg, orgIf: 'lan', replyIf: 'wan' });
  t.equal(ok.total, 1);
  t.equal(ok.sessions[0].policy_id, 5);
  const denied = replayFiles({ files: [file], config: cfg });
  t.equal(denied.total, 0);
  t.same(denied.verdicts, { accept: 0, drop: 5, reasons: { 'policy-deny:0': 5 } }, 'the implicit deny: every packet is a new flow');
  // Names from `config system interface` when none are given.
  const named = parseConfig(`
config system interface
    edit "lan"
    next
    edit "wan"
    next
end
config firewall policy
    edit 5
        set srcintf "lan"
        set dstintf "wan"
        set srcaddr "all"
        set dstaddr "all"
        set service "ALL"
        set action accept
    next
end
`);
  t.equal(replayFiles({ files: [file], config: named }).sessions[0]?.policy_id, 5);
});

t.test('replay: several files are merged by timestamp', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const frames = traffic().frames.slice(0, 5);
  // Requests in one file, replies in the other: only a merge in time order gives the handshake.
  const a = writeCapture(dir, 'org.pcap', frames.filter((_, i) => i !== 1 && i !== 4));
  const b = writeCapture(dir, 'reply.pcap', frames.filter((_, i) => i === 1 || i === 4));
  const r = replayFiles({ files: [a, b], config: parseConfig('') });
  t.equal(r.total, 1);
  t.equal(r.sessions[0].proto_state, '11');
  t.same(r.replay.files.map((f) => f.packets), [3, 2]);
});

t.test('parseAt', async (t) => {
  t.same(parseAt('end'), {});
  t.same(parseAt(undefined), {});
  t.same(parseAt('+30'), { afterEndMs: 30_000 });
  t.same(parseAt('1700000000.5'), { atMs: 1_700_000_000_500 });
  t.same(parseAt('2023-11-14T22:13:20Z'), { atMs: 1_700_000_000_000 });
  t.throws(() => parseAt('soon'), /--at soon/);
});
