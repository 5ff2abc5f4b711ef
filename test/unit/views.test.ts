import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import { viewOf } from '../../src/control/session-view.js';
import { formatSessionList, formatStat } from '../../src/control/format.js';
import { statOf } from '../../src/control/stat.js';
import type { Packet } from '../../src/engine/types.js';
import { TCP_ACK, TCP_SYN, type FlowTuple } from '../../src/packet/types.js';
import { live } from '../lib/live-session.js';

function pkt(tu: FlowTuple, len: number, flags = 0, indev = 18, outdev = 17): Packet {
  return {
    indev, outdev, mark: 0,
    decoded: { ok: true, tuple: tu, length: len, tcpFlags: flags, icmpType: -1, icmpCode: -1, payloadOffset: 28, payloadLength: len - 28, fragment: false },
  };
}

t.test('session list record for the seed UDP 5001 scenario', (t) => {
  const e = new SessionEngine(defaultEngineConfig({
    offload: false,
    ttlRules: [{ proto: 17, startPort: 5001, endPort: 5001, timeout: 5001, refreshDir: 'incoming' }],
  }));
  const out: FlowTuple = { family: 4, proto: 17, src: '198.51.100.41', dst: '203.0.113.55', sport: 2041, dport: 5001 };
  e.handlePacket(pkt(out, 29), 0);
  e.handlePacket(pkt(out, 29), 1000);
  const text = formatSessionList([...e.sessions()].map((s) => viewOf(s, 77_000, false, 1, e)));
  t.equal(text, `session info: proto=17 proto_state=00 duration=77 expire=4924 timeout=5001 refresh_dir=reply flags=00000000 socktype=0 sockport=0 av_idx=0 use=3
origin-shaper=
reply-shaper=
per_ip_shaper=
class_id=0 ha_id=0 policy_dir=0 tunnel=/ vlan_cos=0/0
state=log may_dirty
statistic(bytes/packets/allow_err): org=58/2/0 reply=0/0/0 tuples=2
tx speed(Bps/kbps): 29/0 rx speed(Bps/kbps): 0/0
orgin->sink: org pre->post, reply pre->post dev=18->17/0->0 gwy=0.0.0.0/0.0.0.0
hook=pre dir=org act=noop 198.51.100.41:2041->203.0.113.55:5001(0.0.0.0:0)
hook=post dir=reply act=noop 203.0.113.55:5001->198.51.100.41:2041(0.0.0.0:0)
misc=0 policy_id=1 auth_info=0 chk_client_info=0 vd=0
serial=00000001 tos=ff/ff app_list=0 app=0 url_cat=0
rpdb_link_id=00000000 ngfwid=n/a
npu_state=0x000001 no_offload
no_ofld_reason:  disabled-by-config
total session: 1
`);
  t.end();
});

t.test('an empty table prints only the total; SNAT from the kernel shows snat/dnat hook lines', (t) => {
  t.equal(formatSessionList([]), 'total session: 0\n');
  const e = new SessionEngine(defaultEngineConfig());
  const o: FlowTuple = { family: 4, proto: 6, src: '198.51.100.41', dst: '203.0.113.55', sport: 2041, dport: 80 };
  const s = live(e, e.handlePacket(pkt(o, 60, TCP_SYN), 0).session!);
  e.kernelReport({ event: 'new', orig: o, reply: { ...o, src: '203.0.113.55', dst: '203.0.113.10', sport: 80, dport: 62458 } }, 0);
  const text = formatSessionList([viewOf(s, 0)]);
  t.match(text, 'hook=post dir=org act=snat 198.51.100.41:2041->203.0.113.55:80(203.0.113.10:62458)\nhook=pre dir=reply act=dnat 203.0.113.55:80->203.0.113.10:62458(198.51.100.41:2041)\n');
  t.end();
});

t.test('IPv6 records use the session6 placeholder', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const o: FlowTuple = { family: 6, proto: 58, src: '2001:db8:100::2', dst: '2001:db8:113::2', sport: 7, dport: 0 };
  const s = live(e, e.handlePacket(pkt(o, 104), 0).session!);
  t.match(formatSessionList([viewOf(s, 0)]), 'hook=pre dir=org act=noop 2001:db8:100::2:7->2001:db8:113::2:0(:::0)');
  t.end();
});

t.test('stat view counts sessions, TCP states, ephemeral and errors', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ maxSessions: 100 }));
  const a: FlowTuple = { family: 4, proto: 6, src: '198.51.100.2', dst: '203.0.113.2', sport: 1000, dport: 80 };
  const b: FlowTuple = { ...a, sport: 1001 };
  e.handlePacket(pkt(a, 60, TCP_SYN), 1000);
  e.handlePacket(pkt({ ...a, src: a.dst, dst: a.src, sport: 80, dport: 1000 }, 60, TCP_SYN | TCP_ACK), 1001);
  e.handlePacket(pkt(a, 52, TCP_ACK), 1002);
  e.handlePacket(pkt(b, 60, TCP_SYN), 1003);
  e.handlePacket(pkt({ ...a, sport: 1002 }, 52, TCP_ACK), 1004);
  t.equal(formatStat(statOf(e, 2500, { received: 5, dropped: 0 })), `misc info:\tsession_count=2 setup_rate=2 exp_count=0 clash=0
\tmemory_tension_drop=0 ephemeral=1/100 removeable=0
delete=0, flush=0, dev_down=0/0
TCP sessions:
\t 1 in ESTABLISHED state
\t 1 in SYN_SENT state
firewall error stat:
malformed=00000000
policy_deny=00000000
tcp_without_syn=00000001
icmp_err_unrelated=00000000
table_full=00000000
offload_fail=00000000
limit_drop=00000000
failopen_bypass=00000000
packets: decided=5 accepted=4 dropped=1 new_sessions=2
global: ses_limit=100 ses6_limit=100 rt_limit=0 rt6_limit=0
conserve: mode=off memory=0% reasons=- failopen=disable enter=0 leave=0 bypass_flows=0
nfqueue: received=5 dropped=0
`);
  t.match(formatStat({ ...statOf(e, 2500), journal: { records: 3, bytes: 900, flushes: 2 } }), /\nconserve: [^\n]*\njournal: records=3 bytes=900 flushes=2\n$/, 'the table journal\'s line');
  t.end();
});

t.test('traffic record: vendor fields, and the logger keeps them as the only date/time/level keys', async (t) => {
  const { trafficRecord } = await import('../../src/log/traffic.js');
  const { createLogger } = await import('../../src/log/logger.js');
  const e = new SessionEngine(defaultEngineConfig());
  const o: FlowTuple = { family: 4, proto: 6, src: '198.51.100.2', dst: '203.0.113.2', sport: 40000, dport: 80 };
  const s = live(e, e.handlePacket(pkt(o, 60, TCP_SYN, 2, 3), Date.UTC(2026, 10, 21, 12, 0, 0)).session!);
  const now = Date.UTC(2026, 10, 21, 12, 0, 42);
  const rec = trafficRecord(s, 'ttl', now, (i) => ({ 2: 'vc', 3: 'vs' })[i] ?? `if${i}`);
  t.same(rec, {
    date: '2026-11-21', time: '12:00:42', eventtime: now * 1_000_000, logid: '0000000013', type: 'traffic', subtype: 'forward',
    level: 'notice', vd: 'root', srcip: '198.51.100.2', srcport: 40000, dstip: '203.0.113.2', dstport: 80, srcintf: 'vc', dstintf: 'vs',
    proto: 6, service: 'HTTP', policyid: 1, sessionid: 1, action: 'timeout', duration: 42, sentbyte: 60, rcvdbyte: 0, sentpkt: 1, rcvdpkt: 0,
  });
  const lines: string[] = [];
  const log = createLogger('info', { write: (l: string) => { lines.push(l); } });
  log.info(rec, 'traffic');
  const raw = lines[0];
  for (const k of ['date', 'time', 'level']) t.equal(raw.split(`"${k}":`).length, 2, `one "${k}" key`);
  t.match(JSON.parse(raw), { level: 'notice', time: '12:00:42', severity: 'info', msg: 'traffic' });
});

t.test('full-stat adds the table line and offloaded count; a filter narrows the session figures', async (t) => {
  const { fullStatOf } = await import('../../src/control/stat.js');
  const e = new SessionEngine(defaultEngineConfig({ maxSessions: 100 }));
  const a: FlowTuple = { family: 4, proto: 17, src: '198.51.100.2', dst: '203.0.113.2', sport: 1000, dport: 53 };
  e.handlePacket(pkt(a, 40), 1000);
  e.handlePacket(pkt({ ...a, sport: 1001 }, 40), 1000);
  e.handlePacket(pkt({ ...a, src: a.dst, dst: a.src, sport: 53, dport: 1000 }, 40), 1000);
  e.offloadResult(1, true);
  const only1001 = (s: { orig: FlowTuple }) => s.orig.sport === 1001;
  t.equal(formatStat(fullStatOf(e, 1500, undefined, undefined, { buckets: 262144, max: 262144, count: 2 })), `session table:\ttable_size=100 max_depth=1 used=2
misc info:\tsession_count=2 setup_rate=0 exp_count=0 clash=0
\tmemory_tension_drop=0 ephemeral=1/100 removeable=0
\tnpu_session_count=1
delete=0, flush=0, dev_down=0/0
TCP sessions:
firewall error stat:
malformed=00000000
policy_deny=00000000
tcp_without_syn=00000000
icmp_err_unrelated=00000000
table_full=00000000
offload_fail=00000000
limit_drop=00000000
failopen_bypass=00000000
packets: decided=3 accepted=3 dropped=0 new_sessions=2
global: ses_limit=100 ses6_limit=100 rt_limit=0 rt6_limit=0
conserve: mode=off memory=0% reasons=- failopen=disable enter=0 leave=0 bypass_flows=0
kernel conntrack: buckets=262144 max=262144 count=2
`);
  const filtered = fullStatOf(e, 1500, undefined, only1001);
  t.same([filtered.session_count, filtered.ephemeral, filtered.npu_session_count, filtered.table.used], [1, 1, 0, 2]);
});
