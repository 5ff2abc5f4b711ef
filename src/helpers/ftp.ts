// FTP (RFC 959, RFC 2428): the data connections the control channel negotiates.
//   client → server  PORT h1,h2,h3,h4,p1,p2      the server will connect to h:p (active)
//                    EPRT |1|a.b.c.d|p| or |2|v6|p|
//   server → client  227 ... (h1,h2,h3,h4,p1,p2)  the client will connect to h:p (passive)
//                    229 ... (|||p|)              the client will connect to the server's p
// As in nf_conntrack_ftp.c (loose=0), an address that is not the sender's own opens nothing: a
// PORT naming a third host is the FTP bounce attack, a 227 naming another host a hole into it.
// After AUTH TLS is accepted (234) the channel is encrypted and nothing more can be read.

import { IPPROTO_TCP, type Direction } from '../packet/types.js';
import { canonicalAddress } from '../packet/address.js';
import { newLines, splitLines, type LineState } from './lines.js';
import type { ControlView, ExpectRequest, HelperOptions, HelperResult, Refusal, SessionHelper } from './types.js';

/** Longest command or reply line parsed; real ones are far shorter (RFC 959 has no limit, servers use 512+). */
const MAX_LINE = 2048;

export interface FtpState {
  lines: [LineState, LineState];
  /** AUTH TLS accepted: the rest of the channel is ciphertext. */
  encrypted: boolean;
  /** A client AUTH command awaits its reply. */
  authPending: boolean;
}

function parseRfc959(text: string): { addr: string; port: number } | undefined {
  const m = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/.exec(text);
  if (!m) return undefined;
  const n = m.slice(1).map(Number);
  if (n.some((x) => x > 255)) return undefined;
  const port = n[4] * 256 + n[5];
  if (port === 0) return undefined;
  return { addr: `${n[0]}.${n[1]}.${n[2]}.${n[3]}`, port };
}

/** EPRT argument: <d><proto><d><addr><d><port><d>, the delimiter any printable ASCII (RFC 2428). */
function parseEprt(arg: string): { family: 4 | 6; addr: string; port: number } | undefined {
  const d = arg[0];
  if (!d || d.charCodeAt(0) < 33 || d.charCodeAt(0) > 126) return undefined;
  const parts = arg.split(d);
  if (parts.length < 5 || parts[0] !== '') return undefined;
  const [, af, addr, port] = parts;
  if (af !== '1' && af !== '2') return undefined;
  const family = af === '1' ? 4 : 6;
  const canon = canonicalAddress(addr);
  if (!canon || (family === 4) !== !canon.includes(':')) return undefined;
  if (!/^\d{1,5}$/.test(port) || +port < 1 || +port > 65535) return undefined;
  return { family, addr: canon, port: +port };
}

/** 229 reply: "(<d><d><d><port><d>)". */
function parseEpsv(text: string): number | undefined {
  const m = /\(([!-~])\1\1(\d{1,5})\1\)/.exec(text);
  if (!m) return undefined;
  const port = +m[2];
  return port >= 1 && port <= 65535 ? port : undefined;
}

export const ftpHelper: SessionHelper<FtpState> = {
  name: 'ftp',
  init: () => ({ lines: [newLines(), newLines()], encrypted: false, authPending: false }),
  data(st: FtpState, dir: Direction, bytes: Buffer, ctl: ControlView, opts: HelperOptions): HelperResult | undefined {
    if (st.encrypted) return undefined;
    const expect: ExpectRequest[] = [];
    const refuse: Refusal[] = [];
    const lines = splitLines(st.lines[dir === 'org' ? 0 : 1], bytes, MAX_LINE);
    // The sender of this direction and its peer, as the tuples name them.
    const sender = dir === 'org' ? ctl.orig.src : ctl.reply.src;
    const peer = dir === 'org' ? ctl.orig.dst : ctl.reply.dst;
    const family = ctl.orig.family;
    const open = (addr: string, port: number, what: string, reason: string) => {
      if (addr !== sender && !opts.ftpThirdParty) {
        refuse.push({ reason, detail: `${what} names ${addr}:${port}, not the sender ${sender}` });
        return;
      }
      expect.push({ kind: 'ftp-data', proto: IPPROTO_TCP, src: peer, sport: 0, dst: addr, dport: port });
    };
    for (const line of lines) {
      if (st.encrypted) break;
      if (dir === 'org') {
        const m = /^([A-Za-z]{3,4})(?: (.*))?$/.exec(line);
        if (!m) continue;
        const cmd = m[1].toUpperCase();
        const arg = (m[2] ?? '').trim();
        if (cmd === 'AUTH') st.authPending = true;
        else if (cmd === 'PORT') {
          const p = family === 4 ? parseRfc959(arg) : undefined;
          if (p) open(p.addr, p.port, 'PORT', 'ftp-bounce');
          else refuse.push({ reason: 'malformed', detail: `PORT argument not understood: ${arg.slice(0, 64)}` });
        } else if (cmd === 'EPRT') {
          const p = parseEprt(arg);
          if (p && p.family === family) open(p.addr, p.port, 'EPRT', 'ftp-bounce');
          else refuse.push({ reason: 'malformed', detail: `EPRT argument not understood: ${arg.slice(0, 64)}` });
        }
      } else {
        const m = /^(\d{3})([ -])(.*)$/.exec(line);
        if (!m) continue;
        const code = m[1];
        if (code === '234' && st.authPending) { st.encrypted = true; break; }
        if (m[2] === ' ' && code[0] !== '1') st.authPending = false;
        if (code === '227') {
          const p = family === 4 ? parseRfc959(m[3]) : undefined;
          if (p) open(p.addr, p.port, '227 reply', 'ftp-third-party');
        } else if (code === '229') {
          const port = parseEpsv(m[3]);
          if (port) open(sender, port, '229 reply', 'ftp-third-party');
        }
      }
    }
    if (!expect.length && !refuse.length) return undefined;
    return { expect, refuse };
  },
};
