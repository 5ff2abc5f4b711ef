import { existsSync } from 'node:fs';
import t from 'tap';
import { replayFiles } from '../../src/capture/replay.js';
import { parseConfig } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Effect, PolicyMatch } from '../../src/engine/types.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable } from '../../src/helpers/registry.js';
import { tftpHelper, tftpRequestProblem } from '../../src/helpers/tftp.js';
import { udp } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2';
const C6 = '2001:db8:100::2', S6 = '2001:db8:113::2';

/** Only the TFTP control channel client -> server udp/69 is allowed (policy 9). */
const controlOnly = (t: { proto: number; dport: number }): PolicyMatch =>
  t.proto === 17 && t.dport === 69 ? { policyId: 9, action: 'accept', logTraffic: true, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };

const engine = (over: Parameters<typeof defaultEngineConfig>[0] = {}) => new SessionEngine(defaultEngineConfig({ policy: controlOnly, ...over }));
const ofKind = (fx: Effect[], k: Effect['kind']) => fx.filter((x) => x.kind === k);

const req = (op: number, ...parts: string[]) => Buffer.concat([Buffer.from([0, op]), ...parts.map((p) => Buffer.from(`${p}\0`, 'latin1'))]);
const data = (block: number, body: string) => Buffer.concat([Buffer.from([0, 3, block >> 8, block & 255]), Buffer.from(body)]);
const ack = (block: number) => Buffer.from([0, 4, block >> 8, block & 255]);

t.test('RRQ: the server answers from a new port; that flow is the expected child with the parent policy and serial', (t) => {
  const e = engine();
  const d = udp(e, { addr: C, port: 50618 }, { addr: S, port: 69 }, req(1, 'rfc1350.txt', 'octet'), 1000);
  t.equal(d.verdict, 'accept');
  t.equal(d.session!.helper, 'tftp');
  t.same(ofKind(d.effects, 'expect-add').length, 1);
  t.same([...e.expectations.all()].map(({ id: _i, createdAt: _c, ...x }) => x), [{
    parent: 1, serial: 1, policyId: 9, vd: 0, helper: 'tftp', kind: 'tftp-data', family: 4, proto: 17,
    src: S, sport: 0, dst: C, dport: 50618, expireAt: 31000, tracksParent: false, lifetime: 30, sessionTimeout: d.session!.timeout,
  }]);
  // The first DATA block comes from the server's transfer port: a new flow the policy would deny.
  const d1 = udp(e, { addr: S, port: 3445 }, { addr: C, port: 50618 }, data(1, 'x'.repeat(512)), 1100, false);
  t.equal(d1.verdict, 'accept');
  t.equal(d1.reason, 'expected:tftp');
  t.match(d1.session, { policyId: 9, parent: 1, inheritedSerial: 1, expected: { helper: 'tftp', kind: 'tftp-data' } });
  t.equal(e.expectations.size, 0);
  // The client's ACKs travel in the child's reply direction.
  const a1 = udp(e, { addr: C, port: 50618 }, { addr: S, port: 3445 }, ack(1), 1200);
  t.equal(a1.verdict, 'accept');
  t.equal(a1.session!.serial, d1.session!.serial);
  t.equal(a1.dir, 'reply');
  // Another host or port is not what was expected.
  t.equal(udp(e, { addr: S, port: 3446 }, { addr: C, port: 50619 }, data(1, 'y'), 1300, false).verdict, 'drop');
  t.end();
});

t.test('WRQ with options (RFC 2347): OACK from the new port is let in', (t) => {
  const e = engine();
  udp(e, { addr: C, port: 40000 }, { addr: S, port: 69 }, req(2, 'upload.bin', 'octet', 'blksize', '1428', 'tsize', '4096'), 1000);
  t.match([...e.expectations.all()], [{ kind: 'tftp-data', proto: 17, src: S, sport: 0, dst: C, dport: 40000 }]);
  const oack = Buffer.concat([Buffer.from([0, 6]), Buffer.from('blksize\x001428\x00tsize\x004096\x00', 'latin1')]);
  t.equal(udp(e, { addr: S, port: 51000 }, { addr: C, port: 40000 }, oack, 1100, false).reason, 'expected:tftp');
  t.end();
});

t.test('IPv6', (t) => {
  const e = engine();
  udp(e, { addr: C6, port: 40001 }, { addr: S6, port: 69 }, req(1, 'f', 'netascii'), 1000);
  t.match([...e.expectations.all()], [{ family: 6, src: S6, dst: C6, dport: 40001, sport: 0 }]);
  t.equal(udp(e, { addr: S6, port: 40100 }, { addr: C6, port: 40001 }, data(1, 'z'), 1100, false).verdict, 'accept');
  t.end();
});

t.test('a retransmitted request replaces its expectation; the expectation times out', (t) => {
  const e = engine();
  udp(e, { addr: C, port: 40002 }, { addr: S, port: 69 }, req(1, 'a', 'octet'), 1000);
  udp(e, { addr: C, port: 40002 }, { addr: S, port: 69 }, req(1, 'a', 'octet'), 3000);
  t.equal(e.expectations.size, 1);
  t.equal(e.expectations.counters.ended.replaced, 1);
  t.match([...e.expectations.all()], [{ expireAt: 33000 }]);
  t.same(ofKind(e.tick(32999), 'expect-end'), []);
  t.match(ofKind(e.tick(33000), 'expect-end'), [{ reason: 'timeout' }]);
  t.equal(udp(e, { addr: S, port: 3445 }, { addr: C, port: 40002 }, data(1, 'late'), 33100, false).verdict, 'drop');
  t.end();
});

t.test('malformed requests are refused; other opcodes and server datagrams open nothing', (t) => {
  const e = engine();
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.from([0, 1, 0x66, 0x69, 0x6c, 0x65]), /not NUL-terminated/],
    [Buffer.concat([Buffer.from([0, 1]), Buffer.from('file\0', 'latin1')]), /no mode/],
    [req(1, '', 'octet'), /empty filename/],
    [req(2, 'f', 'oct et'), /mode/],
    [req(1, 'f', 'octet', 'blksize'), /option without a value/],
  ];
  let port = 41000;
  for (const [b, why] of cases) {
    const d = udp(e, { addr: C, port: port++ }, { addr: S, port: 69 }, b, 1000);
    const r = ofKind(d.effects, 'expect-refused');
    t.equal(r.length, 1, why.source);
    t.match(r[0], { refusal: { helper: 'tftp', reason: 'malformed', detail: why } });
  }
  t.equal(e.expectations.size, 0);
  for (const b of [data(1, 'x'), ack(0), Buffer.from([0, 5, 0, 1, 0]), Buffer.from([0]), Buffer.alloc(0)]) {
    udp(e, { addr: C, port: 42000 }, { addr: S, port: 69 }, b, 1100);
  }
  // An ERROR from port 69 travels on the control tuple: not a request.
  udp(e, { addr: S, port: 69 }, { addr: C, port: 42000 }, Buffer.concat([Buffer.from([0, 5, 0, 1]), Buffer.from('nope\0')]), 1200, false);
  t.equal(e.expectations.size, 0);
  t.equal(e.expectations.counters.refused.malformed, 5);
  t.equal(tftpRequestProblem(req(1, 'x', 'octet', 'a', 'b', '')), undefined, 'a trailing empty string after the options is tolerated');
  t.end();
});

t.test('with the tftp helper deleted, the transfer needs a policy of its own', (t) => {
  const e = engine({ helpers: new HelperTable(DEFAULT_HELPER_BINDINGS.filter((b) => b.name !== 'tftp')) });
  const d = udp(e, { addr: C, port: 50618 }, { addr: S, port: 69 }, req(1, 'rfc1350.txt', 'octet'), 1000);
  t.equal(d.session!.helper, undefined);
  t.equal(e.expectations.size, 0);
  t.equal(udp(e, { addr: S, port: 3445 }, { addr: C, port: 50618 }, data(1, 'x'), 1100, false).verdict, 'drop');
  t.end();
});

t.test('the parser never throws and opens nothing on random non-request input', (t) => {
  let seed = 11;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const ctl = { orig: { family: 4 as const, proto: 17, src: C, dst: S, sport: 1000, dport: 69 }, reply: { family: 4 as const, proto: 17, src: S, dst: C, sport: 69, dport: 1000 } };
  const st = tftpHelper.init(ctl);
  const opts = { ftpThirdParty: false, sipMediaAnyPeer: false };
  let opened = 0, requests = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.alloc(rnd() % 600);
    for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff;
    if (b.length >= 2 && i % 2) { b[0] = 0; b[1] = 1 + (i % 4); }
    const r = tftpHelper.data(st, i % 5 ? 'org' : 'reply', b, ctl, opts);
    opened += r?.expect?.length ?? 0;
    if (i % 5 && b.length >= 2 && tftpRequestProblem(b) === undefined) requests++;
  }
  t.equal(opened, requests, 'only well-formed requests from the client open anything');
  t.equal(st.requests, requests);
  t.end();
});

const CORPUS = '/work/shared/corpus/pcaps/tftp';
t.test('corpus captures 20 and 22: the data flow from the server\'s new port is the expected child', { skip: !existsSync(CORPUS) && 'no corpus' }, (t) => {
  for (const [file, ctl, data] of [
    ['tftp-rrq-rfc1350-wireshark.pcap', '192.168.0.253:50618 -> 192.168.0.10:69', '192.168.0.10:3445 -> 192.168.0.253:50618'],
    ['zeek-tftp-rrq-oack-unsupported-opcode.pcap', '127.0.0.1:60027 -> 127.0.0.1:69', '127.0.0.1:50012 -> 127.0.0.1:60027'],
  ]) {
    const r = replayFiles({ files: [`${CORPUS}/${file}`], config: parseConfig('') });
    const tup = (x: { src: string; sport: number; dst: string; dport: number }) => `${x.src}:${x.sport} -> ${x.dst}:${x.dport}`;
    t.same(r.sessions.map((s) => [tup(s.orig_tuple), s.helper, s.parent]), [[ctl, 'tftp', undefined], [data, undefined, 1]], file);
    t.same(r.expectation_uses.map((u) => [u.expectation.kind, u.expectation.src, u.expectation.sport, u.expectation.dst, u.expectation.dport]),
      [['tftp-data', data.split(':')[0], 0, ctl.split(':')[0], +ctl.split(' ')[0].split(':')[1]]]);
    t.same(r.expectations, []);
    t.same(r.refusals, []);
  }
  t.end();
});
