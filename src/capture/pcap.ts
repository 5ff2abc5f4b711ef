// pcap and pcapng, both directions, streamed. The reader is a pull parser over a window of its
// own buffer: bytes come from a file (read in chunks, never whole) or a stream (tcpdump's
// stdout), and next() hands out one packet at a time as a view into that buffer, in one record
// object reused for every packet (no per-packet allocation). The view is valid until the next
// call to next() or push(). The writers produce classic pcap (microsecond timestamps) and
// pcapng with per-packet comments (opt_comment), which Wireshark and tshark read.

import { closeSync, openSync, readSync, writeSync } from 'node:fs';

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;
const BT_IDB = 1;
const BT_OPB = 2;
const BT_SPB = 3;
const BT_EPB = 6;
/** The pcapng blocks the parser reads; the others it only steps over. */
const READ_BLOCKS = new Set([BT_IDB, BT_OPB, BT_SPB, BT_EPB]);

/** One captured packet. The reader reuses this object: copy what you keep. */
export interface CapturedPacket {
  /** Capture time in milliseconds since the epoch (sub-millisecond digits kept). */
  tsMs: number;
  linkType: number;
  /** pcapng interface id (0 for classic pcap). */
  ifId: number;
  /** The bytes are buf[offset, offset + capLen). */
  buf: Buffer;
  offset: number;
  capLen: number;
  /** Length on the wire. */
  origLen: number;
}

export class PcapFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PcapFormatError';
  }
}

interface Iface { linkType: number; unitsPerMs: number; offsetMs: number; name?: string }

/**
 * The largest packet a record may hold: what tcpdump and Wireshark accept for any link type.
 * A record header is read before its bytes are, so without this bound a crafted length makes
 * the parser reserve that many bytes. Records longer than a file's own snaplen are let through
 * up to it: some writers put a smaller snaplen in the header than they then capture.
 */
export const MAX_PACKET = 262144;
/** The largest pcapng block: a packet block with the largest packet and 128 KiB of options. */
export const MAX_BLOCK = 32 + MAX_PACKET + 131072;

/**
 * Pull parser for pcap and pcapng. Feed bytes with push() (streams) or let a FileSource fill it;
 * next() returns a packet, or null when it needs more bytes (or the input ended: see `ended`).
 */
export class PcapParser {
  buf: Buffer;
  pos = 0;
  end = 0;
  /** Offset in the input of buf[0]: the bytes before it were consumed and dropped. */
  private base = 0;
  /** Bytes of a block the parser does not read that are still to be skipped. */
  private skip = 0;
  /** 'pcap' | 'pcapng' once the header was read. */
  format: 'pcap' | 'pcapng' | undefined;
  /** Link type of classic pcap, or of the first pcapng interface. */
  linkType = -1;
  /** The source will give no more bytes. */
  eof = false;
  /** Interfaces of the current pcapng section (name when the IDB has if_name). */
  readonly interfaces: Iface[] = [];
  packets = 0;
  private le = true;
  private pcapUnitsPerMs = 1000;
  private readonly rec: CapturedPacket = { tsMs: 0, linkType: 0, ifId: 0, buf: Buffer.alloc(0), offset: 0, capLen: 0, origLen: 0 };
  /** Comment of the last pcapng EPB, when it had one (read only when wantComments). */
  comment: string | undefined;
  wantComments = false;

  constructor(initialSize = 1 << 20) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** Makes room for at least `n` more bytes after `end`, moving the unread bytes to the front. */
  reserve(n: number): void {
    const unread = this.end - this.pos;
    if (this.pos > 0 && this.buf.length - this.end < n) {
      this.buf.copy(this.buf, 0, this.pos, this.end);
      this.base += this.pos;
      this.pos = 0;
      this.end = unread;
    }
    if (this.buf.length - this.end < n) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, unread + n));
      this.buf.copy(next, 0, this.pos, this.end);
      this.buf = next;
      this.base += this.pos;
      this.pos = 0;
      this.end = unread;
    }
  }

  /** Appends stream bytes. Invalidates the last packet view. */
  push(chunk: Uint8Array): void {
    this.reserve(chunk.length);
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  private u32(off: number): number {
    const b = this.buf;
    return this.le
      ? (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0
      : ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
  }

  private u16(off: number): number {
    const b = this.buf;
    return this.le ? b[off] | (b[off + 1] << 8) : (b[off] << 8) | b[off + 1];
  }

  /** Bytes the parser needs before it can go on (0 when it can). */
  need = 0;

  /** Offset in the input of the next byte to parse (the start of the next record or block). */
  get offset(): number { return this.base + this.pos; }

  /** The next packet, or null when more bytes are needed (`need` says how many) or the input is exhausted. */
  next(): CapturedPacket | null {
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.end - this.pos);
        this.pos += n;
        this.skip -= n;
        if (this.skip > 0) {
          if (this.eof) this.truncated = true;
          return this.wait(1);
        }
      }
      const avail = this.end - this.pos;
      if (this.format === undefined) {
        if (avail < 4) return this.wait(4);
        const b = this.buf;
        const p = this.pos;
        const be = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
        const le = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
        if (be === PCAPNG_SHB) {
          this.format = 'pcapng';
          continue;
        }
        if (avail < 24) return this.wait(24);
        if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) this.le = true;
        else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) this.le = false;
        else throw new PcapFormatError(`not a pcap or pcapng file (magic ${be.toString(16).padStart(8, '0')})`);
        this.pcapUnitsPerMs = (this.le ? le : be) === PCAP_MAGIC_NS ? 1e6 : 1e3;
        this.linkType = this.u32(p + 20) & 0x0fffffff;
        this.format = 'pcap';
        this.pos += 24;
        continue;
      }
      if (this.format === 'pcap') {
        if (avail < 16) return this.wait(16);
        const p = this.pos;
        const capLen = this.u32(p + 8);
        if (capLen > MAX_PACKET) throw new PcapFormatError(`record ${this.packets + 1} at offset ${this.base + p}: captured length ${capLen} is over the maximum of ${MAX_PACKET}`);
        if (avail < 16 + capLen) return this.wait(16 + capLen);
        const r = this.rec;
        r.tsMs = this.u32(p) * 1000 + this.u32(p + 4) / this.pcapUnitsPerMs;
        r.linkType = this.linkType;
        r.ifId = 0;
        r.buf = this.buf;
        r.offset = p + 16;
        r.capLen = capLen;
        r.origLen = this.u32(p + 12);
        this.pos = p + 16 + capLen;
        this.packets++;
        return r;
      }
      // pcapng: every block is type, total length, body, total length.
      if (avail < 12) return this.wait(12);
      const p = this.pos;
      const b = this.buf;
      const typeBE = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
      if (typeBE === PCAPNG_SHB) {
        // A section header sets the byte order of everything up to the next one.
        const bom = (b[p + 8] | (b[p + 9] << 8) | (b[p + 10] << 16) | (b[p + 11] << 24)) >>> 0;
        if (bom === PCAPNG_BOM) this.le = true;
        else if (bom === 0x4d3c2b1a) this.le = false;
        else throw new PcapFormatError('pcapng section header with a bad byte-order magic');
        this.interfaces.length = 0;
      }
      const type = this.u32(p);
      const len = this.u32(p + 4);
      if (len < 12 || len % 4 !== 0) throw new PcapFormatError(`pcapng block of type ${type} at offset ${this.base + p} with bad length ${len}`);
      if (len > MAX_BLOCK) {
        // A block the parser reads is held whole, so it must fit the bound; any other is skipped
        // as its bytes come, never held.
        if (READ_BLOCKS.has(type) || typeBE === PCAPNG_SHB) throw new PcapFormatError(`pcapng block of type ${type} at offset ${this.base + p}: length ${len} is over the maximum of ${MAX_BLOCK}`);
        this.skip = len;
        continue;
      }
      if (avail < len) return this.wait(len);
      this.pos = p + len;
      const body = p + 8;
      const bodyEnd = p + len - 4;
      if (type === BT_IDB) {
        const iface: Iface = { linkType: this.u16(body), unitsPerMs: 1000, offsetMs: 0 };
        this.readIdbOptions(iface, body + 8, bodyEnd);
        this.interfaces.push(iface);
        if (this.linkType < 0) this.linkType = iface.linkType;
        continue;
      }
      if (type === BT_EPB || type === BT_OPB) {
        const epb = type === BT_EPB;
        const ifId = epb ? this.u32(body) : this.u16(body);
        const iface = this.interfaces[ifId];
        if (!iface) throw new PcapFormatError(`packet block names interface ${ifId}, which has no description block`);
        const hi = this.u32(body + 4);
        const lo = this.u32(body + 8);
        const capLen = this.u32(body + 12);
        const data = body + 20;
        if (capLen > MAX_PACKET) throw new PcapFormatError(`packet block at offset ${this.base + p}: captured length ${capLen} is over the maximum of ${MAX_PACKET}`);
        if (data + capLen > bodyEnd) throw new PcapFormatError(`packet block at offset ${this.base + p}: captured length ${capLen} past the block end`);
        const r = this.rec;
        r.tsMs = (hi * 4294967296 + lo) / iface.unitsPerMs + iface.offsetMs;
        r.linkType = iface.linkType;
        r.ifId = ifId;
        r.buf = b;
        r.offset = data;
        r.capLen = capLen;
        r.origLen = this.u32(body + 16);
        this.comment = undefined;
        if (this.wantComments) this.comment = this.readComment(data + ((capLen + 3) & ~3), bodyEnd);
        this.packets++;
        return r;
      }
      if (type === BT_SPB) {
        const iface = this.interfaces[0];
        if (!iface) throw new PcapFormatError('simple packet block without an interface description block');
        // The original length is the one field it must have: without it the packet length would be negative.
        if (len < 16) throw new PcapFormatError(`simple packet block of ${len} bytes, shorter than its header`);
        const origLen = this.u32(body);
        const r = this.rec;
        r.tsMs = 0;
        r.linkType = iface.linkType;
        r.ifId = 0;
        r.buf = b;
        r.offset = body + 4;
        r.capLen = Math.min(origLen, bodyEnd - body - 4);
        r.origLen = origLen;
        this.comment = undefined;
        this.packets++;
        return r;
      }
      // Name resolution, statistics, custom blocks...: not needed.
    }
  }

  private wait(n: number): null {
    this.need = n;
    if (this.eof && this.end - this.pos > 0 && this.format !== undefined) {
      // A capture cut short (tcpdump killed): the partial record is dropped, as tshark does.
      this.truncated = true;
    }
    return null;
  }

  /** The input ended inside a record. */
  truncated = false;

  private readIdbOptions(iface: Iface, off: number, end: number): void {
    while (off + 4 <= end) {
      const code = this.u16(off);
      const len = this.u16(off + 2);
      const v = off + 4;
      if (code === 0) break;
      if (code === 9 && len >= 1) {
        const r = this.buf[v];
        const units = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** (r & 0x7f);
        iface.unitsPerMs = units / 1000;
      } else if (code === 14 && len >= 8) {
        // if_tsoffset: seconds added to every timestamp of the interface (64 bits in section order).
        iface.offsetMs = this.le ? (this.u32(v + 4) * 4294967296 + this.u32(v)) * 1000 : (this.u32(v) * 4294967296 + this.u32(v + 4)) * 1000;
      } else if (code === 2 && len > 0) {
        iface.name = this.buf.toString('utf8', v, v + len).replace(/\0+$/, '');
      }
      off = v + ((len + 3) & ~3);
    }
  }

  private readComment(off: number, end: number): string | undefined {
    let out: string | undefined;
    while (off + 4 <= end) {
      const code = this.u16(off);
      const len = this.u16(off + 2);
      if (code === 0) break;
      if (code === 1) out = (out ? `${out}\n` : '') + this.buf.toString('utf8', off + 4, off + 4 + len);
      off += 4 + ((len + 3) & ~3);
    }
    return out;
  }
}

/** Reads a capture file through a PcapParser, one chunk at a time (the file is never read whole). */
export class PcapFileReader {
  readonly parser: PcapParser;
  private fd: number;
  bytesRead = 0;

  constructor(readonly path: string, private readonly chunkSize = 1 << 20) {
    this.parser = new PcapParser(chunkSize * 2);
    this.fd = openSync(path, 'r');
  }

  /** The next packet, or null at the end of the file. */
  next(): CapturedPacket | null {
    try {
      return this.read();
    } catch (e) {
      // Which file, for a replay of several.
      if (e instanceof PcapFormatError) throw new PcapFormatError(`${this.path}: ${e.message}`);
      throw e;
    }
  }

  private read(): CapturedPacket | null {
    const p = this.parser;
    for (;;) {
      const r = p.next();
      if (r) return r;
      if (p.eof) return null;
      p.reserve(Math.max(this.chunkSize, p.need));
      const n = readSync(this.fd, p.buf, p.end, p.buf.length - p.end, null);
      if (n === 0) {
        p.eof = true;
        // Let the parser see the end (marks a truncated last record).
        p.next();
        if (p.format === undefined) throw new PcapFormatError(this.bytesRead ? 'not a pcap or pcapng file (too short)' : 'empty file');
        return null;
      }
      p.end += n;
      this.bytesRead += n;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

// ---------------------------------------------------------------------------------------------
// Writers

/** Where writers put bytes: a file descriptor (sync, buffered) or any sink. */
export interface ByteSink { write(b: Buffer): void; close?(): void }

export class FdSink implements ByteSink {
  private readonly buf: Buffer;
  private n = 0;
  constructor(private fd: number, size = 1 << 16) {
    this.buf = Buffer.allocUnsafe(size);
  }
  /** Creates (or truncates) `path`, mode 0600; with exclusive, fails if it exists. */
  static open(path: string, exclusive = false): FdSink {
    return new FdSink(openSync(path, exclusive ? 'wx' : 'w', 0o600));
  }
  write(b: Buffer): void {
    if (this.n + b.length > this.buf.length) this.flush();
    if (b.length > this.buf.length) {
      writeAll(this.fd, b);
      return;
    }
    b.copy(this.buf, this.n);
    this.n += b.length;
  }
  flush(): void {
    if (this.n) writeAll(this.fd, this.buf.subarray(0, this.n));
    this.n = 0;
  }
  close(): void {
    if (this.fd < 0) return;
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }
}

function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
}

/** Classic pcap, little-endian, microsecond timestamps. */
export class PcapWriter {
  private readonly hdr = Buffer.alloc(16);
  packets = 0;
  constructor(private readonly sink: ByteSink, linkType: number, snapLen = 262144) {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(PCAP_MAGIC_US, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(snapLen, 16);
    h.writeUInt32LE(linkType, 20);
    sink.write(h);
  }
  /** One packet; `origLen` defaults to the captured length. */
  write(tsMs: number, data: Uint8Array, origLen = data.length): void {
    const sec = Math.floor(tsMs / 1000);
    let us = Math.round((tsMs - sec * 1000) * 1000);
    let s = sec;
    if (us >= 1_000_000) { s++; us -= 1_000_000; }
    const h = this.hdr;
    h.writeUInt32LE(s >>> 0, 0);
    h.writeUInt32LE(us, 4);
    h.writeUInt32LE(data.length, 8);
    h.writeUInt32LE(origLen, 12);
    this.sink.write(h);
    this.sink.write(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
    this.packets++;
  }
  close(): void { this.sink.close?.(); }
}

const pad4 = (n: number) => (n + 3) & ~3;

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

const END_OPT = Buffer.alloc(4);

function block(type: number, body: Buffer): Buffer {
  const len = 12 + body.length;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  body.copy(b, 8);
  b.writeUInt32LE(len, len - 4);
  return b;
}

/** pcapng, little-endian, microsecond timestamps, one section; packets may carry a comment. */
export class PcapngWriter {
  packets = 0;
  private ifaces = 0;
  constructor(private readonly sink: ByteSink, opts: { application?: string } = {}) {
    const shb = Buffer.alloc(16);
    shb.writeUInt32LE(PCAPNG_BOM, 0);
    shb.writeUInt16LE(1, 4);
    shb.writeUInt16LE(0, 6);
    shb.writeInt32LE(-1, 8);
    shb.writeInt32LE(-1, 12);
    const opts4 = opts.application ? Buffer.concat([option(4, Buffer.from(opts.application)), END_OPT]) : Buffer.alloc(0);
    sink.write(block(PCAPNG_SHB, Buffer.concat([shb, opts4])));
  }
  /** Declares an interface; returns its id. */
  addInterface(linkType: number, name?: string, snapLen = 262144): number {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(linkType, 0);
    h.writeUInt32LE(snapLen, 4);
    const opts = name ? Buffer.concat([option(2, Buffer.from(name)), END_OPT]) : Buffer.alloc(0);
    this.sink.write(block(BT_IDB, Buffer.concat([h, opts])));
    return this.ifaces++;
  }
  write(ifId: number, tsMs: number, data: Uint8Array, comment?: string, origLen = data.length): void {
    const units = Math.round(tsMs * 1000);
    const h = Buffer.alloc(20);
    h.writeUInt32LE(ifId, 0);
    h.writeUInt32LE(Math.floor(units / 4294967296), 4);
    h.writeUInt32LE(units % 4294967296, 8);
    h.writeUInt32LE(data.length, 12);
    h.writeUInt32LE(origLen, 16);
    const padded = Buffer.alloc(pad4(data.length));
    padded.set(data, 0);
    const opts = comment ? Buffer.concat([option(1, Buffer.from(comment)), END_OPT]) : Buffer.alloc(0);
    this.sink.write(block(BT_EPB, Buffer.concat([h, padded, opts])));
    this.packets++;
  }
  close(): void { this.sink.close?.(); }
}
