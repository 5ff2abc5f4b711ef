// SunRPC portmapper / rpcbind on port 111 (the vendor's "pmap" helper; conntrack-tools' rpc.c):
// a client asks where an RPC program listens, the answer is a port it will connect to next.
//
//   portmap v2   PMAPPROC_GETPORT (proc 3)  call: prog, vers, prot (6|17), port   reply: port
//   rpcbind v3/4 RPCBPROC_GETADDR (proc 3), v4 RPCBPROC_GETVERSADDR (proc 9)
//                call: rpcb { prog, vers, netid, addr, owner }   reply: universal address string
//                "h1.h2.h3.h4.p1.p2" or "<ipv6>.p1.p2" (RFC 5665), "" when not registered
//
// The reply is matched to its call by xid. The expectation is client -> server:port over the
// call's protocol (prot, or netid tcp/udp/tcp6/udp6). A universal address that names a host other
// than the server opens nothing (it would let the server punch a hole towards any host).
// UDP carries one message per datagram, TCP frames messages with record marking (bounded).

import { IPPROTO_TCP, IPPROTO_UDP, type Direction } from '../packet/types.js';
import { canonicalAddress } from '../packet/address.js';
import { newRecordState, parseRpcMessage, recordFeed, XdrReader, type RecordState } from './onc-rpc.js';
import type { ControlView, ExpectRequest, HelperResult, Refusal, SessionHelper } from './types.js';

export const PMAP_PROG = 100000;
const PMAPPROC_GETPORT = 3;
const RPCBPROC_GETADDR = 3;
const RPCBPROC_GETVERSADDR = 9;
/** Longest RPC record read on TCP; portmapper messages are well under 1 KiB. */
const MAX_RECORD = 8192;
/** Calls awaiting their reply, per session (the oldest is forgotten first). */
const MAX_PENDING = 32;
/** Netids and universal addresses are short (RFC 5665); owner strings too. */
const MAX_STRING = 255;

/** A GETPORT/GETADDR call waiting for its reply. */
export interface PendingCall {
  xid: number;
  /** portmap/rpcbind version and procedure of the call. */
  vers: number;
  proc: number;
  /** Protocol of the asked-for service (6 or 17). */
  proto: number;
  /** The program and version asked for (for the refusal texts). */
  prog: number;
  progVers: number;
}

export interface SunRpcState {
  records: [RecordState, RecordState];
  pending: PendingCall[];
}

const netidProto = (netid: string): number | undefined =>
  netid === 'tcp' || netid === 'tcp6' ? IPPROTO_TCP : netid === 'udp' || netid === 'udp6' ? IPPROTO_UDP : undefined;

/** "h1.h2.h3.h4.p1.p2" or "<ipv6>.p1.p2" → address and port (RFC 5665 section 5.2.3). */
export function parseUniversalAddress(uaddr: string): { addr: string; port: number } | undefined {
  const m = /^(.+)\.(\d{1,3})\.(\d{1,3})$/.exec(uaddr);
  if (!m) return undefined;
  const hi = +m[2], lo = +m[3];
  if (hi > 255 || lo > 255) return undefined;
  const addr = canonicalAddress(m[1]);
  if (!addr) return undefined;
  return { addr, port: hi * 256 + lo };
}

/** Reads a call's arguments into a pending entry; undefined when it is not a lookup we follow. */
function lookupCall(xid: number, vers: number, proc: number, args: Buffer): PendingCall | 'malformed' | undefined {
  const r = new XdrReader(args);
  if (vers === 2 && proc === PMAPPROC_GETPORT) {
    const prog = r.u32(), progVers = r.u32(), prot = r.u32(), port = r.u32();
    if (prog === undefined || progVers === undefined || prot === undefined || port === undefined) return 'malformed';
    if (prot !== IPPROTO_TCP && prot !== IPPROTO_UDP) return undefined;
    return { xid, vers, proc, proto: prot, prog, progVers };
  }
  if ((vers === 3 || vers === 4) && (proc === RPCBPROC_GETADDR || (vers === 4 && proc === RPCBPROC_GETVERSADDR))) {
    const prog = r.u32(), progVers = r.u32();
    const netid = r.string(MAX_STRING);
    if (prog === undefined || progVers === undefined || netid === undefined) return 'malformed';
    if (r.string(MAX_STRING) === undefined || r.string(MAX_STRING) === undefined) return 'malformed'; // r_addr, r_owner
    const proto = netidProto(netid);
    // Other transports (local, ticots...) have no port to open.
    if (proto === undefined) return undefined;
    return { xid, vers, proc, proto, prog, progVers };
  }
  return undefined;
}

function remember(st: SunRpcState, call: PendingCall): void {
  const i = st.pending.findIndex((c) => c.xid === call.xid);
  if (i >= 0) st.pending.splice(i, 1);
  st.pending.push(call);
  if (st.pending.length > MAX_PENDING) st.pending.splice(0, st.pending.length - MAX_PENDING);
}

export const sunrpcHelper: SessionHelper<SunRpcState> = {
  name: 'pmap',
  init: () => ({ records: [newRecordState(), newRecordState()], pending: [] }),
  data(st: SunRpcState, dir: Direction, bytes: Buffer, ctl: ControlView): HelperResult | undefined {
    const messages = ctl.orig.proto === IPPROTO_TCP ? recordFeed(st.records[dir === 'org' ? 0 : 1], bytes, MAX_RECORD) : [bytes];
    const expect: ExpectRequest[] = [];
    const refuse: Refusal[] = [];
    const client = ctl.orig.src;
    const server = ctl.reply.src;
    for (const b of messages) {
      const msg = parseRpcMessage(b);
      if (!msg) continue;
      if (msg.type === 'call') {
        // Lookups go from the client to the portmapper; anything else is not ours to read.
        if (dir !== 'org' || msg.prog !== PMAP_PROG) continue;
        const call = lookupCall(msg.xid, msg.vers, msg.proc, msg.args);
        if (call === 'malformed') refuse.push({ reason: 'malformed', detail: `portmapper v${msg.vers} proc ${msg.proc} call xid ${msg.xid} with truncated arguments` });
        else if (call) remember(st, call);
        continue;
      }
      if (dir !== 'reply') continue;
      const i = st.pending.findIndex((c) => c.xid === msg.xid);
      if (i < 0) continue;
      const call = st.pending[i];
      st.pending.splice(i, 1);
      if (!msg.success) continue;
      const what = `program ${call.prog} v${call.progVers}`;
      const r = new XdrReader(msg.results);
      let addr = server;
      let port: number | undefined;
      if (call.vers === 2) {
        const p = r.u32();
        if (p === undefined || p > 65535) {
          refuse.push({ reason: 'malformed', detail: `GETPORT reply for ${what}: ${p === undefined ? 'truncated' : `port ${p}`}` });
          continue;
        }
        port = p;
      } else {
        const uaddr = r.string(MAX_STRING);
        if (uaddr === undefined) {
          refuse.push({ reason: 'malformed', detail: `GETADDR reply for ${what}: truncated` });
          continue;
        }
        if (uaddr === '') continue; // not registered
        const u = parseUniversalAddress(uaddr);
        if (!u) {
          refuse.push({ reason: 'malformed', detail: `GETADDR reply for ${what}: universal address ${JSON.stringify(uaddr.slice(0, 64))}` });
          continue;
        }
        // An unspecified address means "wherever you reached me".
        if (u.addr !== '0.0.0.0' && u.addr !== '::') addr = u.addr;
        port = u.port;
      }
      if (port === 0) continue; // not registered
      if (addr !== server) {
        refuse.push({ reason: 'rpc-third-party', detail: `portmapper reply for ${what} names ${addr}:${port}, not the server ${server}` });
        continue;
      }
      expect.push({ kind: 'rpc', proto: call.proto, src: client, sport: 0, dst: server, dport: port });
    }
    if (!expect.length && !refuse.length) return undefined;
    return { expect, refuse };
  },
};
