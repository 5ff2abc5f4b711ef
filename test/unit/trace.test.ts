import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Packet } from '../../src/engine/types.js';
import { decode } from '../../src/packet/decode.js';
import { buildIcmpEcho, buildTcp, buildUdp } from '../../src/packet/build.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../src/packet/types.js';
import { applyFlowFilterArgs, compileFlowFilter, formatFlowFilter, tcpFlagText, traceMessages, type TraceContext } from '../../src/control/trace.js';
import { FlowTracer } from '../../src/control/tracer.js';

const C = '198.51.100.2';
const S = '203.0.113.2';
const pkt = (data: Buffer, indev = 2, outdev = 3): Packet => ({ indev, outdev, mark: 0, decoded: decode(data), data });
const ifname = (i: number) => ({ 2: 'veth-c', 3: 'veth-s' })[i] ?? `if${i}`;
const ctx = (traceId: number, showFunctionName = false): TraceContext => ({ traceId, showFunctionName, vd: 0, vdName: (vd) => (vd === 0 ? 'root' : `vd${vd}`), ifname });

t.test('a TCP handshake: new session, reply direction, original direction', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ offload: false }));
  const syn = pkt(buildTcp({ src: C, dst: S, sport: 40000, dport: 80, flags: TCP_SYN, seq: 123, ack: 0, window: 64240 }));
  const synack = pkt(buildTcp({ src: S, dst: C, sport: 80, dport: 40000, flags: TCP_SYN | TCP_ACK, seq: 900, ack: 124, window: 65160 }), 3, 2);
  const ack = pkt(buildTcp({ src: C, dst: S, sport: 40000, dport: 80, flags: TCP_ACK, seq: 124, ack: 901, window: 502 }));
  t.same(traceMessages(syn, e.handlePacket(syn, 0), ctx(1, true)), [
    'id=65308 trace_id=1 func=print_pkt_detail line=5866 msg="vd-root:0 received a packet(proto=6, 198.51.100.2:40000->203.0.113.2:80) from veth-c. flag [S], seq 123, ack 0, win 64240"',
    'id=65308 trace_id=1 func=init_ip_session_common line=6047 msg="allocate a new session-00000001"',
    'id=65308 trace_id=1 func=fw_forward_handler line=881 msg="Allowed by Policy-1:"',
  ]);
  t.same(traceMessages(synack, e.handlePacket(synack, 1), ctx(2)), [
    'id=65308 trace_id=2 msg="vd-root:0 received a packet(proto=6, 203.0.113.2:80->198.51.100.2:40000) from veth-s. flag [S.], seq 900, ack 124, win 65160"',
    'id=65308 trace_id=2 msg="Find an existing session, id-00000001, reply direction"',
  ]);
  t.same(traceMessages(ack, e.handlePacket(ack, 2), ctx(3)), [
    'id=65308 trace_id=3 msg="vd-root:0 received a packet(proto=6, 198.51.100.2:40000->203.0.113.2:80) from veth-c. flag [.], seq 124, ack 901, win 502"',
    'id=65308 trace_id=3 msg="Find an existing session, id-00000001, original direction"',
  ]);
  t.end();
});

t.test('policy deny, no session for a non-SYN, helper hook and NAT lines', (t) => {
  const deny = new SessionEngine(defaultEngineConfig({ policy: () => ({ policyId: 0, action: 'deny', logTraffic: false, vd: 0 }) }));
  const u = pkt(buildUdp({ src: C, dst: S, sport: 5000, dport: 53, payload: 'x' }));
  t.same(traceMessages(u, deny.handlePacket(u, 0), ctx(7)), [
    'id=65308 trace_id=7 msg="vd-root:0 received a packet(proto=17, 198.51.100.2:5000->203.0.113.2:53) from veth-c."',
    'id=65308 trace_id=7 msg="Denied by forward policy check (policy 0)"',
  ]);
  const e = new SessionEngine(defaultEngineConfig({ offload: false }));
  const mid = pkt(buildTcp({ src: C, dst: S, sport: 40001, dport: 21, flags: TCP_ACK | TCP_PSH, seq: 5, ack: 6, window: 100 }));
  t.same(traceMessages(mid, e.handlePacket(mid, 0), ctx(8, true)), [
    'id=65308 trace_id=8 func=print_pkt_detail line=5866 msg="vd-root:0 received a packet(proto=6, 198.51.100.2:40001->203.0.113.2:21) from veth-c. flag [P.], seq 5, ack 6, win 100"',
    'id=65308 trace_id=8 func=ip_session_handle_no_dst line=6148 msg="no session matched"',
  ]);
  // A session with a helper and SNAT learnt from the kernel (helpers come later; the hook is here).
  const syn = pkt(buildTcp({ src: C, dst: S, sport: 53541, dport: 21, flags: TCP_SYN, seq: 1, window: 10 }));
  const s = e.handlePacket(syn, 0).session!;
  s.helper = 'ftp';
  e.kernelReport({ event: 'new', orig: s.orig, reply: { ...s.reply, dst: '203.0.113.10', dport: 53541 } }, 0);
  const fin = pkt(buildTcp({ src: C, dst: S, sport: 53541, dport: 21, flags: TCP_FIN | TCP_ACK, seq: 2, ack: 3, window: 10 }));
  t.same(traceMessages(fin, e.handlePacket(fin, 1), ctx(9)).slice(1), [
    'id=65308 trace_id=9 msg="Find an existing session, id-00000001, original direction"',
    'id=65308 trace_id=9 msg="SNAT 198.51.100.2->203.0.113.10:53541"',
    'id=65308 trace_id=9 msg="run helper-ftp(dir=original)"',
  ]);
  const back = pkt(buildTcp({ src: S, dst: '203.0.113.10', sport: 21, dport: 53541, flags: TCP_ACK, seq: 3, ack: 3, window: 10 }), 3, 2);
  t.same(traceMessages(back, e.handlePacket(back, 2), ctx(10)).slice(1), [
    'id=65308 trace_id=10 msg="Find an existing session, id-00000001, reply direction"',
    'id=65308 trace_id=10 msg="DNAT 203.0.113.10:53541->198.51.100.2:53541"',
    'id=65308 trace_id=10 msg="run helper-ftp(dir=reply)"',
  ]);
  t.end();
});

t.test('ICMP echo shows id and type<<8|code as ports; malformed packets', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const req = pkt(buildIcmpEcho({ src: C, dst: S, id: 1, seq: 1 }));
  t.same(traceMessages(req, e.handlePacket(req, 0), ctx(1))[0],
    'id=65308 trace_id=1 msg="vd-root:0 received a packet(proto=1, 198.51.100.2:1->203.0.113.2:2048) from veth-c. type=8, code=0, id=1, seq=1."');
  const bad: Packet = { indev: 2, outdev: 3, mark: 0, decoded: decode(Buffer.from([0x45, 0, 0])), data: Buffer.from([0x45, 0, 0]) };
  t.same(traceMessages(bad, e.handlePacket(bad, 0), ctx(2)), [
    'id=65308 trace_id=2 msg="vd-root:0 received a malformed packet(truncated-ipv4) from veth-c."',
    'id=65308 trace_id=2 msg="malformed packet, drop"',
  ]);
  t.equal(tcpFlagText(TCP_FIN | TCP_SYN | TCP_ACK), 'FS.');
  t.end();
});

t.test('flow filter: fields, ranges, negate, listing, errors', (t) => {
  const f = (...cmds: string[][]) => cmds.reduce((a, c) => applyFlowFilterArgs(a, c), {});
  const tu = { family: 4 as const, proto: 6, src: C, dst: S, sport: 40000, dport: 80 };
  const rev = { ...tu, src: S, dst: C, sport: 80, dport: 40000 };
  const m = (flt: object, x: typeof tu | undefined, vd = 0) => compileFlowFilter(flt)(x, vd);
  t.equal(m(f(['port', '80']), tu), true);
  t.equal(m(f(['port', '80']), rev), true, 'port matches either side');
  t.equal(m(f(['dport', '80']), rev), false);
  t.equal(m(f(['addr', C]), rev), true);
  t.equal(m(f(['saddr', '198.51.100.1', '198.51.100.3']), tu), true);
  t.equal(m(f(['daddr', C]), tu), false);
  t.equal(m(f(['proto', '17']), tu), false);
  t.equal(m(f(['vd', '1']), tu, 1), true);
  t.equal(m(f(['port', '80'], ['negate', 'port']), tu), false);
  t.equal(m({}, undefined), true, 'an empty filter traces malformed packets too');
  t.equal(m(f(['port', '80']), undefined), false);
  t.same(f(['port', '80'], ['clear']), {});
  t.equal(formatFlowFilter(f(['addr', C], ['port', '21'])), `vf: any
proto: any
Host addr: 198.51.100.2-198.51.100.2
Host saddr: any
Host daddr: any
port: 21-21
sport: any
dport: any
`);
  t.throws(() => f(['port', 'x']), /port: 'x' is not a port/);
  t.throws(() => f(['bogus']), /unknown flow filter 'bogus'/);
  t.end();
});

t.test('tracer: counts N matching packets, numbers trace ids, reads with a cursor, stops', (t) => {
  const e = new SessionEngine(defaultEngineConfig());
  const tr = new FlowTracer({ ifname, vdOf: () => 0, vdName: () => 'root' });
  const console: string[] = [];
  tr.onConsole = (l) => console.push(l);
  tr.setFilter(applyFlowFilterArgs({}, ['dport', '53']));
  const other = pkt(buildUdp({ src: C, dst: S, sport: 5000, dport: 54 }));
  const dns = (sport: number) => pkt(buildUdp({ src: C, dst: S, sport, dport: 53 }));
  t.equal(tr.active, false);
  tr.packet(dns(1), e.handlePacket(dns(1), 0));
  t.equal(tr.read(0).lines.length, 0, 'nothing traced before start');
  tr.start(2);
  tr.packet(other, e.handlePacket(other, 0));
  tr.packet(dns(2), e.handlePacket(dns(2), 0));
  tr.console = true;
  tr.packet(dns(3), e.handlePacket(dns(3), 0));
  t.equal(tr.active, false, 'stopped after 2 matching packets');
  tr.packet(dns(4), e.handlePacket(dns(4), 0));
  const r = tr.read(0);
  t.same(r.lines.map((l) => [l.seq, l.text.replace(/ msg=.*/, '')]), [
    [1, 'id=65308 trace_id=1'], [2, 'id=65308 trace_id=1'], [3, 'id=65308 trace_id=1'],
    [4, 'id=65308 trace_id=2'], [5, 'id=65308 trace_id=2'], [6, 'id=65308 trace_id=2'],
  ]);
  t.same(tr.read(4).lines.map((l) => l.seq), [5, 6]);
  t.match(r.status, { active: false, remaining: 0, traced: 2, last_seq: 6, start_seq: 0 });
  t.equal(console.length, 3, 'console copy only once enabled');
  tr.start(5);
  t.equal(tr.status().start_seq, 6, 'a new trace starts after the last line');
  tr.reset();
  t.same(tr.filter, {});
  t.equal(tr.active, false);
  t.end();
});
