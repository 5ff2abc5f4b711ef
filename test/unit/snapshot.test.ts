import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Effect, KernelFlowReport, PolicyMatch } from '../../src/engine/types.js';
import { decodeSnapshot, encodeSnapshot, readSnapshot, writeSnapshot, SNAPSHOT_FILE } from '../../src/state/snapshot.js';
import { TcpConversation, tcpSyn, udp } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2';
const pol = (t: { proto: number; dport: number }): PolicyMatch =>
  t.dport === 21 || t.dport === 53 ? { policyId: 9, action: 'accept', logTraffic: true, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };
const engine = () => new SessionEngine(defaultEngineConfig({ policy: pol }));
const kinds = (fx: Effect[]) => fx.map((x) => x.kind);

function populated() {
  const e = engine();
  const ctl = new TcpConversation(e, { addr: C, port: 40000 }, { addr: S, port: 21 });
  ctl.open(1000);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,39,16)\r\n', 1100);
  udp(e, { addr: C, port: 5353 }, { addr: S, port: 53 }, 'q', 1200);
  udp(e, { addr: S, port: 53 }, { addr: C, port: 5353 }, 'a', 1300, false);
  return { e, ctl };
}

t.test('a snapshot restores sessions, serials, policy ids, timers, counters, expectations and helper state', (t) => {
  const { e } = populated();
  const text = encodeSnapshot(e.snapshot(2000));
  const r = engine();
  const { effects, report } = r.restore(decodeSnapshot(text), 7000);
  t.same(report, { sessions: 2, expectations: 1, expiredSessions: 0, expiredExpectations: 0, helpersMissing: 0 });
  t.same(kinds(effects), ['expect-add'], 'the pinhole is re-opened');
  const ctl = r.bySerialNumber(1)!;
  const old = e.bySerialNumber(1)!;
  t.match(ctl, { serial: 1, policyId: 9, helper: 'ftp', state: old.state, expireAt: old.expireAt, org: old.org, rep: old.rep });
  t.match(r.bySerialNumber(2), { serial: 2, policyId: 9, state: [0, 1] });
  t.match([...r.expectations.all()], [{ id: 1, parent: 1, serial: 1, dst: S, dport: 10000, expireAt: 31100 }]);
  t.ok(r.helperSlot(1), 'the FTP parser state came back');
  // The restored expectation is a pinhole as before: the data connection becomes the child.
  const data = tcpSyn(r, { addr: C, port: 41000 }, { addr: S, port: 10000 }, 8000);
  t.equal(data.verdict, 'accept');
  t.match(data.session, { serial: 3, parent: 1, inheritedSerial: 1, policyId: 9 }, 'serials continue where they were');
  t.end();
});

t.test('the helper reads on after a restore: its streams resync on the next segment', (t) => {
  const { e, ctl } = populated();
  const r = engine();
  r.restore(decodeSnapshot(encodeSnapshot(e.snapshot(2000))), 3000);
  // Segments passed unseen during the restart: the sequence number jumped.
  const conv = Object.assign(Object.create(Object.getPrototypeOf(ctl)), ctl, { engine: r }) as TcpConversation;
  conv.advance('server', 5000);
  conv.send('server', '227 Entering Passive Mode (203,0,113,2,39,17)\r\n', 3100);
  t.match([...r.expectations.all()].map((x) => x.dport).sort(), [10000, 10001]);
  t.end();
});

t.test('what expired during the downtime is dropped and its kernel entry deleted', (t) => {
  const { e } = populated();
  const r = engine();
  const { effects, report } = r.restore(decodeSnapshot(encodeSnapshot(e.snapshot(2000))), 2000 + 4000 * 1000);
  t.same(report, { sessions: 0, expectations: 0, expiredSessions: 2, expiredExpectations: 1, helpersMissing: 0 });
  t.same(kinds(effects), ['ct-delete', 'session-end', 'ct-delete', 'session-end']);
  t.equal(r.size, 0);
  t.end();
});

t.test('restart reconciliation: sessions the kernel ended close, unknown entries are adopted or expired', (t) => {
  const { e } = populated();
  const snap = decodeSnapshot(encodeSnapshot(e.snapshot(2000)));
  const kernel: KernelFlowReport[] = [
    { event: 'dump', orig: e.bySerialNumber(1)!.orig, reply: e.bySerialNumber(1)!.reply, mark: 0, tcpState: 3 },
    { event: 'dump', orig: { family: 4, proto: 6, src: C, dst: S, sport: 45000, dport: 443 }, reply: { family: 4, proto: 6, src: S, dst: C, sport: 443, dport: 45000 }, mark: 0, tcpState: 3, counters: { origPackets: 10, origBytes: 1000, replyPackets: 8, replyBytes: 5000 } },
  ];
  const r = engine();
  r.restore(snap, 3000);
  const res = r.reconcileRestart(kernel, 'adopt', 3000);
  t.match(res, { ended: 1, adopted: 1, expired: 0 });
  t.notOk(r.bySerialNumber(2), 'the UDP session the kernel no longer had ended');
  const adopted = [...r.sessions()].find((s) => s.orig.dport === 443)!;
  t.match(adopted, { policyId: 0, state: [1, 1], org: { packets: 10, bytes: 1000 }, rep: { packets: 8, bytes: 5000 }, offloadPending: true });
  t.ok(res.effects.some((x) => x.kind === 'offload' && x.serial === adopted.serial), 'and offloaded so its packets stay in the kernel');

  const r2 = engine();
  r2.restore(snap, 3000);
  const res2 = r2.reconcileRestart(kernel, 'expire', 3000);
  t.match(res2, { ended: 1, adopted: 0, expired: 1 });
  t.ok(res2.effects.some((x) => x.kind === 'ct-delete' && x.orig.dport === 443));
  t.end();
});

t.test('a start without a table: entries an earlier run offloaded are decided again by the running policy', (t) => {
  const OFF = 0x00100000;
  const seen: Array<[number, number]> = [];
  const policy = (tu: { dport: number }, indev: number, outdev: number): PolicyMatch => {
    seen.push([indev, outdev]);
    return tu.dport === 21 && indev === 2 && outdev === 3 ? { policyId: 9, action: 'accept', logTraffic: true, vd: 0, sessionTtl: 900 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };
  };
  const e = new SessionEngine(defaultEngineConfig({ policy, offloadMark: OFF }));
  const entry = (dport: number, mark: number): KernelFlowReport => ({
    event: 'dump', orig: { family: 4, proto: 6, src: C, dst: S, sport: 45000 + dport, dport }, reply: { family: 4, proto: 6, src: S, dst: C, sport: dport, dport: 45000 + dport },
    mark, tcpState: 3, counters: { origPackets: 10, origBytes: 1000, replyPackets: 8, replyBytes: 5000 },
  });
  const route = (a: string) => (a === C ? 2 : a === S ? 3 : undefined);
  const r = e.reconcileUnowned([entry(21, OFF), entry(22, OFF | 0x1), entry(23, 0), { ...entry(24, OFF), tcpState: 7 }], route, 5000);
  t.match(r, { adopted: 1, cut: 1 });
  t.same(seen, [[2, 3], [2, 3]], 'decided with the interfaces the addresses route through; the unmarked and the closed entry not at all');
  t.same(kinds(r.effects), ['session-start', 'ct-delete']);
  t.match(r.effects[1], { kind: 'ct-delete', orig: { dport: 22 } }, 'denied now: the entry is deleted, the flow cut');
  const s = [...e.sessions()][0];
  t.match(s, { policyId: 9, ttl: 900, offloaded: true, state: [1, 1], devOrg: [2, 3], devReply: [3, 2], org: { packets: 10 }, rep: { packets: 8 } });
  t.equal(e.counters.policyDenied, 1);
  t.same(e.reconcileUnowned([entry(21, OFF)], route, 6000).adopted, 0, 'an entry already in the table is left alone');
  t.end();
});

t.test('snapshot files: atomic write, read back, a corrupt one is reported and moved aside', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.same(readSnapshot(dir), { kind: 'none', path: join(dir, SNAPSHOT_FILE) });
  const { e } = populated();
  const path = writeSnapshot(dir, e.snapshot(2000));
  const back = readSnapshot(dir);
  t.equal(back.kind, 'ok');
  if (back.kind === 'ok') t.equal(back.snapshot.sessions.length, 2);
  writeFileSync(path, '{"version":1,"nextSerial":3,"sessions":[{"serial":1}],"expectations":[],"helpers":[]}');
  const bad = readSnapshot(dir);
  t.match(bad, { kind: 'bad', error: 'session 0 is incomplete', movedTo: `${path}.bad` });
  t.notOk(existsSync(path));
  writeFileSync(path, 'garbage{');
  t.match(readSnapshot(dir), { kind: 'bad', error: /^not JSON/ });
  t.throws(() => decodeSnapshot('{"version":2}'), /unknown snapshot version 2/);
  t.ok(readFileSync(`${path}.bad`, 'utf8').length > 0);
  t.end();
});
