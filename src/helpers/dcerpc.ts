// DCE/RPC endpoint mapper (the vendor's "dcerpc" helper, TCP/135; C706 chapter 12 and MS-RPCE):
// a client binds to the endpoint mapper interface (EPM, e1af8308-5d1f-11c9-91a4-08002b14a0fa v3),
// calls ept_map (opnum 3) with a tower naming the interface it wants, and the response carries
// towers with the address and port where that interface listens. The client then connects there.
//
// Read here (connection-oriented PDUs, frag_length framing, little- or big-endian drep):
//   bind / alter_context (client)    context ids proposed for the EPM interface
//   bind_ack / alter_context_resp    which of them were accepted (positional results)
//   request (client)                 ept_map calls (opnum 3) on an EPM context, by call_id
//   response (server)                the ept_map result: towers → expectations
//   fault / bind_nak                 nothing opens
// A tower's floors: 0x07 TCP port / 0x08 UDP port (big-endian), 0x09 IPv4 address. The expected
// connection is client -> tower address:port; an address other than the server's own opens
// nothing ('dcerpc-third-party'). The expectation has no strict timeout and lives as long as the
// control session (the vendor's DCE-RPC expectations show a negative expire, seed 004).
// Packet privacy (auth level 6) encrypts the stub: the response cannot be read and nothing opens,
// as with the vendor. Connectionless DCE/RPC (UDP/135) runs the same ept_map decoding on its
// datagrams (80-byte header, request/response matched by activity and sequence number).

import { IPPROTO_TCP, IPPROTO_UDP, type Direction } from '../packet/types.js';
import type { ControlView, ExpectRequest, HelperResult, Refusal, SessionHelper } from './types.js';

export const EPM_UUID = 'e1af8308-5d1f-11c9-91a4-08002b14a0fa';
export const EPM_VERSION = 3;
const NDR32_UUID = '8a885d04-1ceb-11c9-9fe8-08002b104860';
const OPNUM_EPT_MAP = 3;

export const PTYPE = { request: 0, response: 2, fault: 3, bind: 11, bindAck: 12, bindNak: 13, alterContext: 14, alterContextResp: 15 } as const;
export const PFC_FIRST_FRAG = 0x01;
export const PFC_LAST_FRAG = 0x02;
export const PFC_OBJECT_UUID = 0x80;
const AUTH_LEVEL_PKT_PRIVACY = 6;

const CO_HEADER = 16;
/** Stub bytes of one ept_map response kept across fragments. */
const MAX_STUB = 65536;
/** Calls and binds awaiting their answer, per session. */
const MAX_PENDING = 32;
/** Towers read from one response; ept_map clients ask for a handful. */
const MAX_TOWERS = 64;
const MAX_FLOORS = 16;

export interface DceStream {
  /** Bytes of an unfinished PDU (at most one frag_length, which is 16-bit). */
  buf: Buffer;
  /** The stream is not DCE/RPC (bad version or length): nothing more is read in this direction. */
  lost: boolean;
}

export interface PendingBind { callId: number; ctx: Array<{ id: number; epm: boolean }> }
export interface PendingCall {
  callId: number;
  /** Stub of the response so far (fragments). */
  stub: Buffer;
  /** The stub grew beyond the bound. */
  overflow: boolean;
}

export interface DceRpcState {
  streams: [DceStream, DceStream];
  binds: PendingBind[];
  /** Presentation context ids the server accepted for EPM with NDR. */
  epmContexts: number[];
  /** ept_map calls awaiting their response. */
  calls: PendingCall[];
  /** Connectionless calls awaiting their response, by activity uuid + sequence number. */
  clCalls: string[];
}

interface Pdu {
  type: number;
  flags: number;
  le: boolean;
  callId: number;
  b: Buffer;
  authLength: number;
}

const u16 = (b: Buffer, off: number, le: boolean): number => (le ? b.readUInt16LE(off) : b.readUInt16BE(off));
const u32 = (b: Buffer, off: number, le: boolean): number => (le ? b.readUInt32LE(off) : b.readUInt32BE(off));

/** NDR uuid (the first three fields in the data representation's byte order) as text. */
export function readUuid(b: Buffer, off: number, le: boolean): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
  const tail = b.toString('hex', off + 8, off + 16);
  return `${h(u32(b, off, le), 8)}-${h(u16(b, off + 4, le), 4)}-${h(u16(b, off + 6, le), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

/** The stub of a request or response PDU (after the auth trailer is cut off), and its auth level. */
function stubOf(p: Pdu, start: number): { stub: Buffer; authLevel: number } | undefined {
  let end = p.b.length;
  let authLevel = 0;
  if (p.authLength > 0) {
    const trailer = end - p.authLength - 8;
    if (trailer < start) return undefined;
    authLevel = p.b[trailer + 1];
    const pad = p.b[trailer + 2];
    end = trailer - pad;
    if (end < start) return undefined;
  }
  if (start > end) return undefined;
  return { stub: p.b.subarray(start, end), authLevel };
}

/** A tower (always little-endian floor framing; port and address big-endian) → transport, address, port. */
export function decodeTower(t: Buffer): { proto: number; addr?: string; port: number } | undefined {
  if (t.length < 2) return undefined;
  const floors = t.readUInt16LE(0);
  if (floors > MAX_FLOORS) return undefined;
  let off = 2;
  let proto: number | undefined;
  let port: number | undefined;
  let addr: string | undefined;
  for (let i = 0; i < floors; i++) {
    if (off + 2 > t.length) return undefined;
    const lhsLen = t.readUInt16LE(off);
    off += 2;
    if (lhsLen < 1 || off + lhsLen + 2 > t.length) return undefined;
    const id = t[off];
    off += lhsLen;
    const rhsLen = t.readUInt16LE(off);
    off += 2;
    if (off + rhsLen > t.length) return undefined;
    const rhs = t.subarray(off, off + rhsLen);
    off += rhsLen;
    if ((id === 0x07 || id === 0x08) && rhsLen === 2) { proto = id === 0x07 ? IPPROTO_TCP : IPPROTO_UDP; port = rhs.readUInt16BE(0); }
    else if (id === 0x09 && rhsLen === 4) addr = `${rhs[0]}.${rhs[1]}.${rhs[2]}.${rhs[3]}`;
  }
  if (proto === undefined || port === undefined) return undefined;
  return { proto, port, ...(addr !== undefined ? { addr } : {}) };
}

/**
 * The ept_map response stub (NDR, 32-bit): entry_handle (20), num_towers, the towers as a
 * conformant varying array of pointers to twr_t, then the status. Undefined when truncated.
 */
export function decodeEptMapResponse(s: Buffer, le: boolean): { status: number; towers: Buffer[] } | undefined {
  let off = 20;
  const need = (n: number) => off + n <= s.length;
  const align4 = () => { off = (off + 3) & ~3; };
  if (!need(4)) return undefined;
  const num = u32(s, off, le); off += 4;
  if (!need(12)) return undefined;
  off += 8; // max_count, offset
  const actual = u32(s, off, le); off += 4;
  if (actual > MAX_TOWERS || actual > num || !need(4 * actual)) return undefined;
  const present: boolean[] = [];
  for (let i = 0; i < actual; i++) { present.push(u32(s, off, le) !== 0); off += 4; }
  const towers: Buffer[] = [];
  for (const p of present) {
    if (!p) continue;
    // twr_t is a conformant struct: the conformance (max_count) first, then tower_length and the octets.
    if (!need(8)) return undefined;
    off += 4;
    const len = u32(s, off, le); off += 4;
    if (!need(len)) return undefined;
    towers.push(s.subarray(off, off + len));
    off += len;
    align4();
  }
  if (!need(4)) return undefined;
  return { status: u32(s, off, le), towers };
}

/** Splits one direction's stream into whole PDUs (bounded: one frag_length, at most 65535 bytes). */
function framePdus(st: DceStream, chunk: Buffer): Pdu[] {
  const out: Pdu[] = [];
  if (st.lost) return out;
  let buf = st.buf.length ? Buffer.concat([st.buf, chunk]) : chunk;
  while (buf.length >= CO_HEADER) {
    const le = (buf[4] & 0xf0) === 0x10;
    const fragLength = u16(buf, 8, le);
    const authLength = u16(buf, 10, le);
    if (buf[0] !== 5 || buf[1] > 1 || fragLength < CO_HEADER || authLength > fragLength - CO_HEADER) {
      st.lost = true;
      st.buf = Buffer.alloc(0);
      return out;
    }
    if (buf.length < fragLength) break;
    out.push({ type: buf[2], flags: buf[3], le, callId: u32(buf, 12, le), b: buf.subarray(0, fragLength), authLength });
    buf = buf.subarray(fragLength);
  }
  st.buf = Buffer.from(buf);
  return out;
}

function pushBounded<T>(list: T[], x: T): void {
  list.push(x);
  if (list.length > MAX_PENDING) list.splice(0, list.length - MAX_PENDING);
}

/** bind / alter_context: the context ids proposed for EPM. */
function readBind(p: Pdu): PendingBind | undefined {
  const b = p.b;
  if (b.length < 28) return undefined;
  const n = b[24];
  let off = 28;
  const ctx: PendingBind['ctx'] = [];
  for (let i = 0; i < n; i++) {
    if (off + 24 > b.length) return undefined;
    const id = u16(b, off, p.le);
    const nSyn = b[off + 2];
    const uuid = readUuid(b, off + 4, p.le);
    // if_version is a u32: major version in the low 16 bits, minor in the high 16.
    const major = u32(b, off + 20, p.le) & 0xffff;
    let ndr = false;
    off += 24;
    for (let j = 0; j < nSyn; j++) {
      if (off + 20 > b.length) return undefined;
      if (readUuid(b, off, p.le) === NDR32_UUID) ndr = true;
      off += 20;
    }
    ctx.push({ id, epm: uuid === EPM_UUID && major === EPM_VERSION && ndr });
  }
  return { callId: p.callId, ctx };
}

/** bind_ack / alter_context_resp: the results, positional to the proposed contexts. */
function readBindAck(p: Pdu): Array<{ accepted: boolean; ndr: boolean }> | undefined {
  const b = p.b;
  if (b.length < 26) return undefined;
  const secLen = u16(b, 24, p.le);
  let off = (26 + secLen + 3) & ~3;
  if (off + 4 > b.length) return undefined;
  const n = b[off];
  off += 4;
  const out: Array<{ accepted: boolean; ndr: boolean }> = [];
  for (let i = 0; i < n; i++) {
    if (off + 24 > b.length) return undefined;
    out.push({ accepted: u16(b, off, p.le) === 0, ndr: readUuid(b, off + 4, p.le) === NDR32_UUID });
    off += 24;
  }
  return out;
}

/** Towers of an ept_map response → expectations and refusals. */
function towersToExpectations(stub: Buffer, le: boolean, ctl: ControlView, expect: ExpectRequest[], refuse: Refusal[]): void {
  const r = decodeEptMapResponse(stub, le);
  if (!r) {
    refuse.push({ reason: 'malformed', detail: `ept_map response of ${stub.length} bytes not understood` });
    return;
  }
  if (r.status !== 0) return; // e.g. ept_s_not_registered: nothing to open
  const client = ctl.orig.src;
  const server = ctl.reply.src;
  for (const t of r.towers) {
    const d = decodeTower(t);
    if (!d) continue; // named pipes, LRPC, HTTP: nothing to open
    if (d.port === 0) continue;
    // 0.0.0.0 (or no address floor): "the host you reached"; towers carry IPv4 addresses only.
    const addr = d.addr === undefined || d.addr === '0.0.0.0' ? server : d.addr;
    if (addr !== server) {
      refuse.push({ reason: 'dcerpc-third-party', detail: `ept_map tower names ${addr}:${d.port}, not the server ${server}` });
      continue;
    }
    if (expect.some((x) => x.proto === d.proto && x.dport === d.port)) continue;
    expect.push({ kind: 'dcerpc', proto: d.proto, src: client, sport: 0, dst: server, dport: d.port, timeout: 0 });
  }
}

function coData(st: DceRpcState, dir: Direction, bytes: Buffer, ctl: ControlView, expect: ExpectRequest[], refuse: Refusal[]): void {
  for (const p of framePdus(st.streams[dir === 'org' ? 0 : 1], bytes)) {
    if (dir === 'org') {
      if (p.type === PTYPE.bind || p.type === PTYPE.alterContext) {
        const bind = readBind(p);
        if (bind && bind.ctx.some((c) => c.epm)) {
          st.binds = st.binds.filter((x) => x.callId !== bind.callId);
          pushBounded(st.binds, bind);
        }
      } else if (p.type === PTYPE.request && p.b.length >= 24) {
        const ctx = u16(p.b, 20, p.le);
        const opnum = u16(p.b, 22, p.le);
        if (opnum !== OPNUM_EPT_MAP || !st.epmContexts.includes(ctx)) continue;
        if ((p.flags & PFC_FIRST_FRAG) || !st.calls.some((c) => c.callId === p.callId)) {
          st.calls = st.calls.filter((c) => c.callId !== p.callId);
          pushBounded(st.calls, { callId: p.callId, stub: Buffer.alloc(0), overflow: false });
        }
      }
      continue;
    }
    if (p.type === PTYPE.bindAck || p.type === PTYPE.alterContextResp || p.type === PTYPE.bindNak) {
      const i = st.binds.findIndex((x) => x.callId === p.callId);
      if (i < 0) continue;
      const bind = st.binds[i];
      st.binds.splice(i, 1);
      if (p.type === PTYPE.bindNak) continue;
      const results = readBindAck(p);
      if (!results) continue;
      bind.ctx.forEach((c, k) => {
        const res = results[k];
        if (c.epm && res?.accepted && res.ndr && !st.epmContexts.includes(c.id)) {
          st.epmContexts.push(c.id);
          if (st.epmContexts.length > MAX_PENDING) st.epmContexts.shift();
        }
      });
    } else if (p.type === PTYPE.response || p.type === PTYPE.fault) {
      const i = st.calls.findIndex((c) => c.callId === p.callId);
      if (i < 0) continue;
      const call = st.calls[i];
      if (p.type === PTYPE.fault) { st.calls.splice(i, 1); continue; }
      const s = stubOf(p, 24);
      if (!s) { st.calls.splice(i, 1); refuse.push({ reason: 'malformed', detail: `ept_map response call_id ${p.callId}: bad auth trailer` }); continue; }
      if (s.authLevel === AUTH_LEVEL_PKT_PRIVACY) {
        st.calls.splice(i, 1);
        refuse.push({ reason: 'dcerpc-encrypted', detail: `ept_map response call_id ${p.callId} is sealed (packet privacy): its towers cannot be read` });
        continue;
      }
      if (p.flags & PFC_FIRST_FRAG) { call.stub = Buffer.alloc(0); call.overflow = false; }
      if (!call.overflow) {
        if (call.stub.length + s.stub.length > MAX_STUB) { call.overflow = true; call.stub = Buffer.alloc(0); }
        else call.stub = call.stub.length ? Buffer.concat([call.stub, s.stub]) : Buffer.from(s.stub);
      }
      if (!(p.flags & PFC_LAST_FRAG)) continue;
      st.calls.splice(i, 1);
      if (call.overflow) { refuse.push({ reason: 'malformed', detail: `ept_map response call_id ${p.callId} longer than ${MAX_STUB} bytes` }); continue; }
      towersToExpectations(call.stub, p.le, ctl, expect, refuse);
    }
  }
}

// Connectionless (C706 chapter 12.5): an 80-byte header, the body in the same datagram.
const CL_HEADER = 80;
const CL_REQUEST = 0;
const CL_RESPONSE = 2;

function clData(st: DceRpcState, dir: Direction, b: Buffer, ctl: ControlView, expect: ExpectRequest[], refuse: Refusal[]): void {
  if (b.length < CL_HEADER || b[0] !== 4) return;
  const le = (b[4] & 0xf0) === 0x10;
  const type = b[1] & 0x0f;
  const iface = readUuid(b, 24, le);
  const activity = readUuid(b, 40, le);
  const seq = u32(b, 64, le);
  const opnum = u16(b, 68, le);
  const len = u16(b, 74, le);
  const fragnum = u16(b, 76, le);
  const authProto = b[78];
  const key = `${activity}/${seq}`;
  if (dir === 'org') {
    if (type !== CL_REQUEST || iface !== EPM_UUID || opnum !== OPNUM_EPT_MAP || (u32(b, 60, le) & 0xffff) !== EPM_VERSION) return;
    st.clCalls = st.clCalls.filter((k) => k !== key);
    pushBounded(st.clCalls, key);
    return;
  }
  if (type !== CL_RESPONSE) return;
  const i = st.clCalls.indexOf(key);
  if (i < 0) return;
  st.clCalls.splice(i, 1);
  if (authProto !== 0) {
    refuse.push({ reason: 'dcerpc-encrypted', detail: `connectionless ept_map response with authentication protocol ${authProto}: not read` });
    return;
  }
  // A fragmented connectionless response (flags1 0x04 "frag") is not reassembled; ept_map answers fit one datagram.
  if ((b[2] & 0x04) || fragnum !== 0 || CL_HEADER + len > b.length) {
    refuse.push({ reason: 'malformed', detail: 'connectionless ept_map response fragmented or truncated' });
    return;
  }
  towersToExpectations(b.subarray(CL_HEADER, CL_HEADER + len), le, ctl, expect, refuse);
}

export const dcerpcHelper: SessionHelper<DceRpcState> = {
  name: 'dcerpc',
  init: () => ({ streams: [{ buf: Buffer.alloc(0), lost: false }, { buf: Buffer.alloc(0), lost: false }], binds: [], epmContexts: [], calls: [], clCalls: [] }),
  data(st: DceRpcState, dir: Direction, bytes: Buffer, ctl: ControlView): HelperResult | undefined {
    const expect: ExpectRequest[] = [];
    const refuse: Refusal[] = [];
    if (ctl.orig.proto === IPPROTO_TCP) coData(st, dir, bytes, ctl, expect, refuse);
    else clData(st, dir, bytes, ctl, expect, refuse);
    if (!expect.length && !refuse.length) return undefined;
    return { expect, refuse };
  },
};
