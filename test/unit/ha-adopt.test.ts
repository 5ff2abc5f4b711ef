import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { PolicyMatch } from '../../src/engine/types.js';
import { TcpConversation, tcpSyn } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2';
const pol = (t: { proto: number; dport: number }): PolicyMatch =>
  t.dport === 21 || t.dport === 5201 ? { policyId: 7, action: 'accept', logTraffic: false, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };
const engine = () => new SessionEngine(defaultEngineConfig({ policy: pol }));

/** The primary: an FTP control session with a pending expectation, and a long TCP flow. */
function primary() {
  const e = engine();
  const ctl = new TcpConversation(e, { addr: C, port: 40000 }, { addr: S, port: 21 });
  ctl.open(1000);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  const bulk = new TcpConversation(e, { addr: C, port: 40001 }, { addr: S, port: 5201 });
  bulk.open(1200);
  bulk.send('client', 'x'.repeat(100), 1300);
  return { e, ctl, bulk };
}

const peerOf = (e: SessionEngine, highestSerial = 0) => ({ sessions: [...e.sessions()], expectations: [...e.expectations.all()], highestSerial });

t.test('the peer sessions come in with their serials, policy ids, links and pending expectations', (t) => {
  const { e } = primary();
  const b = engine();
  const { effects, report } = b.adoptPeer(peerOf(e, 5), 2000);
  t.match(report, { sessions: 2, expectations: 1, kept: 0, nextSerial: 6, expiredSessions: 0 });
  t.same(effects.map((x) => x.kind), ['expect-add'], 'the pinhole opens in our kernel');
  t.match(b.bySerialNumber(1), { serial: 1, policyId: 7, helper: 'ftp', offloaded: false });
  t.match(b.bySerialNumber(2), { serial: 2, policyId: 7, offloaded: false });
  t.ok(b.helperSlot(1), 'the FTP helper starts fresh on the control session');
  t.match([...b.expectations.all()], [{ id: 1, parent: 1, dst: S, dport: 10000 }]);
  // The data connection to the announced port is a child of the adopted control session.
  const data = tcpSyn(b, { addr: C, port: 41000 }, { addr: S, port: 10000 }, 2100);
  t.equal(data.verdict, 'accept');
  t.match(data.session, { serial: 6, parent: 1, policyId: 7 }, 'serials start above the peer\'s highest');
  t.same(b.children(1), [6]);
  t.end();
});

t.test('a mid-stream segment of an adopted flow is accepted and offloaded; without adoption it is dropped', (t) => {
  const { e, bulk } = primary();
  const cold = engine();
  const conv = (x: SessionEngine) => Object.assign(Object.create(Object.getPrototypeOf(bulk)), bulk, { engine: x }) as TcpConversation;
  const miss = conv(cold).send('client', 'y'.repeat(100), 2000);
  t.match(miss, { verdict: 'drop', reason: 'tcp-without-syn' }, 'what the new primary did before adoption');
  const b = engine();
  b.adoptPeer(peerOf(e), 2000);
  const hit = conv(b).send('client', 'y'.repeat(100), 2000);
  t.match(hit, { verdict: 'accept', reason: 'existing', session: { serial: 2, policyId: 7 } });
  t.same(hit.effects.map((x) => x.kind), ['offload'], 'the kernel\'s new entry gets the offload mark');
  t.equal(b.bySerialNumber(2)!.org.packets, e.bySerialNumber(2)!.org.packets + 1, 'counters carry on from the peer\'s');
  t.end();
});

t.test('a session we already hold stays ours; the serial counter never goes back', (t) => {
  const { e } = primary();
  const b = engine();
  new TcpConversation(b, { addr: C, port: 40001 }, { addr: S, port: 5201 }).open(1500);
  new TcpConversation(b, { addr: C, port: 40002 }, { addr: S, port: 5201 }).open(1500);
  new TcpConversation(b, { addr: C, port: 40003 }, { addr: S, port: 5201 }).open(1500);
  const { report } = b.adoptPeer(peerOf(e), 2000);
  // Serial 1 and 2 are ours already (and 2's tuple is one of ours): only the expectation's parent is missing.
  t.match(report, { sessions: 0, kept: 2, nextSerial: 4, expectations: 0, expiredExpectations: 1 });
  t.match(b.bySerialNumber(1), { orig: { sport: 40001 } });
  t.end();
});

t.test('a synced session past the expiry it was synced with is adopted with its timer from now', (t) => {
  const { e } = primary();
  const b = engine();
  const now = 10_000_000;
  const { report } = b.adoptPeer(peerOf(e), now);
  t.match(report, { sessions: 2, expiredSessions: 0 });
  const s = b.bySerialNumber(2)!;
  t.equal(s.expireAt, now + s.timeout * 1000);
  t.end();
});
