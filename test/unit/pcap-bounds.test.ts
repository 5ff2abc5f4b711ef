// Capture files that lie about their lengths: a record or block header claiming far more bytes
// than any packet has is refused with its offset before the reader makes room for it, and a
// large block the reader does not need is stepped over without being held.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LINKTYPE_RAW, MAX_BLOCK, MAX_PACKET, PcapFileReader, PcapFormatError, PcapngWriter, PcapParser, PcapWriter, type ByteSink,
} from '../../src/capture/pcap.js';
import { buildTcp } from '../../src/packet/build.js';
import { TCP_SYN } from '../../src/packet/types.js';

class MemSink implements ByteSink {
  parts: Buffer[] = [];
  write(b: Buffer): void { this.parts.push(Buffer.from(b)); }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

/** The message of the PcapFormatError `f` throws ('' when it throws none). */
function formatError(f: () => unknown): string {
  try { f(); } catch (e) { if (e instanceof PcapFormatError) return e.message; throw e; }
  return '';
}

const pkt = buildTcp({ src: '198.51.100.2', dst: '203.0.113.2', sport: 33000, dport: 80, flags: TCP_SYN, seq: 1 });

/** A classic pcap with one good record, then a record header claiming `inclLen` bytes and a few bytes of it. */
function lyingPcap(inclLen: number): { bytes: Buffer; badAt: number } {
  const sink = new MemSink();
  const w = new PcapWriter(sink, LINKTYPE_RAW);
  w.write(1000, pkt);
  const good = sink.bytes();
  const h = Buffer.alloc(16);
  h.writeUInt32LE(1, 0);
  h.writeUInt32LE(inclLen, 8);
  h.writeUInt32LE(inclLen, 12);
  return { bytes: Buffer.concat([good, h, Buffer.alloc(64)]), badAt: good.length };
}

function tmpFile(t: { teardown(f: () => void): void }, bytes: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-pcap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'x.pcap');
  writeFileSync(f, bytes);
  return f;
}

t.test('pcap: a record claiming more than the maximum is refused with its offset, nothing reserved for it', async (t) => {
  for (const inclLen of [MAX_PACKET + 1, 100 * 1024 * 1024, 0xffffffff]) {
    const { bytes, badAt } = lyingPcap(inclLen);
    const r = new PcapFileReader(tmpFile(t, bytes), 4096);
    t.ok(r.next(), 'the good record first');
    const m = formatError(() => r.next());
    t.match(m, `record 2 at offset ${badAt}: captured length ${inclLen} is over the maximum of ${MAX_PACKET}`, `incl_len ${inclLen}`);
    t.ok(r.parser.buf.length <= 2 * 4096 + 16, `the reader's buffer stayed ${r.parser.buf.length} bytes`);
    r.close();
  }
  // The largest allowed record still reads.
  const sink = new MemSink();
  const w = new PcapWriter(sink, LINKTYPE_RAW);
  w.write(1000, Buffer.alloc(MAX_PACKET, 0x45));
  const r = new PcapFileReader(tmpFile(t, sink.bytes()), 4096);
  t.equal(r.next()?.capLen, MAX_PACKET);
  t.equal(r.next(), null);
  r.close();
});

/** A pcapng section with one interface; `extra` blocks between it and one good packet. */
function pcapng(extra: Buffer[]): Buffer {
  const sink = new MemSink();
  const w = new PcapngWriter(sink);
  w.addInterface(LINKTYPE_RAW);
  const head = sink.bytes();
  sink.parts = [];
  w.write(0, 1000, pkt);
  return Buffer.concat([head, ...extra, sink.bytes()]);
}

function block(type: number, bodyLen: number): Buffer {
  const len = 12 + bodyLen;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  b.writeUInt32LE(len, len - 4);
  return b;
}

t.test('pcapng: packet blocks over the maximum are refused with their offset', async (t) => {
  const sink = new MemSink();
  new PcapngWriter(sink).addInterface(LINKTYPE_RAW);
  const at = sink.bytes().length;
  // An enhanced packet block claiming 100 MiB, of which only the header is there.
  const epb = Buffer.alloc(32);
  epb.writeUInt32LE(6, 0);
  epb.writeUInt32LE(100 * 1024 * 1024, 4);
  const p = new PcapParser(1 << 12);
  p.push(Buffer.concat([sink.bytes(), epb]));
  t.match(formatError(() => p.next()), `block of type 6 at offset ${at}: length ${100 * 1024 * 1024} is over the maximum of ${MAX_BLOCK}`);
  t.ok(p.buf.length < MAX_BLOCK, 'nothing reserved for it');

  // A block of a plausible length whose packet claims more than any packet has.
  const epb2 = block(6, 20 + 8);
  epb2.writeUInt32LE(MAX_PACKET + 1, 8 + 12);
  const p2 = new PcapParser(1 << 12);
  p2.push(Buffer.concat([sink.bytes(), epb2]));
  t.match(formatError(() => p2.next()), `packet block at offset ${at}: captured length ${MAX_PACKET + 1} is over the maximum of ${MAX_PACKET}`);
});

t.test('pcapng: a large block the reader does not need is stepped over, not held', async (t) => {
  // A custom block (type 0x40000BAD) of 1 MiB, then the packet.
  const bytes = pcapng([block(0x40000bad, 1 << 20)]);
  const p = new PcapParser(1 << 14);
  let got = 0;
  let most = 0;
  for (let off = 0; off < bytes.length; off += 1 << 14) {
    p.push(bytes.subarray(off, off + (1 << 14)));
    for (let r = p.next(); r; r = p.next()) { got++; t.equal(r.capLen, pkt.length); }
    most = Math.max(most, p.buf.length);
  }
  t.equal(got, 1, 'the packet after it read');
  t.ok(most <= 1 << 15, `the parser held at most ${most} bytes`);
  // Cut short inside the skipped block: the end of input is seen as a truncated capture.
  const q = new PcapParser(1 << 14);
  q.push(bytes.subarray(0, 200_000));
  q.eof = true;
  t.equal(q.next(), null);
  t.ok(q.truncated);
});
