// `diagnose sniffer packet`: live capture printed in the vendor's sniffer style. tcpdump does the
// capturing and compiles the BPF filter (`tcpdump -U -w -`); its pcap stream is parsed here
// (src/capture/pcap.ts) and each packet printed by verbosity:
//   1  header line:  0.918957 198.51.100.2.33000 -> 203.0.113.2.80: syn 12345
//   2  + IP header and data in hex        3  + from the Ethernet header
//   4  header line with the interface name and in/out:  0.918957 veth-c in 198.51.100.2.33000 -> ...
//   5  4 + IP hex                         6  4 + Ethernet hex
// Timestamps are seconds since the sniffer started, or absolute with tsformat 'a' (UTC) / 'l'
// (local time). On the 'any' interface tcpdump captures Linux cooked v2 (interface index and
// direction per packet); its Ethernet header is rebuilt for verbosity 3/6 (destination MAC
// zero, as the vendor's sniffer shows on 'any').

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { ipv4ToString, ipv6ToString } from '../packet/address.js';
import { l3Start } from './link.js';
import { FdSink, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, PcapParser, PcapWriter, type CapturedPacket } from './pcap.js';

export interface FrameInfo {
  linkType: number;
  bytes: Uint8Array;
  /** Interface name (verbosity 4-6). */
  ifname?: string;
  /** 'in' | 'out' (verbosity 4-6). */
  direction?: string;
}

const ICMP4: Record<number, string> = { 0: 'echo reply', 8: 'echo request', 13: 'time stamp request', 14: 'time stamp reply', 5: 'redirect' };
const UNREACH: Record<number, string> = { 0: 'net', 1: 'host', 2: 'protocol', 3: 'port', 4: 'need to frag', 9: 'net prohibited', 10: 'host prohibited', 13: 'admin prohibited' };
const ICMP6: Record<number, string> = { 1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 4: 'parameter problem', 128: 'echo request', 129: 'echo reply', 133: 'router solicitation', 134: 'router advertisement', 135: 'neighbor solicitation', 136: 'neighbor advertisement' };

const mac = (b: Uint8Array, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function tcpText(b: Uint8Array, l4: number, payloadLen: number): string {
  const flags = b[l4 + 13];
  const seq = u32(b, l4 + 4);
  const ack = u32(b, l4 + 8);
  const names: string[] = [];
  if (flags & 0x01) names.push('fin');
  if (flags & 0x02) names.push('syn');
  if (flags & 0x04) names.push('rst');
  if (flags & 0x08) names.push('psh');
  if (flags & 0x20) names.push('urg');
  const parts: string[] = [];
  if (names.length || payloadLen > 0 || !(flags & 0x10)) parts.push(...names, String(seq));
  if (flags & 0x10) parts.push(`ack ${ack}`);
  return parts.join(' ');
}

/** The part after "src -> dst: " and the two endpoints, for one IP packet. */
function ipText(b: Uint8Array, off: number, len: number, family: 4 | 6): { src: string; dst: string; text: string } | undefined {
  let proto: number;
  let l4: number;
  let end: number;
  let src: string;
  let dst: string;
  let fragOff = 0;
  if (family === 4) {
    if (len < 20) return undefined;
    const ihl = (b[off] & 15) << 2;
    const total = (b[off + 2] << 8) | b[off + 3];
    proto = b[off + 9];
    src = ipv4ToString(b, off + 12);
    dst = ipv4ToString(b, off + 16);
    l4 = off + ihl;
    end = off + Math.min(len, total || len);
    fragOff = ((b[off + 6] << 8) | b[off + 7]) & 0x1fff;
  } else {
    if (len < 40) return undefined;
    proto = b[off + 6];
    src = ipv6ToString(b, off + 8);
    dst = ipv6ToString(b, off + 24);
    l4 = off + 40;
    end = off + Math.min(len, 40 + ((b[off + 4] << 8) | b[off + 5]));
    // Extension headers (hop-by-hop, routing, fragment, destination options).
    for (let i = 0; i < 8 && (proto === 0 || proto === 43 || proto === 44 || proto === 60) && l4 + 8 <= end; i++) {
      if (proto === 44) fragOff = ((b[l4 + 2] << 8) | b[l4 + 3]) >> 3;
      const next = b[l4];
      l4 += proto === 44 ? 8 : (b[l4 + 1] + 1) << 3;
      proto = next;
    }
  }
  const avail = end - l4;
  if (fragOff !== 0) return { src, dst, text: `frag offset ${fragOff * 8} proto ${proto} ${avail}` };
  if (proto === 6 && avail >= 20) {
    const doff = (b[l4 + 12] >> 4) << 2;
    const port = (o: number) => (b[o] << 8) | b[o + 1];
    return { src: `${src}.${port(l4)}`, dst: `${dst}.${port(l4 + 2)}`, text: tcpText(b, l4, Math.max(0, avail - doff)) };
  }
  if (proto === 17 && avail >= 8) {
    const port = (o: number) => (b[o] << 8) | b[o + 1];
    return { src: `${src}.${port(l4)}`, dst: `${dst}.${port(l4 + 2)}`, text: `udp ${Math.max(0, ((b[l4 + 4] << 8) | b[l4 + 5]) - 8)}` };
  }
  if (proto === 1 && family === 4 && avail >= 4) {
    const type = b[l4];
    const code = b[l4 + 1];
    let t = ICMP4[type];
    if (type === 3) {
      // The quoted packet names what was unreachable.
      const q = l4 + 8;
      const qd = avail >= 28 ? ipv4ToString(b, q + 16) : dst;
      t = `${qd} ${code === 3 && avail >= 8 + 20 + 4 ? `${b[q + 9] === 6 ? 'tcp' : b[q + 9] === 17 ? 'udp' : 'ip'} port ${(b[q + 22] << 8) | b[q + 23]} ` : ''}${code === 3 ? '' : `${UNREACH[code] ?? `code ${code}`} `}unreachable`.replace(/\s+/g, ' ');
    } else if (type === 11) t = 'time exceeded in-transit';
    return { src, dst, text: `icmp: ${t ?? `type-#${type}`}` };
  }
  if (proto === 58 && family === 6 && avail >= 4) {
    return { src, dst, text: `icmp6: ${ICMP6[b[l4]] ?? `type-#${b[l4]}`}` };
  }
  return { src, dst, text: `ip-proto-${proto} ${avail}` };
}

function arpText(b: Uint8Array, off: number, len: number): string {
  if (len < 28) return 'arp';
  const op = (b[off + 6] << 8) | b[off + 7];
  if (op === 1) return `arp who-has ${ipv4ToString(b, off + 24)} tell ${ipv4ToString(b, off + 14)}`;
  if (op === 2) return `arp reply ${ipv4ToString(b, off + 14)} is-at ${mac(b, off + 8)}`;
  return `arp op ${op}`;
}

/** The vendor's header line without timestamp and interface: `src.port -> dst.port: text`. */
export function describeFrame(linkType: number, b: Uint8Array, off = 0, len = b.length - off): string {
  const l3 = l3Start(linkType, b, off, len);
  if (l3.family === 0) {
    if (l3.etherType === 0x0806) return arpText(b, l3.offset, off + len - l3.offset);
    return l3.etherType ? `ethertype 0x${l3.etherType.toString(16).padStart(4, '0')}` : `link-type ${linkType} ${len}`;
  }
  const r = ipText(b, l3.offset, l3.length, l3.family);
  if (!r) return `truncated-ip${l3.family === 6 ? '6' : ''} ${l3.length}`;
  return `${r.src} -> ${r.dst}: ${r.text}`;
}

/** 16 bytes a line: `0x0000\t 4500 003c ...\tE..<...` (offset, 8 groups of 2 bytes, printable text). */
export function hexDump(b: Uint8Array): string {
  const lines: string[] = [];
  for (let o = 0; o < b.length; o += 16) {
    const row = b.subarray(o, Math.min(o + 16, b.length));
    const groups: string[] = [];
    for (let i = 0; i < row.length; i += 2) {
      groups.push(row[i].toString(16).padStart(2, '0') + (i + 1 < row.length ? row[i + 1].toString(16).padStart(2, '0') : ''));
    }
    const text = Array.from(row, (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    lines.push(`0x${o.toString(16).padStart(4, '0')}\t ${groups.join(' ').padEnd(39)}\t${text}`);
  }
  return lines.join('\n');
}

/** The frame from its Ethernet header (rebuilt for Linux cooked captures), for verbosity 3/6. */
function ethernetBytes(linkType: number, b: Uint8Array): Uint8Array {
  if (linkType === LINKTYPE_ETHERNET) return b;
  const l3 = l3Start(linkType, b, 0, b.length);
  const hdr = Buffer.alloc(14);
  if (linkType === LINKTYPE_LINUX_SLL2 && b.length >= 20 && b[11] === 6) Buffer.from(b.subarray(12, 18)).copy(hdr, 6);
  if (linkType === LINKTYPE_LINUX_SLL && b.length >= 16 && b[5] === 6) Buffer.from(b.subarray(6, 12)).copy(hdr, 6);
  const et = l3.etherType || (l3.family === 6 ? 0x86dd : l3.family === 4 ? 0x0800 : 0);
  hdr.writeUInt16BE(et, 12);
  const off = l3.family || l3.etherType ? l3.offset : b.length;
  return Buffer.concat([hdr, b.subarray(off)]);
}

function ipBytes(linkType: number, b: Uint8Array): Uint8Array {
  const l3 = l3Start(linkType, b, 0, b.length);
  if (l3.family === 0 && !l3.etherType) return b;
  return b.subarray(l3.offset, l3.offset + l3.length);
}

/** Timestamp text: seconds since start, or 'a' absolute UTC / 'l' local `YYYY-MM-DD HH:MM:SS.uuuuuu`. */
export function tsText(tsMs: number, startMs: number, tsformat?: string): string {
  if (tsformat === 'a' || tsformat === 'l') {
    const d = new Date(Math.floor(tsMs));
    const us = String(Math.round((tsMs % 1000) * 1000) % 1_000_000).padStart(6, '0');
    const p2 = (n: number) => String(n).padStart(2, '0');
    const [Y, M, D, h, m, s] = tsformat === 'a'
      ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
      : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
    return `${Y}-${p2(M)}-${p2(D)} ${p2(h)}:${p2(m)}:${p2(s)}.${us}`;
  }
  return (Math.max(0, tsMs - startMs) / 1000).toFixed(6);
}

/** One packet as the vendor's sniffer prints it at `verbosity` (1-6). */
export function formatSnifferPacket(f: FrameInfo, ts: string, verbosity: number): string {
  const withIf = verbosity >= 4;
  const head = `${ts} ${withIf ? `${f.ifname ?? '?'} ${f.direction ?? 'in'} ` : ''}${describeFrame(f.linkType, f.bytes)}`;
  const level = withIf ? verbosity - 3 : verbosity;
  if (level === 2) return `${head}\n${hexDump(ipBytes(f.linkType, f.bytes))}\n`;
  if (level === 3) return `${head}\n${hexDump(ethernetBytes(f.linkType, f.bytes))}\n`;
  return head;
}

// ---------------------------------------------------------------------------------------------
// The live sniffer: tcpdump as the capturing child, this process prints.

export interface SnifferOptions {
  iface: string;
  /** BPF filter; 'none' or empty for everything. */
  filter: string;
  verbosity: number;
  /** 0 = until stopped. */
  count: number;
  tsformat?: string;
  /** Also write the packets to this pcap file. */
  write?: string;
  /** Where lines go (default stdout). */
  out?: (text: string) => void;
  tcpdump?: string;
}

/** Interface index -> name in this network namespace. */
export function interfaceNames(): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const name of readdirSync('/sys/class/net')) {
      try {
        m.set(Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()), name);
      } catch { /* gone */ }
    }
  } catch { /* no sysfs */ }
  return m;
}

function ownMac(iface: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${iface}/address`, 'utf8').trim().toLowerCase();
  } catch {
    return undefined;
  }
}

export class Sniffer {
  private child?: ChildProcess;
  private readonly parser = new PcapParser(1 << 16);
  private writer?: PcapWriter;
  private readonly names = interfaceNames();
  private readonly mac: string | undefined;
  private startMs = Date.now();
  private stderr = '';
  printed = 0;
  /** Resolves with tcpdump's counters once it has exited. */
  done?: Promise<{ received: number; dropped: number; code: number | null }>;

  constructor(private readonly o: SnifferOptions) {
    this.mac = o.iface === 'any' ? undefined : ownMac(o.iface);
  }

  private out(text: string): void {
    if (this.o.out) this.o.out(text);
    else process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Starts tcpdump; resolves once it listens (the header lines are printed then). */
  start(): Promise<void> {
    const filter = this.o.filter && this.o.filter !== 'none' ? this.o.filter : '';
    const argv = ['-U', '-w', '-', '-n', '-s', '262144', '-i', this.o.iface,
      ...(this.o.iface === 'any' ? ['-y', 'LINUX_SLL2'] : []),
      ...(this.o.count > 0 ? ['-c', String(this.o.count)] : []),
      ...(filter ? [filter] : [])];
    const child = spawn(this.o.tcpdump ?? 'tcpdump', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.startMs = Date.now();
    let ready: () => void = () => undefined;
    let failed: (e: Error) => void = () => undefined;
    const listening = new Promise<void>((res, rej) => { ready = res; failed = rej; });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      this.stderr += s;
      if (/listening on /.test(this.stderr)) ready();
    });
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    child.on('error', (e) => failed(new Error(`cannot run tcpdump: ${e.message}`)));
    this.done = new Promise((res) => {
      child.on('close', (code) => {
        const n = (re: RegExp) => Number(re.exec(this.stderr)?.[1] ?? this.printed);
        this.writer?.close();
        res({ received: n(/(\d+) packets? received by filter/), dropped: Number(/(\d+) packets? dropped by kernel/.exec(this.stderr)?.[1] ?? 0), code });
        failed(new Error(`tcpdump exited (code ${code}): ${this.stderr.trim()}`));
      });
    });
    return listening.then(() => {
      this.out(`interfaces=[${this.o.iface}]\nfilters=[${filter || 'none'}]`);
    });
  }

  private onData(chunk: Buffer): void {
    const p = this.parser;
    p.push(chunk);
    for (let r = p.next(); r; r = p.next()) this.packet(r);
  }

  private packet(r: CapturedPacket): void {
    if (this.o.count > 0 && this.printed >= this.o.count) return;
    const bytes = r.buf.subarray(r.offset, r.offset + r.capLen);
    if (this.o.write) {
      this.writer ??= new PcapWriter(FdSink.open(this.o.write), r.linkType);
      this.writer.write(r.tsMs, bytes, r.origLen);
    }
    const f: FrameInfo = { linkType: r.linkType, bytes };
    if (this.o.verbosity >= 4) {
      if (r.linkType === LINKTYPE_LINUX_SLL2) {
        const l3 = l3Start(r.linkType, bytes, 0, bytes.length);
        f.ifname = this.names.get(l3.ifIndex) ?? `if${l3.ifIndex}`;
        f.direction = l3.pktType === 4 ? 'out' : 'in';
      } else {
        f.ifname = this.o.iface;
        f.direction = r.linkType === LINKTYPE_ETHERNET && this.mac && mac(bytes, 6) === this.mac ? 'out' : 'in';
      }
    }
    this.out(formatSnifferPacket(f, tsText(r.tsMs, this.startMs, this.o.tsformat), this.o.verbosity));
    this.printed++;
  }

  /** Stops tcpdump (SIGTERM to its PID) and waits for it. */
  async stop(): Promise<{ received: number; dropped: number; code: number | null }> {
    const c = this.child;
    if (c && c.exitCode === null && c.pid !== undefined) {
      try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ }
    }
    return this.done!;
  }
}
