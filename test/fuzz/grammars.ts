// Message grammars of the helpers' protocols as fast-check arbitraries: mostly well-formed
// messages with edge values (ports 0/1/65535/65536, octets 255/256, lengths that lie), so that
// the inputs reach past the first "not my protocol" check of each parser.

import fc from 'fast-check';
import { bind, bindAck, bindNak, EPM, eptMapRequest, eptMapResponse, fault, ipTower, NDR32, NDR64, pipeTower, request, response, SVC, uuidBytes } from '../lib/dcerpc-pdu.js';

export type Dir = 'org' | 'reply';
export interface Msg { dir: Dir; bytes: Buffer }

/** The endpoints of every generated control session, so messages can name the sender or a third host. */
export const HOSTS = {
  4: { client: '198.51.100.1', server: '203.0.113.2', third: '192.0.2.9' },
  6: { client: '2001:db8::1', server: '2001:db8::2', third: '2001:db8:9::9' },
} as const;

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const port = fc.oneof(fc.constantFrom(0, 1, 20, 1023, 1024, 5004, 65535, 65536, 99999), fc.integer({ min: 1, max: 65535 }));
const octet = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(256, 999));
const eol = fc.constantFrom('\r\n', '\n', '\r\n', '', '\r');
const junk = fc.string({ unit: 'binary-ascii', maxLength: 40 });
/** Occasionally far longer than any parser's line bound. */
const longText = fc.integer({ min: 1, max: 80 }).chain((n) => fc.string({ maxLength: 8 }).map((s) => (s || 'x').repeat(n * 64)));

const addr4 = fc.oneof(fc.constantFrom(HOSTS[4].client, HOSTS[4].server, HOSTS[4].third, '0.0.0.0'), fc.tuple(octet, octet, octet, octet).map((o) => o.join('.')));
const addr6 = fc.oneof(fc.constantFrom(HOSTS[6].client, HOSTS[6].server, HOSTS[6].third, '::', '::ffff:198.51.100.1', '2001:DB8::1', 'fe80::1%eth0'), fc.ipV6());
const anyAddr = fc.oneof(addr4, addr6, junk);

// ---- FTP --------------------------------------------------------------------------------------

const hostPort = fc.tuple(addr4, port).map(([a, p]) => `${a.replace(/\./g, ',')},${Math.floor(p / 256)},${p % 256}`);
const ftpClient = fc.oneof(
  hostPort.map((hp) => `PORT ${hp}`),
  fc.tuple(fc.constantFrom('|', '!', '#', ' ', '1'), fc.constantFrom('1', '2', '3', ''), anyAddr, port)
    .map(([d, af, a, p]) => `EPRT ${d}${af}${d}${a}${d}${p}${d}`),
  fc.constantFrom('AUTH TLS', 'AUTH SSL', 'USER anonymous', 'PASV', 'EPSV', 'EPSV ALL', 'QUIT', 'port 1,2,3,4,5,6', 'PORT', 'EPRT'),
  junk,
);
const ftpServer = fc.oneof(
  hostPort.map((hp) => `227 Entering Passive Mode (${hp}).`),
  hostPort.map((hp) => `227 =${hp}`),
  fc.tuple(fc.constantFrom('|', '!', '('), port).map(([d, p]) => `229 Entering Extended Passive Mode (${d}${d}${d}${p}${d})`),
  fc.constantFrom('234 AUTH TLS OK', '220 ready', '150-multi', '150 ok', '230 logged in', '500 no', '227', '229 ()'),
  junk,
);

export const ftpMessages: fc.Arbitrary<Msg[]> = fc.array(
  fc.oneof(
    { arbitrary: fc.tuple(ftpClient, eol).map(([l, e]) => ({ dir: 'org' as const, bytes: latin1(l + e) })), weight: 5 },
    { arbitrary: fc.tuple(ftpServer, eol).map(([l, e]) => ({ dir: 'reply' as const, bytes: latin1(l + e) })), weight: 5 },
    { arbitrary: fc.tuple(fc.constantFrom<Dir>('org', 'reply'), longText).map(([dir, t]) => ({ dir, bytes: latin1(t) })), weight: 1 },
  ),
  { maxLength: 12 },
);

// ---- SIP with SDP -----------------------------------------------------------------------------

const connLine = fc.oneof(
  fc.constantFrom(4, 6).chain((f) => (f === 4 ? addr4 : addr6).map((a) => `c=IN IP${f} ${a}`)),
  fc.constantFrom('c=IN IP4 224.2.1.1/127/3', 'c=IN IP4', 'c=IN IP6 198.51.100.1', 'c=IN IP4 2001:db8::1', 'c=garbage'),
);
const mediaLine = fc.tuple(fc.constantFrom('audio', 'video', 'image', 'application', 'text', 'AUDIO'), port, fc.constantFrom('RTP/AVP', 'RTP/SAVP', 'udptl', 'TCP/RTP/AVP', ''), fc.constantFrom('', '/2'))
  .map(([t, p, tr, n]) => `m=${t} ${p}${n} ${tr} 0 8 101`);
const sdpBody = fc.array(
  fc.oneof(
    connLine,
    mediaLine,
    port.map((p) => `a=rtcp:${p}`),
    fc.constantFrom('v=0', 'o=- 1 1 IN IP4 198.51.100.1', 's=-', 't=0 0', 'a=sendrecv', 'a=rtpmap:0 PCMU/8000', 'm=', 'c='),
  ),
  { minLength: 1, maxLength: 12 },
).map((lines) => `v=0\r\n${lines.join('\r\n')}\r\n`);

const callId = fc.oneof(fc.constantFrom('a@h', 'b@h', 'c@h', 'x'.repeat(300)), fc.string({ minLength: 1, maxLength: 12 }));
const method = fc.constantFrom('INVITE', 'ACK', 'BYE', 'CANCEL', 'UPDATE', 'PRACK', 'OPTIONS', 'REGISTER', 'invite');
const code = fc.constantFrom(100, 180, 183, 200, 202, 300, 404, 486, 487, 500, 603);

const sipMessage = fc.record({
  req: fc.boolean(), method, code, callId,
  cseq: fc.integer({ min: 0, max: 20 }), cseqMethod: method,
  compact: fc.boolean(),
  contentType: fc.constantFrom('application/sdp', 'application/SDP; charset=x', 'text/plain', undefined),
  encoding: fc.constantFrom(undefined, 'identity', 'gzip'),
  body: fc.oneof(sdpBody, fc.constant(''), junk),
  lengthLie: fc.oneof(fc.constant(0), fc.integer({ min: -20, max: 20 }), fc.constantFrom(99999, 70000, -1000)),
  duplicateLength: fc.boolean(),
  fold: fc.boolean(),
  lf: fc.boolean(),
}).map((m) => {
  const nl = m.lf ? '\n' : '\r\n';
  const start = m.req ? `${m.method} sip:bob@example.com SIP/2.0` : `SIP/2.0 ${m.code} Reason`;
  const h: string[] = [start, 'Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1', 'From: <sip:a@example.com>;tag=1', 'To: <sip:b@example.com>'];
  h.push(`${m.compact ? 'i' : 'Call-ID'}: ${m.callId}`);
  h.push(`CSeq: ${m.cseq} ${m.cseqMethod}`);
  if (m.fold) h.push(' folded continuation');
  if (m.contentType) h.push(`${m.compact ? 'c' : 'Content-Type'}: ${m.contentType}`);
  if (m.encoding) h.push(`Content-Encoding: ${m.encoding}`);
  const len = Math.max(0, Buffer.byteLength(m.body, 'latin1') + m.lengthLie);
  h.push(`${m.compact ? 'l' : 'Content-Length'}: ${len}`);
  if (m.duplicateLength) h.push(`Content-Length: ${len + 1}`);
  return latin1(h.join(nl) + nl + nl + m.body);
});

export const sipMessages: fc.Arbitrary<Msg[]> = fc.array(
  fc.oneof(
    { arbitrary: fc.tuple(fc.constantFrom<Dir>('org', 'reply'), sipMessage).map(([dir, bytes]) => ({ dir, bytes })), weight: 8 },
    { arbitrary: fc.tuple(fc.constantFrom<Dir>('org', 'reply'), fc.constantFrom('\r\n\r\n', '\r\n')).map(([dir, k]) => ({ dir, bytes: latin1(k) })), weight: 1 },
    { arbitrary: fc.tuple(fc.constantFrom<Dir>('org', 'reply'), longText).map(([dir, t]) => ({ dir, bytes: latin1(`INVITE sip:x SIP/2.0\r\nX: ${t}`) })), weight: 1 },
  ),
  { maxLength: 8 },
);

// ---- TFTP -------------------------------------------------------------------------------------

const cstr = (s: string, terminated: boolean) => Buffer.concat([latin1(s), terminated ? Buffer.from([0]) : Buffer.alloc(0)]);
const tftpPacket = fc.record({
  op: fc.oneof(fc.constantFrom(1, 2, 1, 2, 3, 4, 5, 6), fc.integer({ min: 0, max: 0xffff })),
  file: fc.oneof(fc.constantFrom('boot.img', '', 'a/b/../c'), fc.string({ maxLength: 40 })),
  mode: fc.constantFrom('octet', 'netascii', 'mail', 'OCTET', '', 'x'.repeat(17), 'oct\u00e9t'),
  opts: fc.array(fc.tuple(fc.constantFrom('blksize', 'tsize', 'timeout', 'windowsize', ''), fc.constantFrom('1468', '0', '5', '', '65536')), { maxLength: 4 }),
  odd: fc.boolean(),
  terminated: fc.boolean(),
  pad: fc.constantFrom(0, 0, 0, 1600),
}).map((p) => {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(p.op);
  const parts = [head, cstr(p.file, true), cstr(p.mode, true)];
  for (const [k, v] of p.opts) parts.push(cstr(k, true), cstr(v, true));
  if (p.odd) parts.push(cstr('blksize', true));
  if (!p.terminated) parts.push(latin1('tail'));
  if (p.pad) parts.push(Buffer.alloc(p.pad, 0x41), Buffer.from([0]));
  return Buffer.concat(parts);
});

export const tftpMessages: fc.Arbitrary<Msg[]> = fc.array(
  fc.tuple(fc.constantFrom<Dir>('org', 'org', 'reply'), tftpPacket).map(([dir, bytes]) => ({ dir, bytes })),
  { maxLength: 6 },
);

// ---- DCE-RPC ----------------------------------------------------------------------------------

const le = fc.boolean();
const callIdArb = fc.integer({ min: 1, max: 4 });
const ctxId = fc.integer({ min: 0, max: 3 });
const towerArb = fc.oneof(
  fc.tuple(fc.constantFrom(HOSTS[4].server, HOSTS[4].third, '0.0.0.0'), port, fc.boolean()).map(([a, p, u]) => ipTower(SVC, a, p & 0xffff, u)),
  fc.constant(pipeTower(SVC)),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  fc.constant(null),
);
const dcePdu = fc.oneof(
  fc.tuple(callIdArb, fc.array(fc.record({ id: ctxId, uuid: fc.constantFrom(EPM, SVC), ver: fc.constantFrom(3, 1, 0x10003), syntaxes: fc.constantFrom<string[]>([NDR32], [NDR64], [NDR64, NDR32], []) }), { maxLength: 3 }), le, fc.boolean())
    .map(([c, ctxs, l, alter]) => ({ dir: 'org' as const, bytes: bind(c, ctxs, { le: l, alter }) })),
  fc.tuple(callIdArb, fc.array(fc.record({ result: fc.constantFrom(0, 0, 2, 3), syntax: fc.constantFrom(NDR32, NDR64, undefined) }), { maxLength: 3 }), le, fc.boolean(), fc.constantFrom('135\0', '', 'x'.repeat(30)))
    .map(([c, results, l, alter, secAddr]) => ({ dir: 'reply' as const, bytes: bindAck(c, results, { le: l, alter, secAddr }) })),
  fc.tuple(callIdArb, le).map(([c, l]) => ({ dir: 'reply' as const, bytes: bindNak(c, { le: l }) })),
  fc.tuple(callIdArb, ctxId, fc.constantFrom(3, 3, 2), le, fc.constantFrom(0x03, 0x01, 0x02, 0x00))
    .map(([c, ctx, op, l, flags]) => ({ dir: 'org' as const, bytes: request(c, ctx, op, eptMapRequest(ipTower(SVC, '0.0.0.0', 0), l), { le: l, flags }) })),
  fc.tuple(callIdArb, ctxId, fc.array(towerArb, { maxLength: 5 }), le, fc.constantFrom(0x03, 0x01, 0x02, 0x00), fc.constantFrom(0, 0, 0x16c9a0d6), fc.option(fc.record({ level: fc.constantFrom(2, 5, 6), value: fc.constantFrom(0, 8, 16) })))
    .map(([c, ctx, towers, l, flags, status, auth]) => ({ dir: 'reply' as const, bytes: response(c, ctx, eptMapResponse(towers, { le: l, status }), { le: l, flags, ...(auth ? { auth } : {}) }) })),
  fc.tuple(callIdArb, le).map(([c, l]) => ({ dir: 'reply' as const, bytes: fault(c, 0x1c010002, { le: l }) })),
);

/** A connectionless (UDP) DCE/RPC datagram: the 80-byte header and an ept_map body. */
const clPdu = fc.tuple(fc.constantFrom(0, 2, 2, 1), fc.constantFrom(0, 0, 0, 0x04), fc.integer({ min: 0, max: 2 }), fc.array(towerArb, { maxLength: 3 }), fc.constantFrom(0, 0, 1), fc.integer({ min: -8, max: 8 }))
  .map(([type, flags1, seq, towers, authProto, lenLie]) => {
    const body = type === 0 ? eptMapRequest(ipTower(SVC, '0.0.0.0', 0)) : eptMapResponse(towers);
    const h = Buffer.alloc(80);
    h[0] = 4; h[1] = type; h[2] = flags1; h[4] = 0x10;
    uuidBytes(EPM).copy(h, 24);
    uuidBytes('11111111-2222-3333-4444-555555555555').copy(h, 40);
    h.writeUInt32LE(3, 60);
    h.writeUInt32LE(seq, 64);
    h.writeUInt16LE(3, 68);
    h.writeUInt16LE(Math.max(0, Math.min(0xffff, body.length + lenLie)), 74);
    h[78] = authProto;
    return { dir: type === 0 ? ('org' as const) : ('reply' as const), bytes: Buffer.concat([h, body]) };
  });

export const dcerpcTcpMessages: fc.Arbitrary<Msg[]> = fc.array(dcePdu, { maxLength: 8 });
export const dcerpcUdpMessages: fc.Arbitrary<Msg[]> = fc.array(clPdu, { maxLength: 6 });

// ---- ONC RPC portmapper -----------------------------------------------------------------------

const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };
const xdrString = (s: string, lie = 0) => {
  const b = latin1(s);
  return Buffer.concat([u32(Math.max(0, b.length + lie)), b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
};
const authNone = Buffer.concat([u32(0), u32(0)]);
const xid = fc.integer({ min: 1, max: 4 });

const rpcCall = fc.tuple(xid, fc.constantFrom(100000, 100000, 100003), fc.constantFrom(2, 3, 4), fc.constantFrom(3, 3, 9, 4), fc.constantFrom(6, 17, 1),
  fc.constantFrom('tcp', 'udp', 'tcp6', 'udp6', 'local', ''), fc.constantFrom(0, 0, 0, 3, 1000), fc.boolean())
  .map(([x, prog, vers, proc, prot, netid, lie, cut]) => {
    const args = vers === 2
      ? Buffer.concat([u32(100003), u32(3), u32(prot), u32(0)])
      : Buffer.concat([u32(100003), u32(3), xdrString(netid, lie), xdrString(''), xdrString('owner')]);
    const b = Buffer.concat([u32(x), u32(0), u32(2), u32(prog), u32(vers), u32(proc), authNone, authNone, args]);
    return { dir: 'org' as const, bytes: cut ? b.subarray(0, b.length - 3) : b };
  });

const uaddr = fc.oneof(
  fc.tuple(fc.constantFrom(HOSTS[4].server, HOSTS[4].third, '0.0.0.0', HOSTS[6].server, '::', '999.1.1.1'), fc.constantFrom(0, 8, 255, 256), octet).map(([a, hi, lo]) => `${a}.${hi}.${lo}`),
  fc.constantFrom('', '.', '1.2.3', 'x'.repeat(300)),
);
const rpcReply = fc.tuple(xid, fc.constantFrom(0, 0, 1), fc.constantFrom(0, 0, 1, 5), fc.oneof(port, fc.constantFrom(0x10000, 0xffffffff)), uaddr, fc.boolean())
  .map(([x, replyStat, acceptStat, p, ua, v2]) => {
    const results = v2 ? u32(p) : xdrString(ua);
    const b = replyStat === 0
      ? Buffer.concat([u32(x), u32(1), u32(0), authNone, u32(acceptStat), results])
      : Buffer.concat([u32(x), u32(1), u32(1), u32(0)]);
    return { dir: 'reply' as const, bytes: b };
  });

export const rpcMessages: fc.Arbitrary<Msg[]> = fc.array(fc.oneof(rpcCall, rpcReply), { maxLength: 8 });

/** Record marking for a TCP stream: each message as one or two fragments, lengths sometimes lying. */
export function recordMark(m: Msg, split: number, lie: number): Msg {
  const cut = Math.min(m.bytes.length, split);
  const frag = (b: Buffer, last: boolean, l: number) => Buffer.concat([u32(((last ? 0x80000000 : 0) | Math.max(0, b.length + l)) >>> 0), b]);
  const bytes = cut > 0 && cut < m.bytes.length
    ? Buffer.concat([frag(m.bytes.subarray(0, cut), false, 0), frag(m.bytes.subarray(cut), true, lie)])
    : frag(m.bytes, true, lie);
  return { dir: m.dir, bytes };
}
