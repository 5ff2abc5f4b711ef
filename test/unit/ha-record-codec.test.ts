// The binary DATA body of the sync channel: every session the engine can hold comes back equal
// (random sessions, IPv4 and IPv6, every optional field), a session with a field the codec does
// not know goes as JSON and loses nothing, other records go as JSON, and malformed bodies throw.

import assert from 'node:assert/strict';
import t from 'tap';
import fc from 'fast-check';
import { decodeDataBody, encodeDataBody } from '../../src/ha/record-codec.js';
import type { Session } from '../../src/engine/types.js';
import type { FlowTuple } from '../../src/packet/types.js';

/** A whole session as the table holds it. */
function session(serial: number, orig: FlowTuple, createdAt: number): Session {
  return {
    serial, orig, reply: { ...orig, src: orig.dst, dst: orig.src, sport: orig.dport, dport: orig.sport }, policyId: 43, vd: 0, state: [1, 0],
    createdAt, expireAt: createdAt + 3600_000,
  } as Session;
}

const v4 = fc.tuple(fc.constant(198), fc.constant(51), fc.constant(100), fc.integer({ min: 0, max: 255 })).map((a) => a.join('.'));
const v6 = fc.integer({ min: 1, max: 0xffff }).map((n) => `2001:db8::${n.toString(16)}`);
const port = fc.integer({ min: 0, max: 65535 });
const tupleArb = (family: 4 | 6): fc.Arbitrary<FlowTuple> => fc.record({
  family: fc.constant(family), proto: fc.constantFrom(1, 6, 17, 58, 132), src: family === 4 ? v4 : v6, dst: family === 4 ? v4 : v6, sport: port, dport: port,
});
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const big = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const time = fc.integer({ min: 0, max: 2 ** 45 });

const sessionArb: fc.Arbitrary<Session> = fc.constantFrom<4 | 6>(4, 6).chain((family) => fc.record({
  serial: big, orig: tupleArb(family), reply: tupleArb(family), policyId: u32, vd: fc.integer({ min: 0, max: 0xffff }),
  state: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })), createdAt: time, expireAt: time, timerAt: time,
  timeout: u32, ttl: u32, ttlFromRule: fc.boolean(), refreshDir: fc.constantFrom('both', 'outgoing', 'incoming'),
  org: fc.record({ bytes: big, packets: big, allowErr: u32 }), rep: fc.record({ bytes: big, packets: big, allowErr: u32 }),
  devOrg: fc.tuple(u32, u32), devReply: fc.tuple(u32, u32), offloaded: fc.boolean(), offloadPending: fc.boolean(),
  rate: fc.record({ at: time, orgBytes: big, replyBytes: big, txBps: fc.double({ min: 0, max: 1e12, noNaN: true }), rxBps: fc.double({ min: 0, max: 1e12, noNaN: true }) }),
  logTraffic: fc.boolean(),
  userId: fc.integer({ min: -1, max: 2 ** 31 - 1 }), serviceIndex: fc.integer({ min: 0, max: 255 }), helper: fc.constantFrom('ftp', 'sip', 'tftp', 'dcerpc'),
  parent: big, inheritedSerial: big, expected: fc.record({ id: u32, helper: fc.constant('ftp'), kind: fc.constantFrom('data', 'media') }),
  kernelClass: fc.integer({ min: 0, max: 255 }), ctId: u32, timerBase: time, kernelWait: fc.constantFrom<0 | 1 | 2 | 3>(0, 1, 2, 3),
  nat: fc.record({ snat: fc.record({ addr: v4, port }) }), kernelMisses: fc.integer({ min: 0, max: 255 }),
  kernelSeen: fc.record({ orgPackets: u32, replyPackets: u32 }),
}, { requiredKeys: ['serial', 'orig', 'reply', 'policyId', 'vd', 'state', 'createdAt', 'expireAt', 'timerAt', 'timeout', 'ttl', 'ttlFromRule', 'refreshDir', 'org', 'rep', 'devOrg', 'devReply', 'offloaded', 'offloadPending', 'rate', 'logTraffic'] }) as fc.Arbitrary<Session>);

t.test('random sessions and ends come back equal, packed in binary', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.array(fc.oneof(sessionArb.map((s) => ({ t: 'session' as const, session: s })), big.map((serial) => ({ t: 'end' as const, serial }))), { maxLength: 8 }), (seq, records) => {
    const b = encodeDataBody({ seq, records });
    // fast-check makes some objects without a prototype; the decoder makes plain ones.
    assert.deepStrictEqual(decodeDataBody(b), structuredClone({ seq, records }));
    // Binary, not JSON: the body carries no JSON record.
    return !b.includes(Buffer.from('{"t":'));
  }), { numRuns: 500 });
  t.pass('500 random bodies');
  t.end();
});

t.test('sizes: an IPv4 session start in under 200 bytes, an end in 9', (t) => {
  const s = session(42, { family: 4, proto: 6, src: '198.51.100.2', dst: '203.0.113.2', sport: 40000, dport: 443 } as FlowTuple, 1_000_000);
  const full: Session = { ...s, timerAt: 0, timeout: 3600, ttl: 3600, ttlFromRule: false, refreshDir: 'both', org: { bytes: 60, packets: 1, allowErr: 0 }, rep: { bytes: 0, packets: 0, allowErr: 0 }, devOrg: [2, 3], devReply: [0, 0], offloaded: true, offloadPending: false, rate: { at: 1_000_000, orgBytes: 60, replyBytes: 0, txBps: 0, rxBps: 0 }, logTraffic: true, userId: 3, kernelClass: 1, ctId: 77 };
  const one = encodeDataBody({ seq: 1, records: [{ t: 'session', session: full }] });
  t.ok(one.length < 200, `IPv4 session record: ${one.length - 6} bytes`);
  t.same(decodeDataBody(one).records[0], { t: 'session', session: full });
  t.equal(encodeDataBody({ seq: 1, records: [{ t: 'end', serial: 42 }] }).length, 6 + 9);
  t.end();
});

t.test('what the binary layout does not cover goes as JSON, unchanged', (t) => {
  const s = { ...session(7, { family: 4, proto: 17, src: '198.51.100.2', dst: '203.0.113.2', sport: 5, dport: 53 } as FlowTuple, 0), timerAt: 0, timeout: 30, ttl: 30, ttlFromRule: false, refreshDir: 'both', org: { bytes: 1, packets: 1, allowErr: 0 }, rep: { bytes: 0, packets: 0, allowErr: 0 }, devOrg: [1, 2], devReply: [0, 0], offloaded: false, offloadPending: false, rate: { at: 0, orgBytes: 0, replyBytes: 0, txBps: 0, rxBps: 0 }, logTraffic: false } as Session;
  const records = [
    { t: 'session' as const, session: { ...s, futureField: { a: [1, 2] } } as unknown as Session },
    { t: 'session' as const, session: { ...s, policyId: -1 } },
    { t: 'session' as const, session: { ...s, orig: { ...s.orig, src: 'not an address' } } },
    { t: 'expect-end' as const, id: 9 },
    { t: 'serial' as const, next: 1000 },
    { t: 'bulk-begin' } as never,
  ];
  const b = encodeDataBody({ seq: 9, records });
  t.same(decodeDataBody(b), { seq: 9, records });
  t.end();
});

t.test('malformed bodies throw, never return half a message', (t) => {
  const s = { ...session(7, { family: 6, proto: 6, src: '2001:db8::1', dst: '2001:db8::2', sport: 5, dport: 80 } as FlowTuple, 0), timerAt: 0, timeout: 30, ttl: 30, ttlFromRule: false, refreshDir: 'both', org: { bytes: 1, packets: 1, allowErr: 0 }, rep: { bytes: 0, packets: 0, allowErr: 0 }, devOrg: [1, 2], devReply: [0, 0], offloaded: false, offloadPending: false, rate: { at: 0, orgBytes: 0, replyBytes: 0, txBps: 0, rxBps: 0 }, logTraffic: false, helper: 'ftp' } as Session;
  const b = encodeDataBody({ seq: 1, records: [{ t: 'session', session: s }, { t: 'end', serial: 3 }] });
  for (let n = 0; n < b.length; n++) t.throws(() => decodeDataBody(b.subarray(0, n)), `cut at ${n}`);
  t.throws(() => decodeDataBody(Buffer.concat([b, Buffer.from([0])])), /bytes after/);
  const bad = Buffer.from(b);
  bad[6] = 9;
  t.throws(() => decodeDataBody(bad), /unknown record kind 9/);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
    try { decodeDataBody(Buffer.from(junk)); } catch (e) { return e instanceof Error; }
    return true;
  }), { numRuns: 2000 });
  t.end();
});
