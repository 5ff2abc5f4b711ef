// Capture files: the streaming pcap/pcapng reader against our writers and against files other
// tools wrote (the corpus, editcap, tshark), link layers, IP fragment reassembly.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FdSink, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
  PcapFileReader, PcapngWriter, PcapParser, PcapWriter, type ByteSink,
} from '../../src/capture/pcap.js';
import { l3Start } from '../../src/capture/link.js';
import { Defragmenter } from '../../src/capture/defrag.js';
import { buildTcp, buildUdp, fragmentPacket } from '../../src/packet/build.js';
import { TCP_SYN } from '../../src/packet/types.js';

const CORPUS = '/work/shared/corpus/pcaps';
const hasTshark = spawnSync('tshark', ['--version']).status === 0;

class MemSink implements ByteSink {
  parts: Buffer[] = [];
  write(b: Buffer): void { this.parts.push(Buffer.from(b)); }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

function readAll(bytes: Buffer, chunk: number): Array<{ ts: number; link: number; data: string; orig: number; comment?: string }> {
  const p = new PcapParser(16);
  p.wantComments = true;
  const out: Array<{ ts: number; link: number; data: string; orig: number; comment?: string }> = [];
  for (let off = 0; off < bytes.length; off += chunk) {
    p.push(bytes.subarray(off, off + chunk));
    for (let r = p.next(); r; r = p.next()) {
      out.push({ ts: r.tsMs, link: r.linkType, data: r.buf.toString('hex', r.offset, r.offset + r.capLen), orig: r.origLen, ...(p.comment ? { comment: p.comment } : {}) });
    }
  }
  return out;
}

const pkt1 = buildTcp({ src: '198.51.100.2', dst: '203.0.113.2', sport: 33000, dport: 80, flags: TCP_SYN, seq: 12345 });
const pkt2 = buildUdp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 5000, dport: 53, payload: 'x'.repeat(101) });

t.test('pcap writer -> reader, any chunking', async (t) => {
  const sink = new MemSink();
  const w = new PcapWriter(sink, LINKTYPE_RAW);
  w.write(1700000000123.456, pkt1);
  w.write(1700000001000, pkt2, 2000);
  const bytes = sink.bytes();
  for (const chunk of [1, 3, 7, 64, bytes.length]) {
    const got = readAll(bytes, chunk);
    t.equal(got.length, 2, `chunk ${chunk}`);
    t.same(got.map((g) => g.data), [pkt1.toString('hex'), pkt2.toString('hex')]);
    t.same(got.map((g) => g.link), [101, 101]);
    t.equal(got[0].ts, 1700000000123.456);
    t.equal(got[1].orig, 2000);
  }
});

t.test('pcapng writer -> reader: interfaces, link types, comments', async (t) => {
  const sink = new MemSink();
  const w = new PcapngWriter(sink, { application: 'test' });
  const a = w.addInterface(LINKTYPE_RAW, 'raw0');
  const b = w.addInterface(LINKTYPE_ETHERNET, 'eth0');
  const eth = Buffer.concat([Buffer.from('0200000000010200000000020800', 'hex'), pkt1]);
  w.write(a, 1700000000000.001, pkt2, 'verdict=accept reason=existing');
  w.write(b, 1700000000500, eth);
  const bytes = sink.bytes();
  for (const chunk of [1, 5, bytes.length]) {
    const got = readAll(bytes, chunk);
    t.same(got.map((g) => g.link), [LINKTYPE_RAW, LINKTYPE_ETHERNET], `chunk ${chunk}`);
    t.equal(got[0].comment, 'verdict=accept reason=existing');
    t.equal(got[1].comment, undefined);
    t.equal(got[0].ts, 1700000000000.001);
    t.equal(got[1].data, eth.toString('hex'));
  }
});

t.test('tshark reads what the writers write (pcap and pcapng with comments)', { skip: !hasTshark && 'tshark missing' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-capture-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f1 = join(dir, 'a.pcap');
  const w1 = new PcapWriter(FdSink.open(f1), LINKTYPE_RAW);
  w1.write(1700000000000, pkt1);
  w1.write(1700000000250, pkt2);
  w1.close();
  const r1 = spawnSync('tshark', ['-r', f1, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.src', '-e', 'ipv6.src', '-e', 'tcp.seq_raw'], { encoding: 'utf8' });
  t.equal(r1.status, 0, r1.stderr);
  const lines = r1.stdout.trim().split('\n').map((l) => l.split('\t'));
  t.same(lines.map((l) => Number(l[0])), [1700000000, 1700000000.25]);
  t.same([lines[0][1], lines[0][3], lines[1][2]], ['198.51.100.2', '12345', '2001:db8::1']);

  const f2 = join(dir, 'b.pcapng');
  const w2 = new PcapngWriter(FdSink.open(f2));
  const i = w2.addInterface(LINKTYPE_RAW, 'nfqueue');
  w2.write(i, 1700000000000, pkt1, 'verdict=drop reason=policy-deny:0');
  w2.close();
  const r2 = spawnSync('tshark', ['-r', f2, '-T', 'fields', '-e', 'frame.comment', '-e', 'tcp.dstport'], { encoding: 'utf8' });
  t.equal(r2.status, 0, r2.stderr);
  t.equal(r2.stdout.trim(), 'verdict=drop reason=policy-deny:0\t80');
});

t.test('corpus files: counts and timestamps as capinfos/tshark see them, pcapng from editcap', { skip: !existsSync(CORPUS) && 'no corpus' }, async (t) => {
  const file = `${CORPUS}/ftp/zeek-ftp-ipv4-pasv-port.pcap`;
  const r = new PcapFileReader(file, 4096);
  const ts: number[] = [];
  for (let p = r.next(); p; p = r.next()) ts.push(p.tsMs);
  r.close();
  t.equal(ts.length, 95);
  t.equal(r.parser.format, 'pcap');
  if (hasTshark) {
    const tsh = spawnSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch'], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
    t.same(ts.map((x) => Math.round(x * 1000)), tsh.map((x) => Math.round(x * 1e6)), 'every timestamp to the microsecond');
    const dir = mkdtempSync(join(tmpdir(), 'nfs-capture-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const ng = join(dir, 'x.pcapng');
    const ed = spawnSync('editcap', ['-F', 'pcapng', file, ng]);
    if (ed.status === 0) {
      const r2 = new PcapFileReader(ng, 1000);
      const ts2: number[] = [];
      for (let p = r2.next(); p; p = r2.next()) ts2.push(p.tsMs);
      r2.close();
      t.equal(r2.parser.format, 'pcapng');
      t.same(ts2.map((x) => Math.round(x * 1000)), ts.map((x) => Math.round(x * 1000)));
    }
  }
  // DLT_NULL (BSD loopback) file of the corpus.
  const nul = new PcapFileReader(`${CORPUS}/tftp/zeek-tftp-rrq-oack-unsupported-opcode.pcap`);
  let n = 0;
  for (let p = nul.next(); p; p = nul.next()) {
    n++;
    t.equal(p.linkType, LINKTYPE_NULL);
    const l3 = l3Start(p.linkType, p.buf, p.offset, p.capLen);
    t.equal(l3.family, 4);
  }
  nul.close();
  t.equal(n, 7);
});

t.test('a capture cut inside a record: the whole records are read, the cut one is dropped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-capture-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sink = new MemSink();
  const w = new PcapWriter(sink, LINKTYPE_RAW);
  w.write(1000, pkt1);
  w.write(2000, pkt2);
  const bytes = sink.bytes();
  const f = join(dir, 'cut.pcap');
  writeFileSync(f, bytes.subarray(0, bytes.length - 10));
  const r = new PcapFileReader(f);
  let n = 0;
  while (r.next()) n++;
  r.close();
  t.equal(n, 1);
  t.equal(r.parser.truncated, true);
  writeFileSync(f, 'not a capture at all');
  t.throws(() => new PcapFileReader(f).next(), /not a pcap or pcapng/);
  t.ok(readFileSync(f));
});

t.test('link layers: where the IP packet starts', async (t) => {
  const ip = pkt1;
  const cases: Array<[string, number, Buffer, 4 | 6, number]> = [
    ['ethernet', LINKTYPE_ETHERNET, Buffer.from('0200000000010200000000020800', 'hex'), 4, 14],
    ['802.1Q', LINKTYPE_ETHERNET, Buffer.from('020000000001020000000002810000640800', 'hex'), 4, 18],
    ['QinQ', LINKTYPE_ETHERNET, Buffer.from('02000000000102000000000288a8000a810000640800', 'hex'), 4, 22],
    ['sll', LINKTYPE_LINUX_SLL, Buffer.from('00000001000602000000000200000800', 'hex'), 4, 16],
    ['sll2', LINKTYPE_LINUX_SLL2, Buffer.from('0800000000000007000104060200000000020000', 'hex'), 4, 20],
    ['null LE', LINKTYPE_NULL, Buffer.from('02000000', 'hex'), 4, 4],
    ['null BE', LINKTYPE_NULL, Buffer.from('00000002', 'hex'), 4, 4],
    ['null v6 (FreeBSD)', LINKTYPE_NULL, Buffer.from('1c000000', 'hex'), 6, 4],
    ['loop', LINKTYPE_LOOP, Buffer.from('00000002', 'hex'), 4, 4],
    ['raw', LINKTYPE_RAW, Buffer.alloc(0), 4, 0],
  ];
  for (const [name, lt, hdr, fam, off] of cases) {
    const frame = Buffer.concat([Buffer.from('ffff', 'hex'), hdr, fam === 4 ? ip : pkt2]);
    const r = l3Start(lt, frame, 2, frame.length - 2);
    t.equal(r.family, fam, name);
    t.equal(r.offset, 2 + off, name);
    t.equal(r.length, frame.length - 2 - off, name);
  }
  const sll2 = l3Start(LINKTYPE_LINUX_SLL2, Buffer.concat([Buffer.from('0800000000000007000104060200000000020000', 'hex'), ip]), 0, 20 + ip.length);
  t.equal(sll2.ifIndex, 7);
  t.equal(sll2.pktType, 4);
  t.equal(l3Start(LINKTYPE_ETHERNET, Buffer.from('0200000000010200000000020806000000', 'hex'), 0, 17).family, 0, 'ARP is not IP');
  t.equal(l3Start(12345, ip, 0, ip.length).family, 0, 'unknown link type');
});

t.test('fragments: reassembled out of order (IPv4, IPv6), incomplete ones counted', async (t) => {
  for (const [src, dst] of [['198.51.100.2', '203.0.113.2'], ['2001:db8::1', '2001:db8::2']]) {
    const whole = buildUdp({ src, dst, sport: 4000, dport: 5000, payload: Buffer.alloc(3000, 7), id: 77 });
    const frags = fragmentPacket(whole, 1000, 99);
    t.ok(frags.length >= 3);
    const d = new Defragmenter();
    const order = [frags.length - 1, ...frags.slice(0, -1).map((_, i) => i).reverse()];
    let got: Buffer | null | undefined = null;
    for (const i of order) {
      const f = frags[i];
      got = d.offer(f, 0, f.length, src.includes(':') ? 6 : 4, 1000);
      if (i !== order[order.length - 1]) t.equal(got, null);
    }
    t.ok(got, 'datagram complete');
    if (src.includes(':')) {
      // IPv6: the fragment header is gone, the rest is the original datagram.
      t.equal(got!.toString('hex'), whole.toString('hex'));
    } else {
      t.equal(got!.subarray(20).toString('hex'), whole.subarray(20).toString('hex'), 'IPv4 payload');
      t.equal(got!.readUInt16BE(2), whole.length, 'IPv4 total length');
      t.equal(got!.readUInt16BE(6) & 0x3fff, 0, 'no fragment bits');
    }
    t.same(d.counters, { fragments: frags.length, reassembled: 1, incomplete: 0, overlaps: 0 });
    // A datagram that never completes is dropped after the timeout and counted.
    d.offer(frags[0], 0, frags[0].length, src.includes(':') ? 6 : 4, 2000);
    t.equal(d.heldFragments(), 1);
    d.tick(2000 + 31_000);
    t.equal(d.counters.incomplete, 1);
    t.equal(d.offer(whole, 0, whole.length, src.includes(':') ? 6 : 4, 0), undefined, 'a whole packet is not held');
  }
});
