// Target: the per-packet decoder. decode() never throws; a malformed packet has a reason from
// MALFORMED_REASONS; a decoded one stays inside the window it was given and reads back what the
// builder put in. Calls are also compared with a second decode of the same bytes, since the
// decoder reuses module-level scratch state between calls.

import fc from 'fast-check';
import { decode, MALFORMED_REASONS } from '../../../src/packet/decode.js';
import type { FlowTuple } from '../../../src/packet/types.js';
import { ensure, ensureAddress, isPort } from '../check.js';
import { havoc } from '../havoc.js';
import { applyEdits, editArb, mutated } from '../mutate.js';
import { builtPacket, type Expected } from '../packets.js';
import { corpusSeeds } from '../seeds.js';
import type { FuzzTarget } from '../target.js';

export interface DecodeInput { bytes: Buffer; offset: number; length?: number; expect?: Expected }

const REASONS = new Set<string>(MALFORMED_REASONS);

function checkTuple(t: FlowTuple, family: 4 | 6, what: string): void {
  ensure(t.family === family, `${what}: family ${t.family}, the packet is IPv${family}`);
  ensureAddress(t.src, family, `${what} src`);
  ensureAddress(t.dst, family, `${what} dst`);
  ensure(isPort(t.sport) && isPort(t.dport), `${what}: ports ${t.sport}/${t.dport}`);
  ensure(Number.isInteger(t.proto) && t.proto >= 0 && t.proto <= 255, `${what}: proto ${t.proto}`);
}

function run({ bytes, offset, length, expect }: DecodeInput, thorough: boolean): void {
  const r = decode(bytes, offset, length);
  if (thorough) ensure(JSON.stringify(decode(bytes, offset, length)) === JSON.stringify(r), 'a second decode of the same bytes differs');
  if (!r.ok) {
    ensure(REASONS.has(r.reason), `reason '${r.reason}' is not in MALFORMED_REASONS`);
    ensure(!expect, () => `a built packet decoded as malformed: ${r.reason}`);
    return;
  }
  const start = Math.max(0, Math.floor(offset));
  const end = Math.min(bytes.length, length === undefined ? bytes.length : start + Math.max(0, Math.floor(length)));
  const family = bytes[start] >> 4;
  ensure(family === 4 || family === 6, `decoded a packet of version ${family}`);
  checkTuple(r.tuple, family, 'tuple');
  ensure(Number.isInteger(r.payloadOffset) && Number.isInteger(r.payloadLength) && r.payloadLength >= 0, `payload ${r.payloadOffset}+${r.payloadLength}`);
  ensure(r.payloadOffset >= start && r.payloadOffset + r.payloadLength <= end, `payload ${r.payloadOffset}+${r.payloadLength} outside the window ${start}..${end}`);
  ensure(Number.isInteger(r.length) && r.length > 0, `length ${r.length}`);
  ensure(r.tcpFlags >= 0 && r.tcpFlags <= 255, `tcpFlags ${r.tcpFlags}`);
  ensure(r.icmpType >= -1 && r.icmpType <= 255 && r.icmpCode >= -1 && r.icmpCode <= 255, `icmp ${r.icmpType}/${r.icmpCode}`);
  if (r.quoted) checkTuple(r.quoted, family, 'quoted tuple');
  if (!expect) return;
  const t = r.tuple;
  ensure(t.proto === expect.proto && t.src === expect.src && t.dst === expect.dst && t.sport === expect.sport && t.dport === expect.dport,
    () => `decoded ${JSON.stringify(t)}, built ${JSON.stringify(expect)}`);
  ensure(r.fragment === expect.fragment, `fragment ${r.fragment}, built ${expect.fragment}`);
  if (expect.payloadLength >= 0) ensure(r.payloadLength === expect.payloadLength, `payload length ${r.payloadLength}, built ${expect.payloadLength}`);
  if (expect.quoted) {
    ensure(r.quoted && r.quoted.sport === expect.quoted.sport && r.quoted.dport === expect.quoted.dport && r.quoted.proto === expect.quoted.proto,
      () => `quoted ${JSON.stringify(r.quoted)}, built ${JSON.stringify(expect.quoted)}`);
  }
}

function arbitrary(): fc.Arbitrary<DecodeInput> {
  const { packets } = corpusSeeds();
  const plain = (bytes: Buffer): DecodeInput => ({ bytes, offset: 0 });
  const arbs: Array<fc.WeightedArbitrary<DecodeInput>> = [
    { arbitrary: builtPacket.map((p) => ({ bytes: p.bytes, offset: 0, expect: p.expect })), weight: 3 },
    { arbitrary: fc.tuple(builtPacket, fc.array(editArb, { minLength: 1, maxLength: 4 })).map(([p, e]) => plain(applyEdits(p.bytes, e, []))), weight: 4 },
    { arbitrary: fc.uint8Array({ maxLength: 80 }).map((b) => plain(Buffer.from(b))), weight: 1 },
    // The packet inside a larger buffer, with an offset and a length that may overrun it.
    {
      arbitrary: fc.tuple(builtPacket, fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), fc.integer({ min: -64, max: 64 }), fc.boolean())
        .map(([p, pre, post, delta, withLength]) => ({
          bytes: Buffer.concat([pre, p.bytes, post]), offset: pre.length,
          ...(withLength ? { length: Math.max(0, p.bytes.length + delta) } : {}),
        })),
      weight: 2,
    },
  ];
  if (packets.length) arbs.push({ arbitrary: mutated(packets, 4).map(plain), weight: 4 });
  return fc.oneof(...arbs);
}

export const decodeTarget: FuzzTarget<DecodeInput> = {
  name: 'decode',
  invariants: [
    'decode never throws',
    'a malformed packet has a reason from MALFORMED_REASONS',
    'payloadOffset + payloadLength inside the window [offset, offset + length) and the buffer',
    'tuple family = IP version; addresses canonical of that family; ports 0-65535 (quoted tuples too)',
    'a packet built by src/packet/build.ts decodes to the tuple, payload length and fragment flag it was built with',
    'decoding the same bytes twice gives the same result',
  ],
  sources: ['src/packet/decode.ts', 'src/packet/address.ts'],
  arbitrary,
  run,
  // A mutant no longer holds what the builder put in.
  havoc: ({ bytes, offset, length }, r) => havoc({ bytes, offset, ...(length !== undefined ? { length } : {}) }, r),
};
