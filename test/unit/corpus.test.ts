// Agreement with the corpus (issue 5): every capture of ../shared/corpus (MANIFEST.md there) goes
// through `nfsessiond replay`'s engine in-process, and what its ground truth states is asserted on
// our report: the number of sessions, every data channel / media stream / dynamic-port connection
// as an expectation we created and the later connection as its child, and no expectation in the
// negative cases. The truths are read from their files (Zeek logs, nDPI flow lists, suricata-verify
// test.yaml); facts the manifest takes from the tshark decode are read from the .tshark.txt beside
// the capture (a second decode, not truth). Where our behaviour rightly differs from the truth's
// tool, the test asserts ours and says why next to it.
//
// Session counts are `replay.sessions_created` (sessions the engine created over the whole
// capture), not the table at the end: timers end closed TCP sessions (tcp-timewait-timer, 1 s)
// before the capture ends. Counters are read from a second replay with tcp-timewait-timer 300
// (LINGER) so that closed sessions are still in the table at the end with their final counters;
// the timer changes nothing else.

import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { replayFiles, Replayer, type ExpectationCreatedView, type ReplayReport } from '../../src/capture/replay.js';
import { PcapFileReader } from '../../src/capture/pcap.js';
import { parseConfig } from '../../src/config/load.js';
import type { SessionView } from '../../src/control/session-view.js';
import {
  checksWith, ftpPinholes, parseNdpi, parseZeekCut, parseZeekLog, readText, suricataChecks, tsharkConversations,
  tsharkFtpLines, tsharkRawSdp, tsharkSdpLines, zeekConns, zeekCutColumns, zeekDataChannels,
  type Endpoint, type Pinhole, type TsharkConversation,
} from '../lib/truth.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CORPUS = resolve(ROOT, '../shared/corpus');
const PCAPS = join(CORPUS, 'pcaps');

const TCP = 6;
const UDP = 17;
const ICMP = 1;

/** Closed sessions stay in the table to the end of the capture (their final counters can be read). */
const LINGER = 'config system global\n    set tcp-timewait-timer 300\nend\n';
const ANY_PEER = 'config system session-helper-options\n    set sip-media-any-peer enable\nend\n';

const file = (rel: string) => join(PCAPS, rel);
const truth = (rel: string) => readText(file(rel));

function replay(rel: string, config = '', atMs?: number): ReplayReport {
  return replayFiles({ files: [file(rel)], config: parseConfig(config, `<corpus ${rel}>`), ...(atMs !== undefined ? { atMs } : {}) });
}

const ep = (e: Endpoint) => (e.addr.includes(':') ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`);
const origKey = (s: SessionView) => `${s.orig_tuple.proto} ${ep({ addr: s.orig_tuple.src, port: s.orig_tuple.sport })} > ${ep({ addr: s.orig_tuple.dst, port: s.orig_tuple.dport })}`;
const key = (proto: number, a: Endpoint, b: Endpoint) => `${proto} ${ep(a)} > ${ep(b)}`;
const l4 = (name: string) => ({ tcp: TCP, udp: UDP, icmp: ICMP, ip: ICMP }[name.toLowerCase()] ?? NaN);

/** The session whose first packet went a → b (or b → a when `either`). */
function session(r: ReplayReport, proto: number, a: Endpoint, b: Endpoint, either = false): SessionView | undefined {
  const k = key(proto, a, b);
  const k2 = key(proto, b, a);
  return r.sessions.find((s) => origKey(s) === k || (either && origKey(s) === k2));
}

/** Created expectations for `src → dst:dport` (any source port). */
const createdFor = (r: ReplayReport, proto: number, src: string, dst: string, dport: number): ExpectationCreatedView[] =>
  r.expectations_created.filter((c) => c.expectation.proto === proto && c.expectation.src === src && c.expectation.dst === dst && c.expectation.dport === dport);

const tupleOf = (c: ExpectationCreatedView) => `${c.expectation.proto} ${c.expectation.src}:${c.expectation.sport || '*'} > ${c.expectation.dst}:${c.expectation.dport}`;
const pinholeTuple = (p: Pinhole, proto = TCP) => `${proto} ${p.src}:* > ${p.dst}:${p.dport}`;

/** tshark's conversation count (TCP + UDP + other IP), for truths that state none. */
const tsharkCount = (convs: TsharkConversation[]) => convs.length;

/** The control connection of an FTP capture from tshark's table: [client, server]. */
function ftpControl(convs: TsharkConversation[]): [Endpoint, Endpoint][] {
  return convs.filter((c) => c.l4 === 'tcp' && (c.a.port === 21 || c.b.port === 21)).map((c) => (c.b.port === 21 ? [c.a, c.b] : [c.b, c.a]));
}

/**
 * Asserts that `child` (a session of the LINGER replay) is the connection expectation `x` waited for:
 * x was used by that very session, and the session is a child of x's parent with the helper's kind.
 */
function assertChild(t: Test, x: ExpectationCreatedView, child: SessionView | undefined, parent: SessionView, what: string): void {
  t.ok(child, `${what}: the connection is a session of ours`);
  if (!child) return;
  t.equal(x.end?.reason, 'used', `${what}: expectation ${tupleOf(x)} was used`);
  t.equal(x.end?.child, child.serial, `${what}: ... by this connection (serial ${child.serial})`);
  t.equal(x.expectation.parent, parent.serial, `${what}: expectation of the control session ${parent.serial}`);
  t.equal(child.parent, parent.serial, `${what}: child of the control session`);
  t.equal(child.inherited_serial, parent.serial, `${what}: inherits the control session's serial`);
  t.same(child.expected, { helper: x.expectation.helper, kind: x.expectation.kind }, `${what}: marked as expected by ${x.expectation.helper}`);
  t.equal(child.policy_id, parent.policy_id, `${what}: inherits the policy id`);
}

/** Zeek conn.log rows against our sessions (LINGER replay): same orig tuple, packets and IP bytes. */
function assertConnCounters(t: Test, lr: ReplayReport, conns: ReturnType<typeof zeekConns>): void {
  for (const c of conns) {
    const s = session(lr, l4(c.proto), c.orig, c.resp);
    const k = key(l4(c.proto), c.orig, c.resp);
    t.ok(s, `conn.log ${k} is a session with the same original direction`);
    if (!s) continue;
    t.same([s.org.packets, s.org.bytes, s.reply.packets, s.reply.bytes], [c.origPkts, c.origIpBytes, c.respPkts, c.respIpBytes],
      `${k}: packets and IP bytes both ways = conn.log orig_pkts/orig_ip_bytes/resp_pkts/resp_ip_bytes`);
  }
}

function main(): void {
  // ------------------------------------------------------------------ FTP (Zeek)

  t.test('1 ftp/zeek-ftp-ipv4-pasv-port.pcap: 2 PASV + 2 PORT data channels, all children of the control session', async (t) => {
    const rel = 'ftp/zeek-ftp-ipv4-pasv-port.pcap';
    const conns = zeekConns(parseZeekLog(truth('ftp/zeek-ftp-ipv4-pasv-port.truth.conn.log')));
    const channels = zeekDataChannels(parseZeekLog(truth('ftp/zeek-ftp-ipv4-pasv-port.truth.ftp.log')));
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(conns.length, 5, 'conn.log lists 5 connections');
    t.equal(r.replay.sessions_created, conns.length, 'one session per conn.log connection');
    t.equal(r.verdicts.drop, 0);

    // ftp.log's data_channel.* rows are exactly the expectations we created, in order.
    t.equal(channels.length, 4);
    t.same(r.expectations_created.map(tupleOf), channels.map((d) => `${TCP} ${d.orig_h}:* > ${d.resp_h}:${d.resp_p}`),
      'created expectations = ftp.log data channels (orig_h -> resp_h:resp_p/tcp, any source port)');
    t.same(r.expectations_created.map((c) => c.expectation.kind), channels.map(() => 'ftp-data'));
    t.same(r.refusals, []);

    const ctl = conns.find((c) => c.services.includes('ftp'))!;
    const parent = session(lr, TCP, ctl.orig, ctl.resp)!;
    t.equal(parent?.helper, 'ftp', 'the control session runs the ftp helper');
    const data = conns.filter((c) => c.services.includes('ftp-data'));
    t.equal(data.length, 4, 'conn.log: 4 ftp-data connections');
    for (const c of data) {
      const [x, ...more] = createdFor(r, TCP, c.orig.addr, c.resp.addr, c.resp.port);
      t.equal(more.length, 0, `one expectation for ${c.orig.addr} -> ${ep(c.resp)}`);
      // Active data does not come from port 20 here (61920, 61918): the expectation's source port is any.
      assertChild(t, x, session(lr, TCP, c.orig, c.resp), parent, `ftp-data ${key(TCP, c.orig, c.resp)}`);
    }
    assertConnCounters(t, lr, conns);
  });

  t.test('4 ftp/zeek-ftp-epsv-5gb-transfer.pcap: 2 EPSV data channels used; counters past 4 GiB of sequence space', async (t) => {
    const rel = 'ftp/zeek-ftp-epsv-5gb-transfer.pcap';
    const conns = zeekConns(parseZeekLog(truth('ftp/zeek-ftp-epsv-5gb-transfer.truth.conn.log')));
    const ts = truth('ftp/zeek-ftp-epsv-5gb-transfer.tshark.txt');
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(r.replay.sessions_created, conns.length, `one session per conn.log connection (${conns.length})`);
    t.equal(r.verdicts.drop, 0, 'every packet accepted, also after the sequence numbers wrapped past 4 GiB');

    // The 229 replies (tshark) name the pinholes; conn.log's ftp-data label says both were used.
    const [[client, server]] = ftpControl(tsharkConversations(ts));
    const pinholes = ftpPinholes(tsharkFtpLines(ts), client.addr, server.addr);
    t.same(pinholes.map((p) => p.dport), [63988, 37150], 'tshark: the 229 replies name 63988 and 37150');
    t.same(r.expectations_created.map(tupleOf), pinholes.map((p) => pinholeTuple(p)));
    const ctl = conns.find((c) => c.services.includes('ftp'))!;
    const parent = session(lr, TCP, ctl.orig, ctl.resp)!;
    for (const c of conns.filter((x) => x.services.includes('ftp-data'))) {
      const [x] = createdFor(r, TCP, c.orig.addr, c.resp.addr, c.resp.port);
      assertChild(t, x, session(lr, TCP, c.orig, c.resp), parent, `ftp-data ${key(TCP, c.orig, c.resp)}`);
    }

    // The big RETR: conn.log's resp_bytes (5 416 666 670) is payload counted from TCP sequence
    // numbers; the capture is sliced (missed_bytes says how much payload is not in it). A
    // firewall session counts the bytes of the packets it forwarded (as conntrack accounting
    // does), which are the packets in the capture: conn.log's resp_ip_bytes. We assert that, and
    // that the connection stayed tracked to its close across the sequence wrap.
    const big = conns.find((c) => (c.respBytes ?? 0) > 2 ** 32)!;
    t.ok(big, 'conn.log: one connection with resp_bytes past 4 GiB');
    t.equal(big.respBytes, 5_416_666_670);
    t.ok(big.missedBytes > 2 ** 32, 'conn.log: most of it is missed_bytes (sliced capture)');
    const s = session(lr, TCP, big.orig, big.resp)!;
    t.same([s.org.packets, s.org.bytes, s.reply.packets, s.reply.bytes], [big.origPkts, big.origIpBytes, big.respPkts, big.respIpBytes]);
    t.equal(s.proto_state, '65', 'closed normally (FIN both ways): TIME_WAIT / CLOSE');
    t.equal(r.replay.sessions_ended['tcp-close'], 2, 'default config: both data sessions ended as tcp-close before the end');
    assertConnCounters(t, lr, conns);
  });

  t.test('5 ftp/zeek-ftp-auth-tls-encrypted.pcap: AUTH TLS, no expectation (negative case)', async (t) => {
    const rel = 'ftp/zeek-ftp-auth-tls-encrypted.pcap';
    const conns = zeekConns(parseZeekLog(truth('ftp/zeek-ftp-auth-tls-encrypted.truth.conn.log')));
    const ftp = parseZeekLog(truth('ftp/zeek-ftp-auth-tls-encrypted.truth.ftp.log'));
    t.same(ftp.rows.map((x) => `${x.command} ${x.arg} ${x.reply_code}`), ['<init> - 220', 'AUTH TLS 234'], 'ftp.log: only the banner and AUTH TLS / 234');
    t.same(zeekDataChannels(ftp), [], 'ftp.log: no data channel');
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(r.replay.sessions_created, conns.length);
    const s = session(lr, TCP, conns[0].orig, conns[0].resp);
    t.equal(s?.helper, 'ftp', 'the helper did see the control channel');
    t.same(r.expectations_created, [], 'no expectation: after 234 the channel is TLS and the helper reads nothing more');
    t.same(r.refusals, [], 'and refuses nothing (it does not parse ciphertext as commands)');
    assertConnCounters(t, lr, conns);
  });

  t.test('6 ftp/zeek-ftp-500-port-expectation-cap.pcap: 500 third-party PORTs, all refused as ftp-bounce', async (t) => {
    const rel = 'ftp/zeek-ftp-500-port-expectation-cap.pcap';
    const ts = truth('ftp/zeek-ftp-500-port-expectation-cap.tshark.txt');
    const convs = tsharkConversations(ts);
    const [[client, server]] = ftpControl(convs);
    const pinholes = ftpPinholes(tsharkFtpLines(ts), client.addr, server.addr);
    t.equal(pinholes.length, 500, 'tshark: 500 PORT commands');
    t.ok(pinholes.every((p) => p.dst === '10.0.0.200' && p.dst !== client.addr), 'each names 10.0.0.200, not the client');

    const r = replay(rel);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'no conn.log: one session per tshark conversation (1)');
    // Zeek records every PORT's address as an expected data channel (its truth: 499 kept after
    // its cap). A firewall must not: a PORT naming another host would let the client make the
    // server connect anywhere (FTP bounce, RFC 2577), and the kernel's nf_conntrack_ftp (loose=0)
    // ignores it too.
    t.same(r.expectations_created, [], 'default config: no expectation');
    t.equal(r.refusals.length, 500);
    t.ok(r.refusals.every((x) => x.reason === 'ftp-bounce' && x.helper === 'ftp'), 'all refused as ftp-bounce');
    t.same(r.refusals.map((x) => /names (\S+):(\d+)/.exec(x.detail)?.slice(1).join(':')), pinholes.map((p) => `${p.dst}:${p.dport}`),
      'one refusal per PORT, naming its address and port');

    // With the bounce check off (what Zeek does) and Zeek's own cap from its test script, we keep
    // what Zeek keeps and refuse what it refuses.
    const cap = +/max_expected_data_channels\s*=\s*(\d+)/.exec(truth('ftp/zeek-ftp-500-port-expectation-cap.truth.test.zeek'))![1];
    const kept = +/ftp_data_expected_size=(\d+)/.exec(truth('ftp/zeek-ftp-500-port-expectation-cap.truth.output'))![1];
    const weirdText = truth('ftp/zeek-ftp-500-port-expectation-cap.truth.weird.log').split('\n').filter((l) => l && !l.startsWith('#'));
    const weird = parseZeekCut(weirdText.slice(1).join('\n'), weirdText[0].split('\t'));
    const tooMany = weird.filter((w) => w.name === 'FTP_too_many_expected_data_channels');
    t.equal(kept, cap, `Zeek keeps ${cap}`);
    t.equal(tooMany.length, 1, 'Zeek refuses one (one weird)');
    const zr = replay(rel, `config system session-helper-options\n    set ftp-third-party enable\n    set max-expectations-per-session ${cap}\nend\n`);
    t.equal(zr.expectations_created.length, kept, `ftp-third-party + max-expectations-per-session ${cap}: ${kept} expectations, as Zeek`);
    t.same(zr.expectations_created.map(tupleOf), pinholes.slice(0, cap).map((p) => pinholeTuple(p)), 'the first ones, server -> 10.0.0.200:port');
    t.same(zr.refusals.map((x) => x.reason), pinholes.slice(cap).map(() => 'limit-per-session'), `the rest (${pinholes.length - cap}) refused by the cap`);
  });

  // ------------------------------------------------------------------ FTP (Suricata)

  t.test('7 ftp/suricata-ftp-active-port-retr.pcap: 3 PORT data connections from port 20, children', async (t) => {
    const rel = 'ftp/suricata-ftp-active-port-retr.pcap';
    const ts = truth('ftp/suricata-ftp-active-port-retr.tshark.txt');
    const checks = suricataChecks(truth('ftp/suricata-ftp-active-port-retr.truth.test.yaml'));
    const convs = tsharkConversations(ts);
    const [[client, server]] = ftpControl(convs);
    const pinholes = ftpPinholes(tsharkFtpLines(ts), client.addr, server.addr);
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'test.yaml states no count: one session per tshark conversation (4)');
    t.same(r.expectations_created.map(tupleOf), pinholes.map((p) => pinholeTuple(p)), 'one expectation per PORT: server -> client:port');
    const parent = session(lr, TCP, client, server)!;
    const [user] = checksWith(checks, { event_type: 'ftp', 'ftp.command': 'USER' });
    t.same([parent.orig_tuple.src, parent.orig_tuple.dst], [user.match.src_ip, user.match.dest_ip], 'test.yaml: the control channel goes src_ip -> dest_ip');
    const data = convs.filter((c) => c.a.port !== 21 && c.b.port !== 21);
    t.equal(data.length, 3);
    for (const c of data) {
      const s = session(lr, TCP, c.a, c.b, true);
      const [x] = createdFor(r, TCP, s?.orig_tuple.src ?? '', s?.orig_tuple.dst ?? '', s?.orig_tuple.dport ?? 0);
      assertChild(t, x, s, parent, `data ${ep(c.a)} <-> ${ep(c.b)}`);
    }
    // test.yaml: exactly one ftp_data event (RETR index.html), from src_ip to dest_ip: the server
    // opens the data connection. Each of our children goes that way.
    const [fd] = checksWith(checks, { event_type: 'ftp_data' });
    t.equal(fd.count, 1);
    for (const c of r.expectations_created) {
      const s = lr.sessions.find((x) => x.serial === c.end?.child)!;
      t.same([s.orig_tuple.src, s.orig_tuple.dst, s.orig_tuple.sport], [fd.match.src_ip, fd.match.dest_ip, 20], 'data connection from the server\'s port 20');
    }
  });

  t.test('8 ftp/suricata-ftp-passive-pasv-stor.pcap: the same PASV port twice -> two expectations, both used', async (t) => {
    const rel = 'ftp/suricata-ftp-passive-pasv-stor.pcap';
    const ts = truth('ftp/suricata-ftp-passive-pasv-stor.tshark.txt');
    const checks = suricataChecks(truth('ftp/suricata-ftp-passive-pasv-stor.truth.test.yaml'));
    const convs = tsharkConversations(ts);
    const [[client, server]] = ftpControl(convs);
    const pinholes = ftpPinholes(tsharkFtpLines(ts), client.addr, server.addr);
    t.same(pinholes.map((p) => p.dport), [21003, 21003, 21001], 'tshark: 227 replies name 21003 twice, then 21001');
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'one session per tshark conversation (4)');
    t.same(r.expectations_created.map(tupleOf), pinholes.map((p) => pinholeTuple(p)), 'three expectations, two with the same tuple');
    // The first 21003 was used before the second 227 came, so the second is a new expectation,
    // not a replacement; each becomes the child of one connection.
    const parent = session(lr, TCP, client, server)!;
    const data = convs.filter((c) => c.b.port !== 21 && c.a.port !== 21);
    const children = new Set<number>();
    data.forEach((c, i) => {
      const s = session(lr, TCP, c.a, c.b);
      assertChild(t, r.expectations_created[i], s, parent, `data ${ep(c.a)} -> ${ep(c.b)}`);
      if (s) children.add(s.serial);
    });
    t.equal(children.size, 3, 'three different children');
    const [fd] = checksWith(checks, { event_type: 'ftp_data', 'ftp_data.command': 'STOR' });
    t.ok(r.expectations_created.every((c) => c.expectation.src === fd.match.src_ip && c.expectation.dst === fd.match.dest_ip),
      'test.yaml: the data goes src_ip -> dest_ip (client to server), as our expectations');
  });

  t.test('9 ftp/suricata-ftp-epsv-control-only.pcap: 4 EPSV expectations, none used', async (t) => {
    const rel = 'ftp/suricata-ftp-epsv-control-only.pcap';
    const ts = truth('ftp/suricata-ftp-epsv-control-only.tshark.txt');
    const checks = suricataChecks(truth('ftp/suricata-ftp-epsv-control-only.truth.test.yaml'));
    const convs = tsharkConversations(ts);
    const [[client, server]] = ftpControl(convs);
    const pinholes = ftpPinholes(tsharkFtpLines(ts), client.addr, server.addr);
    t.same(pinholes.map((p) => p.dport), [58612, 37100, 36986, 35656], 'tshark: the 229 ports');
    const [epsv] = checksWith(checks, { event_type: 'ftp', 'ftp.command': 'EPSV' });
    t.equal(+epsv.match['ftp.dynamic_port'], pinholes[0].dport, 'test.yaml: the first EPSV port');
    const r = replay(rel);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'control connection only: 1 session');
    t.same(r.expectations_created.map(tupleOf), pinholes.map((p) => pinholeTuple(p)), '4 expectations, client -> server:port');
    t.same(r.expectation_uses, [], 'none used: there is no data connection in the capture');
    // Nothing comes, so each waits expectation-timeout (30 s) and ends; the capture (80 s) ends
    // less than 30 s after the last 229, which is still open then. (The replay runs the timers
    // when capture time passes a whole second at a packet, so a timeout in a quiet stretch is
    // stamped with the next packet's time; no decision can fall in between.)
    const all = r.expectations_created;
    all.forEach((c) => {
      if (c.expectation.created + 30_000 <= r.replay.last_ts) {
        t.equal(c.end?.reason, 'timeout', `${tupleOf(c)} timed out`);
        t.ok(c.end!.at >= c.expectation.created + 30_000, 'not before 30 s');
      } else t.notOk(c.end, `${tupleOf(c)} still open at the end`);
    });
    t.same(r.expectations.map((x) => x.dport), [pinholes[3].dport]);
    t.equal(r.expectation_counters?.ended.timeout, 3);
  });

  t.test('10 ftp/suricata-ftp-port-bounce.pcap: the valid PORT expected, the third-party one refused', async (t) => {
    const rel = 'ftp/suricata-ftp-port-bounce.pcap';
    const ts = truth('ftp/suricata-ftp-port-bounce.tshark.txt');
    const checks = suricataChecks(truth('ftp/suricata-ftp-port-bounce.truth.test.yaml'));
    const convs = tsharkConversations(ts);
    const r = replay(rel);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'two control connections, no data connection: 2 sessions');
    const [valid] = checksWith(checks, { event_type: 'ftp', 'ftp.command': 'PORT', src_port: '33112' });
    const [bounce] = checksWith(checks, { event_type: 'ftp', 'ftp.command': 'PORT', src_port: '58316' });
    const [alert] = checksWith(checks, { event_type: 'alert', 'alert.signature_id': '1', src_port: '58316' });
    const [noAlert] = checksWith(checks, { event_type: 'alert', 'alert.signature_id': '1', src_port: '33112' });
    t.same([alert.count, noAlert.count], [1, 0], 'test.yaml: the bounce alert fires for 58316 only');
    const ctl = (sport: number) => r.sessions.find((s) => s.orig_tuple.sport === sport && s.orig_tuple.dport === 21)!;
    const good = ctl(+valid.match.src_port);
    const bad = ctl(+bounce.match.src_port);
    const pinholes = ftpPinholes(tsharkFtpLines(ts), good.orig_tuple.src, good.orig_tuple.dst);
    t.same(pinholes.map((p) => `${p.dst}:${p.dport}`), [`1.1.1.2:${valid.match['ftp.dynamic_port']}`, `2.2.2.3:${bounce.match['ftp.dynamic_port']}`], 'tshark: the two PORT targets');

    t.same(r.expectations_created.map(tupleOf), [`${TCP} 2.2.2.1:* > 1.1.1.2:59549`], 'one expectation: server 2.2.2.1 -> client 1.1.1.2:59549');
    t.equal(r.expectations_created[0].expectation.parent, good.serial, 'from the 33112 control session');
    t.notOk(r.expectations_created[0].end, 'open at the end (no data connection in the capture)');
    t.equal(r.refusals.length, 1);
    t.same([r.refusals[0].reason, r.refusals[0].parent], ['ftp-bounce', bad.serial], 'the 58316 PORT refused as ftp-bounce');
    t.match(r.refusals[0].detail, /2\.2\.2\.3:80\b/);
    t.same(createdFor(r, TCP, '2.2.2.1', '2.2.2.3', 80), [], 'no pinhole to 2.2.2.3:80');
  });

  t.test('13 ftp/ndpi-ftp-pasv-list-retr.pcap: LIST and RETR data flows (one "undetected" by nDPI) are children', async (t) => {
    const rel = 'ftp/ndpi-ftp-pasv-list-retr.pcap';
    const flows = parseNdpi(truth('ftp/ndpi-ftp-pasv-list-retr.truth.ndpi.out'));
    const ts = truth('ftp/ndpi-ftp-pasv-list-retr.tshark.txt');
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(r.replay.sessions_created, flows.length, `one session per nDPI flow (${flows.length})`);
    const ctl = flows.find((f) => f.proto === 'FTP_CONTROL')!;
    const pinholes = ftpPinholes(tsharkFtpLines(ts), ctl.a.addr, ctl.b.addr);
    t.same(r.expectations_created.map(tupleOf), pinholes.map((p) => pinholeTuple(p)), 'the 227 replies (tshark) are our expectations');
    const parent = session(lr, TCP, ctl.a, ctl.b)!;
    t.equal(parent.helper, 'ftp');
    // nDPI labels the LIST flow FTP_DATA and leaves the RETR flow undetected; both go to a port a
    // 227 named, and both are data connections of the control session.
    const data = flows.filter((f) => f !== ctl);
    t.same(data.map((f) => f.proto), ['FTP_DATA', 'Unknown']);
    for (const f of data) {
      const [x] = createdFor(r, TCP, f.a.addr, f.b.addr, f.b.port);
      assertChild(t, x, session(lr, TCP, f.a, f.b), parent, `nDPI flow ${f.proto} ${ep(f.a)} <-> ${ep(f.b)}`);
    }
    for (const f of flows) {
      const s = session(lr, TCP, f.a, f.b)!;
      // nDPI's bytes are frame bytes (Ethernet header and padding): only the packets compare.
      t.same([s.org.packets, s.reply.packets], f.pkts, `${ep(f.a)} <-> ${ep(f.b)}: packets both ways as nDPI`);
    }
  });

  // ------------------------------------------------------------------ SIP

  t.test('14 sip/ndpi-sip-register-invite-183sdp-rtp.pcap: 183 media towards .36 (not the SIP host .35)', async (t) => {
    const rel = 'sip/ndpi-sip-register-invite-183sdp-rtp.pcap';
    const flows = parseNdpi(truth('sip/ndpi-sip-register-invite-183sdp-rtp.truth.ndpi.out'));
    const sdp = tsharkSdpLines(truth('sip/ndpi-sip-register-invite-183sdp-rtp.tshark.txt'));
    const sipLog = parseZeekLog(truth('sip/ndpi-sip-register-invite-183sdp-rtp.truth.zeek-sip.log'));
    const rtp = flows.find((f) => f.proto === 'RTP')!;
    const rtcp = flows.find((f) => f.undetected && f.a.addr === rtp.a.addr && f.b.addr === rtp.b.addr)!;
    t.same([ep(rtp.a), ep(rtp.b), ep(rtcp.a), ep(rtcp.b)], ['192.168.1.2:30000', '212.242.33.36:40392', '192.168.1.2:30001', '212.242.33.36:40393'], 'nDPI: RTP and (undetected) RTCP flows');
    const answer = sdp.find((l) => l.status === 183)!;
    t.same([answer.src, answer.conn, answer.media.split(' ').slice(0, 2).join(' ')], ['212.242.33.35', rtp.b.addr, `audio ${rtp.b.port}`],
      'tshark: the 183 from .35 answers c=.36 m=audio 40392');

    const r = replay(rel);
    t.equal(r.replay.sessions_created, flows.length, `one session per nDPI flow (${flows.length}); the default policy accepts the RTP as new sessions`);
    const sip35 = r.sessions.find((s) => s.orig_tuple.dst === answer.src && s.orig_tuple.dport === 5060)!;
    t.equal(sip35.helper, 'sip');
    // Default config: the media host differs from the host that sent the SDP. Refused as
    // 'sip-media-peer', as the kernel's nf_conntrack_sip does with sip_direct_media=1 (its default).
    t.same(r.refusals.map((x) => [x.reason, x.parent]), [['sip-media-peer', sip35.serial]], 'default: one refusal, the 183\'s media');
    t.match(r.refusals[0].detail, `m=audio ${rtp.b.port} names ${rtp.b.addr}, not the sender ${answer.src}`);
    t.same(createdFor(r, UDP, rtp.a.addr, rtp.b.addr, rtp.b.port), [], 'no expectation towards .36');
    // The INVITE offers (c=192.168.1.2, the sender itself) do open media towards 192.168.1.2:30000/30001;
    // every one of those calls ends in CANCEL or a final error, which releases them.
    const offers = sdp.filter((l) => l.method === 'INVITE');
    t.ok(offers.every((l) => l.conn === l.src && l.media.startsWith('audio 30000')), 'tshark: every INVITE offers c=<its sender> m=audio 30000');
    t.ok(r.expectations_created.length > 0 && r.expectations_created.every((c) => c.expectation.dst === '192.168.1.2' && [30000, 30001].includes(c.expectation.dport)),
      'default: expectations only towards the offerer 192.168.1.2:30000 (rtp) / 30001 (rtcp)');
    t.ok(r.expectations_created.every((c) => c.end?.reason === 'released'), 'all released by CANCEL or a final error response');
    t.same(r.expectation_uses, []);
    const rtpS = session(r, UDP, rtp.a, rtp.b)!;
    t.ok(rtpS && rtpS.parent === undefined, 'the RTP flow is a session of its own (policy), not a child');

    // sip-media-any-peer (kernel sip_direct_media=0): the 183 opens the media the manifest lists.
    const a = replay(rel, ANY_PEER);
    t.same(a.refusals, [], 'any-peer: nothing refused');
    const [xr] = createdFor(a, UDP, rtp.a.addr, rtp.b.addr, rtp.b.port);
    const [xc] = createdFor(a, UDP, rtcp.a.addr, rtcp.b.addr, rtcp.b.port);
    t.ok(xr && xc, 'any-peer: expectations 192.168.1.2 -> .36:40392 (rtp) and :40393 (rtcp)');
    t.same([xr.expectation.kind, xc.expectation.kind, xr.expectation.parent, xr.expectation.sport], ['rtp', 'rtcp', sip35.serial, 0]);
    t.same(createdFor(a, UDP, rtp.b.addr, rtp.a.addr, rtp.a.port).length > 0, true, 'and the reverse direction .36 -> 192.168.1.2:30000');
    // But the call does not get there: the INVITE is answered 43 ms after the 183 with a final
    // error (480), which ends the early dialog; the helper releases its media (the kernel flushes
    // them on a final response to invite_cseq too). The phone's RTP comes a second later and is
    // not a child. nDPI identifies it as RTP by its payload; that says nothing about expectations.
    const ringing = sipLog.rows.find((x) => x.status_code === '183')!;
    t.equal(ringing.seq, answer.cseq, 'Zeek sip.log: the 183 transaction is the INVITE with the CSeq tshark shows');
    const final = sipLog.rows.filter((x) => x.call_id === ringing.call_id && x.seq === ringing.seq && +x.status_code >= 300);
    t.same(final.map((x) => x.status_code), ['480'], 'Zeek sip.log: that INVITE ends with 480');
    t.equal(xr.end?.reason, 'released');
    t.equal(xc.end?.reason, 'released');
    const atRelease = replay(rel, ANY_PEER, xr.end!.at);
    t.notOk(session(atRelease, UDP, rtp.a, rtp.b), 'released before the first RTP packet');
    t.equal(session(a, UDP, rtp.a, rtp.b)?.parent, undefined, 'any-peer: the RTP flow is still not a child');

    // Without the 480 (the same capture less that one datagram), the RTP and RTCP flows are the
    // children of the SIP session: our expectations are the connections that follow.
    const rp = new Replayer(parseConfig(ANY_PEER, '<any-peer>'));
    const reader = new PcapFileReader(file(rel));
    let skipped = 0;
    try {
      for (let rec = reader.next(); rec; rec = reader.next()) {
        if (rec.buf.subarray(rec.offset, rec.offset + rec.capLen).includes('SIP/2.0 480')) { skipped++; continue; }
        rp.feed(rec);
      }
    } finally { reader.close(); }
    t.equal(skipped, 1);
    const w = rp.report(rp.lastTs);
    const wSip = w.sessions.find((s) => s.orig_tuple.dst === answer.src && s.orig_tuple.dport === 5060)!;
    for (const [f, kind] of [[rtp, 'rtp'], [rtcp, 'rtcp']] as const) {
      const [x] = createdFor(w, UDP, f.a.addr, f.b.addr, f.b.port);
      assertChild(t, x, session(w, UDP, f.a, f.b), wSip, `without the 480: ${kind} ${ep(f.a)} -> ${ep(f.b)}`);
    }
    t.equal(w.replay.sessions_created, flows.length);
  });

  t.test('16 sip/suricata-sip-invite-200-sdp.pcap: INVITE/200 with SDP on port 5061', async (t) => {
    const rel = 'sip/suricata-sip-invite-200-sdp.pcap';
    const ts = truth('sip/suricata-sip-invite-200-sdp.tshark.txt');
    const convs = tsharkConversations(ts);
    const sdp = tsharkSdpLines(ts);
    const checks = suricataChecks(truth('sip/suricata-sip-invite-200-sdp.truth.test.yaml'));
    t.equal(checksWith(checks, { event_type: 'sip' })[0].count, 8, 'test.yaml: 8 sip events');
    const [offer, answer, offer2] = sdp;
    t.same([offer.src, offer.conn, offer.media.split(' ')[1], answer.src, answer.conn, answer.media.split(' ')[1], answer.sport],
      ['200.57.7.195', '200.57.7.196', '40376', '200.57.7.204', '200.57.7.204', '8000', 5061], 'tshark: the offer names .196:40376 (not its sender), the answer .204:8000, from port 5061');

    const r = replay(rel);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'one session (1 udp conversation)');
    // The signalling runs to port 5061. The sip helper is bound to udp/5060 (the vendor's list,
    // and the kernel's nf_conntrack_sip ports=5060), so by default the session has no helper and
    // opens nothing; Suricata finds SIP on any port by content. A firewall needs the binding.
    t.equal(r.sessions[0].helper, undefined, 'default: no helper on udp/5061');
    t.same(r.expectations_created, []);

    const BIND = 'config system session-helper\n    edit 100\n        set name sip\n        set protocol 17\n        set port 5061\n    next\nend\n';
    const b = replay(rel, BIND);
    t.equal(b.sessions[0].helper, 'sip', 'with a sip binding for udp/5061');
    // Both INVITEs name .196 in c=, not their sender .195: refused (sip-media-peer) by default.
    // The 200 names its sender .204: media from the other signalling endpoint .195 to .204:8000.
    t.same(b.refusals.map((x) => x.reason), ['sip-media-peer', 'sip-media-peer']);
    t.same(b.refusals.map((x) => /m=audio (\d+) names (\S+),/.exec(x.detail)?.slice(1).join(' ')), [`40376 ${offer.conn}`, `40360 ${offer2.conn}`]);
    t.same(b.expectations_created.map(tupleOf), [`${UDP} 200.57.7.195:* > 200.57.7.204:8000`, `${UDP} 200.57.7.195:* > 200.57.7.204:8001`]);

    // With sip-media-any-peer: the manifest's expected media, 200.57.7.196:40376 <-> 200.57.7.204:8000
    // (+1 for RTCP). Each side's expectation comes from the address the other side's SDP announced.
    // The second INVITE (another Call-ID, no answer) opens its offer too. No RTP in the capture: none used.
    const a = replay(rel, BIND + ANY_PEER);
    t.same(a.expectations_created.map(tupleOf), [
      `${UDP} 200.57.7.204:* > 200.57.7.196:40376`, `${UDP} 200.57.7.204:* > 200.57.7.196:40377`,
      `${UDP} 200.57.7.196:* > 200.57.7.204:8000`, `${UDP} 200.57.7.196:* > 200.57.7.204:8001`,
      `${UDP} 200.57.7.204:* > 200.57.7.196:40360`, `${UDP} 200.57.7.204:* > 200.57.7.196:40361`,
    ]);
    t.same(a.expectations_created.map((c) => c.expectation.kind), ['rtp', 'rtcp', 'rtp', 'rtcp', 'rtp', 'rtcp']);
    t.ok(a.expectations_created.every((c) => c.expectation.parent === a.sessions[0].serial && !c.end), 'all of the signalling session, open at the end');
    t.same(a.expectation_uses, [], 'no media in the capture');
    t.same(a.refusals, []);
  });

  t.test('17 sip/suricata-sip-sdp-fields-synthetic.pcap: m= lines beyond Content-Length open nothing', async (t) => {
    const rel = 'sip/suricata-sip-sdp-fields-synthetic.pcap';
    const ts = truth('sip/suricata-sip-sdp-fields-synthetic.tshark.txt');
    const convs = tsharkConversations(ts);
    const checks = suricataChecks(truth('sip/suricata-sip-sdp-fields-synthetic.truth.test.yaml'));
    const [ev] = checksWith(checks, { event_type: 'sip', pcap_cnt: '1' });
    const media = ev.match['sip.sdp.media_descriptions[0].media'];
    t.equal(media, 'audio 30000 RTP/AVP 0 8 97 2 3', 'test.yaml: Suricata reads m=audio 30000 (it does not stop at Content-Length)');
    t.ok(tsharkSdpLines(ts).every((l) => l.media === ''), 'tshark honours Content-Length: no m= in either message');
    t.match(tsharkRawSdp(ts).get(1) ?? '', /m=audio 30000/, 'the datagram does carry m=audio 30000 after the Content-Length bytes');

    for (const [name, cfg] of [['default', ''], ['sip-media-any-peer', ANY_PEER]] as const) {
      const r = replay(rel, cfg);
      t.equal(r.replay.sessions_created, tsharkCount(convs), `${name}: one session`);
      t.equal(r.sessions[0].helper, 'sip');
      // Our helper reads the body as Content-Length bytes (RFC 3261 §18.3: a UDP datagram's excess
      // MUST be discarded), as the endpoint and tshark do; the m= lines lie beyond it, so there
      // is no media to open. Opening pinholes from bytes the endpoint discards would let a sender
      // open holes no call uses. Not even a refusal: with any-peer too, nothing is read.
      t.same(r.expectations_created, [], `${name}: no expectation`);
      t.same(r.refusals, [], `${name}: nothing refused either (the peer check never sees the media)`);
      t.same(createdFor(r, UDP, '2.2.2.2', '192.168.1.2', +media.split(' ')[1]), []);
    }
  });

  // ------------------------------------------------------------------ DCE-RPC, TFTP, MMS

  t.test('19 dcerpc/suricata-dcerpc-epm-bind-opnum42-fault.pcap: EPM fault, no expectation (negative case)', async (t) => {
    const rel = 'dcerpc/suricata-dcerpc-epm-bind-opnum42-fault.pcap';
    const ts = truth('dcerpc/suricata-dcerpc-epm-bind-opnum42-fault.tshark.txt');
    const convs = tsharkConversations(ts);
    const checks = suricataChecks(truth('dcerpc/suricata-dcerpc-epm-bind-opnum42-fault.truth.test.yaml'));
    t.equal(checksWith(checks, { event_type: 'alert', 'alert.signature_id': '2' })[0].count, 1, 'test.yaml: the EPM + opnum 42 rule fires');
    const faults = ts.split('\n').filter((l) => /\t135\t\d+\tFault: .*nca_op_rng_error/.test(l));
    t.equal(faults.length, 2, 'tshark: both port-135 connections end in a Fault');
    const r = replay(rel);
    const lr = replay(rel, LINGER);
    t.equal(r.replay.sessions_created, tsharkCount(convs), 'one session per tshark conversation (2 SMB + 2 EPM)');
    const epm = lr.sessions.filter((s) => s.orig_tuple.dport === 135);
    t.same(epm.map((s) => s.helper), ['dcerpc', 'dcerpc'], 'the dcerpc helper reads both EPM connections');
    t.same(r.expectations_created, [], 'no map response, so no expectation');
    t.same(r.refusals, []);
  });

  t.test('20 tftp/tftp-rrq-rfc1350-wireshark.pcap: the data connection is the child of the RRQ', async (t) => {
    const rel = 'tftp/tftp-rrq-rfc1350-wireshark.pcap';
    const tftp = parseZeekLog(truth('tftp/tftp-rrq-rfc1350-wireshark.truth.zeek-tftp.log')).rows;
    // The conn.log baseline kept only the uid and service columns (the file's name says so).
    const conns = parseZeekCut(truth('tftp/tftp-rrq-rfc1350-wireshark.truth.zeek-conn-uid-service.log'), ['uid', 'service']);
    const checks = suricataChecks(truth('tftp/tftp-rrq-rfc1350-wireshark.truth.suricata-test.yaml'));
    const convs = tsharkConversations(truth('tftp/tftp-rrq-rfc1350-wireshark.tshark.txt'));
    t.equal(tftp.length, 1);
    const rrq = tftp[0];
    t.equal(conns.find((c) => c.uid === rrq.uid_data)?.service, 'spicy_tftp_data', 'Zeek: the RRQ\'s uid_data is the spicy_tftp_data connection');
    const [ev] = checksWith(checks, { event_type: 'tftp' });
    t.same([ev.match.src_ip, ev.match.src_port, ev.match.dest_ip, ev.match.dest_port], [rrq['id.orig_h'], rrq['id.orig_p'], rrq['id.resp_h'], rrq['id.resp_p']], 'Suricata and Zeek agree on the RRQ');

    const r = replay(rel);
    t.equal(r.replay.sessions_created, conns.length, `one session per conn.log connection (${conns.length})`);
    const parent = session(r, UDP, { addr: rrq['id.orig_h'], port: +rrq['id.orig_p'] }, { addr: rrq['id.resp_h'], port: +rrq['id.resp_p'] })!;
    t.equal(parent.helper, 'tftp');
    // Pinhole: the server (any port) -> the client's port.
    t.same(r.expectations_created.map(tupleOf), [`${UDP} ${rrq['id.resp_h']}:* > ${rrq['id.orig_h']}:${rrq['id.orig_p']}`]);
    const data = convs.find((c) => c.a.port !== 69 && c.b.port !== 69)!;
    const server = data.a.addr === rrq['id.resp_h'] ? data.a : data.b;
    const client = server === data.a ? data.b : data.a;
    t.equal(server.port, 3445, 'tshark: the data comes from 192.168.0.10:3445');
    assertChild(t, r.expectations_created[0], session(r, UDP, server, client), parent, `data ${ep(server)} -> ${ep(client)}`);
  });

  t.test('22 tftp/zeek-tftp-rrq-oack-unsupported-opcode.pcap (DLT_NULL): the OACK connection is the child of the RRQ', async (t) => {
    const rel = 'tftp/zeek-tftp-rrq-oack-unsupported-opcode.pcap';
    const tftp = parseZeekLog(truth('tftp/zeek-tftp-rrq-oack-unsupported-opcode.truth.zeek-tftp.log')).rows;
    const cols = zeekCutColumns(truth('tftp/zeek-tftp-rrq-oack-unsupported-opcode.truth.test.zeek'), 'conn.log');
    const conns = parseZeekCut(truth('tftp/zeek-tftp-rrq-oack-unsupported-opcode.truth.zeek-conn.log'), cols);
    const ts = truth('tftp/zeek-tftp-rrq-oack-unsupported-opcode.tshark.txt');
    const rrq = tftp[0];
    const r = replay(rel);
    t.same(r.replay.files[0].link_types, ['null'], 'BSD loopback link layer');
    t.equal(r.replay.non_ip + r.replay.unsupported_link, 0);
    t.equal(r.replay.sessions_created, conns.length, `one session per conn.log connection (${conns.length})`);
    const parent = session(r, UDP, { addr: rrq['id.orig_h'], port: +rrq['id.orig_p'] }, { addr: rrq['id.resp_h'], port: +rrq['id.resp_p'] })!;
    t.equal(parent?.helper, 'tftp');
    t.same(r.expectations_created.map(tupleOf), [`${UDP} 127.0.0.1:* > 127.0.0.1:${rrq['id.orig_p']}`]);
    const oack = ts.split('\n').find((l) => /^2\t127\.0\.0\.1\t\d+\t127\.0\.0\.1\t\d+\t6\t/.test(l))!.split('\t');
    const child = session(r, UDP, { addr: oack[1], port: +oack[2] }, { addr: oack[3], port: +oack[4] });
    assertChild(t, r.expectations_created[0], child, parent, `OACK ${oack[1]}:${oack[2]} -> ${oack[3]}:${oack[4]} (tshark)`);
    // conn.log (zeek-cut uid service orig_ip_bytes resp_ip_bytes): the RRQ and the data connection.
    const byService = Object.fromEntries(conns.map((c) => [c.service, c]));
    t.same([parent.org.bytes, parent.reply.bytes], [+byService.spicy_tftp.orig_ip_bytes, +byService.spicy_tftp.resp_ip_bytes], 'RRQ session IP bytes = conn.log');
    t.same([child!.org.bytes, child!.reply.bytes], [+byService.spicy_tftp_data.orig_ip_bytes, +byService.spicy_tftp_data.resp_ip_bytes], 'data session IP bytes = conn.log');
  });

  t.test('24 mms/ndpi-mms-iec61850-tcp102.pcap: MMS on TCP 102, 1 session, no expectation', async (t) => {
    const rel = 'mms/ndpi-mms-iec61850-tcp102.pcap';
    const flows = parseNdpi(truth('mms/ndpi-mms-iec61850-tcp102.truth.ndpi.out'));
    const r = replay(rel);
    t.equal(r.replay.sessions_created, flows.length, 'one session per nDPI flow (1)');
    const s = session(r, TCP, flows[0].a, flows[0].b)!;
    t.same([s.org.packets, s.reply.packets], flows[0].pkts, 'packets both ways as nDPI');
    // The vendor's `mms` helper name is Microsoft Media Server (tcp/1863), not IEC 61850 MMS:
    // nothing is bound to tcp/102 and MMS negotiates no further connection.
    t.equal(s.helper, undefined, 'no helper on tcp/102');
    t.same(r.expectations_created, []);
    t.same(r.refusals, []);
  });

  // ------------------------------------------------------------------ mixed

  t.test('25 mixed/zeek-wikipedia-dns-http-mdns-v4v6.pcap: 34 connections in conn.log, 32 sessions by default', async (t) => {
    const rel = 'mixed/zeek-wikipedia-dns-http-mdns-v4v6.pcap';
    const conns = zeekConns(parseZeekLog(truth('mixed/zeek-wikipedia-dns-http-mdns-v4v6.truth.conn.log')));
    t.equal(conns.length, 34);
    const r = replay(rel);
    // Zeek records TCP connections it saw no SYN of (conn_state OTH: a capture that starts
    // mid-connection, a lone SYN-ACK). By default a new TCP session must start with a SYN
    // (config system settings: tcp-session-without-syn disable, the vendor default), so their
    // packets are dropped and no session is created.
    const noSyn = conns.filter((c) => c.proto === 'tcp' && !c.history.includes('S'));
    t.same(noSyn.map((c) => c.connState), ['OTH', 'OTH']);
    t.equal(r.replay.sessions_created, conns.length - noSyn.length, '34 - 2 = 32 sessions');
    t.equal(r.verdicts.reasons['tcp-without-syn'], noSyn.reduce((n, c) => n + c.origPkts + c.respPkts, 0), 'their packets (conn.log: 3 + 1) dropped as tcp-without-syn');
    t.equal(r.verdicts.drop, r.verdicts.reasons['tcp-without-syn']);
    // The other 32, multicast and broadcast one-packet flows included, are sessions with the same
    // original direction, packets and IP bytes; 10 frames are not IP (6 ARP, 4 STP) and Zeek
    // has no connection for them either.
    assertConnCounters(t, r, conns.filter((c) => !noSyn.includes(c)));
    t.equal(r.replay.non_ip, 10);

    // Accepting sessions without a SYN gives Zeek's 34. The lone SYN-ACK (history ^h) is one
    // Zeek flipped to make the port-80 side the responder; our session's original direction is
    // that of its first packet, so it is the other way round.
    const w = replay(rel, 'config system settings\n    set tcp-session-without-syn enable\nend\n');
    t.equal(w.replay.sessions_created, conns.length, 'tcp-session-without-syn enable: 34');
    for (const c of noSyn) {
      const flipped = c.history.startsWith('^');
      t.ok(session(w, TCP, flipped ? c.resp : c.orig, flipped ? c.orig : c.resp), `${key(TCP, c.orig, c.resp)}${flipped ? ' (flipped by Zeek)' : ''} is a session`);
    }
  });

  t.test('27 mixed/zeek-communityid-icmp4-echo.pcap: ICMP echo, 1 connection', async (t) => {
    const rel = 'mixed/zeek-communityid-icmp4-echo.pcap';
    const lines = truth('mixed/zeek-communityid-icmp4-echo.truth.conn-tuples.out').split('\n').filter((l) => l.startsWith('['));
    t.equal(lines.length, 1, 'one connection in the truth');
    const m = /orig_h=([\d.]+), orig_p=(\d+)\/icmp, resp_h=([\d.]+), resp_p=(\d+)\/icmp, proto=1/.exec(lines[0])!;
    const convs = tsharkConversations(truth('mixed/zeek-communityid-icmp4-echo.tshark.txt'));
    const r = replay(rel);
    // Zeek keys ICMP on (type, code) as ports; our echo session keys on the echo identifier. The
    // 8 requests and 4 replies share one identifier, so both see one connection.
    t.equal(r.replay.sessions_created, lines.length);
    const s = r.sessions[0];
    t.same([s.orig_tuple.proto, s.orig_tuple.src, s.orig_tuple.dst], [ICMP, m[1], m[3]], 'from 192.168.0.89 (echo requests, type 8) to 192.168.0.1');
    t.equal(+m[2], 8);
    t.same([s.org.packets, s.reply.packets], [convs[0].framesToB, convs[0].framesToA], 'tshark: 8 requests, 4 replies');
    t.same(r.expectations_created, []);
  });
}

if (!existsSync(PCAPS)) {
  t.plan(0, `corpus not found at ${CORPUS} (CI clones the repository with shared/ beside it)`);
} else {
  main();
}
