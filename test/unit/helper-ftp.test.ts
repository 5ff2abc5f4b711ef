import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig, DEFAULT_EXPECTATION_CONFIG } from '../../src/engine/engine-config.js';
import type { Effect, PolicyMatch } from '../../src/engine/types.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable } from '../../src/helpers/registry.js';
import { ftpHelper } from '../../src/helpers/ftp.js';
import { TcpConversation, tcpSyn } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2';
const C6 = '2001:db8:100::2', S6 = '2001:db8:113::2';

/** Only the FTP control channel is allowed (policy 7); everything else hits the implicit deny. */
const controlOnly = (t: { proto: number; dport: number }): PolicyMatch =>
  t.proto === 6 && t.dport === 21 ? { policyId: 7, action: 'accept', logTraffic: true, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };

function setup(over: Parameters<typeof defaultEngineConfig>[0] = {}, client = C, server = S) {
  const e = new SessionEngine(defaultEngineConfig({ policy: controlOnly, ...over }));
  const ctl = new TcpConversation(e, { addr: client, port: 40000 }, { addr: server, port: 21 });
  ctl.open(1000);
  return { e, ctl };
}
const ofKind = (fx: Effect[], k: Effect['kind']) => fx.filter((x) => x.kind === k);

t.test('PASV: the 227 reply opens client -> server:port, the data connection becomes a child with the parent policy and serial', (t) => {
  const { e, ctl } = setup();
  ctl.send('server', '220 vsFTPd 3.0.3\r\n', 1100);
  ctl.send('client', 'PASV\r\n', 1200);
  const d = ctl.send('server', '227 Entering Passive Mode (203,0,113,2,156,64).\r\n', 1300);
  const added = ofKind(d.effects, 'expect-add');
  t.equal(added.length, 1);
  const x = e.expectations.all().next().value!;
  t.match(x, { helper: 'ftp', kind: 'ftp-data', proto: 6, src: C, sport: 0, dst: S, dport: 40000, policyId: 7, serial: 1, parent: 1, tracksParent: false, lifetime: 30, expireAt: 31300 });
  // The data connection would hit the implicit deny: the expectation lets it in.
  const data = tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 40000 }, 2000);
  t.equal(data.verdict, 'accept');
  t.equal(data.reason, 'expected:ftp');
  const child = data.session!;
  t.match(child, { policyId: 7, parent: 1, inheritedSerial: 1, expected: { helper: 'ftp', kind: 'ftp-data' } });
  t.not(child.serial, 1, 'the child has its own table key');
  t.equal(child.helper, undefined);
  t.same(ofKind(data.effects, 'expect-end').map((x) => x.kind === 'expect-end' && [x.reason, x.child]), [['used', child.serial]]);
  t.equal(e.expectations.size, 0, 'an expectation is used once');
  t.same(e.children(1), [child.serial]);
  t.equal(e.expectations.uses.length, 1);
  const again = tcpSyn(e, { addr: C, port: 40002 }, { addr: S, port: 40000 }, 2100);
  t.equal(again.verdict, 'drop', 'a second connection to the same port needs a policy');
  t.end();
});

t.test('PORT and EPRT open server -> client:port; a PORT naming a third host is refused (bounce)', (t) => {
  const { e, ctl } = setup();
  let d = ctl.send('client', 'PORT 198,51,100,2,117,48\r\n', 1100);
  t.match(e.expectations.all().next().value, { src: S, dst: C, dport: 30000, sport: 0 });
  const active = tcpSyn(e, { addr: S, port: 20 }, { addr: C, port: 30000 }, 1200, false);
  t.equal(active.verdict, 'accept');
  t.equal(active.session!.parent, 1);

  d = ctl.send('client', 'PORT 192,0,2,9,0,80\r\n', 1300);
  t.same(ofKind(d.effects, 'expect-add'), []);
  const refused = ofKind(d.effects, 'expect-refused');
  t.equal(refused.length, 1);
  t.match(refused[0], { refusal: { helper: 'ftp', reason: 'ftp-bounce', parent: 1 } });
  t.match(refused[0].kind === 'expect-refused' && refused[0].refusal.detail, /192\.0\.2\.9:80, not the sender 198\.51\.100\.2/);
  t.equal(e.expectations.counters.refused['ftp-bounce'], 1);

  d = ctl.send('client', 'EPRT |1|198.51.100.2|30001|\r\n', 1400);
  t.match(e.expectations.all().next().value, { src: S, dst: C, dport: 30001 });
  t.end();
});

t.test('a 227 naming another host is refused unless ftp-third-party is enabled', (t) => {
  let { e, ctl } = setup();
  let d = ctl.send('server', '227 Entering Passive Mode (192,0,2,50,4,1)\r\n', 1100);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { reason: 'ftp-third-party' } }]);
  t.equal(e.expectations.size, 0);
  ({ e, ctl } = setup({ helperOptions: { ftpThirdParty: true, sipMediaAnyPeer: false } }));
  d = ctl.send('server', '227 Entering Passive Mode (192,0,2,50,4,1)\r\n', 1100);
  t.match(e.expectations.all().next().value, { src: C, dst: '192.0.2.50', dport: 1025 });
  t.end();
});

t.test('IPv6: EPSV 229 and EPRT |2|', (t) => {
  const { e, ctl } = setup({}, C6, S6);
  ctl.send('client', 'EPSV\r\n', 1100);
  ctl.send('server', '229 Entering Extended Passive Mode (|||50001|)\r\n', 1200);
  t.match(e.expectations.all().next().value, { family: 6, src: C6, dst: S6, dport: 50001 });
  const data = tcpSyn(e, { addr: C6, port: 41000 }, { addr: S6, port: 50001 }, 1300);
  t.equal(data.verdict, 'accept');
  ctl.send('client', `EPRT |2|${C6}|50002|\r\n`, 1400);
  t.match([...e.expectations.all()], [{ family: 6, src: S6, dst: C6, dport: 50002 }]);
  ctl.send('client', 'PORT 198,51,100,2,1,2\r\n', 1500);
  t.equal(e.expectations.size, 1, 'PORT has no meaning on an IPv6 control channel');
  t.end();
});

t.test('commands split across segments, retransmitted and out of order are read once', (t) => {
  const { e, ctl } = setup();
  const line = '227 Entering Passive Mode (203,0,113,2,39,16)\r\n';
  // The tail arrives first, then the head; then the whole line is retransmitted.
  ctl.sendAt('server', 20, line.slice(20), 1100);
  t.equal(e.expectations.size, 0, 'nothing before the gap is filled');
  ctl.sendAt('server', 0, line.slice(0, 20), 1200);
  t.equal(e.expectations.size, 1);
  t.match(e.expectations.all().next().value, { dport: 10000 });
  const before = e.expectations.counters.created;
  ctl.sendAt('server', 0, line, 1300);
  t.equal(e.expectations.counters.created, before, 'a retransmission opens nothing new');
  ctl.advance('server', line.length);
  // Byte by byte.
  for (const ch of 'PORT 198,51,100,2,39,17\r\n') ctl.send('client', ch, 1400);
  t.equal(e.expectations.size, 2);
  t.end();
});

t.test('multi-line replies; AUTH TLS ends parsing', (t) => {
  const { e, ctl } = setup();
  ctl.send('server', '230-Welcome\r\n230-227 (1,2,3,4,5,6) is not a reply here\r\n230 Logged in\r\n', 1100);
  t.equal(e.expectations.size, 0, 'continuation lines are not replies');
  ctl.send('client', 'AUTH TLS\r\n', 1200);
  ctl.send('server', '234 Proceed with negotiation.\r\n', 1300);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1400);
  t.equal(e.expectations.size, 0, 'after 234 the channel is ciphertext');
  t.end();
});

t.test('expectations time out, and end with their parent (children too when configured)', (t) => {
  let { e, ctl } = setup();
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1000);
  t.same(ofKind(e.tick(30999), 'expect-end'), []);
  t.match(ofKind(e.tick(31000), 'expect-end'), [{ reason: 'timeout' }]);

  ({ e, ctl } = setup());
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  const child = tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 10000 }, 1200).session!;
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,17)\r\n', 1300);
  const fx = e.clear((s) => s.serial === 1, 1400);
  t.match(ofKind(fx, 'expect-end'), [{ reason: 'clear', expectation: { dport: 10001 } }]);
  t.equal(e.expectations.size, 0);
  t.ok(e.bySerialNumber(child.serial), 'the child lives on by default');

  ({ e, ctl } = setup({ expectations: { ...DEFAULT_EXPECTATION_CONFIG, clearChildren: true } }));
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  const child2 = tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 10000 }, 1200).session!;
  const fx2 = e.clear((s) => s.serial === 1, 1400);
  t.match(ofKind(fx2, 'session-end'), [{ session: { serial: 1 }, reason: 'clear' }, { session: { serial: child2.serial }, reason: 'parent-closed' }]);
  t.notOk(e.bySerialNumber(child2.serial));
  t.end();
});

t.test('limits: per session and for the whole table; a repeated tuple replaces the older one', (t) => {
  const { e, ctl } = setup({ expectations: { ...DEFAULT_EXPECTATION_CONFIG, maxPerSession: 2, max: 100 } });
  for (let i = 0; i < 4; i++) ctl.send('server', `227 Entering Passive Mode (203,0,113,2,39,${16 + i})\r\n`, 1100 + i);
  t.equal(e.expectations.size, 2);
  t.equal(e.expectations.counters.refused['limit-per-session'], 2);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1200);
  t.equal(e.expectations.size, 2, 'the same port again replaces, not adds');
  t.equal(e.expectations.counters.ended.replaced, 1);
  t.end();
});

t.test('with the ftp helper deleted, nothing is expected and the data connection needs a policy', (t) => {
  const { e, ctl } = setup({ helpers: new HelperTable(DEFAULT_HELPER_BINDINGS.filter((b) => b.name !== 'ftp')) });
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  t.equal(e.expectations.size, 0);
  t.equal(e.bySerialNumber(1)!.helper, undefined);
  t.equal(tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 10000 }, 1200).verdict, 'drop');
  t.end();
});

t.test('a connection the kernel let through the pinhole on its own becomes the child (conntrack NEW event)', (t) => {
  const { e, ctl } = setup();
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  const orig = { family: 4 as const, proto: 6, src: C, dst: S, sport: 40009, dport: 10000 };
  const reply = { ...orig, src: S, dst: C, sport: 10000, dport: 40009 };
  t.same(e.kernelReport({ event: 'new', orig, reply, mark: 0 }, 1200), [], 'without the offload mark the packet is still on its way through the queue');
  const fx = e.kernelReport({ event: 'new', orig, reply, mark: e.config.offloadMark, tcpState: 1 }, 1200);
  const start = ofKind(fx, 'session-start')[0];
  t.ok(start);
  const child = start.kind === 'session-start' ? start.session : undefined;
  t.match(child, { policyId: 7, parent: 1, inheritedSerial: 1, offloaded: true });
  t.equal(e.expectations.size, 0);
  t.end();
});

t.test('the parser never throws and opens nothing on hostile input', (t) => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const ctl = { orig: { family: 4 as const, proto: 6, src: C, dst: S, sport: 1, dport: 21 }, reply: { family: 4 as const, proto: 6, src: S, dst: C, sport: 21, dport: 1 } };
  const st = ftpHelper.init(ctl);
  const opts = { ftpThirdParty: false, sipMediaAnyPeer: false };
  let opened = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(rnd() % 300);
    for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff;
    if (i % 3 === 0) b.write('PORT 1,2,3,4,', 0, 'latin1');
    const r = ftpHelper.data(st, i % 2 ? 'org' : 'reply', b, ctl, opts);
    opened += r?.expect?.length ?? 0;
  }
  t.equal(opened, 0);
  t.ok(st.lines[0].partial.length <= 2048 && st.lines[1].partial.length <= 2048, 'buffers stay bounded');
  t.end();
});
