import { existsSync } from 'node:fs';
import t from 'tap';
import { Replayer, replayFiles } from '../../src/capture/replay.js';
import { parseConfig } from '../../src/config/load.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/state/snapshot.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Effect, PolicyMatch } from '../../src/engine/types.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable } from '../../src/helpers/registry.js';
import { dcerpcHelper, decodeTower, readUuid } from '../../src/helpers/dcerpc.js';
import { TcpConversation, tcpSyn, udp } from '../lib/flows.js';
import {
  bind, bindAck, bindNak, EPM, eptMapRequest, eptMapResponse, fault, ipTower, NDR32, NDR64, pipeTower, request, response, SVC, uuidBytes,
} from '../lib/dcerpc-pdu.js';

const C = '198.51.100.2', S = '203.0.113.2';

/** Only the endpoint mapper tcp+udp/135 is allowed (policy 13). */
const controlOnly = (t: { proto: number; dport: number }): PolicyMatch =>
  (t.proto === 6 || t.proto === 17) && t.dport === 135 ? { policyId: 13, action: 'accept', logTraffic: true, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };

const ofKind = (fx: Effect[], k: Effect['kind']) => fx.filter((x) => x.kind === k);

function setup(over: Parameters<typeof defaultEngineConfig>[0] = {}) {
  const e = new SessionEngine(defaultEngineConfig({ policy: controlOnly, ...over }));
  const ctl = new TcpConversation(e, { addr: C, port: 49700 }, { addr: S, port: 135 });
  ctl.open(1000);
  return { e, ctl };
}

/** bind EPM on context 0, accepted; then ept_map for SVC answered with `towers`. */
function epmMap(ctl: TcpConversation, towers: Array<Buffer | null>, now: number, le = true, callId = 2) {
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }], { le }), now);
  ctl.send('server', bindAck(1, [{ result: 0 }], { le }), now + 1);
  ctl.send('client', request(callId, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135), le), { le }), now + 2);
  return ctl.send('server', response(callId, 0, eptMapResponse(towers, { le }), { le }), now + 3);
}

t.test('ept_map response: the tower\'s TCP port opens client -> server:port, tracking the parent (timeout 0)', (t) => {
  const { e, ctl } = setup();
  const d = epmMap(ctl, [ipTower(SVC, S, 49667)], 1100);
  t.equal(ofKind(d.effects, 'expect-add').length, 1);
  t.same([...e.expectations.all()].map(({ id: _i, createdAt: _c, sessionTimeout: _s, ...x }) => x), [{
    parent: 1, serial: 1, policyId: 13, vd: 0, helper: 'dcerpc', kind: 'dcerpc', family: 4, proto: 6,
    src: C, sport: 0, dst: S, dport: 49667, expireAt: 1103 + 30_000, tracksParent: true, lifetime: 30,
  }]);
  // No strict timeout: still there long after its nominal end.
  t.same(ofKind(e.tick(200_000), 'expect-end'), []);
  t.equal(e.expectations.size, 1);
  const svc = tcpSyn(e, { addr: C, port: 49701 }, { addr: S, port: 49667 }, 200_100);
  t.equal(svc.verdict, 'accept');
  t.equal(svc.reason, 'expected:dcerpc');
  t.match(svc.session, { policyId: 13, parent: 1, inheritedSerial: 1, expected: { helper: 'dcerpc', kind: 'dcerpc' } });
  t.equal(tcpSyn(e, { addr: C, port: 49702 }, { addr: S, port: 49668 }, 200_200).verdict, 'drop');
  t.end();
});

t.test('expectations end when the control session closes', (t) => {
  const { e, ctl } = setup();
  epmMap(ctl, [ipTower(SVC, S, 49667)], 1100);
  const fx = e.clear((s) => s.serial === 1, 2000);
  t.match(ofKind(fx, 'expect-end'), [{ reason: 'clear', expectation: { dport: 49667 } }]);
  t.equal(e.expectations.size, 0);
  t.end();
});

t.test('big-endian data representation, several towers, 0.0.0.0, UDP towers, pipes skipped, third party refused', (t) => {
  const { e, ctl } = setup();
  const d = epmMap(ctl, [ipTower(SVC, S, 50001), pipeTower(SVC), ipTower(SVC, '0.0.0.0', 50002), ipTower(SVC, S, 50003, true), ipTower(SVC, '192.0.2.7', 50004)], 1100, false);
  t.same([...e.expectations.all()].map((x) => [x.proto, x.src, x.dst, x.dport, x.tracksParent]), [
    [6, C, S, 50001, true], [6, C, S, 50002, true], [17, C, S, 50003, true],
  ]);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { helper: 'dcerpc', reason: 'dcerpc-third-party', detail: /192\.0\.2\.7:50004, not the server 203\.0\.113\.2/ } }]);
  t.end();
});

t.test('fault, bind_nak, rejected contexts, other interfaces and opnums, error status: nothing opens', (t) => {
  // Fault for the ept_map call (corpus capture 19 is this case with opnum 42).
  let { e, ctl } = setup();
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 0 }]), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  ctl.send('server', fault(2), 1103);
  ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)])), 1104);
  t.equal(e.expectations.size, 0, 'a response after the fault belongs to no call');
  // bind_nak.
  ({ e, ctl } = setup());
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), 1100);
  ctl.send('server', bindNak(1), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)])), 1103);
  t.equal(e.expectations.size, 0);
  // The EPM context rejected, another accepted: opnum 3 on another interface is not ept_map.
  ({ e, ctl } = setup());
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }, { id: 1, uuid: SVC, ver: 1 }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 2 }, { result: 0 }]), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)])), 1103);
  ctl.send('client', request(3, 1, 3, Buffer.alloc(8)), 1104);
  ctl.send('server', response(3, 1, eptMapResponse([ipTower(SVC, S, 50002)])), 1105);
  t.equal(e.expectations.size, 0);
  // EPM bound, but ept_lookup (opnum 2), and an ept_map answered with ept_s_not_registered.
  ({ e, ctl } = setup());
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 0 }]), 1101);
  ctl.send('client', request(2, 0, 2, Buffer.alloc(40)), 1102);
  ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)])), 1103);
  ctl.send('client', request(3, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1104);
  ctl.send('server', response(3, 0, eptMapResponse([], { status: 0x16c9a0d6 })), 1105);
  t.equal(e.expectations.size, 0);
  // NDR64 only: the stub layout differs, nothing is read.
  ({ e, ctl } = setup());
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3, syntaxes: [NDR64] }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 0, syntax: NDR64 }]), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)])), 1103);
  t.equal(e.expectations.size, 0);
  t.same(e.expectations.counters.refused, {});
  t.end();
});

t.test('packet privacy (auth level 6) is refused as unreadable; integrity (5) is read', (t) => {
  let { e, ctl } = setup();
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 0 }]), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  const d = ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)]), { auth: { level: 6, value: 16 } }), 1103);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { helper: 'dcerpc', reason: 'dcerpc-encrypted' } }]);
  t.equal(e.expectations.size, 0);
  ({ e, ctl } = setup());
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 0 }]), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  ctl.send('server', response(2, 0, eptMapResponse([ipTower(SVC, S, 50001)]), { auth: { level: 5, value: 16 } }), 1103);
  t.match([...e.expectations.all()], [{ dport: 50001 }]);
  t.end();
});

t.test('PDUs split anywhere, several in one segment, a fragmented response, alter_context', (t) => {
  const { e, ctl } = setup();
  const bytes = Buffer.concat([bind(1, [{ id: 0, uuid: SVC, ver: 1 }]), bind(2, [{ id: 1, uuid: EPM, ver: 3 }], { alter: true })]);
  for (const b of bytes) ctl.send('client', Buffer.from([b]), 1100);
  ctl.send('server', Buffer.concat([bindAck(1, [{ result: 0 }]), bindAck(2, [{ result: 0 }], { alter: true, secAddr: '' })]), 1101);
  ctl.send('client', request(7, 1, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  const stub = eptMapResponse([ipTower(SVC, S, 50011), ipTower(SVC, S, 50012)]);
  const first = response(7, 1, stub.subarray(0, 50), { flags: 0x01 });
  const last = response(7, 1, stub.subarray(50), { flags: 0x02 });
  ctl.send('server', first, 1103);
  t.equal(e.expectations.size, 0, 'not before the last fragment');
  const both = Buffer.concat([last]);
  ctl.send('server', both.subarray(0, 10), 1104);
  ctl.send('server', both.subarray(10), 1105);
  t.same([...e.expectations.all()].map((x) => x.dport), [50011, 50012]);
  t.end();
});

t.test('connectionless ept_map on UDP 135', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ policy: controlOnly }));
  const act = '6d2a7b1c-0000-4000-8000-00000000abcd';
  const cl = (type: number, body: Buffer, seq = 1) => {
    const h = Buffer.alloc(80);
    h[0] = 4; h[1] = type; h[2] = type === 0 ? 0x20 : 0; h[4] = 0x10;
    uuidBytes(EPM).copy(h, 24);
    uuidBytes(act).copy(h, 40);
    h.writeUInt32LE(3, 60);
    h.writeUInt32LE(seq, 64);
    h.writeUInt16LE(3, 68);
    h.writeUInt16LE(body.length, 74);
    return Buffer.concat([h, body]);
  };
  const c = { addr: C, port: 1030 }, s = { addr: S, port: 135 };
  udp(e, c, s, cl(0, eptMapRequest(ipTower(SVC, '0.0.0.0', 135, true))), 1000);
  udp(e, s, c, cl(2, eptMapResponse([ipTower(SVC, S, 1031, true)]), 2), 1100, false);
  t.equal(e.expectations.size, 0, 'another sequence number is another call');
  udp(e, s, c, cl(2, eptMapResponse([ipTower(SVC, S, 1031, true)])), 1200, false);
  t.match([...e.expectations.all()], [{ helper: 'dcerpc', proto: 17, src: C, dst: S, dport: 1031, tracksParent: true }]);
  t.equal(udp(e, { addr: C, port: 1032 }, { addr: S, port: 1031 }, 'x', 1300).verdict, 'accept');
  t.end();
});

t.test('with the dcerpc helper deleted, the mapped port needs a policy', (t) => {
  const { e, ctl } = setup({ helpers: new HelperTable(DEFAULT_HELPER_BINDINGS.filter((b) => b.name !== 'dcerpc')) });
  epmMap(ctl, [ipTower(SVC, S, 49667)], 1100);
  t.equal(e.expectations.size, 0);
  t.equal(tcpSyn(e, { addr: C, port: 49701 }, { addr: S, port: 49667 }, 1200).verdict, 'drop');
  t.end();
});

t.test('decoders: uuids in both byte orders, towers', (t) => {
  t.equal(readUuid(uuidBytes(EPM), 0, true), EPM);
  t.equal(readUuid(uuidBytes(NDR32, false), 0, false), NDR32);
  t.same(decodeTower(ipTower(SVC, S, 49667)), { proto: 6, port: 49667, addr: S });
  t.same(decodeTower(ipTower(SVC, S, 1031, true)), { proto: 17, port: 1031, addr: S });
  t.equal(decodeTower(pipeTower(SVC)), undefined);
  t.equal(decodeTower(ipTower(SVC, S, 1).subarray(0, 30)), undefined);
  t.end();
});

t.test('the parser never throws, stays bounded and opens nothing on random input', (t) => {
  let seed = 3;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (const proto of [6, 17]) {
    const ctl = { orig: { family: 4 as const, proto, src: C, dst: S, sport: 1, dport: 135 }, reply: { family: 4 as const, proto, src: S, dst: C, sport: 135, dport: 1 } };
    const st = dcerpcHelper.init(ctl);
    const opts = { ftpThirdParty: false, sipMediaAnyPeer: false };
    let opened = 0;
    // A valid EPM binding first, so that random responses reach the stub decoder.
    dcerpcHelper.data(st, 'org', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), ctl, opts);
    dcerpcHelper.data(st, 'reply', bindAck(1, [{ result: 0 }]), ctl, opts);
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.alloc(rnd() % 500);
      for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff;
      if (i % 2 === 0) {
        // A well-framed PDU with a random body: requests for ept_map, responses to it.
        const body = b.subarray(0, Math.max(0, b.length - 16));
        const p = i % 4 === 0 ? request(i, 0, 3, body) : response(i - 2, 0, body);
        p[3] = rnd() & 0xff;
        if (i % 8 === 2) p.writeUInt16LE(rnd() % 64, 10);
        const r = dcerpcHelper.data(st, i % 4 === 0 ? 'org' : 'reply', proto === 6 ? p : Buffer.concat([Buffer.from([4, rnd() % 3]), b]), ctl, opts);
        opened += r?.expect?.length ?? 0;
        continue;
      }
      const r = dcerpcHelper.data(st, i % 3 ? 'org' : 'reply', b, ctl, opts);
      opened += r?.expect?.length ?? 0;
    }
    t.equal(opened, 0, `proto ${proto}`);
    t.ok(st.streams.every((s) => s.buf.length <= 65535));
    t.ok(st.calls.length <= 32 && st.binds.length <= 32 && st.clCalls.length <= 32);
  }
  t.end();
});

const CORPUS = '/work/shared/corpus/pcaps/dcerpc/suricata-dcerpc-epm-bind-opnum42-fault.pcap';
t.test('corpus capture 19: EPM bind (no first-frag flag), opnum 42, fault: no expectation, no refusal', { skip: !existsSync(CORPUS) && 'no corpus' }, (t) => {
  const r = replayFiles({ files: [CORPUS], config: parseConfig('') });
  const epm = r.sessions.filter((s) => s.orig_tuple.dport === 135);
  t.ok(epm.length >= 1);
  t.ok(epm.every((s) => s.helper === 'dcerpc'));
  t.same(r.expectations, []);
  t.same(r.expectation_uses, []);
  t.same(r.refusals, []);
  t.equal(r.expectation_counters?.created, 0);
  // The helper did follow the EPM binding (accepted on context 0), and opnum 42 is no ept_map call.
  const rp = new Replayer(parseConfig(''));
  rp.run([CORPUS], Infinity);
  const last = [...rp.engine.sessions()].find((s) => s.orig.dport === 135);
  t.ok(last);
  t.match(rp.engine.helperSlot(last!.serial)?.state, { epmContexts: [0], calls: [], binds: [], streams: [{ lost: false }, { lost: false }] });
  t.end();
});

t.test('a snapshot taken mid-PDU restores the helper state (Buffers included) and the response still opens the port', (t) => {
  const { e, ctl } = setup();
  ctl.send('client', bind(1, [{ id: 0, uuid: EPM, ver: 3 }]), 1100);
  ctl.send('server', bindAck(1, [{ result: 0 }]), 1101);
  ctl.send('client', request(2, 0, 3, eptMapRequest(ipTower(SVC, '0.0.0.0', 135))), 1102);
  const resp = response(2, 0, eptMapResponse([ipTower(SVC, S, 49667)]));
  ctl.send('server', resp.subarray(0, 40), 1103);
  const snap = decodeSnapshot(encodeSnapshot(e.snapshot(1104)));
  const e2 = new SessionEngine(defaultEngineConfig({ policy: controlOnly }));
  e2.restore(snap, 1105);
  t.match(e2.helperSlot(1)?.state, { epmContexts: [0], calls: [{ callId: 2 }], streams: [{}, { buf: Buffer.from(resp.subarray(0, 40)) }] });
  // The same conversation (sequence numbers) continuing against the restored engine.
  const ctl2 = Object.assign(Object.create(TcpConversation.prototype), ctl, { engine: e2 }) as TcpConversation;
  ctl2.advance('server', 40);
  ctl2.sendAt('server', 0, resp.subarray(40), 1106);
  t.match([...e2.expectations.all()], [{ helper: 'dcerpc', dst: S, dport: 49667, tracksParent: true }]);
  t.end();
});
