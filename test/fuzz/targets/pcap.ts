// Target: the capture reader as a replay uses it: bytes pushed into PcapParser in chunks of
// any size, packets pulled out, each one's link layer located (l3Start) and its IP packet
// decoded. Only PcapFormatError may be thrown; every packet is a view inside the bytes the
// parser holds; the parser's buffer grows with the input, not with what its length fields claim.

import fc from 'fast-check';
import { l3Start } from '../../../src/capture/link.js';
import {
  LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW, PcapFormatError, PcapngWriter, PcapParser, PcapWriter, type ByteSink,
} from '../../../src/capture/pcap.js';
import { decode } from '../../../src/packet/decode.js';
import { ensure, InvariantError } from '../check.js';
import { mutated } from '../mutate.js';
import { builtPacket } from '../packets.js';
import { corpusSeeds } from '../seeds.js';
import type { FuzzTarget } from '../target.js';

export interface PcapInput { bytes: Buffer; chunk: number }

function run({ bytes, chunk }: PcapInput): void {
  const p = new PcapParser(64);
  // Comments are read only on request: half the inputs ask.
  p.wantComments = chunk % 2 === 0;
  const step = Math.max(1, chunk);
  let packets = 0;
  const pull = () => {
    for (;;) {
      const r = p.next();
      if (!r) return;
      packets++;
      ensure(packets <= bytes.length / 12 + 1, `${packets} packets from ${bytes.length} bytes`);
      ensure(r.buf === p.buf && Number.isInteger(r.offset) && Number.isInteger(r.capLen), 'packet view not into the parser buffer');
      ensure(r.capLen >= 0 && r.offset >= 0 && r.offset + r.capLen <= p.end, () => `packet ${packets}: bytes ${r.offset}+${r.capLen} outside the ${p.end} held`);
      ensure(!Number.isNaN(r.tsMs), 'timestamp NaN');
      const l3 = l3Start(r.linkType, r.buf, r.offset, r.capLen);
      if (!l3.family) continue;
      ensure(l3.offset >= r.offset && l3.length > 0 && l3.offset + l3.length <= r.offset + r.capLen, () => `link layer ${l3.offset}+${l3.length} outside the packet ${r.offset}+${r.capLen}`);
      decode(r.buf, l3.offset, l3.length);
    }
  };
  try {
    for (let at = 0; at < bytes.length; at += step) {
      p.push(bytes.subarray(at, at + step));
      pull();
    }
    p.eof = true;
    pull();
  } catch (e) {
    if (e instanceof InvariantError) throw e;
    ensure(e instanceof PcapFormatError, () => `threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
  ensure(p.buf.length <= Math.max(64, 2 * bytes.length + 2 * step), `parser buffer of ${p.buf.length} bytes for ${bytes.length} bytes of input`);
}

class Collect implements ByteSink {
  parts: Buffer[] = [];
  write(b: Buffer): void { this.parts.push(Buffer.from(b)); }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

const ETH = Buffer.from('020000000002020000000001', 'hex');
/** The link header each writer's link type needs in front of an IP packet. */
function framed(link: number, ip: Buffer): Buffer {
  const v6 = ip[0] >> 4 === 6;
  switch (link) {
    case LINKTYPE_ETHERNET: return Buffer.concat([ETH, Buffer.from(v6 ? [0x86, 0xdd] : [0x08, 0x00]), ip]);
    case LINKTYPE_LINUX_SLL: return Buffer.concat([Buffer.alloc(14), Buffer.from(v6 ? [0x86, 0xdd] : [0x08, 0x00]), ip]);
    case LINKTYPE_LINUX_SLL2: { const h = Buffer.alloc(20); h.writeUInt16BE(v6 ? 0x86dd : 0x0800, 0); h.writeUInt32BE(3, 4); return Buffer.concat([h, ip]); }
    case LINKTYPE_NULL: { const h = Buffer.alloc(4); h.writeUInt32LE(v6 ? 30 : 2); return Buffer.concat([h, ip]); }
    default: return ip;
  }
}

/** A capture written by the project's own writers: classic pcap or pcapng with comments. */
const written = fc.tuple(fc.boolean(), fc.constantFrom(LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL), fc.array(builtPacket, { maxLength: 5 }), fc.option(fc.string({ maxLength: 20 })))
  .map(([ng, link, pkts, comment]) => {
    const sink = new Collect();
    if (ng) {
      const w = new PcapngWriter(sink);
      w.addInterface(link, 'eth0');
      pkts.forEach((x, i) => w.write(0, 1_700_000_000_000 + i, framed(link, x.bytes), comment ?? undefined));
    } else {
      const w = new PcapWriter(sink, link);
      pkts.forEach((x, i) => w.write(1_700_000_000_000 + i, framed(link, x.bytes)));
    }
    return sink.bytes();
  });

/** pcapng built block by block: section headers of either byte order, interfaces with options, and packet blocks of every kind with lengths that may not fit. */
const block = fc.record({
  type: fc.constantFrom(0x0a0d0d0a, 1, 1, 2, 3, 3, 5, 6, 6, 0x80000001),
  body: fc.uint8Array({ maxLength: 48 }),
  lie: fc.constantFrom(0, 0, 0, -4, 4, -8),
  le: fc.boolean(),
  words: fc.array(fc.oneof(fc.constantFrom(0, 1, 2, 4, 9, 14, 0x1a2b3c4d, 0xffffffff), fc.nat()), { maxLength: 6 }),
}).map(({ type, body, lie, le, words }) => {
  const head = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => (le ? head.writeUInt32LE(w >>> 0, i * 4) : head.writeUInt32BE(w >>> 0, i * 4)));
  if (type === 0x0a0d0d0a && head.length >= 4) (le ? head.writeUInt32LE(0x1a2b3c4d, 0) : head.writeUInt32BE(0x1a2b3c4d, 0));
  const content = Buffer.concat([head, body, Buffer.alloc((4 - ((head.length + body.length) % 4)) % 4)]);
  const len = Math.max(0, 12 + content.length + lie);
  const b = Buffer.alloc(12 + content.length);
  const w32 = (v: number, at: number) => (le ? b.writeUInt32LE(v >>> 0, at) : b.writeUInt32BE(v >>> 0, at));
  w32(type, 0); w32(len, 4); content.copy(b, 8); w32(len, b.length - 4);
  return b;
});
const blocks = fc.array(block, { minLength: 1, maxLength: 6 }).map((bs) => {
  const shb = Buffer.alloc(28);
  shb.writeUInt32LE(0x0a0d0d0a, 0); shb.writeUInt32LE(28, 4); shb.writeUInt32LE(0x1a2b3c4d, 8); shb.writeUInt16LE(1, 12); shb.writeInt32LE(-1, 16); shb.writeInt32LE(-1, 20); shb.writeUInt32LE(28, 24);
  const idb = Buffer.alloc(20);
  idb.writeUInt32LE(1, 0); idb.writeUInt32LE(20, 4); idb.writeUInt16LE(LINKTYPE_RAW, 8); idb.writeUInt32LE(20, 16);
  return Buffer.concat([shb, idb, ...bs]);
});

function arbitrary(): fc.Arbitrary<PcapInput> {
  const { files } = corpusSeeds();
  const chunk = fc.oneof(fc.constantFrom(1 << 20, 1 << 20, 1, 3, 4096), fc.integer({ min: 1, max: 512 }));
  const bytes: Array<fc.Arbitrary<Buffer>> = [written, written.chain((b) => mutated([b], 6)), blocks];
  if (files.length) bytes.push(mutated(files, 6));
  return fc.record({ bytes: fc.oneof(...bytes), chunk });
}

export const pcapTarget: FuzzTarget<PcapInput> = {
  name: 'pcap',
  invariants: [
    'PcapParser (fed in chunks of any size) throws nothing but PcapFormatError',
    'every packet is a view buf[offset, offset + capLen) with capLen >= 0 inside the bytes held',
    'the link layer (l3Start) points inside the packet; decode of it does not throw',
    'at most one packet per 12 input bytes; the parser buffer is bounded by twice the input',
  ],
  sources: ['src/capture/pcap.ts', 'src/capture/link.ts'],
  arbitrary,
  run,
};
