// SIP (RFC 3261) with SDP offers and answers (RFC 3264): the media streams a call negotiates.
//
// Which messages open media: SDP bodies of INVITE, UPDATE, ACK and PRACK requests, and of 1xx/2xx
// responses to INVITE, UPDATE and PRACK (183 Session Progress carries early media). SDP in other
// messages (an OPTIONS 200 describes capabilities, an error response explains itself) opens nothing.
// Which close them: BYE and CANCEL, and a final non-2xx response to the call's INVITE (the kernel's
// flush_expectations on invite_cseq). Media expectations are tagged with the Call-ID, so closing one
// call leaves the others on the same signalling session alone (the kernel flushes them all).
//
// Direction: an SDP sent by X announcing `c=A` `m=audio P` says "send my media to A:P": the peer
// will send to it, so the expectation is { src: the other signalling endpoint, dst: A, dport: P }
// (RTP) and P+1 or the a=rtcp port (RTCP), source port any. As the kernel with sip_direct_media=1
// (its default), A must be X's own address: an SDP naming another host would let either endpoint
// punch a hole towards a third host (refused, reason 'sip-media-peer'). With sip-media-any-peer the
// host may differ (media servers, B2BUAs, corpus capture 14 where SIP runs to .35 and media to .36);
// the kernel then expects media from any source. Our expectations need a source address, so we use
// the one the other party's own SDP announced for the same media type once it is known (that is
// where its media comes from), else its signalling address.
//
// Lifetime: timeout 0, the expectations track the signalling session. Media may start long after
// the offer (early media, a call answered after a minute of ringing, a stream resumed from hold)
// and every way a call ends (BYE, CANCEL, a final error, the signalling session ending or being
// cleared) removes them; a per-call timeout would either cut slow answers or outlive short calls.
// The kernel uses 180 s and refreshes on each SDP.
//
// Re-INVITE / UPDATE: each side's last SDP is kept per call. When a side's media change (another
// port, a stream disabled with port 0) the call's expectations are released and opened again
// from both sides' current SDP; an unchanged SDP (a retransmission, the ACK repeating the offer)
// opens nothing. Ports below 1024 are refused as the kernel does ("wrong port").
//
// Content-Length: the body is exactly Content-Length bytes (compact `l:`), also over UDP where a
// datagram may carry more (RFC 3261 §18.3: the excess MUST be discarded). Corpus capture 17 has
// m= lines beyond Content-Length: tshark honours it and shows no media; so do we. The endpoint
// acts on the body it reads, which ends at Content-Length: opening media from bytes it discards
// would let a sender open pinholes no call uses (firewall and endpoint disagreeing is how
// smuggling works), whereas the opposite mistake only fails closed. A Content-Length longer than
// the datagram (a truncated message) reads no SDP at all.
//
// Over TCP the stream is framed by the header block and Content-Length (no Content-Length: empty
// body), with bounded buffers: a header block longer than MAX_HEAD is skipped up to its end, a body
// longer than MAX_BODY is skipped unread (the message itself still counts: a BYE still closes).

import { IPPROTO_TCP, IPPROTO_UDP, type Direction } from '../packet/types.js';
import { parseSdp, type SdpMedia } from './sdp.js';
import type { ControlView, ExpectRequest, HelperOptions, HelperResult, Refusal, SessionHelper } from './types.js';

/** Header block read at most (RFC 3261 sets no limit; real ones are 0.5–4 KiB). */
export const MAX_HEAD = 16384;
/** Body read at most. */
export const MAX_BODY = 65536;
/** Calls remembered per signalling session; beyond it the oldest is forgotten and its media closed. */
export const MAX_CALLS = 32;
/** Call-IDs longer than this are not believed. */
const MAX_CALL_ID = 256;

/** A stream the helper opened media for, as announced by one side. */
interface Stream { type: string; addr: string; port: number; rtcp?: number }

interface Side {
  /** Signature of the SDP's media as read (to tell a change from a repetition). */
  sig: string;
  streams: Stream[];
}

interface Call {
  id: string;
  /** CSeq number of the call's last INVITE; -1 unknown. */
  inviteCseq: number;
  /** Last SDP from the org side [0] and the reply side [1]. */
  sides: [Side | null, Side | null];
  /** Keys of the expectations currently open for the call. */
  open: string[];
}

interface TcpFrame {
  buf: Buffer;
  /** Leading bytes of buf already searched for the end of the header block (no rescans per segment). */
  scan: number;
  /** Body bytes still to skip unread. */
  skipBody: number;
  /** Inside an over-long header block: skip to its end. */
  skipHead: boolean;
}

export interface SipState {
  /** Least recently used first. */
  calls: Call[];
  tcp: [TcpFrame, TcpFrame] | null;
  /** Messages whose framing or body could not be read. */
  malformed: number;
}

const newFrame = (): TcpFrame => ({ buf: Buffer.alloc(0), scan: 0, skipBody: 0, skipHead: false });

// Compact forms (RFC 3261 §7.3.3) of the headers read here.
const COMPACT: Record<string, string> = { i: 'call-id', l: 'content-length', c: 'content-type', e: 'content-encoding' };

interface Message {
  method?: string;
  code?: number;
  headers: Map<string, string[]>;
  /** Undefined when unread (too long, truncated, conflicting lengths). */
  body?: Buffer;
}

/** Header block text (without the blank line) → start line and headers; undefined if not SIP. */
function parseHead(text: string): Omit<Message, 'body'> | undefined {
  const lines = text.split(/\r?\n/);
  const start = lines[0] ?? '';
  let method: string | undefined;
  let code: number | undefined;
  const resp = /^SIP\/2\.0 +(\d{3})(?: |$)/i.exec(start);
  if (resp) code = +resp[1];
  else {
    const req = /^([A-Za-z]{2,16}) +\S+ +SIP\/2\.0\s*$/i.exec(start);
    if (!req) return undefined;
    method = req[1].toUpperCase();
  }
  const headers = new Map<string, string[]>();
  let last: { name: string; list: string[] } | undefined;
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i];
    if ((l[0] === ' ' || l[0] === '\t') && last) {
      // Folded continuation of the previous header.
      last.list[last.list.length - 1] += ' ' + l.trim();
      continue;
    }
    const colon = l.indexOf(':');
    if (colon <= 0) continue;
    let name = l.slice(0, colon).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    let list = headers.get(name);
    if (!list) headers.set(name, (list = []));
    list.push(l.slice(colon + 1).trim());
    last = { name, list };
  }
  return { method, code, headers };
}

/** Content-Length: undefined if absent, NaN if invalid or conflicting. */
function contentLength(h: Map<string, string[]>): number | undefined {
  const v = h.get('content-length');
  if (!v) return undefined;
  const n = v.map((x) => (/^\d{1,9}$/.test(x) ? +x : NaN));
  return n.every((x) => x === n[0]) ? n[0] : NaN;
}

/** Ends of the header block: [index of the blank line, index after it], or undefined. */
function headEnd(buf: Buffer, from = 0): [number, number] | undefined {
  const crlf = buf.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buf.indexOf('\n\n', from, 'latin1');
  if (crlf < 0 && lf < 0) return undefined;
  if (lf >= 0 && (crlf < 0 || lf < crlf)) return [lf, lf + 2];
  return [crlf, crlf + 4];
}

/** Skips CR/LF keep-alives (RFC 5626) before a message. */
function skipBlank(buf: Buffer): number {
  let i = 0;
  while (i < buf.length && (buf[i] === 0x0d || buf[i] === 0x0a)) i++;
  return i;
}

function readDatagram(st: SipState, d: Buffer): Message | undefined {
  const b = d.subarray(skipBlank(d));
  if (!b.length) return undefined;
  const end = headEnd(b);
  const head = parseHead(b.toString('latin1', 0, end ? end[0] : Math.min(b.length, MAX_HEAD)));
  if (!head) return undefined;
  if (!end) return head;
  const rest = b.subarray(end[1]);
  const cl = contentLength(head.headers);
  if (cl === undefined) return { ...head, body: rest };
  if (Number.isNaN(cl) || cl > rest.length) {
    st.malformed++;
    return head;
  }
  return { ...head, body: rest.subarray(0, cl) };
}

/** Frames the messages of one TCP direction. */
function readStream(st: SipState, f: TcpFrame, chunk: Buffer): Message[] {
  const out: Message[] = [];
  let buf = f.buf.length ? Buffer.concat([f.buf, chunk]) : chunk;
  let scan = f.scan;
  f.scan = 0;
  for (;;) {
    if (f.skipBody > 0) {
      const n = Math.min(f.skipBody, buf.length);
      f.skipBody -= n;
      buf = buf.subarray(n);
      if (f.skipBody > 0) break;
    }
    if (f.skipHead) {
      const end = headEnd(buf);
      if (!end) { buf = buf.subarray(Math.max(0, buf.length - 3)); break; }
      f.skipHead = false;
      buf = buf.subarray(end[1]);
    }
    const blank = skipBlank(buf);
    if (blank) { buf = buf.subarray(blank); scan = 0; }
    if (!buf.length) break;
    const end = headEnd(buf, Math.max(0, scan - 3));
    scan = 0;
    if (!end) {
      if (buf.length > MAX_HEAD) {
        st.malformed++;
        f.skipHead = true;
        buf = buf.subarray(buf.length - 3);
      } else f.scan = buf.length;
      break;
    }
    if (end[0] > MAX_HEAD) {
      st.malformed++;
      buf = buf.subarray(end[1]);
      continue;
    }
    const head = parseHead(buf.toString('latin1', 0, end[0]));
    const cl = head ? contentLength(head.headers) ?? 0 : 0;
    if (head && Number.isNaN(cl)) {
      // Unframeable: the body (if any) will be read as garbage headers and ignored.
      st.malformed++;
      out.push(head);
      buf = buf.subarray(end[1]);
      continue;
    }
    if (cl > MAX_BODY) {
      st.malformed++;
      if (head) out.push(head);
      f.skipBody = cl;
      buf = buf.subarray(end[1]);
      continue;
    }
    if (buf.length < end[1] + cl) break;
    if (head) out.push({ ...head, body: buf.subarray(end[1], end[1] + cl) });
    buf = buf.subarray(end[1] + cl);
  }
  // Own the remainder (the chunk is the engine's packet buffer).
  f.buf = Buffer.from(buf);
  return out;
}

const first = (h: Map<string, string[]>, name: string): string | undefined => h.get(name)?.[0];

function isSdp(m: Message): boolean {
  if (!m.body || !m.body.length) return false;
  if (m.headers.has('content-encoding') && !/^identity$/i.test(first(m.headers, 'content-encoding') ?? '')) return false;
  const ct = first(m.headers, 'content-type');
  if (ct === undefined) return m.body.subarray(0, 2).toString('latin1') === 'v=';
  return ct.split(';')[0].trim().toLowerCase() === 'application/sdp';
}

const SDP_METHODS = new Set(['INVITE', 'UPDATE', 'ACK', 'PRACK']);
const SDP_RESPONSES = new Set(['INVITE', 'UPDATE', 'PRACK']);

const key = (x: ExpectRequest) => `${x.kind}|${x.src}|${x.dst}|${x.dport}`;

export const sipHelper: SessionHelper<SipState> = {
  name: 'sip',
  init: (ctl: ControlView) => ({ calls: [], tcp: ctl.orig.proto === IPPROTO_TCP ? [newFrame(), newFrame()] : null, malformed: 0 }),
  data(st: SipState, dir: Direction, bytes: Buffer, ctl: ControlView, opts: HelperOptions): HelperResult | undefined {
    const side = dir === 'org' ? 0 : 1;
    let msgs: Message[];
    if (st.tcp) msgs = readStream(st, st.tcp[side], bytes);
    else {
      const m = readDatagram(st, bytes);
      msgs = m ? [m] : [];
    }
    const expect: ExpectRequest[] = [];
    const refuse: Refusal[] = [];
    const release: string[] = [];
    for (const m of msgs) handle(st, side, m, ctl, opts, expect, refuse, release);
    if (!expect.length && !refuse.length && !release.length) return undefined;
    const r: HelperResult = {};
    if (release.length) r.release = release;
    if (expect.length) r.expect = expect;
    if (refuse.length) r.refuse = refuse;
    return r;
  },
};

function handle(st: SipState, side: 0 | 1, m: Message, ctl: ControlView, opts: HelperOptions,
  expect: ExpectRequest[], refuse: Refusal[], release: string[]): void {
  const callId = first(m.headers, 'call-id');
  if (!callId || callId.length > MAX_CALL_ID) return;
  const cseqM = /^(\d{1,10})\s+([A-Za-z]+)/.exec(first(m.headers, 'cseq') ?? '');
  const cseq = cseqM ? +cseqM[1] : -1;
  const cseqMethod = cseqM ? cseqM[2].toUpperCase() : '';
  const idx = st.calls.findIndex((c) => c.id === callId);
  const known = idx >= 0 ? st.calls[idx] : undefined;
  const forget = () => {
    if (idx >= 0) st.calls.splice(idx, 1);
    if (!release.includes(callId)) release.push(callId);
    // A later message of the same batch must not re-add what this one released.
    for (let i = expect.length - 1; i >= 0; i--) if (expect[i].tag === callId) expect.splice(i, 1);
  };
  let sdp = false;
  if (m.method !== undefined) {
    if (m.method === 'BYE' || m.method === 'CANCEL') { forget(); return; }
    sdp = SDP_METHODS.has(m.method) && isSdp(m);
    // The INVITE's CSeq tells its final response from those of other transactions.
    if (m.method === 'INVITE' && cseq >= 0) touch(st, callId, release).inviteCseq = cseq;
  } else {
    const code = m.code ?? 0;
    if (cseqMethod === 'INVITE' && code >= 300 && known && (known.inviteCseq < 0 || known.inviteCseq === cseq)) { forget(); return; }
    sdp = code >= 100 && code < 300 && SDP_RESPONSES.has(cseqMethod) && isSdp(m);
  }
  if (!sdp) return;
  const call = touch(st, callId, release);
  offerAnswer(call, side, parseSdp(m.body!.toString('latin1')), ctl, opts, expect, refuse, release);
}

/** The call's record, moved to the most recently used end; a new one may push the oldest out. */
function touch(st: SipState, id: string, release: string[]): Call {
  const i = st.calls.findIndex((c) => c.id === id);
  if (i >= 0) {
    const [c] = st.calls.splice(i, 1);
    st.calls.push(c);
    return c;
  }
  while (st.calls.length >= MAX_CALLS) {
    const old = st.calls.shift()!;
    if (old.open.length && !release.includes(old.id)) release.push(old.id);
  }
  const c: Call = { id, inviteCseq: -1, sides: [null, null], open: [] };
  st.calls.push(c);
  return c;
}

function offerAnswer(call: Call, side: 0 | 1, media: SdpMedia[], ctl: ControlView, opts: HelperOptions,
  expect: ExpectRequest[], refuse: Refusal[], release: string[]): void {
  const sig = JSON.stringify(media);
  if (call.sides[side]?.sig === sig) return;
  const sender = side === 0 ? ctl.orig.src : ctl.reply.src;
  const streams: Stream[] = [];
  for (const md of media) {
    if (md.port === 0) continue;
    if (md.type !== 'audio' && md.type !== 'video' && md.type !== 'image') continue;
    // Media over TCP (RFC 4145) is a connection of its own, not what this helper opens.
    if (/^TCP/i.test(md.transport)) continue;
    const what = `m=${md.type} ${md.port}`;
    if (!md.addr) {
      refuse.push({ reason: 'malformed', detail: `${what}: ${md.badConn !== undefined ? `connection address not understood: ${md.badConn}` : 'no connection address'}` });
      continue;
    }
    if ((md.family === 6) !== (ctl.orig.family === 6)) {
      refuse.push({ reason: 'malformed', detail: `${what}: c=IN IP${md.family} ${md.addr} on an IPv${ctl.orig.family} signalling session` });
      continue;
    }
    // c=0.0.0.0 (RFC 2543 hold): no media.
    if (md.addr === '0.0.0.0' || md.addr === '::') continue;
    if (md.port < 1024 || md.port > 65535) {
      refuse.push({ reason: 'malformed', detail: `${what}: port out of range 1024-65535` });
      continue;
    }
    if (md.addr !== sender && !opts.sipMediaAnyPeer) {
      refuse.push({ reason: 'sip-media-peer', detail: `${what} names ${md.addr}, not the sender ${sender}` });
      continue;
    }
    const s: Stream = { type: md.type, addr: md.addr, port: md.port };
    const rtcp = md.rtcp ?? md.port + 1;
    if (md.type !== 'image' && rtcp >= 1024 && rtcp <= 65535 && rtcp !== md.port) s.rtcp = rtcp;
    streams.push(s);
  }
  call.sides[side] = { sig, streams };

  // What the call should have open now, from both sides' current SDP.
  const want: ExpectRequest[] = [];
  for (const sd of [0, 1] as const) {
    const mine = call.sides[sd]?.streams ?? [];
    const other = call.sides[sd === 0 ? 1 : 0]?.streams ?? [];
    const peer = sd === 0 ? ctl.orig.dst : ctl.reply.dst;
    for (const s of mine) {
      const src = opts.sipMediaAnyPeer ? (other.find((o) => o.type === s.type) ?? other[0])?.addr ?? peer : peer;
      const base = { proto: IPPROTO_UDP, src, sport: 0, dst: s.addr, timeout: 0, tag: call.id };
      want.push({ kind: s.type === 'image' ? 'udptl' : 'rtp', ...base, dport: s.port });
      if (s.rtcp !== undefined) want.push({ kind: 'rtcp', ...base, dport: s.rtcp });
    }
  }
  const wantKeys = want.map(key);
  const openNow = new Set(call.open);
  const kept = call.open.every((k) => wantKeys.includes(k));
  if (kept) {
    for (const x of want) if (!openNow.has(key(x))) expect.push(x);
  } else {
    if (!release.includes(call.id)) release.push(call.id);
    for (let i = expect.length - 1; i >= 0; i--) if (expect[i].tag === call.id) expect.splice(i, 1);
    expect.push(...want);
  }
  call.open = [...new Set(wantKeys)];
}
