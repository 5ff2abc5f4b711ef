// Readers for the ground truths of the third-party capture corpus (../shared/corpus, see its
// MANIFEST.md): Zeek TSV logs (btest baselines, also the `zeek-cut` column extracts), nDPI
// `ndpiReader` flow lists, Suricata-verify test.yaml checks, and the tshark decode written beside
// each capture (a second decode, not truth: conversation tables and protocol field lines).
// Small and strict: a line these do not understand throws, so a changed format is noticed.

import { readFileSync } from 'node:fs';

export interface Endpoint { addr: string; port: number }

const num = (s: string, what: string): number => {
  if (!/^-?\d+(\.\d+)?$/.test(s)) throw new Error(`${what}: not a number: ${JSON.stringify(s)}`);
  return Number(s);
};

/** `addr:port`, `[v6]:port` or a bare IPv6 `a:b::c:port` (tshark) → endpoint. */
export function endpoint(text: string): Endpoint {
  const br = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (br) return { addr: br[1], port: +br[2] };
  const i = text.lastIndexOf(':');
  if (i <= 0) throw new Error(`endpoint without a port: ${text}`);
  return { addr: text.slice(0, i), port: num(text.slice(i + 1), text) };
}

// ---------------------------------------------------------------- Zeek

export interface ZeekLog {
  path: string;
  fields: string[];
  /** Field → value; Zeek's unset (`-`) and empty (`(empty)`) markers are kept as written. */
  rows: Array<Record<string, string>>;
}

/** A Zeek ASCII log with its `#fields` header (btest baselines mask timestamps as XXXX). */
export function parseZeekLog(text: string): ZeekLog {
  let sep = '\t';
  let fields: string[] | undefined;
  let path = '';
  const rows: ZeekLog['rows'] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    if (line.startsWith('#')) {
      const sepM = /^#separator (.+)$/.exec(line);
      if (sepM) sep = sepM[1].replace(/\\x([0-9a-f]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
      else if (line.startsWith('#fields')) fields = line.split(sep).slice(1);
      else if (line.startsWith('#path')) path = line.split(sep)[1] ?? '';
      continue;
    }
    if (!fields) throw new Error(`Zeek log row before #fields: ${line}`);
    const v = line.split(sep);
    if (v.length !== fields.length) throw new Error(`Zeek log row has ${v.length} fields, #fields names ${fields.length}: ${line}`);
    rows.push(Object.fromEntries(fields.map((f, i) => [f, v[i]])));
  }
  if (!fields) throw new Error('Zeek log without #fields');
  return { path, fields, rows };
}

/** A `zeek-cut` extract (no header): tab-separated columns named by the caller. */
export function parseZeekCut(text: string, columns: string[]): Array<Record<string, string>> {
  const rows: Array<Record<string, string>> = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const v = line.replace(/\t$/, '').split('\t');
    if (v.length !== columns.length) throw new Error(`zeek-cut row has ${v.length} columns, expected ${columns.join(' ')}: ${line}`);
    rows.push(Object.fromEntries(columns.map((c, i) => [c, v[i]])));
  }
  return rows;
}

/** The columns a btest script's `zeek-cut` canonifier keeps for a log (e.g. `zeek-cut uid service orig_ip_bytes resp_ip_bytes`). */
export function zeekCutColumns(testScript: string, log: string): string[] {
  const m = new RegExp(`zeek-cut ([\\w. ]+)'\\s+btest-diff ${log.replace('.', '\\.')}`).exec(testScript);
  if (!m) throw new Error(`no zeek-cut canonifier for ${log}`);
  return m[1].trim().split(/\s+/);
}

export interface ZeekConn {
  orig: Endpoint;
  resp: Endpoint;
  proto: string;
  /** service=ftp-data etc.; empty when unset. */
  services: string[];
  connState: string;
  history: string;
  /** Seconds; undefined when unset (one-packet connections). */
  duration?: number;
  origPkts: number;
  origIpBytes: number;
  respPkts: number;
  respIpBytes: number;
  /** Payload bytes (from TCP sequence numbers); undefined when unset. */
  origBytes?: number;
  respBytes?: number;
  missedBytes: number;
}

const unset = (v: string | undefined) => v === undefined || v === '-' || v === '(empty)';

/** conn.log rows. */
export function zeekConns(log: ZeekLog): ZeekConn[] {
  if (log.path !== 'conn') throw new Error(`not a conn.log: #path ${log.path}`);
  return log.rows.map((r) => ({
    orig: { addr: r['id.orig_h'], port: num(r['id.orig_p'], 'id.orig_p') },
    resp: { addr: r['id.resp_h'], port: num(r['id.resp_p'], 'id.resp_p') },
    proto: r.proto,
    services: unset(r.service) ? [] : r.service.split(','),
    connState: r.conn_state,
    history: unset(r.history) ? '' : r.history,
    ...(unset(r.duration) ? {} : { duration: num(r.duration, 'duration') }),
    origPkts: num(r.orig_pkts, 'orig_pkts'),
    origIpBytes: num(r.orig_ip_bytes, 'orig_ip_bytes'),
    respPkts: num(r.resp_pkts, 'resp_pkts'),
    respIpBytes: num(r.resp_ip_bytes, 'resp_ip_bytes'),
    ...(unset(r.orig_bytes) ? {} : { origBytes: num(r.orig_bytes, 'orig_bytes') }),
    ...(unset(r.resp_bytes) ? {} : { respBytes: num(r.resp_bytes, 'resp_bytes') }),
    missedBytes: unset(r.missed_bytes) ? 0 : num(r.missed_bytes, 'missed_bytes'),
  }));
}

export interface DataChannel {
  passive: boolean;
  /** `orig_h` will connect to `resp_h:resp_p`/tcp. */
  orig_h: string;
  resp_h: string;
  resp_p: number;
  command: string;
}

/** ftp.log rows that describe an expected data channel (data_channel.* set). */
export function zeekDataChannels(log: ZeekLog): DataChannel[] {
  if (log.path !== 'ftp') throw new Error(`not an ftp.log: #path ${log.path}`);
  return log.rows.filter((r) => !unset(r['data_channel.resp_h'])).map((r) => ({
    passive: r['data_channel.passive'] === 'T',
    orig_h: r['data_channel.orig_h'],
    resp_h: r['data_channel.resp_h'],
    resp_p: num(r['data_channel.resp_p'], 'data_channel.resp_p'),
    command: r.command,
  }));
}

// ---------------------------------------------------------------- nDPI

export interface NdpiFlow {
  /** The flow's number in its list (the undetected list numbers from 1 again). */
  n: number;
  undetected: boolean;
  l4: string;
  a: Endpoint;
  b: Endpoint;
  /** `<->` (packets seen both ways) or `->`. */
  bidirectional: boolean;
  /** The [proto: N/NAME] name, e.g. FTP_CONTROL, RTP, Unknown. */
  proto: string;
  /** Packets and bytes (frame bytes, L2 included) a→b and b→a. */
  pkts: [number, number];
  bytes: [number, number];
}

/** The numbered flow lines of `ndpiReader` regression output (detected, then "Undetected flows:"). */
export function parseNdpi(text: string): NdpiFlow[] {
  const out: NdpiFlow[] = [];
  let undetected = false;
  for (const line of text.split('\n')) {
    if (/^Undetected flows:/.test(line)) { undetected = true; continue; }
    if (!/^\t\d+\t/.test(line)) continue;
    const m = /^\t(\d+)\t(\w+) (\S+) (<->|->) (\S+) \[proto: [\d.]+\/([^\]]+)\]/.exec(line);
    if (!m) throw new Error(`nDPI flow line not understood: ${line.slice(0, 120)}`);
    const c = /\[(\d+) pkts\/(\d+) bytes (?:<->|->) (\d+) pkts\/(\d+) bytes\]/.exec(line);
    if (!c) throw new Error(`nDPI flow line without packet counts: ${line.slice(0, 120)}`);
    out.push({
      n: +m[1], undetected, l4: m[2], a: endpoint(m[3]), b: endpoint(m[5]), bidirectional: m[4] === '<->', proto: m[6],
      pkts: [+c[1], +c[3]], bytes: [+c[2], +c[4]],
    });
  }
  return out;
}

// ---------------------------------------------------------------- Suricata-verify

export interface SuricataCheck {
  count: number;
  /** Flattened match keys (`tftp: {file: x}` → `tftp.file`), values unquoted. */
  match: Record<string, string>;
}

/** The `checks: - filter: {count, match}` entries of a suricata-verify test.yaml (the subset they use). */
export function suricataChecks(text: string): SuricataCheck[] {
  const out: SuricataCheck[] = [];
  let cur: SuricataCheck | undefined;
  let matchIndent = -1;
  const stack: Array<{ indent: number; key: string }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').replace(/^\s*#.*$/, '');
    if (!line.trim()) continue;
    const indent = line.length - line.trimStart().length;
    const t = line.trim();
    if (/^- filter:$/.test(t)) { cur = { count: NaN, match: {} }; out.push(cur); matchIndent = -1; continue; }
    if (!cur) continue;
    if (matchIndent >= 0 && indent > matchIndent) {
      const kv = /^([\w.\-[\]]+):\s*(.*)$/.exec(t);
      if (!kv) throw new Error(`test.yaml match line not understood: ${t}`);
      while (stack.length && stack[stack.length - 1].indent >= indent) stack.pop();
      const key = [...stack.map((s) => s.key), kv[1]].join('.');
      if (kv[2] === '') stack.push({ indent, key: kv[1] });
      else cur.match[key] = kv[2].replace(/^(['"])(.*)\1$/, '$2');
      continue;
    }
    matchIndent = -1;
    stack.length = 0;
    const cnt = /^count:\s*(\d+)$/.exec(t);
    if (cnt) cur.count = +cnt[1];
    else if (t === 'match:') matchIndent = indent;
  }
  return out;
}

/** Checks whose match includes every given key/value. */
export const checksWith = (checks: SuricataCheck[], want: Record<string, string>) =>
  checks.filter((c) => Object.entries(want).every(([k, v]) => c.match[k] === v));

// ---------------------------------------------------------------- tshark (a second decode, not truth)

export interface TsharkConversation {
  l4: 'tcp' | 'udp' | 'ip';
  a: Endpoint;
  b: Endpoint;
  /** Frames b→a and a→b as tshark prints them (its "<-" and "->" columns). */
  framesToA: number;
  framesToB: number;
}

/** The TCP/UDP/IP conversation tables of a `<capture>.tshark.txt` (observe-tshark.sh). */
export function tsharkConversations(text: string): TsharkConversation[] {
  const out: TsharkConversation[] = [];
  let section: TsharkConversation['l4'] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) {
      section = line.startsWith('## TCP conv') ? 'tcp' : line.startsWith('## UDP conv') ? 'udp' : line.startsWith('## ICMP/other IP conv') ? 'ip' : undefined;
      continue;
    }
    if (!section || !line.includes('<->')) continue;
    const m = /^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+[\d.]+ (?:bytes|kB|MB|GB)\s+(\d+)\s+[\d.]+ (?:bytes|kB|MB|GB)\s/.exec(line);
    if (!m) throw new Error(`tshark conversation line not understood: ${line}`);
    const ep = (s: string): Endpoint => (section === 'ip' ? { addr: s, port: 0 } : endpoint(s));
    out.push({ l4: section, a: ep(m[1]), b: ep(m[2]), framesToA: +m[3], framesToB: +m[4] });
  }
  return out;
}

export interface TsharkFtpLine { frame: number; src: string; sport: number; command: string; arg: string; code: number | undefined; reply: string }

/** The "FTP data-channel negotiation" field lines (frame, ip.src, ipv6.src, tcp.srcport, command, arg, code, reply). */
export function tsharkFtpLines(text: string): TsharkFtpLine[] {
  const out: TsharkFtpLine[] = [];
  let on = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) { on = line.startsWith('## FTP data-channel'); continue; }
    if (!on || !line.trim()) continue;
    const f = line.split('\t');
    if (f.length < 8) throw new Error(`tshark FTP line not understood: ${line}`);
    out.push({ frame: +f[0], src: f[1] || f[2], sport: +f[3], command: f[4], arg: f[5], code: f[6] ? +f[6] : undefined, reply: f[7] });
  }
  return out;
}

export interface Pinhole { src: string; dst: string; dport: number; from: string }

/**
 * The data channels an FTP negotiation names, read the way the protocol defines them: PORT/EPRT
 * (client → server): the server will connect to the named address; 227/229 (server → client): the
 * client will connect to the named address (229: the server's own). `client`/`server` are the
 * control connection's endpoints. Addresses are taken as written (a third-party PORT stays so).
 */
export function ftpPinholes(lines: TsharkFtpLine[], client: string, server: string): Pinhole[] {
  const out: Pinhole[] = [];
  for (const l of lines) {
    if (l.command === 'PORT') {
      const n = l.arg.split(',').map(Number);
      out.push({ src: server, dst: n.slice(0, 4).join('.'), dport: n[4] * 256 + n[5], from: `frame ${l.frame} PORT ${l.arg}` });
    } else if (l.command === 'EPRT') {
      const [, , addr, port] = l.arg.split(l.arg[0]);
      out.push({ src: server, dst: addr, dport: +port, from: `frame ${l.frame} EPRT ${l.arg}` });
    } else if (l.code === 227) {
      const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(l.reply);
      if (!m) throw new Error(`227 without an address: ${l.reply}`);
      out.push({ src: client, dst: m.slice(1, 5).join('.'), dport: +m[5] * 256 + +m[6], from: `frame ${l.frame} 227 ${l.reply}` });
    } else if (l.code === 229) {
      const m = /\((.)\1\1(\d+)\1\)/.exec(l.reply);
      if (!m) throw new Error(`229 without a port: ${l.reply}`);
      out.push({ src: client, dst: server, dport: +m[2], from: `frame ${l.frame} 229 ${l.reply}` });
    }
  }
  return out;
}

export interface TsharkSdpLine {
  frame: number; src: string; sport: number; dst: string; dport: number;
  method: string; status: number | undefined; cseq: string;
  /** c= address and m= lines as tshark decoded them (it honours Content-Length). */
  conn: string; media: string;
}

/** "SIP messages carrying SDP" lines (frame, src, sport, dst, dport, method, status, CSeq, c=, m=). */
export function tsharkSdpLines(text: string): TsharkSdpLine[] {
  const out: TsharkSdpLine[] = [];
  let on = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) { on = line.startsWith('## SIP messages carrying SDP'); continue; }
    if (!on || !line.trim()) continue;
    const f = line.split('\t');
    if (f.length < 10) throw new Error(`tshark SDP line not understood: ${line}`);
    out.push({ frame: +f[0], src: f[1], sport: +f[2], dst: f[3], dport: +f[4], method: f[5], status: f[6] ? +f[6] : undefined, cseq: f[7], conn: f[8], media: f[9] });
  }
  return out;
}

/** "raw c=/m= lines found anywhere in SIP UDP payloads" (ignores Content-Length): frame → the lines. */
export function tsharkRawSdp(text: string): Map<number, string> {
  const out = new Map<number, string>();
  let on = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) { on = line.startsWith('## raw c=/m= lines'); continue; }
    if (!on || !line.trim()) continue;
    const [frame, rest] = line.split('\t');
    out.set(+frame, rest ?? '');
  }
  return out;
}

export const readText = (path: string) => readFileSync(path, 'latin1');
