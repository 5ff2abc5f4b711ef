// SDP (RFC 8866) as far as a firewall needs it: the connection address (session or media level,
// the media level wins), and per m= line the media type, port, transport and an a=rtcp port
// (RFC 3605). Everything else in the description is skipped. Never throws.

import { canonicalAddress } from '../packet/address.js';

export interface SdpMedia {
  /** audio, video, image, application, ... (lower case). */
  type: string;
  /** 0 = stream disabled or rejected (RFC 3264 §6). */
  port: number;
  /** RTP/AVP, RTP/SAVP, udptl, TCP/..., as written. */
  transport: string;
  /** The connection address that applies (media level, else session level), canonical; undefined if none or unparseable. */
  addr?: string;
  /** Family the c= line claimed (IP4/IP6), to tell a mismatch from a missing line. */
  family?: 4 | 6;
  /** a=rtcp:<port> if present. */
  rtcp?: number;
  /** Text of the c= line that applies when it could not be read (for refusal details). */
  badConn?: string;
}

/** m= lines read at most (a real offer has a handful). */
export const MAX_SDP_MEDIA = 16;

interface Conn { addr?: string; family?: 4 | 6; bad?: string }

/** `IN IP4 192.0.2.1`, `IN IP4 224.2.1.1/127/3`, `IN IP6 2001:db8::1`. */
function parseConnection(v: string): Conn {
  const m = /^IN\s+IP([46])\s+(\S+)/i.exec(v.trim());
  if (!m) return { bad: v.slice(0, 80) };
  const family = m[1] === '4' ? 4 : 6;
  // Multicast addresses carry /ttl and /count suffixes.
  const raw = m[2].split('/')[0];
  const addr = canonicalAddress(raw);
  if (!addr || addr.includes(':') !== (family === 6)) return { family, bad: v.slice(0, 80) };
  return { addr, family };
}

export function parseSdp(text: string): SdpMedia[] {
  const media: SdpMedia[] = [];
  let session: Conn = {};
  let cur: (SdpMedia & { conn?: Conn }) | undefined;
  const finish = () => {
    if (!cur) return;
    const c = cur.conn ?? session;
    const { conn: _c, ...m } = cur;
    if (c.addr) m.addr = c.addr;
    if (c.family) m.family = c.family;
    if (c.bad !== undefined) m.badConn = c.bad;
    media.push(m);
    cur = undefined;
  };
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length < 2 || line[1] !== '=') continue;
    const key = line[0];
    const value = line.slice(2);
    if (key === 'm') {
      finish();
      if (media.length >= MAX_SDP_MEDIA) break;
      // m=<media> <port>[/<number of ports>] <proto> <fmt> ...
      const m = /^([A-Za-z0-9_.-]+) +(\d{1,5})(?:\/\d+)? +(\S+)/.exec(value);
      cur = m
        ? { type: m[1].toLowerCase(), port: +m[2], transport: m[3] }
        : { type: 'invalid', port: 0, transport: '' };
    } else if (key === 'c') {
      const c = parseConnection(value);
      if (cur) cur.conn = c;
      else session = c;
    } else if (key === 'a' && cur) {
      const m = /^rtcp:(\d{1,5})(?:\s|$)/i.exec(value);
      if (m) cur.rtcp = +m[1];
    }
  }
  finish();
  return media;
}
