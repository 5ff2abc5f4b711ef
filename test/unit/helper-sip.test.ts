import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { replayFiles } from '../../src/capture/replay.js';
import { parseConfig } from '../../src/config/load.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/state/snapshot.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { Effect, PolicyMatch } from '../../src/engine/types.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable } from '../../src/helpers/registry.js';
import { MAX_CALLS, MAX_HEAD, sipHelper } from '../../src/helpers/sip.js';
import type { ControlView, HelperOptions } from '../../src/helpers/types.js';
import { parseSdp } from '../../src/helpers/sdp.js';
import { TcpConversation, udp } from '../lib/flows.js';
import { live } from '../lib/live-session.js';

const C = '198.51.100.2', S = '203.0.113.2';
const C6 = '2001:db8:100::2', S6 = '2001:db8:113::2';
const CID = 'a84b4c76e66710@pc33.example.com';

/** Only SIP signalling (udp/5060, tcp/5060) is allowed (policy 9); everything else hits the implicit deny. */
const signallingOnly = (t: { proto: number; dport: number }): PolicyMatch =>
  (t.proto === 17 || t.proto === 6) && t.dport === 5060 ? { policyId: 9, action: 'accept', logTraffic: true, vd: 0 } : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 };

interface Sdp { addr: string; media: string[]; session?: boolean }
/** An SDP body; `media` lines are written after `m=` (extra lines may follow after a \n). */
function sdp(o: Sdp): string {
  const ip = o.addr.includes(':') ? 'IP6' : 'IP4';
  const lines = ['v=0', `o=- 1 1 IN ${ip} ${o.addr}`, 's=-', `c=IN ${ip} ${o.addr}`, 't=0 0'];
  for (const m of o.media) lines.push(...`m=${m}`.split('\n'));
  return lines.join('\r\n') + '\r\n';
}

/** A SIP message with Content-Length (and Content-Type when there is a body). */
function sip(start: string, h: Record<string, string | number>, body = ''): string {
  const head = [start, ...Object.entries(h).map(([k, v]) => `${k}: ${v}`)];
  if (body) head.push('Content-Type: application/sdp');
  head.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return head.join('\r\n') + '\r\n\r\n' + body;
}

const hdr = (cseq: string, callId = CID) => ({ Via: 'SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds', From: '<sip:a@example.com>;tag=1928301774', To: '<sip:b@example.com>', 'Call-ID': callId, CSeq: cseq, 'Max-Forwards': 70 });
const invite = (body = '', cseq = 1, callId = CID) => sip('INVITE sip:b@example.com SIP/2.0', hdr(`${cseq} INVITE`, callId), body);
const resp = (code: string, method: string, body = '', cseq = 1, callId = CID) => sip(`SIP/2.0 ${code}`, hdr(`${cseq} ${method}`, callId), body);
const req = (method: string, cseq: number, body = '', callId = CID) => sip(`${method} sip:b@example.com SIP/2.0`, hdr(`${cseq} ${method}`, callId), body);

const rtp = (src: string, dst: string, dport: number, callId = CID) => ({ kind: 'rtp', proto: 17, src, sport: 0, dst, dport, timeout: 0, tag: callId });
const rtcp = (src: string, dst: string, dport: number, callId = CID) => ({ ...rtp(src, dst, dport, callId), kind: 'rtcp' });

const OPTS: HelperOptions = { ftpThirdParty: false, sipMediaAnyPeer: false };
const ANY: HelperOptions = { ftpThirdParty: false, sipMediaAnyPeer: true };

/** The helper on its own, fed as the engine feeds it (org = client → server). */
function direct(client = C, server = S, proto = 17, opts = OPTS) {
  const family = client.includes(':') ? 6 as const : 4 as const;
  const ctl: ControlView = {
    orig: { family, proto, src: client, dst: server, sport: 5060, dport: 5060 },
    reply: { family, proto, src: server, dst: client, sport: 5060, dport: 5060 },
  };
  const st = sipHelper.init(ctl);
  return {
    st,
    send: (from: 'client' | 'server', text: string | Buffer, o = opts) =>
      sipHelper.data(st, from === 'client' ? 'org' : 'reply', typeof text === 'string' ? Buffer.from(text, 'latin1') : text, ctl, o),
  };
}

function engine(over: Parameters<typeof defaultEngineConfig>[0] = {}) {
  const e = new SessionEngine(defaultEngineConfig({ policy: signallingOnly, ...over }));
  const c = { addr: C, port: 5060 }, s = { addr: S, port: 5060 };
  return {
    e,
    client: (text: string, now: number) => udp(e, c, s, text, now, true),
    server: (text: string, now: number) => udp(e, s, c, text, now, false),
  };
}
const ofKind = (fx: Effect[], k: Effect['kind']) => fx.filter((x) => x.kind === k);
const tuples = (e: SessionEngine) => [...e.expectations.all()].map((x) => `${x.kind} ${x.src}:${x.sport} -> ${x.dst}:${x.dport}`).sort();

t.test('INVITE and 200 over UDP: each SDP opens RTP and RTCP towards its sender, from the other endpoint', (t) => {
  const h = direct();
  t.same(h.send('client', invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0 8'] }))), { expect: [rtp(S, C, 20000), rtcp(S, C, 20001)] });
  t.equal(h.send('server', resp('100 Trying', 'INVITE')), undefined);
  t.equal(h.send('server', resp('180 Ringing', 'INVITE')), undefined);
  t.same(h.send('server', resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] }))), { expect: [rtp(C, S, 30000), rtcp(C, S, 30001)] });
  t.equal(h.send('client', req('ACK', 1)), undefined);
  t.equal(h.send('server', resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] }))), undefined, 'a retransmitted 200 opens nothing again');
  t.same(h.st.calls.map((c) => [c.id, c.inviteCseq, c.open]), [[CID, 1, [`rtp|${S}|${C}|20000`, `rtcp|${S}|${C}|20001`, `rtp|${C}|${S}|30000`, `rtcp|${C}|${S}|30001`]]]);
  t.same(h.send('client', req('BYE', 2)), { release: [CID] });
  t.same(h.st.calls, []);
  t.end();
});

t.test('through the engine: policy allows only udp/5060; the RTP session is an expected child with the parent policy id and serial', (t) => {
  const { e, client, server } = engine();
  let d = client(invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  t.equal(d.verdict, 'accept');
  t.equal(d.session!.helper, 'sip');
  t.equal(ofKind(d.effects, 'expect-add').length, 2);
  server(resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] })), 1100);
  client(req('ACK', 1), 1200);
  t.same(tuples(e), [`rtcp ${C}:0 -> ${S}:30001`, `rtcp ${S}:0 -> ${C}:20001`, `rtp ${C}:0 -> ${S}:30000`, `rtp ${S}:0 -> ${C}:20000`]);
  for (const x of e.expectations.all()) t.match(x, { helper: 'sip', policyId: 9, serial: 1, parent: 1, tracksParent: true, tag: CID });
  t.same(ofKind(e.tick(1_000_000), 'expect-end'), [], 'no strict timeout: they live as long as the call');

  // Media from the client's RTP port to the server's: the pinhole lets it in.
  d = udp(e, { addr: C, port: 20000 }, { addr: S, port: 30000 }, 'rtp', 2000);
  t.equal(d.verdict, 'accept');
  t.equal(d.reason, 'expected:sip');
  const child = live(e, d.session!);
  t.match(child, { policyId: 9, parent: 1, inheritedSerial: 1, expected: { helper: 'sip', kind: 'rtp' } });
  t.equal(child.helper, undefined);
  t.same(ofKind(d.effects, 'expect-end').map((x) => x.kind === 'expect-end' && [x.expectation.dport, x.reason]), [[30000, 'used'], [20000, 'used']], 'both directions of the stream are the same session');
  t.same(tuples(e), [`rtcp ${C}:0 -> ${S}:30001`, `rtcp ${S}:0 -> ${C}:20001`]);
  t.equal(udp(e, { addr: S, port: 30000 }, { addr: C, port: 20000 }, 'rtp', 2100, false).session?.serial, child.serial, 'the answer travels in the child');
  t.equal(udp(e, { addr: C, port: 20002 }, { addr: S, port: 30002 }, 'x', 2200).verdict, 'drop', 'other ports still need a policy');

  d = client(req('BYE', 2), 3000);
  t.same(ofKind(d.effects, 'expect-end').map((x) => x.kind === 'expect-end' && [x.expectation.kind, x.reason]), [['rtcp', 'released'], ['rtcp', 'released']]);
  t.equal(e.expectations.size, 0);
  t.ok(e.bySerialNumber(child.serial), 'the media session itself ends by its own TTL');
  t.end();
});

t.test('183 Session Progress with SDP opens early media', (t) => {
  const h = direct();
  h.send('client', invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })));
  t.same(h.send('server', resp('183 Session Progress', 'INVITE', sdp({ addr: S, media: ['audio 40392 RTP/AVP 0'] }))), { expect: [rtp(C, S, 40392), rtcp(C, S, 40393)] });
  t.equal(h.send('server', resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 40392 RTP/AVP 0'] }))), undefined, 'the 200 repeats the 183 answer');
  t.end();
});

t.test('re-INVITE changing the port: the call is released and opened again from both current SDPs', (t) => {
  const h = direct();
  h.send('client', invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })));
  h.send('server', resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] })));
  t.same(h.send('client', invite(sdp({ addr: C, media: ['audio 22000 RTP/AVP 0'] }), 2)), {
    release: [CID],
    expect: [rtp(S, C, 22000), rtcp(S, C, 22001), rtp(C, S, 30000), rtcp(C, S, 30001)],
  });
  t.equal(h.send('server', resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] }), 2)), undefined, 'unchanged answer');
  // The same through the engine: the old port no longer opens.
  const { e, client, server } = engine();
  client(invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  server(resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] })), 1100);
  const d = client(invite(sdp({ addr: C, media: ['audio 22000 RTP/AVP 0'] }), 2), 1200);
  t.same(ofKind(d.effects, 'expect-end').map((x) => x.kind === 'expect-end' && [x.expectation.dport, x.reason]), [[20000, 'released'], [20001, 'released'], [30000, 'released'], [30001, 'released']]);
  t.same(tuples(e), [`rtcp ${C}:0 -> ${S}:30001`, `rtcp ${S}:0 -> ${C}:22001`, `rtp ${C}:0 -> ${S}:30000`, `rtp ${S}:0 -> ${C}:22000`]);
  t.equal(udp(e, { addr: S, port: 30000 }, { addr: C, port: 20000 }, 'x', 1300, false).verdict, 'drop');
  t.equal(udp(e, { addr: S, port: 30000 }, { addr: C, port: 22000 }, 'x', 1300, false).verdict, 'accept');
  t.end();
});

t.test('UPDATE, PRACK and a late offer in the 200 answered in the ACK', (t) => {
  const h = direct();
  t.equal(h.send('client', invite()), undefined, 'no SDP: nothing yet');
  t.same(h.send('server', resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] }))), { expect: [rtp(C, S, 30000), rtcp(C, S, 30001)] });
  t.same(h.send('client', req('ACK', 1, sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] }))), { expect: [rtp(S, C, 20000), rtcp(S, C, 20001)] });
  t.same(h.send('server', req('UPDATE', 5, sdp({ addr: S, media: ['audio 30000 RTP/AVP 0', 'video 30010 RTP/AVP 31'] }))), { expect: [rtp(C, S, 30010), rtcp(C, S, 30011)] }, 'an added stream only adds');
  t.same(h.send('client', resp('200 OK', 'UPDATE', sdp({ addr: C, media: ['audio 20000 RTP/AVP 0', 'video 20010 RTP/AVP 31'] }), 5)), { expect: [rtp(S, C, 20010), rtcp(S, C, 20011)] });
  t.same(h.send('client', req('PRACK', 6, sdp({ addr: C, media: ['audio 20000 RTP/AVP 0', 'video 0 RTP/AVP 31'] }))), {
    release: [CID],
    expect: [rtp(S, C, 20000), rtcp(S, C, 20001), rtp(C, S, 30000), rtcp(C, S, 30001), rtp(C, S, 30010), rtcp(C, S, 30011)],
  }, 'port 0 disables the video stream');
  t.equal(h.send('server', resp('200 OK', 'OPTIONS', sdp({ addr: S, media: ['audio 31000 RTP/AVP 0'] }), 7)), undefined, 'SDP of an OPTIONS reply describes capabilities');
  t.end();
});

t.test('audio and video, a=rtcp, media-level c= over session-level, port 0, hold, udptl', (t) => {
  const h = direct();
  const body = [
    'v=0', `o=- 1 1 IN IP4 ${C}`, 's=-', 'c=IN IP4 192.0.2.99', 't=0 0',
    'm=audio 20000 RTP/AVP 0', `c=IN IP4 ${C}`, 'a=rtcp:20009',
    'm=video 20100 RTP/AVP 31', `c=IN IP4 ${C}`,
    'm=audio 0 RTP/AVP 0', `c=IN IP4 ${C}`,
    'm=image 20200 udptl t38', `c=IN IP4 ${C}`,
    'm=application 20300 TCP/BFCP *', `c=IN IP4 ${C}`,
    'm=audio 20400 RTP/AVP 0', 'c=IN IP4 0.0.0.0',
  ].join('\r\n') + '\r\n';
  t.same(h.send('client', invite(body)), {
    expect: [rtp(S, C, 20000), rtcp(S, C, 20009), rtp(S, C, 20100), rtcp(S, C, 20101), { ...rtp(S, C, 20200), kind: 'udptl' }],
  });
  t.end();
});

t.test('media towards a host that is not the SDP sender is refused (sip-media-peer), allowed with sip-media-any-peer', (t) => {
  let h = direct();
  const third = sdp({ addr: '192.0.2.50', media: ['audio 20000 RTP/AVP 0'] });
  t.same(h.send('client', invite(third)), { refuse: [{ reason: 'sip-media-peer', detail: `m=audio 20000 names 192.0.2.50, not the sender ${C}` }] });
  t.same(h.send('client', invite(sdp({ addr: S, media: ['audio 20000 RTP/AVP 0'] }), 2)), { refuse: [{ reason: 'sip-media-peer', detail: `m=audio 20000 names ${S}, not the sender ${C}` }] }, 'nor towards the other signalling peer');

  // Through the engine: counted, and nothing opens.
  const { e, client } = engine();
  const d = client(invite(third), 1000);
  t.match(ofKind(d.effects, 'expect-refused'), [{ refusal: { helper: 'sip', reason: 'sip-media-peer', parent: 1 } }]);
  t.equal(e.expectations.counters.refused['sip-media-peer'], 1);
  t.equal(e.expectations.size, 0);

  // With the option: the media host may differ; once both sides are known, each side's media
  // is expected from the host the other side announced (corpus capture 14: SIP .35, media .36).
  h = direct(C, S, 17, ANY);
  t.same(h.send('client', invite(sdp({ addr: C, media: ['audio 30000 RTP/AVP 0'] }))), { expect: [rtp(S, C, 30000), rtcp(S, C, 30001)] });
  t.same(h.send('server', resp('183 Session Progress', 'INVITE', sdp({ addr: '203.0.113.36', media: ['audio 40392 RTP/AVP 0'] }))), {
    release: [CID],
    expect: [rtp('203.0.113.36', C, 30000), rtcp('203.0.113.36', C, 30001), rtp(C, '203.0.113.36', 40392), rtcp(C, '203.0.113.36', 40393)],
  });
  const any = engine({ helperOptions: ANY });
  any.client(invite(third), 1000);
  t.same(tuples(any.e), [`rtcp ${S}:0 -> 192.0.2.50:20001`, `rtp ${S}:0 -> 192.0.2.50:20000`]);
  t.end();
});

t.test('BYE, CANCEL and a final error to the INVITE release the call; other calls stay', (t) => {
  const other = 'other-call@198.51.100.2';
  const { e, client, server } = engine();
  client(invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  client(invite(sdp({ addr: C, media: ['audio 21000 RTP/AVP 0'] }), 1, other), 1000);
  t.equal(e.expectations.size, 4);
  let d = client(req('CANCEL', 1), 1100);
  t.same(ofKind(d.effects, 'expect-end').map((x) => x.kind === 'expect-end' && [x.expectation.dport, x.reason]), [[20000, 'released'], [20001, 'released']]);
  t.same(tuples(e), [`rtcp ${S}:0 -> ${C}:21001`, `rtp ${S}:0 -> ${C}:21000`]);
  server(resp('487 Request Terminated', 'INVITE'), 1200);
  // A 407 to the other call's INVITE: its media go; the retried INVITE opens them again.
  d = server(resp('407 Proxy Authentication Required', 'INVITE', '', 1, other), 1300);
  t.equal(ofKind(d.effects, 'expect-end').length, 2);
  t.equal(e.expectations.size, 0);
  d = client(invite(sdp({ addr: C, media: ['audio 21000 RTP/AVP 0'] }), 2, other), 1400);
  t.equal(ofKind(d.effects, 'expect-add').length, 2);
  // A final error to another transaction (CSeq 1, not the INVITE's 2) does not end the call.
  d = server(resp('486 Busy Here', 'INVITE', '', 1, other), 1500);
  t.equal(e.expectations.size, 2);
  d = server(req('BYE', 9, '', other), 1600);
  t.equal(e.expectations.size, 0, 'a BYE from either side');
  t.end();
});

t.test('the signalling session timing out or being cleared ends its media expectations', (t) => {
  let { e, client } = engine();
  client(invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  const ttl = e.bySerialNumber(1)!.timeout;
  t.same(ofKind(e.tick(1000 + ttl * 1000 - 1000), 'expect-end'), [], 'while the signalling session lives');
  const fx = e.tick(1000 + ttl * 1000 + 1000);
  t.same(ofKind(fx, 'session-end').map((x) => x.kind === 'session-end' && [x.session.serial, x.reason]), [[1, 'ttl']]);
  t.same(ofKind(fx, 'expect-end').map((x) => x.kind === 'expect-end' && [x.expectation.kind, x.reason]), [['rtp', 'parent-closed'], ['rtcp', 'parent-closed']]);
  ({ e, client } = engine());
  client(invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  const cleared = e.clear((s) => s.serial === 1, 1100);
  t.same(ofKind(cleared, 'expect-end').map((x) => x.kind === 'expect-end' && x.reason), ['clear', 'clear']);
  t.end();
});

t.test('IPv6: c=IN IP6', (t) => {
  const h = direct(C6, S6);
  t.same(h.send('client', invite(sdp({ addr: C6, media: ['audio 20000 RTP/AVP 0'] }))), { expect: [rtp(S6, C6, 20000), rtcp(S6, C6, 20001)] });
  t.same(h.send('server', resp('200 OK', 'INVITE', sdp({ addr: '2001:DB8:113:0::2', media: ['audio 30000 RTP/AVP 0'] }))), { expect: [rtp(C6, S6, 30000), rtcp(C6, S6, 30001)] }, 'addresses compared in canonical form');
  t.same(h.send('client', invite(sdp({ addr: C, media: ['audio 20002 RTP/AVP 0'] }), 2)), {
    release: [CID],
    expect: [rtp(C6, S6, 30000), rtcp(C6, S6, 30001)],
    refuse: [{ reason: 'malformed', detail: `m=audio 20002: c=IN IP4 ${C} on an IPv6 signalling session` }],
  }, 'the client\'s new offer has no usable media: its old ones close');
  // Through the engine.
  const e = new SessionEngine(defaultEngineConfig({ policy: signallingOnly }));
  udp(e, { addr: C6, port: 5060 }, { addr: S6, port: 5060 }, invite(sdp({ addr: C6, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  t.match([...e.expectations.all()], [{ family: 6, src: S6, dst: C6, dport: 20000, kind: 'rtp' }, { family: 6, dport: 20001, kind: 'rtcp' }]);
  const d = udp(e, { addr: S6, port: 31000 }, { addr: C6, port: 20000 }, 'rtp', 1100, false);
  t.equal(d.verdict, 'accept');
  t.match(d.session, { policyId: 9, parent: 1, inheritedSerial: 1 });
  t.end();
});

t.test('SIP over TCP: messages split across segments, several in one segment, compact headers', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ policy: signallingOnly }));
  const ctl = new TcpConversation(e, { addr: C, port: 40000 }, { addr: S, port: 5060 });
  ctl.open(1000);
  const body = sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] });
  // Compact forms: i: Call-ID, l: Content-Length, c: Content-Type; header names in odd case.
  const msg = `INVITE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/TCP pc33.example.com\r\ni: ${CID}\r\ncSeq: 1 INVITE\r\nc: application/sdp\r\nl: ${body.length}\r\n\r\n${body}`;
  for (let i = 0; i < msg.length; i += 7) {
    ctl.send('client', msg.slice(i, i + 7), 1100);
    if (i + 7 < msg.length) t.equal(e.expectations.size, 0, 'nothing before the body is complete');
  }
  t.same(tuples(e), [`rtcp ${S}:0 -> ${C}:20001`, `rtp ${S}:0 -> ${C}:20000`]);
  t.equal(e.bySerialNumber(1)!.helper, 'sip');
  // 100, 180 and 200 in one segment, the 200's body ending in the next one.
  const ok = resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] }));
  ctl.send('server', '\r\n\r\n' + resp('100 Trying', 'INVITE') + resp('180 Ringing', 'INVITE') + ok.slice(0, -10), 1200);
  t.equal(e.expectations.size, 2);
  ctl.send('server', ok.slice(-10) + 'SIP/2.0 1', 1300);
  t.equal(e.expectations.size, 4);
  const d = udp(e, { addr: S, port: 30000 }, { addr: C, port: 20000 }, 'rtp', 1350, false);
  t.match(d.session, { policyId: 9, parent: 1, inheritedSerial: 1 });
  t.equal(e.expectations.size, 2);
  ctl.send('client', req('BYE', 2), 1400);
  t.equal(e.expectations.size, 0, 'the BYE released the unused RTCP pair');
  t.end();
});

t.test('SIP over TCP: an endless header block and an oversized body are skipped, the stream resynchronises', (t) => {
  const h = direct(C, S, 6);
  const offer = invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] }));
  // 20 KiB of header lines without the blank line: buffered no further than MAX_HEAD.
  for (let i = 0; i < 20; i++) t.equal(h.send('client', `X-Filler-${i}: ${'a'.repeat(1000)}\r\n`), undefined);
  t.ok(h.st.tcp![0].buf.length <= MAX_HEAD && h.st.tcp![0].skipHead, 'skipping the over-long block');
  t.equal(h.st.malformed, 1);
  t.same(h.send('client', '\r\n' + offer), { expect: [rtp(S, C, 20000), rtcp(S, C, 20001)] }, 'the next message after the blank line is read');
  // A BYE whose body is larger than MAX_BODY: the BYE still counts, its body is skipped unread.
  const huge = 100_000;
  t.same(h.send('client', req('BYE', 2).replace('Content-Length: 0', `Content-Length: ${huge}`) + 'b'.repeat(30_000)), { release: [CID] });
  t.equal(h.st.tcp![0].skipBody, huge - 30_000);
  t.equal(h.send('client', 'b'.repeat(huge - 30_000 - 10)), undefined);
  t.same(h.send('client', 'b'.repeat(10) + invite(sdp({ addr: C, media: ['audio 22000 RTP/AVP 0'] }), 3)), { expect: [rtp(S, C, 22000), rtcp(S, C, 22001)] });
  t.equal(h.st.tcp![0].buf.length, 0);
  // Byte by byte: each byte is searched once for the end of the header block.
  const msg = invite(sdp({ addr: C, media: ['audio 24000 RTP/AVP 0'] }), 4);
  let r;
  for (const ch of msg) r = h.send('client', ch);
  t.same(r, { release: [CID], expect: [rtp(S, C, 24000), rtcp(S, C, 24001)] });
  t.end();
});

t.test('the helper state survives a table snapshot: a call half-read before a restart completes after it', (t) => {
  const e1 = new SessionEngine(defaultEngineConfig({ policy: signallingOnly }));
  const ctl1 = new TcpConversation(e1, { addr: C, port: 40000 }, { addr: S, port: 5060 });
  ctl1.open(1000);
  ctl1.send('client', invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1100);
  const ok = resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] }));
  ctl1.send('server', ok.slice(0, 200), 1200);
  const e2 = new SessionEngine(defaultEngineConfig({ policy: signallingOnly }));
  e2.restore(decodeSnapshot(encodeSnapshot(e1.snapshot(1300))), 1400);
  t.same(tuples(e2), [`rtcp ${S}:0 -> ${C}:20001`, `rtp ${S}:0 -> ${C}:20000`]);
  // The same conversation continues against the restored table (sequence numbers carry on).
  const ctl2 = ctl1 as unknown as { engine: SessionEngine };
  ctl2.engine = e2;
  ctl1.send('server', ok.slice(200), 1500);
  t.equal(e2.expectations.size, 4, 'the 200 buffered before the restart is read whole');
  ctl1.send('client', req('BYE', 2), 1600);
  t.equal(e2.expectations.size, 0, 'the Call-ID remembered across the restart releases them');
  t.end();
});

t.test('Content-Length shorter than the body: only Content-Length bytes are SDP (corpus capture 17)', (t) => {
  const h = direct();
  const body = sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] });
  const cut = body.indexOf('m=');
  const msg = invite(body).replace(`Content-Length: ${body.length}`, `Content-Length: ${cut}`);
  t.equal(h.send('client', msg), undefined, 'the m= line lies beyond Content-Length');
  t.equal(h.send('client', invite(body, 2).replace(`Content-Length: ${body.length}`, `Content-Length: ${body.length + 10}`)), undefined, 'a truncated datagram opens nothing');
  t.equal(h.st.malformed, 1);
  t.same(h.send('client', invite(body, 3).replace(`\r\nContent-Length: ${body.length}`, '')), { expect: [rtp(S, C, 20000), rtcp(S, C, 20001)] }, 'no Content-Length over UDP: the rest of the datagram');
  t.end();
});

t.test('calls per session are bounded: the oldest is forgotten and its media released', (t) => {
  const h = direct();
  for (let i = 0; i < MAX_CALLS; i++) h.send('client', invite(sdp({ addr: C, media: [`audio ${20000 + 2 * i} RTP/AVP 0`] }), 1, `call-${i}`));
  t.equal(h.st.calls.length, MAX_CALLS);
  const r = h.send('client', invite(sdp({ addr: C, media: ['audio 30000 RTP/AVP 0'] }), 1, 'call-new'));
  t.same(r, { release: ['call-0'], expect: [rtp(S, C, 30000, 'call-new'), rtcp(S, C, 30001, 'call-new')] });
  t.equal(h.st.calls.length, MAX_CALLS);
  t.equal(h.st.calls[0].id, 'call-1');
  t.end();
});

t.test('with the sip helper deleted nothing is expected and the media needs a policy', (t) => {
  const { e, client, server } = engine({ helpers: new HelperTable(DEFAULT_HELPER_BINDINGS.filter((b) => b.name !== 'sip')) });
  client(invite(sdp({ addr: C, media: ['audio 20000 RTP/AVP 0'] })), 1000);
  server(resp('200 OK', 'INVITE', sdp({ addr: S, media: ['audio 30000 RTP/AVP 0'] })), 1100);
  t.equal(e.expectations.size, 0);
  t.equal(e.bySerialNumber(1)!.helper, undefined);
  t.equal(udp(e, { addr: C, port: 20000 }, { addr: S, port: 30000 }, 'rtp', 1200).verdict, 'drop');
  t.end();
});

t.test('SDP parser', (t) => {
  t.same(parseSdp('v=0\nc=IN IP4 224.2.1.1/127/3\nm=audio 49170/2 RTP/AVP 0\na=rtcp:53020 IN IP4 126.16.64.4\nm=video x\n'), [
    { type: 'audio', port: 49170, transport: 'RTP/AVP', addr: '224.2.1.1', family: 4, rtcp: 53020 },
    { type: 'invalid', port: 0, transport: '', addr: '224.2.1.1', family: 4 },
  ]);
  t.same(parseSdp('c=IN IP6 ::ffff:1.2.3.4.5\r\nm=audio 1 RTP/AVP 0\r\n'), [{ type: 'audio', port: 1, transport: 'RTP/AVP', family: 6, badConn: 'IN IP6 ::ffff:1.2.3.4.5' }]);
  t.end();
});

t.test('refusals for unreadable media lines', (t) => {
  const h = direct();
  const body = ['v=0', 's=-', 'm=audio 20000 RTP/AVP 0', 'm=audio 20002 RTP/AVP 0', 'c=IN IP4 999.1.1.1', 'm=audio 80 RTP/AVP 0', `c=IN IP4 ${C}`].join('\r\n');
  t.same(h.send('client', invite(body)), {
    refuse: [
      { reason: 'malformed', detail: 'm=audio 20000: no connection address' },
      { reason: 'malformed', detail: 'm=audio 20002: connection address not understood: IN IP4 999.1.1.1' },
      { reason: 'malformed', detail: 'm=audio 80: port out of range 1024-65535' },
    ],
  });
  t.end();
});

t.test('the parser never throws, keeps its buffers bounded and opens nothing on hostile input', (t) => {
  let seed = 11;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const pieces = ['INVITE sip:x SIP/2.0\r\n', 'SIP/2.0 200 OK\r\n', 'Call-ID: x\r\n', 'i: y\r\n', 'CSeq: 1 INVITE\r\n', 'l: 99999999\r\n', 'Content-Length: 20\r\n',
    'c: application/sdp\r\n', '\r\n', '\r\n\r\n', 'm=audio 1234 RTP/AVP 0\r\n', 'c=IN IP4 1.2.3.4\r\n', 'c=IN IP6 ::1\r\n', 'BYE a SIP/2.0\r\n', ' folded\r\n'];
  for (const proto of [17, 6]) {
    const h = direct(C, S, proto);
    let opened = 0;
    for (let i = 0; i < 3000; i++) {
      const parts: Buffer[] = [];
      const n = rnd() % 8;
      for (let k = 0; k < n; k++) {
        if (rnd() % 2) parts.push(Buffer.from(pieces[rnd() % pieces.length], 'latin1'));
        else { const b = Buffer.alloc(rnd() % 200); for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff; parts.push(b); }
      }
      const r = h.send(i % 2 ? 'client' : 'server', Buffer.concat(parts));
      opened += r?.expect?.length ?? 0;
    }
    t.equal(opened, 0, `proto ${proto}: nothing names a signalling peer`);
    if (h.st.tcp) t.ok(h.st.tcp.every((f) => f.buf.length <= 16384 + 65536 + 8), 'stream buffers stay bounded');
    t.ok(h.st.calls.length <= MAX_CALLS);
    t.doesNotThrow(() => JSON.stringify(h.st), 'state is plain data');
  }
  t.end();
});

// Third-party captures of ../shared/corpus (MANIFEST.md entries 14, 16, 17) replayed through the
// engine with a policy that allows only the signalling: the exact expectations, and how each ends.
// (test/unit/corpus.test.ts checks the same captures against their ground-truth files.)
const FIXTURES = fileURLToPath(new URL('../../../shared/corpus/pcaps/sip/', import.meta.url));
const NO_CORPUS = !existsSync(FIXTURES) && 'no corpus';
function replaySip(file: string, anyPeer: boolean, extra = '') {
  const config = parseConfig(`
config system session-helper-options
    set sip-media-any-peer ${anyPeer ? 'enable' : 'disable'}
end
config firewall service custom
    edit "sip"
        set udp-portrange 5060-5061
    next
end
config firewall policy
    edit 4
        set srcintf "any"
        set dstintf "any"
        set srcaddr "all"
        set dstaddr "all"
        set service "sip"
        set action accept
    next
end
${extra}`);
  const r = replayFiles({ files: [`${FIXTURES}${file}`], config });
  return {
    created: r.expectations_created.map((c) => `${c.expectation.kind} ${c.expectation.src}->${c.expectation.dst}:${c.expectation.dport} ${c.end?.reason ?? 'open'}`),
    refusals: r.refusals.map((x) => `${x.reason}: ${x.detail}`),
    verdicts: r.verdicts.reasons,
  };
}

t.test('corpus 14 (nDPI sip.pcap): INVITEs answered 407/403 release their media; the 183 names a media host .36 that is not the SIP host .35; the RTP after the 480 is stray', { skip: NO_CORPUS }, (t) => {
  const offer = (from: string, end = 'released') => [`rtp ${from}->192.168.1.2:30000 ${end}`, `rtcp ${from}->192.168.1.2:30001 ${end}`];
  // INVITE to .81 then CANCEL; to .35: three calls, INVITE (407) and INVITE with credentials (403, 403, then 183 + 480).
  const strict = replaySip('ndpi-sip-register-invite-183sdp-rtp.pcap', false);
  t.same(strict.created, [...offer('200.68.120.81'), ...Array(6).fill(offer('212.242.33.35')).flat()]);
  t.same(strict.refusals, ['sip-media-peer: m=audio 40392 names 212.242.33.36, not the sender 212.242.33.35']);
  // 9 RTP + 1 RTCP from 192.168.1.2:30000/30001 to .36 after the 480 ended the call: dropped,
  // as the kernel (flush on the INVITE's final error) would.
  t.same(strict.verdicts, { 'allowed:4': 2, existing: 100, 'policy-deny:0': 10 });
  const any = replaySip('ndpi-sip-register-invite-183sdp-rtp.pcap', true);
  t.same(any.created, [
    ...offer('200.68.120.81'), ...Array(6).fill(offer('212.242.33.35')).flat(),
    // The 183's answer: media to .36, and the offer's media now expected from .36 (where the answer says the media comes from).
    ...offer('212.242.33.36'),
    'rtp 192.168.1.2->212.242.33.36:40392 released', 'rtcp 192.168.1.2->212.242.33.36:40393 released',
  ]);
  t.same(any.refusals, []);
  t.end();
});

t.test('corpus 16 (suricata-verify SIP call): the INVITE offers media on .196, not the SIP host .195; the 200 answers on .204', { skip: NO_CORPUS }, (t) => {
  const on5061 = 'config system session-helper\n    edit 30\n        set name sip\n        set protocol 17\n        set port 5061\n    next\nend\n';
  const strict = replaySip('suricata-sip-invite-200-sdp.pcap', false, on5061);
  t.same(strict.created, ['rtp 200.57.7.195->200.57.7.204:8000 open', 'rtcp 200.57.7.195->200.57.7.204:8001 open']);
  t.same(strict.refusals, [
    'sip-media-peer: m=audio 40376 names 200.57.7.196, not the sender 200.57.7.195',
    'sip-media-peer: m=audio 40360 names 200.57.7.196, not the sender 200.57.7.195',
  ]);
  // With any peer: the truth's media pair 200.57.7.196:40376 <-> 200.57.7.204:8000 (+1 for RTCP); the second INVITE's offer stays unanswered.
  const any = replaySip('suricata-sip-invite-200-sdp.pcap', true, on5061);
  t.same(any.created, [
    'rtp 200.57.7.204->200.57.7.196:40376 open', 'rtcp 200.57.7.204->200.57.7.196:40377 open',
    'rtp 200.57.7.196->200.57.7.204:8000 open', 'rtcp 200.57.7.196->200.57.7.204:8001 open',
    'rtp 200.57.7.204->200.57.7.196:40360 open', 'rtcp 200.57.7.204->200.57.7.196:40361 open',
  ]);
  t.same(any.refusals, []);
  t.end();
});

t.test('corpus 17 (suricata-verify sdp.pcap): the m= lines lie beyond Content-Length and open nothing, even with any peer', { skip: NO_CORPUS }, (t) => {
  for (const anyPeer of [false, true]) {
    const r = replaySip('suricata-sip-sdp-fields-synthetic.pcap', anyPeer);
    t.same(r.created, []);
    t.same(r.refusals, [], 'no m= line was read, so none was refused either');
  }
  t.end();
});
